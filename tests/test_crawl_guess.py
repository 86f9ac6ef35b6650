"""Which release the crawl ahead of the resolver reads the metadata of.

The crawl guesses, for each project it meets, the release the resolver will most likely
pin, and reads its metadata before the resolver asks (without PEP 658 that is a wheel's
download). A guess the resolver does not take costs the resolver a metadata read of its
own later, one at a time: on the real index's 200 most-downloaded projects, seven of them
(python-dateutil, botocore, docutils, tenacity, cryptography...) were capped by a
dependency met after the crawl had guessed their newest release.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future

from packaging.specifiers import SpecifierSet
from packaging.version import Version

from morgan.catalog import REGUESS_MAX, EnvCatalog
from morgan.environments import Environment
from morgan.resolve import Release
from rules.metadata import MetadataOut
from rules.model import NormalizedName, UpstreamFile

ENV = Environment("linux", "3.12", "manylinux_2_28_x86_64")


def _file(filename: str) -> UpstreamFile:
    return UpstreamFile(
        filename=filename,
        url=f"https://files.example/{filename}",
        sha256="0" * 64,
        size=10,
        upload_time=None,
        requires_python=None,
        yanked=False,
        yanked_reason="",
        core_metadata=True,
        core_metadata_sha256=None,
    )


class _Shared:
    """The shared catalog as the crawl sees it: pages already in, metadata reads recorded
    (by filename, in order) and never answered."""

    lock = None

    def __init__(self, releases: dict[str, list[tuple[str, str]]]) -> None:
        self.statuses: dict[str, tuple[str, str]] = {}
        # name -> [(version, "wheel" | "sdist")]
        self._releases = releases
        self.read: list[str] = []

    def refreshing(self, name: str) -> bool:
        return False

    def releases(self, name: NormalizedName) -> Sequence[Release]:
        out = []
        for version, kind in self._releases[name]:
            filename = (
                f"{name}-{version}-py3-none-any.whl"
                if kind == "wheel"
                else f"{name}-{version}.tar.gz"
            )
            out.append(Release(name, Version(version), (_file(filename),)))
        return out

    def prefetch(
        self,
        names: Iterable[NormalizedName],
        then: Callable[[NormalizedName], None] | None = None,
        *,
        urgent: bool = False,
    ) -> None:
        for name in names:  # every page is in: the callback runs at once
            if then is not None:
                then(name)

    def metadata_async(self, f: UpstreamFile) -> Future[MetadataOut] | None:
        self.read.append(f.filename)
        return Future()  # never done: the crawl does not follow it here


def _crawl(releases: dict[str, list[tuple[str, str]]]) -> tuple[EnvCatalog, _Shared]:
    shared = _Shared(releases)
    return EnvCatalog(shared, {}, "run", ENV), shared  # type: ignore[arg-type]


DEP = NormalizedName("dep")


def test_a_constraint_met_after_the_guess_has_the_release_it_allows_read_ahead() -> None:
    # `top` needs plain `dep` (the crawl guesses dep 2.0), then `cap` turns up with dep<2:
    # the resolver will pin dep 1.0, and its metadata is read now, not when it gets there.
    crawl, shared = _crawl({"dep": [("1.0", "wheel"), ("2.0", "wheel")]})
    crawl.prefetch([DEP])
    assert shared.read == ["dep-2.0-py3-none-any.whl"]
    crawl.prefetch([DEP], {DEP: SpecifierSet("<2")})
    assert shared.read == ["dep-2.0-py3-none-any.whl", "dep-1.0-py3-none-any.whl"]
    # A constraint the guess meets changes nothing; the specifiers add up.
    crawl.prefetch([DEP], {DEP: SpecifierSet(">=1")})
    crawl.prefetch([DEP])
    assert shared.read == ["dep-2.0-py3-none-any.whl", "dep-1.0-py3-none-any.whl"]


def test_the_first_guess_takes_every_constraint_met_before_it() -> None:
    crawl, shared = _crawl({"dep": [("1.0", "wheel"), ("2.0", "wheel"), ("3.0", "wheel")]})
    crawl.prefetch([], {DEP: SpecifierSet("<3")})  # met before the page was in
    crawl.prefetch([DEP], {DEP: SpecifierSet("!=2.0")})
    assert shared.read == ["dep-1.0-py3-none-any.whl"]


def test_a_name_is_guessed_again_a_bounded_number_of_times() -> None:
    versions = [(f"{n}.0", "wheel") for n in range(1, 10)]
    crawl, shared = _crawl({"dep": versions})
    crawl.prefetch([DEP])
    for n in range(9, 1, -1):  # each constraint rules out the guess before it
        crawl.prefetch([DEP], {DEP: SpecifierSet(f"<{n}")})
    assert shared.read == [f"dep-{n}.0-py3-none-any.whl" for n in range(9, 8 - REGUESS_MAX, -1)]


def test_a_project_with_prereleases_only_has_its_newest_fitting_one_guessed() -> None:
    # opentelemetry-instrumentation and friends publish betas only (0.66b2).
    crawl, shared = _crawl(
        {
            "beta": [("0.1b1", "wheel"), ("0.2b1", "wheel"), ("0.3b1", "wheel")],
            "mixed": [("1.0", "sdist"), ("2.0b1", "wheel")],
        }
    )
    crawl.prefetch([NormalizedName("beta")], {NormalizedName("beta"): SpecifierSet("<0.3b1")})
    # A final release fits (an sdist only): the resolver takes it, not the prerelease.
    crawl.prefetch([NormalizedName("mixed")])
    assert shared.read == ["beta-0.2b1-py3-none-any.whl"]
