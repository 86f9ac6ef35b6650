"""The files each environment uses of a pinned release (morgan/selected_files.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from packaging.version import Version

from morgan import resolve
from morgan.environments import Environment
from morgan.resolve import Release
from morgan.selected_files import env_files, forget_files, usable_with_yanked
from rules.model import NormalizedName, UpstreamFile

LINUX = Environment("linux", "3.12", "manylinux_2_28_x86_64")


def _file(filename: str, *, yanked: bool = False) -> UpstreamFile:
    return UpstreamFile(
        filename=filename,
        url=f"https://example.test/{filename}",
        sha256="0" * 64,
        size=10,
        upload_time=None,
        requires_python=None,
        yanked=yanked,
        yanked_reason="broken" if yanked else "",
        core_metadata=False,
        core_metadata_sha256=None,
    )


def _release(*files: UpstreamFile) -> Release:
    return Release(NormalizedName("demo"), Version("1.0"), files)


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    forget_files()
    yield
    forget_files()


@pytest.fixture
def ranked(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The filenames of each release whose files were ranked for an environment."""
    calls: list[str] = []
    real = resolve.usable_files

    def counting(release: Release, env: Environment, *, allow_yanked: bool) -> object:
        calls.append(str(release.version))
        return real(release, env, allow_yanked=allow_yanked)

    monkeypatch.setattr("morgan.selected_files.usable_files", counting)
    return calls


def test_a_release_without_yanked_files_is_ranked_once_per_environment(ranked: list[str]) -> None:
    """The resolution's usable files of a kept pin are what the views and the lock use:
    the files are not ranked a second time for the same environment."""
    rel = _release(
        _file("demo-1.0-py3-none-any.whl"),
        _file("demo-1.0-cp312-cp312-win_amd64.whl"),
        _file("demo-1.0.tar.gz"),
    )
    wheels, sdists = usable_with_yanked(rel, LINUX)
    got = env_files(rel, LINUX)
    assert [f.filename for f in got] == ["demo-1.0-py3-none-any.whl", "demo-1.0.tar.gz"]
    assert list(got) == wheels + sdists
    assert ranked == ["1.0"]


def test_yanked_files_are_still_left_out(ranked: list[str]) -> None:
    rel = _release(
        _file("demo-1.0-py3-none-any.whl", yanked=True),
        _file("demo-1.0.tar.gz"),
    )
    wheels, _sdists = usable_with_yanked(rel, LINUX)
    assert [f.filename for f in wheels] == ["demo-1.0-py3-none-any.whl"]
    assert [f.filename for f in env_files(rel, LINUX)] == ["demo-1.0.tar.gz"]
    assert [f.filename for f in env_files(rel, LINUX, sdists=False)] == ["demo-1.0.tar.gz"]


def test_a_release_with_only_yanked_files_gives_them(ranked: list[str]) -> None:
    """Pinned with == to a yanked release: its files are served (with their yanked mark)."""
    rel = _release(_file("demo-1.0-py3-none-any.whl", yanked=True))
    assert [f.filename for f in env_files(rel, LINUX)] == ["demo-1.0-py3-none-any.whl"]
