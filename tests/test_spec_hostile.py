"""Hostile ``mirror.toml`` values (issue 14, items 8 and 9): each is refused when the spec is
loaded, by every command that loads it, with one line ``mirror.toml:LINE: path: what — fix``
and exit 2, and nothing is written. The seeded corpus is tests/test_spec_fuzz.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from morgan.spec import MAX_REQUIREMENTS, load_spec
from tests.build_scenario import run_cli

ENV = '[environments.host]\npython = "3.11"\nplatform = "manylinux_2_28_x86_64"\n'
REQ = 'requirements = ["demo"]\n'
DEEP = "mirror.toml:{}: arrays or tables nested more than 32 deep — flatten them"
DEV = "give a path to {} on a real disk"
BAD_URL = "— give the index's Simple API root, e.g. 'https://pypi.org/simple/'"
CONTROL = "contains a space or control character — remove it (percent-encode it if the index "
FOLDER = 'not a folder — give a folder for the mirror, e.g. path = "mirror"'

CASES = {
    "arrays-500-deep": (REQ + "junk = " + "[" * 500 + "]" * 500 + "\n" + ENV, DEEP.format(2)),
    "tables-500-deep": (REQ + ENV + "markers = " + "{a = " * 500 + "1" + "}" * 500, DEEP.format(5)),
    "output-nul": (
        REQ + '[output]\npath = "\\u0000"\n' + ENV,
        "mirror.toml:3: output.path: '\\x00' contains a control character — remove it",
    ),
    "output-4000-characters": (
        REQ + '[output]\npath = "' + "d/" * 2000 + '"\n' + ENV,
        (
            f"mirror.toml:3: output.path: '{'d/' * 30}…' is longer than 1024 characters — give a "
            "shorter path to the mirror folder"
        ),
    ),
    "output-proc": (
        REQ + '[output]\npath = "/proc/self/x"\n' + ENV,
        (
            "mirror.toml:3: output.path: '/proc/self/x' is on the kernel's 'proc' "
            f"pseudo-filesystem — {DEV.format('the mirror folder')}"
        ),
    ),
    "output-dev-null": (
        REQ + '[output]\npath = "/dev/null"\n' + ENV,
        (
            "mirror.toml:3: output.path: '/dev/null' is on the kernel's 'dev' pseudo-filesystem — "
            f"{DEV.format('the mirror folder')}"
        ),
    ),
    "output-existing-file": (
        REQ + '[output]\npath = "notes.txt"\n' + ENV,
        f"mirror.toml:3: output.path: 'notes.txt' is {FOLDER}",
    ),
    "output-inside-a-file": (
        REQ + '[output]\npath = "notes.txt/mirror"\n' + ENV,
        "mirror.toml:3: output.path: 'notes.txt/mirror' lies inside {ws}/notes.txt, which is "
        + FOLDER,
    ),
    "url-broken-ipv6": (
        REQ + '[upstream]\nindex-url = "https://[::1"\n' + ENV,
        (
            f"mirror.toml:3: upstream.index-url: 'https://[::1' is not a valid URL (Invalid IPv6 "
            f"URL) {BAD_URL}"
        ),
    ),
    "url-crlf": (
        REQ + '[upstream]\nindex-url = "https://h/simple/\\r\\nX: 1"\n' + ENV,
        (
            f"mirror.toml:3: upstream.index-url: 'https://h/simple/\\r\\nX: 1' {CONTROL}really "
            "needs it)"
        ),
    ),
    "url-port-99999": (
        REQ + '[upstream]\nindex-url = "https://h:99999/simple/"\n' + ENV,
        (
            "mirror.toml:3: upstream.index-url: 'https://h:99999/simple/' is not a valid URL (Port "
            f"out of range 0-65535) {BAD_URL}"
        ),
    ),
    "url-nul-in-host": (
        REQ + '[upstream]\nindex-url = "https://h\\u0000x/simple/"\n' + ENV,
        f"mirror.toml:3: upstream.index-url: 'https://h\\x00x/simple/' {CONTROL}really needs it)",
    ),
    "private-dev-zero": (
        REQ + 'private = ["/dev/zero"]\n' + ENV,
        (
            "mirror.toml:2: private[0]: '/dev/zero' is on the kernel's 'dev' pseudo-filesystem — "
            f"{DEV.format('a wheel, an sdist or a folder of them')}"
        ),
    ),
    "private-fifo": (
        REQ + 'private = ["pipe"]\n' + ENV,
        (
            "mirror.toml:2: private[0]: 'pipe' is not a regular file or a folder (looked for "
            "{ws}/pipe) — give a wheel, an sdist or a folder of them"
        ),
    ),
    "marker-without-variable": (
        "requirements = [\"demo; 'a' in 'abc'\"]\n" + ENV,
        (
            "mirror.toml:1: requirements[0]: invalid marker in \"demo; 'a' in 'abc'\": 'abc' is "
            "not a marker variable — compare a variable such as python_version or sys_platform "
            "(PEP 508)"
        ),
    ),
}


@pytest.fixture
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / "notes.txt").write_text("not a folder\n")
    os.mkfifo(workspace / "pipe")
    monkeypatch.chdir(workspace)  # messages name the spec relative to the current directory
    return workspace


@pytest.mark.parametrize("name", sorted(CASES))
def test_hostile_value_is_one_line_at_load_and_nothing_is_written(
    ws: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    text, message = CASES[name]
    (ws / "mirror.toml").write_text(text, encoding="utf-8")
    before = sorted(ws.iterdir())
    code, out, err = run_cli(capsys, "build", "--json", "-C", str(ws))
    expected = message.format(ws=ws)
    assert (code, err) == (2, f"morgan: error: {expected}\n")
    assert out.count("\n") == 1  # the one JSON error document
    assert sorted(ws.iterdir()) == before


@pytest.mark.parametrize(
    "argv",
    [["env", "list"], ["env", "show", "host"], ["verify"], ["graph"], ["add", "other"]],
    ids="-".join,
)
def test_deep_nesting_is_one_line_for_every_command(
    ws: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    text = REQ + ENV + "[policy]\nversions = " + "[" * 500 + "]" * 500 + "\n"
    (ws / "mirror.toml").write_text(text, encoding="utf-8")
    code, _out, err = run_cli(capsys, *argv, "-C", str(ws))
    assert (code, err) == (2, f"morgan: error: {DEEP.format(6)}\n")
    assert (ws / "mirror.toml").read_text(encoding="utf-8") == text


def test_a_requirement_repeated_100_000_times_loads_once(ws: Path) -> None:
    lines = "".join('  "demo>=1.0",\n  "other",\n' for _ in range(50_000))
    (ws / "mirror.toml").write_text(f"requirements = [\n{lines}]\n{ENV}", encoding="utf-8")
    spec = load_spec(ws / "mirror.toml")
    assert [str(r) for r in spec.requirements] == ["demo>=1.0", "other"]


def test_too_many_different_requirements_are_refused_with_the_limit(
    ws: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = "".join(f'  "p{i}",\n' for i in range(MAX_REQUIREMENTS + 1))
    (ws / "mirror.toml").write_text(f"requirements = [\n{lines}]\n{ENV}", encoding="utf-8")
    code, _out, err = run_cli(capsys, "env", "list", "-C", str(ws))
    assert (code, err) == (
        2,
        (
            f"morgan: error: mirror.toml:{MAX_REQUIREMENTS + 2}: requirements[{MAX_REQUIREMENTS}]: "
            f"more than {MAX_REQUIREMENTS} different requirements — split them over several specs "
            "(each with its own mirror)\n"
        ),
    )
