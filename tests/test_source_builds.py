"""morgan.source_builds: which environments get a locked release only as an sdist."""

from __future__ import annotations

import pytest

from morgan.environments import Environment
from morgan.lock import Lock, LockedEnvironment, LockedFile, LockedPin, LockedRelease
from morgan.source_builds import C_TOOLCHAIN, MAYBE, source_builds
from morgan.universal import UniversalTarget


def _file(filename: str, requires_python: str | None = None) -> LockedFile:
    return LockedFile(
        filename, f"https://x/{filename}", 1, "0" * 64, "0" * 64, None, requires_python,
        False, "", None, None,
    )  # fmt: skip


def _release(name: str, *files: LockedFile) -> LockedRelease:
    return LockedRelease(name, "1.0", (), None, True, "", ("setuptools",), files)


def _lock(envs: list[Environment], *releases: LockedRelease) -> Lock:
    pins = tuple(LockedPin(r.name, r.version, "run") for r in releases)
    return Lock(
        "0" * 64,
        releases,
        tuple(LockedEnvironment(e.name, e.python, e.platform, pins, ()) for e in envs),
    )


LINUX = Environment("linux", "3.12", "manylinux_2_17_x86_64")
WINDOWS = Environment("windows", "3.11", "win_amd64")


def test_the_sdist_of_a_release_no_wheel_fits() -> None:
    lock = _lock(
        [LINUX, WINDOWS],
        _release("pure", _file("pure-1.0-py3-none-any.whl"), _file("pure-1.0.tar.gz")),
        _release(
            "native",
            _file("native-1.0-cp312-cp312-manylinux_2_17_x86_64.whl"),
            _file("native-1.0.tar.gz"),
            _file("native-1.0.zip"),
        ),
        _release("only", _file("only-1.0.tar.gz")),
        # its wheel needs a Python the Windows target does not have
        _release("newer", _file("newer-1.0-py3-none-any.whl", ">=3.12"), _file("newer-1.0.tgz")),
        _release("none", _file("none-1.0-cp312-cp312-win_amd64.whl")),  # no sdist: no build
    )
    found = [(b.env, b.name, b.sdist, b.toolchain) for b in source_builds(lock, [LINUX, WINDOWS])]
    assert found == [
        ("linux", "only", "only-1.0.tar.gz", MAYBE),
        ("windows", "native", "native-1.0.tar.gz", C_TOOLCHAIN),  # the first sdist
        ("windows", "newer", "newer-1.0.tgz", MAYBE),
        ("windows", "only", "only-1.0.tar.gz", MAYBE),
    ]


def test_a_universal_target_builds_nothing_a_wheel_serves() -> None:
    """A universal view keeps a wheel that fits no member (usable_among's fallback): no
    source build there."""
    target = UniversalTarget("all", "3.12", LINUX.platform, members=(LINUX,))
    lock = _lock(
        [target],
        _release("win", _file("win-1.0-cp312-cp312-win_amd64.whl"), _file("win-1.0.tar.gz")),
        _release("only", _file("only-1.0.tar.gz")),
    )
    assert [(b.name, b.sdist) for b in source_builds(lock, [target])] == [
        ("only", "only-1.0.tar.gz")
    ]


def test_a_release_with_a_wheel_that_fits_is_not_ranked_further(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every pin of a lock in each environment is asked (24 000 at 5 000 projects): the
    first wheel that fits settles it, the others are not ranked."""
    wheels = [_file("many-1.0-py3-none-any.whl")] + [
        _file(f"many-1.0-cp3{m}-cp3{m}-win_amd64.whl") for m in range(8, 14)
    ]
    lock = _lock([LINUX], _release("many", *wheels, _file("many-1.0.tar.gz")))
    ranked: list[str] = []
    rank = Environment.wheel_rank

    def counting(self: Environment, filename: str) -> int | None:
        ranked.append(filename)
        return rank(self, filename)

    monkeypatch.setattr(Environment, "wheel_rank", counting)
    assert source_builds(lock, [LINUX]) == []
    assert ranked == ["many-1.0-py3-none-any.whl"]
