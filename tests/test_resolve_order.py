"""Which release the resolver pins when several fit: the order a user relies on.

A release with a wheel for the environment beats a newer one that would need a source
build; among each, the newest wins; prereleases only when nothing final fits. The
resolver ranks releases lazily (most pins are the newest that fits), so these pin what
ranking every release first pinned.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import pytest
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from morgan.environments import Environment
from morgan.resolve import Dependencies, Release, resolve
from morgan.spec import Policy
from rules.model import NormalizedName, UpstreamFile

ENV = Environment("linux", "3.12", "manylinux_2_28_x86_64")


def _file(filename: str, *, yanked: bool = False) -> UpstreamFile:
    return UpstreamFile(
        filename=filename,
        url=f"https://files.example/{filename}",
        sha256="0" * 64,
        size=10,
        upload_time=None,
        requires_python=None,
        yanked=yanked,
        yanked_reason="",
        core_metadata=False,
        core_metadata_sha256=None,
    )


def _release(version: str, *kinds: str) -> Release:
    files = []
    for kind in kinds:
        if kind == "sdist":
            files.append(_file(f"demo-{version}.tar.gz"))
        elif kind == "wheel":
            files.append(_file(f"demo-{version}-py3-none-any.whl"))
        elif kind == "windows-wheel":
            files.append(_file(f"demo-{version}-cp312-cp312-win_amd64.whl"))
        elif kind == "yanked-wheel":
            files.append(_file(f"demo-{version}-py3-none-any.whl", yanked=True))
    return Release(NormalizedName("demo"), Version(version), tuple(files))


class _Catalog:
    def __init__(self, releases: Sequence[Release]) -> None:
        self._releases = list(releases)

    def locked(self, name: NormalizedName) -> Release | None:
        return None

    def releases(self, name: NormalizedName) -> Sequence[Release]:
        return self._releases

    def dependencies(self, release: Release, file: UpstreamFile) -> Dependencies:
        return Dependencies((), None)

    def prefetch(
        self,
        names: Iterable[NormalizedName],
        wanted: Mapping[NormalizedName, SpecifierSet] | None = None,
    ) -> None:
        pass

    def withheld(self, name: NormalizedName) -> str | None:
        return None

    def guess_dependencies(self, release: Release, file: UpstreamFile) -> None:
        return None


RELEASES = [
    _release("1.0", "wheel", "sdist"),
    _release("2.0", "wheel", "sdist"),
    _release("2.5", "yanked-wheel"),
    _release("3.0", "sdist", "windows-wheel"),  # no wheel for Linux: a source build
    _release("3.1", "windows-wheel"),  # nothing Linux can use
    _release("4.0rc1", "wheel"),
]


@pytest.mark.parametrize(
    ("requirement", "pinned"),
    [
        ("demo", "2.0"),  # a wheel beats a newer release that needs a source build
        ("demo<2", "1.0"),
        ("demo>=2.1", "3.0"),  # only source builds fit (2.5 is yanked, 3.1 has no file)
        ("demo>3.0", "4.0rc1"),  # nothing final fits: the prerelease
        ("demo==2.5", "2.5"),  # a yanked release, pinned exactly
        ("demo>=4.0rc1", "4.0rc1"),
    ],
)
def test_the_resolver_pins_the_newest_release_with_a_wheel_then_a_source_build(
    requirement: str, pinned: str
) -> None:
    # Given in any order: the catalog's order is not the preference.
    for releases in (RELEASES, RELEASES[::-1], RELEASES[2:] + RELEASES[:2]):
        result = resolve(ENV, [requirement], _Catalog(releases), Policy())
        assert str(result.pins[NormalizedName("demo")].version) == pinned


def test_the_resolver_never_pins_a_prerelease_the_policy_refuses() -> None:
    from morgan.errors import BuildError

    with pytest.raises(BuildError, match="demo"):
        resolve(ENV, ["demo>3.0"], _Catalog(RELEASES), Policy(prereleases="never"))
    result = resolve(ENV, ["demo"], _Catalog(RELEASES), Policy(prereleases="allow"))
    assert str(result.pins[NormalizedName("demo")].version) == "4.0rc1"


class _Walking:
    """demo 1.0 to 9.0 (a wheel each) and base 1.0 and 2.0; demo 9.0 to 6.0 need
    base==1.0, the rest base==2.0. Records the dependencies asked and hinted, in order."""

    def __init__(self) -> None:
        self.events: list[str] = []

    def _releases(self, name: NormalizedName) -> list[Release]:
        versions = [f"{n}.0" for n in range(1, 10)] if name == "demo" else ["1.0", "2.0"]
        return [
            Release(name, Version(v), (_file(f"{name}-{v}-py3-none-any.whl"),)) for v in versions
        ]

    def locked(self, name: NormalizedName) -> Release | None:
        return None

    def releases(self, name: NormalizedName) -> Sequence[Release]:
        return self._releases(name)

    def dependencies(self, release: Release, file: UpstreamFile) -> Dependencies:
        self.events.append(f"asked {release.name} {release.version}")
        if release.name != "demo":
            return Dependencies((), None)
        return Dependencies(("base==1.0",) if release.version >= Version("6") else (), None)

    def prefetch(
        self,
        names: Iterable[NormalizedName],
        wanted: Mapping[NormalizedName, SpecifierSet] | None = None,
    ) -> None:
        pass

    def withheld(self, name: NormalizedName) -> str | None:
        return None

    def guess_dependencies(self, release: Release, file: UpstreamFile) -> None:
        assert file.filename == f"{release.name}-{release.version}-py3-none-any.whl"
        self.events.append(f"hinted {release.name} {release.version}")


def test_a_resolver_walking_back_through_releases_hints_at_the_next_ones_first() -> None:
    # Each release the resolver walks back to costs a metadata read (a wheel's download
    # without PEP 658): the next few are hinted at before it asks for the one it is on,
    # so that they are read side by side rather than one after the other.
    catalog = _Walking()
    result = resolve(ENV, ["base==2.0", "demo"], catalog, Policy())
    assert str(result.pins[NormalizedName("demo")].version) == "5.0"
    asked = [e for e in catalog.events if e.startswith("asked demo")]
    assert asked == [f"asked demo {n}.0" for n in (9, 8, 7, 6, 5)]
    for n in (7, 6, 5):  # each hinted before it was asked
        hinted = catalog.events.index(f"hinted demo {n}.0")
        assert hinted < catalog.events.index(f"asked demo {n}.0")
    assert "hinted demo 9.0" not in catalog.events  # the first candidate: asked at once
