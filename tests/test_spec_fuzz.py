"""The hostile-spec corpus: every seeded mutation of a valid spec (tests/spec_mutations.py)
is loaded and then built offline through the real CLI (in this process).

Every case must end as a valid load or as one line with exit 2 (``mirror.toml:LINE: …``),
never a traceback; a spec refused at load time writes nothing; and a build never writes
outside its workspace and its output folder.
"""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pytest

from morgan.errors import SpecError
from morgan.spec import load_spec
from tests.build_scenario import run_cli
from tests.spec_mutations import OPERATORS, mutations

CASES = mutations()
PYLOCK = 'lock-version = "1.0"\ncreated-by = "tests"\npackages = []\n'


def _snapshot(root: Path) -> set[Path]:
    return set(root.rglob("*"))


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def test_every_mutation_loads_or_fails_in_one_line_and_writes_nothing_outside(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert len(CASES) >= 300
    sandbox = tmp_path / "a" / "b" / "c"
    sandbox.mkdir(parents=True)
    (tmp_path / "pylock.toml").write_text(PYLOCK)
    before = _snapshot(tmp_path)
    problems: list[str] = []
    outcomes: Counter[str] = Counter()
    for case in CASES:
        ws = sandbox / "ws"
        (ws / "wheels").mkdir(parents=True)
        (ws / "pylock.toml").write_text(PYLOCK)
        (ws / "mirror.toml").write_text(case.text, encoding="utf-8", newline="")
        monkeypatch.chdir(ws)
        try:
            spec = load_spec(ws / "mirror.toml")
        except SpecError as exc:
            error = str(exc)
            spec = None
        except Exception as exc:
            problems.append(f"{case.id}: load_spec: {type(exc).__name__}: {exc}"[:300])
            error, spec = "", None
        if spec is not None and not _inside(spec.output, tmp_path):
            outcomes["loaded, output outside the test's folder: not built"] += 1
            shutil.rmtree(ws)
            continue
        try:
            code, _out, err = run_cli(capsys, "build", "--offline", "-C", str(ws))
        except Exception as exc:
            capsys.readouterr()
            problems.append(f"{case.id}: traceback: {type(exc).__name__}: {exc}"[:300])
            code, err = -1, ""
        if spec is None:
            outcomes["refused"] += 1
            if code != 2 or err != f"morgan: error: {error}\n" or "\n" in error:
                problems.append(f"{case.id}: exit {code}, {err!r} (load said {error!r})")
            elif not error.startswith("mirror.toml:"):
                problems.append(f"{case.id}: error without its line: {error!r}")
            new = _snapshot(tmp_path) - before - _snapshot(ws) - {ws}
            if new or _snapshot(ws) != {ws / "wheels", ws / "pylock.toml", ws / "mirror.toml"}:
                problems.append(f"{case.id}: a refused spec wrote {sorted(new)}")
        else:
            outcomes["loaded"] += 1
            if code != 0 and len(err.splitlines()) != 1:
                problems.append(f"{case.id}: exit {code} with {err!r}")
            allowed = (ws, spec.output)
            for path in _snapshot(tmp_path) - before:
                if not any(_inside(path, root) or _inside(root, path) for root in allowed):
                    problems.append(f"{case.id}: wrote {path} outside {allowed}")
            if _inside(spec.output, tmp_path):
                shutil.rmtree(spec.output, ignore_errors=True)
        shutil.rmtree(ws)
        leftovers = _snapshot(tmp_path) - before
        for path in sorted(leftovers, reverse=True):  # parents made for an output outside ws
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    assert problems == []
    # The corpus exercises both outcomes and every operator.
    assert outcomes["refused"] >= 200, outcomes
    assert outcomes["loaded"] >= 20, outcomes
    assert {c.id.split("-", 1)[1] for c in CASES} == {op.__name__ for op in OPERATORS}
