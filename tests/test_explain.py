"""Resolution failures say why: which constraint excluded which versions, the newest
existing version, and close names for an unknown project (``morgan build`` end to end)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from packaging.version import Version

from morgan.explain import close_names, versions_text
from tests.build_scenario import morgan
from tests.upstream import FakeUpstream

SPEC = """\
requirements = [{reqs}]

[upstream]
index-url = "{url}"

[environments.linux]
python = "3.10"
platform = "manylinux_2_28_x86_64"
"""


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeUpstream]:
    root = tmp_path_factory.mktemp("explain")
    with FakeUpstream(root / "upstream").start() as up:
        _populate(up)
        yield up


def _populate(up: FakeUpstream) -> None:
    up.add_release("webfw", "5.2", requires_python=">=3.10")
    up.add_release("webfw", "6.0", requires_python=">=3.12")
    up.add_release("webfw", "6.0.1", requires_python=">=3.12")
    up.add_release("numerics", "2.1.0")
    up.add_release("django", "5.2")
    up.add_release(
        "winlib", "1.0", wheels=["py3-none-win_amd64", "py3-none-macosx_11_0_arm64"], sdist=False
    )
    up.add_release("gone", "1.0", yanked="broken build")


def _error(upstream: FakeUpstream, tmp_path: Path, requirement: str) -> str:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "mirror.toml").write_text(SPEC.format(reqs=f'"{requirement}"', url=upstream.url))
    proc = morgan(ws, "build")
    assert proc.returncode == 1
    assert not (ws / "mirror" / "index").exists()
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


HEAD = "morgan: error: environment 'linux' (Python 3.10, manylinux_2_28_x86_64): "
TAIL = ": relax the requirement, or remove the environment that cannot have it"


def test_requires_python_names_the_versions_and_the_environment_python(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    assert _error(upstream, tmp_path, "webfw>=6") == (
        f"{HEAD}webfw>=6: 6.0.1, 6.0 need Requires-Python >=3.12 (environment 'linux' has "
        "Python 3.10) (newest release: 6.0.1); needed by 'webfw>=6' (required by <spec>)"
        f"{TAIL}"
    )


def test_a_version_that_does_not_exist_names_the_newest(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    assert _error(upstream, tmp_path, "numerics==99") == (
        f"{HEAD}numerics: no version matches ==99 (newest is 2.1.0); needed by 'numerics==99' "
        f"(required by <spec>){TAIL}"
    )


def test_no_wheel_for_the_tags_and_no_sdist(upstream: FakeUpstream, tmp_path: Path) -> None:
    assert _error(upstream, tmp_path, "winlib") == (
        f"{HEAD}winlib: 1.0 have no wheel for manylinux_2_28_x86_64 (Python 3.10) and no sdist "
        f"(newest release: 1.0); needed by 'winlib' (required by <spec>){TAIL}"
    )


def test_yanked_only(upstream: FakeUpstream, tmp_path: Path) -> None:
    assert _error(upstream, tmp_path, "gone>=1") == (
        f"{HEAD}gone>=1: 1.0 yanked upstream — pin one with == to mirror it anyway (newest "
        f"release: 1.0); needed by 'gone>=1' (required by <spec>){TAIL}"
    )


def test_an_unknown_project_gets_close_names_from_the_upstream(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    assert _error(upstream, tmp_path, "djnago") == (
        f"morgan: error: environment 'linux': project 'djnago' not found on {upstream.url}; "
        "needed by 'djnago' (required by <spec>): check the name, or add an upstream that has "
        "it — did you mean 'django'?"
    )


def test_close_names_and_version_lists() -> None:
    names = ["django", "Django-Rest", "numpy", "nmupy-extra", "requests"]
    assert close_names("djnago", names) == ["django"]
    assert close_names("nmupy", names) == ["numpy"]
    assert close_names("zzz", names) == []
    assert versions_text([]) == ""
    assert versions_text([Version(v) for v in "54321"]) == "5, 4, 3 and 2 more"
