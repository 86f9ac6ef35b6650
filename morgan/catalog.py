"""The build's window on upstream: pages, metadata and files, each a node of the executor.

:class:`UpstreamCatalog` implements :class:`morgan.resolve.Catalog` for one environment at a
time (``for_env``), on top of shared, thread-safe caches: a project page is fetched at most
once per build, a file's metadata is read once per content (cached across builds by the
file's sha256), a file is fetched once per content (fixed output).
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from packaging.requirements import InvalidRequirement
from packaging.specifiers import SpecifierSet
from packaging.tags import parse_tag
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import Version

from morgan.cooldown import split_by_cutoff
from morgan.environments import Environment
from morgan.errors import BuildError
from morgan.executor import Executor, Node
from morgan.kept import Kept, locked_files, with_kept
from morgan.lock import BUILT_URL, Lock, LockedRelease, Role
from morgan.resolve import (
    Dependencies,
    ProjectNotFoundError,
    Release,
    parse_requirement,
    usable_files,
)
from morgan.spec import listed_files, routed
from morgan.universal import UniversalTarget, evaluate_marker
from rules import fetch, metadata, page, provenance
from rules.errors import InputError, MetadataError, RuleError, UpstreamError
from rules.fetch import Fetched
from rules.lib.fetch import Downloader, fetch_metadata
from rules.lib.metadata import filename_project, wheel_metadata_bytes
from rules.lib.project_page import sdist_head, wheel_head
from rules.lib.ranged import RangeFile, RangesUnsupportedError
from rules.metadata import MetadataOut
from rules.model import NormalizedName, ProjectPage, UpstreamFile
from rules.page import PageOut
from rules.wheel_metadata import Extracted, metadata_bytes
from store.digest import Digest
from store.errors import IntegrityError
from store.objects import Store

_SAFE_FILENAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._+!~-]*$")
# The largest wheel the crawl downloads on a guess when upstream offers no PEP 658
# ``.metadata`` for it (what a wrong guess may cost, per guess).
GUESS_MAX_BYTES = 64 * 1024 * 1024
# The largest wheel without ``.metadata`` downloaded ahead of a resolver that walks back
# through a project's releases (EnvCatalog.guess_dependencies): several are read at once.
LOOKAHEAD_MAX_BYTES = 4 * 1024 * 1024
# How many times the crawl guesses a name again when a constraint met later rules out its
# guess (each guess may cost a wheel's download without PEP 658: see EnvCatalog._narrow).
REGUESS_MAX = 2
# A wheel without ``.metadata`` at least this large has its METADATA read with range
# requests (rules/lib/ranged.py) rather than by downloading it first; below, the download
# is one request and costs less than the two or three ranges.
RANGE_MIN_BYTES = 1024 * 1024
# "1": read METADATA with range requests (opt-in: on the registry measured, whose wheels
# are downloaded anyway over a fast link, ranges cost more than they saved; see
# docs/performance.md, ninth round)
ENV_RANGES = "MORGAN_METADATA_RANGES"


def _chain(src: Future[Any], dst: Future[Any]) -> None:
    """Settle ``dst`` as ``src`` settled."""
    if src.cancelled():
        dst.cancel()
    elif src.exception() is not None:
        dst.set_exception(src.exception())
    else:
        dst.set_result(src.result())


class PageClient(Downloader, Protocol):
    def get_page(self, url: str, *, etag: str | None = None) -> Any: ...


@dataclass(frozen=True, slots=True)
class UpstreamIndex:
    name: str
    index_url: str
    projects: frozenset[str]
    exclude_newer: datetime | None = None  # files uploaded at or after it are hidden


def release_version(filename: str) -> Version | None:
    """The version a wheel or sdist filename declares; None when it is not one."""
    try:
        if filename.endswith(".whl"):
            return parse_wheel_filename(filename)[1]
        return parse_sdist_filename(filename)[1]
    except (InvalidWheelFilename, InvalidSdistFilename):
        return None


@functools.lru_cache(maxsize=1 << 12)
def _valid_tag_set(tag_set: str) -> bool:
    try:
        parse_tag(tag_set)
    except ValueError:  # InvalidTag
        return False
    return True


def _versions() -> Callable[[str], Version | None]:
    """:func:`release_version`, parsing a wheel's name and version once for all the wheels
    of a release (a page lists up to tens of thousands of wheels, a few dozen per release;
    the page's parse has just asked :func:`wheel_head` for the same heads)."""

    def version(filename: str) -> Version | None:
        if filename.endswith(".tar.gz"):
            found = sdist_head(filename[:-7])
            return None if found is None else found[1]
        if not filename.endswith(".whl"):
            return release_version(filename)
        parts = filename[:-4].rsplit("-", 3)
        if len(parts) != 4 or not _valid_tag_set("-".join(parts[1:])):
            return release_version(filename)
        found = wheel_head(parts[0])
        return None if found is None else found[1]

    return version


def group_releases(page: ProjectPage) -> list[Release]:
    """Files grouped by version; unsafe or unparsable filenames are dropped. A version the
    page skipped files of (``ProjectPage.skipped``) still makes its release."""
    by_version: dict[Version, list[UpstreamFile]] = {}
    version = _versions()
    for f in page.files:
        if not _SAFE_FILENAME.match(f.filename):
            continue
        v = version(f.filename)
        if v is None:
            continue
        by_version.setdefault(v, []).append(f)
    for v in page.skipped:
        by_version.setdefault(v, [])
    return [
        Release(page.name, v, tuple(sorted(files, key=lambda f: f.filename)))
        for v, files in sorted(by_version.items())
    ]


def private_releases(paths: Sequence[Path]) -> dict[NormalizedName, list[Release]]:
    """The wheels and sdists under ``paths`` (files, or folders searched recursively)."""
    by_name: dict[NormalizedName, list[UpstreamFile]] = {}
    for path in listed_files(tuple(paths)):
        if release_version(path.name) is None or not _SAFE_FILENAME.match(path.name):
            continue
        name = NormalizedName(filename_project(path.name))
        sha = hashlib.sha256()
        with path.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                sha.update(chunk)
        by_name.setdefault(name, []).append(
            UpstreamFile(
                filename=path.name,
                url=path.resolve().as_uri(),
                sha256=sha.hexdigest(),
                size=path.stat().st_size,
                upload_time=None,
                requires_python=None,
                yanked=False,
                yanked_reason="",
                core_metadata=False,
                core_metadata_sha256=None,
            )
        )
    return {
        name: group_releases(ProjectPage(name, tuple(sorted(fs, key=lambda f: f.filename))))
        for name, fs in by_name.items()
    }


def private_names(paths: Sequence[Path]) -> frozenset[NormalizedName]:
    """The projects of the wheels and sdists under ``paths``, from their filenames alone."""
    return frozenset(
        NormalizedName(filename_project(p.name))
        for p in listed_files(tuple(paths))
        if release_version(p.name) is not None and _SAFE_FILENAME.match(p.name)
    )


def locked_release(rel: LockedRelease) -> Release:
    return Release(NormalizedName(rel.name), Version(rel.version), locked_files(rel))


class UpstreamCatalog:
    """Pages, metadata and files through the executor, shared by every environment."""

    def __init__(
        self,
        executor: Executor,
        store: Store,
        client: PageClient,
        upstreams: Sequence[UpstreamIndex],
        *,
        lock: Lock | None,
        refresh: frozenset[str] | bool,
        offline: bool,
        private: Sequence[Path] = (),
        environments: Sequence[Environment] = (),
    ) -> None:
        self.executor = executor
        self.store = store
        self.client = client
        self.upstreams = upstreams
        self.lock = lock
        self.refresh = refresh
        self.offline = offline
        self._pages: dict[NormalizedName, list[Release]] = {}
        self._grouped: dict[NormalizedName, tuple[list[Release], list[Kept]]] = {}
        # Projects whose page this build read, and what they no longer list (kept).
        self.listed: set[NormalizedName] = set()
        self.kept: list[Kept] = []
        self.withheld: dict[NormalizedName, str] = {}  # name -> what exclude-newer hid
        self.statuses: dict[str, tuple[str, str]] = {}  # name -> PEP 792 (status, reason)
        self._metadata_by_hash: dict[str, Future[Digest] | Digest] = {}
        # Wheels whose METADATA this build read with range requests (url -> its blob), and
        # large wheels without .metadata it downloaded (url -> the fetch): each pair is
        # compared once both are known (see _ranged_metadata).
        self._ranged: dict[str, Digest] = {}
        self._downloaded: dict[str, Fetched] = {}
        self._ranges = os.environ.get(ENV_RANGES, "0").strip() == "1"
        self._no_ranges: set[str] = set()  # hosts that answered a range with the whole file
        self._mutex = threading.Lock()
        self.private = private_releases(private)
        self._locked = self._locked_names()
        # The environments resolved with this catalog: a page keeps only the wheels one
        # of them accepts (none given: every file). A universal target may mirror a wheel
        # no member accepts (resolve.usable_files), so with one, nothing is dropped.
        self._environments = tuple(environments)
        if any(isinstance(e, UniversalTarget) for e in self._environments):
            self._environments = ()
        self._tag_sets: dict[str, bool] = {}  # a wheel's tag part -> some environment takes it
        self._lock_files: dict[str, set[str]] = {}
        # id(a locked release) -> it and the Release resolution sees (see locked_run_release)
        self._locked_runs: dict[int, tuple[LockedRelease, Release]] = {}
        # id(such a Release) -> it and what the lock says it depends on
        self._locked_deps: dict[int, tuple[Release, Dependencies]] = {}
        for rel in lock.releases if lock is not None else ():
            self._lock_files.setdefault(rel.name, set()).update(f.filename for f in rel.files)

    # -- pages ------------------------------------------------------------------------------

    def refreshing(self, name: str) -> bool:
        """Whether ``--upgrade`` asked to look past the lock for ``name``."""
        return self.refresh is True or (
            isinstance(self.refresh, frozenset) and name in self.refresh
        )

    def _upstreams_for(self, name: str) -> list[UpstreamIndex]:
        return routed(self.upstreams, name)

    def page_node(self, name: NormalizedName) -> Node[PageOut]:
        urls = [u.index_url for u in self._upstreams_for(name)]
        return page.node(name, urls, offline=self.offline)

    def releases(self, name: NormalizedName) -> Sequence[Release]:
        if name in self.private:
            # Never ask an upstream about a private name: no dependency confusion.
            return self.private[name]
        with self._mutex:
            cached = self._pages.get(name)
        if cached is not None:
            return cached
        # Through the node even when the fetch already grouped the page: a fetch that
        # failed (after grouping, e.g. writing its action entry) fails here.
        out = self.executor.run(self.page_node(name), lambda: self._fetch_page(name))
        with self._mutex:
            cached = self._pages.get(name)
            grouped = self._grouped.pop(name, None)
        if cached is not None:
            return cached
        if grouped is None:  # a page from the action cache (--offline)
            parsed = None
            if out.page is not None:
                body = self._cached_page(name, out.page)
                parsed = page.read_cached(out, body, name, keep=self.page_keeps(name))
            grouped = self._group(name, parsed, out.upstream, out.missing)
        releases, kept = grouped
        with self._mutex:
            if name not in self._pages:
                self._pages[name] = releases
                if name not in self.listed:  # (a page read again after forget_lock)
                    self.listed.add(name)
                    self.kept.extend(kept)
            return self._pages[name]

    def _cached_page(self, name: NormalizedName, digest: Digest) -> bytes:
        """The page blob an --offline build reads, checked: it was written without fsync."""
        try:
            return self.store.read_verified(digest)
        except IntegrityError:
            raise BuildError(
                f"--offline: the cached page of {name!r} is damaged (a power cut while it was"
                " written?); run once with network access to fetch it again"
            ) from None

    def _group(
        self,
        name: NormalizedName,
        page: ProjectPage | None,
        page_url: str | None,
        missing: str | None,
    ) -> tuple[list[Release], list[Kept]]:
        """``page`` (None: no upstream has ``name``) as the releases this build sees: kept
        files merged back, the cut-off applied, and only the files some environment can
        use made into releases; with what the lock keeps that upstream no longer lists."""
        listed = None
        if page is not None:
            listed = group_releases(page)
            self._note_status(page)
        releases, kept = with_kept(name, listed, self.lock)
        if not releases and listed is None:
            raise ProjectNotFoundError(name, missing or "no upstream")
        # The cut-off applies after kept files are merged back: a file it hides is still
        # listed upstream (not "removed"), and a kept file is as new as it ever was.
        releases = self._cooled(name, releases, page_url)
        return self._usable(releases, {n for k in kept for n in k.filenames}), kept

    def _usable(self, releases: list[Release], kept: set[str]) -> list[Release]:
        """``releases`` without the wheels no environment of the build accepts (a numpy-like
        page keeps a few hundred of its thousands of files). Sdists, kept files and
        releases left empty stay: resolution explains a release with no usable file."""
        if not self._environments:
            return releases
        out = []
        for rel in releases:
            files = tuple(
                f for f in rel.files if f.filename in kept or self._usable_name(f.filename)
            )
            out.append(rel if len(files) == len(rel.files) else replace(rel, files=files))
        return out

    def _usable_name(self, filename: str) -> bool:
        """Whether ``filename`` is not a wheel, or a wheel some environment accepts (an
        answer per tag set, not per file: a page repeats a few dozen tag sets)."""
        if not filename.endswith(".whl"):
            return True
        parts = filename[:-4].rsplit("-", 3)
        tag_set = "-".join(parts[1:]) if len(parts) == 4 else ""
        known = self._tag_sets.get(tag_set)
        if known is None:
            known = bool(tag_set) and any(
                e.tag_set_rank(tag_set) is not None for e in self._environments
            )
            self._tag_sets[tag_set] = known
        return known

    def page_keeps(self, name: NormalizedName) -> Callable[[str], bool] | None:
        """Which of ``name``'s listed files the page parse makes into files: what
        :meth:`_usable` would keep, and every file the lock names (so that none reads as
        no longer listed). None: every file (no environments given, or a universal one)."""
        if not self._environments:
            return None
        locked = self._lock_files.get(name, set())
        return lambda filename: filename in locked or self._usable_name(filename)

    def _note_status(self, page: ProjectPage) -> None:
        """Remember a PEP 792 status other than active (for the lock, pages and policy)."""
        if page.status == "active":
            return
        with self._mutex:
            self.statuses[page.name] = (page.status, page.status_reason)
            if page.status == "quarantined" and page.name not in self.withheld:
                self.withheld[page.name] = "upstream marks the project quarantined"

    def _cutoff(self, name: str, page_url: str | None) -> datetime | None:
        """The cut-off of the upstream that served ``name``'s page; without a page (a
        project kept from the lock), the strictest of those that may serve it."""
        if page_url is not None:
            up = next((u for u in self.upstreams if page_url.startswith(u.index_url)), None)
            return up.exclude_newer if up is not None else None
        cutoffs = [u.exclude_newer for u in self._upstreams_for(name) if u.exclude_newer]
        return min(cutoffs) if cutoffs else None

    def _cooled(
        self, name: NormalizedName, releases: list[Release], page_url: str | None
    ) -> list[Release]:
        """``releases`` without the files ``exclude-newer`` hides (and then empty releases)."""
        cutoff = self._cutoff(name, page_url)
        if cutoff is None:
            return releases
        out, newer, untimed = [], 0, 0
        for rel in releases:
            kept, n, u = split_by_cutoff(rel.files, cutoff)
            newer, untimed = newer + n, untimed + u
            if kept:
                out.append(replace(rel, files=tuple(kept)))
        if newer or untimed:
            why = (
                f"exclude-newer {cutoff.strftime('%Y-%m-%dT%H:%M:%SZ')} hides {newer} newer file(s)"
            )
            if untimed:
                why += f" and {untimed} without upload-time"
            with self._mutex:
                self.withheld[name] = why
        return out

    def locked_fits_cutoff(self, rel: LockedRelease) -> bool:
        """Whether no cut-off that may apply to ``rel``'s project hides any of its files."""
        cutoff = self._cutoff(rel.name, None)
        if cutoff is None or rel.name in self.private:
            return True
        files = locked_release(rel).files
        return len(split_by_cutoff(files, cutoff)[0]) == len(files)

    def prefetch(
        self,
        names: Iterable[NormalizedName],
        then: Callable[[NormalizedName], None] | None = None,
        *,
        urgent: bool = False,
    ) -> None:
        """Start fetching the pages of `names` in the background; ``then(name)`` runs when a
        page is in (in the thread that fetched it: it must not wait on other nodes).
        ``urgent``: a resolver needs them next, so they go ahead of every page and metadata
        queued without it (the crawl's, the downloads ahead's), even those queued earlier.

        Projects the lock pins are skipped (unless refreshed): resolution takes their locked
        release first and asks for the page only if that release no longer fits, so a spec
        change does not re-fetch the pages of the requirements it left alone.
        """
        if self.offline:
            return
        locked = self._locked
        for name in names:
            if name in self.private or name in locked:
                continue
            with self._mutex:
                known = name in self._pages
            if known:
                if then is not None:
                    then(name)
                continue
            node = self.page_node(name)
            fut = self.executor.submit(node, lambda n=name: self._fetch_page(n), urgent=urgent)  # type: ignore[misc]
            if then is not None:
                fut.add_done_callback(lambda f, n=name: None if f.exception() else then(n))  # type: ignore[misc]

    def metadata_async(self, f: UpstreamFile) -> Future[MetadataOut] | None:
        """Start reading ``f``'s metadata in the background (a guess at what the resolver
        will ask next): its PEP 658 ``.metadata`` (a wrong guess costs one small request),
        or, for a wheel upstream offers no ``.metadata`` for, the wheel itself when it is at
        most :data:`GUESS_MAX_BYTES` (the resolver would download it to read it anyway, and
        the mirror keeps it when the guess is right; a wrong guess leaves it unreferenced
        in the store until gc). None otherwise."""
        if self.offline or f.url.startswith("file:"):
            return None
        if f.core_metadata:
            return self.executor.submit(self.metadata_node(f), lambda: self._metadata(f))
        if self._by_ranges(f):
            # The dependencies come from a few ranges; the wheel's download starts beside
            # them as it did before ranges (the mirror keeps it when the guess is right).
            if f.size is not None and f.size <= GUESS_MAX_BYTES:
                self.fetch_async(f)
            return self.executor.submit(self.metadata_node(f), lambda: self._metadata(f))
        if not f.filename.endswith(".whl") or f.size is None or f.size > GUESS_MAX_BYTES:
            return None
        done: Future[MetadataOut] = Future()

        def read(fetched: Future[Fetched]) -> None:
            if fetched.cancelled() or fetched.exception() is not None:
                _chain(fetched, done)  # the resolver meets the error itself, with its context
                return
            meta = self.executor.submit(self.metadata_node(f), lambda: self._metadata(f))
            meta.add_done_callback(lambda m: _chain(m, done))

        self.fetch_async(f).add_done_callback(read)
        return done

    def _locked_names(self) -> frozenset[str]:
        if self.lock is None or self.refresh is True:
            return frozenset()
        names = frozenset(r.name for r in self.lock.releases)
        return names - self.refresh if isinstance(self.refresh, frozenset) else names

    def _fetch_page(self, name: NormalizedName) -> PageOut:
        if self.offline:
            raise BuildError(
                f"--offline: the page of {name!r} is not cached; run once with network access"
            )
        urls = [u.index_url for u in self._upstreams_for(name)]
        try:
            out, parsed = page.run(self.client, self.store, name, urls, keep=self.page_keeps(name))
        except InputError as exc:
            raise BuildError(str(exc)) from None
        if parsed is not None:
            # Parsed once: the releases are made here, not read back from the blob (which
            # serves --offline builds); releases() takes them once the node has succeeded.
            grouped = self._group(name, parsed, out.upstream, None)
            with self._mutex:
                self._grouped[name] = grouped
        return out

    # -- files -------------------------------------------------------------------------------

    def file_node(self, f: UpstreamFile) -> Node[Fetched]:
        return fetch.node(f)

    def fetch(self, f: UpstreamFile) -> Fetched:
        return self.executor.run(fetch.node(f), lambda: self._fetch(f))

    def forget_lock(self) -> None:
        """Resolution is over: let the last lock go, and the pages' releases (every version
        of every project read, ~25 MB at 5 000 projects, where the selections hold the
        pinned ones; a page asked for again is made again from its node's output)."""
        self.lock = None
        self._locked_runs.clear()
        self._locked_deps.clear()
        with self._mutex:
            self._pages = {}
            self._grouped = {}

    def locked_run_release(self, rel: LockedRelease) -> Release:
        """``rel`` as resolution sees it, made once per build (every environment keeps the
        same locked pins: 6 x 4 000 releases and their files at 5 000 projects). Without
        the wheels built here: resolution must see the release as upstream has it (an
        sdist to build, with its build dependencies), as it did the first time."""
        seen = self._locked_runs.get(id(rel))
        if seen is not None and seen[0] is rel:
            return seen[1]
        files = tuple(f for f in locked_files(rel) if not f.url.startswith(BUILT_URL))
        made = Release(NormalizedName(rel.name), Version(rel.version), files)
        self._locked_runs[id(rel)] = (rel, made)
        deps = Dependencies(rel.requires_dist, rel.requires_python, rel.known, rel.metadata_source)
        self._locked_deps[id(made)] = (made, deps)
        return made

    def locked_dependencies(self, release: Release) -> Dependencies | None:
        """What the lock says ``release`` depends on, when it is the one
        :meth:`locked_run_release` made (None: look it up by name and version). Every
        environment asks this of every kept pin: 24 000 times at 5 000 projects, each a
        version's text made and a lookup in the lock before."""
        seen = self._locked_deps.get(id(release))
        return seen[1] if seen is not None and seen[0] is release else None

    def fetch_async(self, f: UpstreamFile) -> Future[Fetched]:
        """Start fetching ``f`` (on the download pool), unless its output is in the cache:
        then it is taken in the calling thread (a rebuild's resolution asks for every
        pinned file: ~12 000 cache lookups at 5 000 projects, each a pool hand-off before)."""
        node = fetch.node(f)
        cached = self.executor.reuse(node)
        if cached is not None:
            done: Future[Fetched] = Future()
            done.set_result(cached)
            return done
        return self.executor.submit(node, lambda: self._fetch(f))

    def fetch_output(self, f: UpstreamFile) -> Fetched:
        """Fetch ``f`` now (the body of its fetch node in the plan)."""
        return self._fetch(f)

    def _fetch(self, f: UpstreamFile) -> Fetched:
        known = self._fetched_before(f)
        if known is not None:
            return known
        if self.offline and not f.url.startswith("file:"):
            raise BuildError(
                f"--offline: {f.filename} is not in the store; run once with network access"
            )
        try:
            out = fetch.run(self.client, self.store, f)
        except InputError as exc:
            raise BuildError(str(exc)) from None
        if self._rangeable(f):
            self._check_ranged(f, out)
        self._alias(f, out)
        return out

    def _fetched_before(self, f: UpstreamFile) -> Fetched | None:
        """The output of this exact file (sha256 and, when known, size) under the key it got
        when its size was not known: an HTML page gives none, the lock does, so the same
        file has a fetch key of each kind (before :meth:`_alias`, only the one it ran as)."""
        if not f.sha256 or f.size is None:
            return None
        out = self.executor.cached(fetch.node(replace(f, size=None)))
        if out is None or out.sha256 != f.sha256 or out.size != f.size:
            return None
        return out

    def _alias(self, f: UpstreamFile, out: Fetched) -> None:
        """File ``out`` under the fetch key of ``f`` with the size it really has, and the
        one without a size: whichever a later build asks by (a page or the lock) finds it."""
        if not f.sha256 or out.sha256 != f.sha256:
            return
        ran = f.size or -1  # the size its key has (fetch.node: none is -1)
        for size in (None, out.size):
            if (size or -1) != ran:  # another key (its own is written by the executor)
                key = fetch.node(replace(f, size=size)).key
                self.executor.cache.put(key, out.to_json(), durable=False)

    # -- metadata ----------------------------------------------------------------------------

    def metadata_node(self, f: UpstreamFile) -> Node[MetadataOut]:
        return metadata.node(f)

    def dependencies_of(self, release: Release, f: UpstreamFile) -> Dependencies:
        out = self.metadata(f)
        return Dependencies(out.requires_dist, out.requires_python, out.known, out.source)

    def metadata(self, f: UpstreamFile) -> MetadataOut:
        return self.executor.run(self.metadata_node(f), lambda: self._metadata(f))

    def _metadata(self, f: UpstreamFile) -> MetadataOut:
        try:
            if not f.filename.endswith(".whl"):
                return metadata.from_sdist(self.store, self.fetch(f), f.filename)
            if f.core_metadata and not self.offline and not f.url.startswith("file:"):
                read_from = self._pep658_metadata(f)
                data = self.store.read_bytes(read_from)
                return metadata.from_core_metadata(data, read_from, "PEP 658 .metadata")
            ranged = self._ranged_metadata(f)
            if ranged is not None:
                return ranged
            return metadata.from_wheel(self.store, self.fetch(f), f.filename)
        except MetadataError as exc:
            raise BuildError(f"{f.filename}: {exc}") from None

    def _by_ranges(self, f: UpstreamFile) -> bool:
        """Whether ``f``'s METADATA is read with range requests (rules/lib/ranged.py): a
        wheel of :meth:`_rangeable` from a host not known to ignore ranges."""
        return self._rangeable(f) and urlsplit(f.url).netloc not in self._no_ranges

    def _rangeable(self, f: UpstreamFile) -> bool:
        """A wheel upstream offers no ``.metadata`` for, of :data:`RANGE_MIN_BYTES` or more
        (or of unknown size), from an HTTP upstream: its METADATA may be read with ranges
        (then its download is checked against it: :meth:`_check_ranged`)."""
        return (
            self._ranges
            and not f.core_metadata
            and not self.offline
            and f.filename.endswith(".whl")
            and f.url.startswith(("https:", "http:"))
            and (f.size is None or f.size >= RANGE_MIN_BYTES)
            and hasattr(self.client, "get_range")
        )

    def _ranged_metadata(self, f: UpstreamFile) -> MetadataOut | None:
        """``f``'s dependencies from its METADATA read with range requests, or None: not a
        wheel for that (:meth:`_by_ranges`), already downloaded, or the server does not
        serve ranges (or the zip needs too many): then the download is read, and reports
        whatever is wrong with the wheel."""
        if not self._by_ranges(f) or self.executor.cached(fetch.node(f)) is not None:
            return None
        get_range = self.client.get_range  # type: ignore[attr-defined]
        try:
            view = RangeFile(lambda first, last: get_range(f.url, first, last), size=f.size)
            data = wheel_metadata_bytes(view, f.filename)  # type: ignore[arg-type]
        except RangesUnsupportedError as exc:
            if exc.by_server:  # the host's other wheels are read from their downloads too
                with self._mutex:
                    self._no_ranges.add(urlsplit(f.url).netloc)
            return None
        except (MetadataError, UpstreamError):
            return None
        blob = self.store.put_bytes(data)
        with self._mutex:
            self._ranged[f.url] = blob.digest
            downloaded = self._downloaded.get(f.url)
        if downloaded is not None:
            self._same_metadata(f, blob.digest, downloaded)
        return metadata.from_core_metadata(data, blob.digest, "wheel METADATA")

    def _check_ranged(self, f: UpstreamFile, out: Fetched) -> None:
        """``f`` is downloaded: if its METADATA was read with ranges, in this build or in
        one before whose output the resolver reused (its ``about`` is then not the wheel),
        it must be the verified wheel's."""
        with self._mutex:
            self._downloaded[f.url] = out
            ranged = self._ranged.get(f.url)
        if ranged is None:
            earlier = self.executor.cached(self.metadata_node(f))
            if earlier is not None and earlier.about and earlier.about[0] != out.blob:
                ranged = earlier.about[0]
        if ranged is not None:
            self._same_metadata(f, ranged, out)

    def _same_metadata(self, f: UpstreamFile, ranged: Digest, wheel: Fetched) -> None:
        """The METADATA read with ranges must be the verified wheel's: the range bytes are
        covered by no hash, the downloaded wheel by its sha256. When it is not, what the
        resolver read is forgotten (no later build reuses it) and the build stops."""
        data = metadata_bytes(self.store, wheel.blob, f.filename)
        if Digest.of(data) != ranged:
            self.executor.cache.remove(self.metadata_node(f).key)
            raise BuildError(
                f"{f.filename}: the METADATA read with range requests is not the one in the"
                f" downloaded wheel (the server sends other bytes for a range): build again"
                f" without {ENV_RANGES}=1 to read each wheel only once it is downloaded"
            )

    def _pep658_metadata(self, f: UpstreamFile) -> Digest:
        """The blob of ``f``'s ``.metadata``, fetched once per advertised hash.

        The wheels of one release usually carry byte-identical METADATA, and upstream says
        so with equal core-metadata hashes: environments that chose different wheels of
        a release then share one request instead of one each.
        """
        sha = f.core_metadata_sha256
        if sha is None:
            return self._fetch_pep658(f)
        with self._mutex:
            pending = self._metadata_by_hash.get(sha)
            if isinstance(pending, Digest):
                return pending  # fetched already
            mine = pending is None
            if pending is None:
                pending = self._metadata_by_hash[sha] = Future()
        if not mine:
            try:
                return pending.result()  # the fetch under way in another thread
            except Exception:  # noqa: BLE001 - that file's failure is not this one's
                return self._fetch_pep658(f)
        try:
            digest = self._fetch_pep658(f)
        except BaseException as exc:
            pending.set_exception(exc)
            with self._mutex:  # the next file with this hash tries again
                del self._metadata_by_hash[sha]
            raise
        pending.set_result(digest)
        with self._mutex:  # the digest alone from now on: a future is ~1.7 kB
            self._metadata_by_hash[sha] = digest
        return digest

    def _fetch_pep658(self, f: UpstreamFile) -> Digest:
        url = f.url + ".metadata"
        return fetch_metadata(self.client, self.store, url, sha256=f.core_metadata_sha256).digest

    def provenance_output(self, f: UpstreamFile, sha256: str) -> Extracted:
        """``f``'s PEP 740 provenance (the body of its provenance node in the plan)."""
        if self.offline:
            raise BuildError(
                f"--offline: the provenance of {f.filename} is not cached; run once with "
                "network access"
            )
        return provenance.run(self.client, self.store, f, sha256)


class EnvCatalog:
    """The catalog one environment's resolution sees (its own lock pins first)."""

    def __init__(
        self,
        shared: UpstreamCatalog,
        locked: Mapping[str, LockedRelease],
        role: Role,
        env: Environment | None = None,
        hidden: Mapping[NormalizedName, str] | None = None,
    ) -> None:
        self.shared = shared
        self._locked = locked
        # The lock resolution started from (the shared catalog forgets it once resolution
        # is over; a crawl callback still running then reads it here).
        self._lock = shared.lock
        self.role = role
        self.env = env
        # Private projects of named indexes this resolution may not see: name -> the fix
        # (they are never asked of an upstream either: morgan/indexes.py).
        self.hidden = hidden or {}
        # name -> the version the crawl guessed (None: none yet, or none fits), and how
        # many times it guessed again (see prefetch)
        self._guessed: dict[NormalizedName, Version | None] = {}
        self._reguessed: dict[NormalizedName, int] = {}
        # The specifiers the crawl met for a name so far, together: the guess takes the
        # newest release they allow.
        self._wanted: dict[NormalizedName, SpecifierSet] = {}
        self._guess_mutex = threading.Lock()
        # Downloads ahead of the resolver for what any successful resolution must pin
        # (see download_certain): the names, the specifiers seen on their certain edges.
        self._files_of: Callable[[Release], Iterable[UpstreamFile]] | None = None
        self._certain: dict[NormalizedName, list[SpecifierSet]] = {}

    def locked(self, name: NormalizedName) -> Release | None:
        if self.shared.refreshing(name) or name in self.hidden:
            return None
        rel = self._locked.get(name)
        if rel is None or not self.shared.locked_fits_cutoff(rel):
            return None  # a cut-off now hides some of its files: the page decides
        return self.shared.locked_run_release(rel)

    def releases(self, name: NormalizedName) -> Sequence[Release]:
        if name in self.hidden:
            raise ProjectNotFoundError(name, "this index", fix=self.hidden[name])
        return self.shared.releases(name)

    def dependencies(self, release: Release, file: UpstreamFile) -> Dependencies:
        lock = self.shared.lock
        if lock is not None:
            known = self.shared.locked_dependencies(release)
            if known is not None:
                return known
            rel = lock.release(release.name, str(release.version))
            if rel is not None:
                return Dependencies(
                    rel.requires_dist, rel.requires_python, rel.known, rel.metadata_source
                )
        return self.shared.dependencies_of(release, file)

    def withheld(self, name: NormalizedName) -> str | None:
        return self.shared.withheld.get(name)

    def guess_dependencies(self, release: Release, file: UpstreamFile) -> None:
        """Read ``file``'s metadata ahead (the resolver is walking back through the releases
        of its project): its PEP 658 ``.metadata``, or a wheel of at most
        :data:`LOOKAHEAD_MAX_BYTES` (a wrong guess stays unreferenced until gc)."""
        lock = self.shared.lock
        if self.env is None or (
            lock is not None and lock.release(release.name, str(release.version)) is not None
        ):
            return
        if not file.core_metadata and (file.size is None or file.size > LOOKAHEAD_MAX_BYTES):
            return
        self.shared.metadata_async(file)

    def prefetch(
        self,
        names: Iterable[NormalizedName],
        wanted: Mapping[NormalizedName, SpecifierSet] | None = None,
    ) -> None:
        """The resolver's hint: it needs these pages next (its roots, or the dependencies
        of the release it has just pinned; it reads them all before it pins another), so
        they go ahead of the pages the crawl queued earlier for other projects."""
        self._prefetch(names, wanted, urgent=True)

    def _prefetch(
        self,
        names: Iterable[NormalizedName],
        wanted: Mapping[NormalizedName, SpecifierSet] | None,
        *,
        urgent: bool,
    ) -> None:
        if wanted:
            with self._guess_mutex:
                for name, specifier in wanted.items():
                    self._narrow(name, specifier)
        chosen = (n for n in names if not self._pinned_by_lock(n) and n not in self.hidden)
        self.shared.prefetch(chosen, then=self._guess_metadata if self.env else None, urgent=urgent)

    def _narrow(self, name: NormalizedName, specifier: SpecifierSet) -> None:
        """Add ``specifier`` to what the crawl met for ``name`` (the caller holds the guess
        mutex). When the release guessed so far no longer fits, the name may be guessed
        again (at most :data:`REGUESS_MAX` times): a constraint met later (aiobotocore's
        ``botocore<1.43.118``, awscli's ``docutils<0.20``) names the release the resolver
        will pin, and reading its metadata now, beside the others, spares the resolver a
        metadata read of its own, one at a time, once it gets there."""
        seen = self._wanted.get(name)
        combined = specifier if seen is None else seen & specifier
        self._wanted[name] = combined
        guess = self._guessed.get(name)
        if guess is None or combined.contains(guess, prereleases=True):
            return
        again = self._reguessed.get(name, 0)
        if again < REGUESS_MAX:
            self._reguessed[name] = again + 1
            del self._guessed[name]  # the next prefetch of the name guesses again

    def _pinned_by_lock(self, name: NormalizedName) -> bool:
        """Whether resolution tries ``name``'s locked pin first (no page needed to start):
        not for a name ``--upgrade`` refreshes, whose page the resolver reads like a new
        one's, so the crawl ahead reads it too."""
        return name in self._locked and not self.shared.refreshing(name)

    def _locked_requires(self, rel: Release) -> tuple[str, ...] | None:
        """The dependencies the lock records for ``rel`` (what :meth:`dependencies` gives
        the resolver for it, without a request), or None when the lock has no such
        release: a refreshed project's unchanged release needs no ``.metadata``."""
        if self._lock is None:
            return None
        locked = self._lock.release(rel.name, str(rel.version))
        return None if locked is None else tuple(locked.requires_dist)

    def _guess_metadata(self, name: NormalizedName) -> None:
        """Fetch ahead the metadata the resolver will most likely read first for ``name``
        (the best wheel of the newest final release that has one for this environment),
        then, from it, the pages of its dependencies, and so on down the graph.

        The resolver asks for one candidate's dependencies at a time, so left alone it
        walks a chain N deep in N × (page + metadata) round trips; this crawl walks every
        branch at once, and the resolver mostly finds what it asks for already here. The
        guess is the newest final release the first requirement met for ``name`` allows. A
        wrong guess costs a few small requests, or, when upstream offers no PEP 658
        ``.metadata``, one file of at most :data:`GUESS_MAX_BYTES` (see metadata_async).
        """
        env = self.env
        if env is None:
            return
        with self._guess_mutex:
            if name in self._guessed:
                return
            self._guessed[name] = None
        try:
            releases = self.shared.releases(name)
        except (ProjectNotFoundError, BuildError, RuleError):
            return  # the resolver meets the same error itself, with its context
        while True:
            with self._guess_mutex:
                wanted = self._wanted.get(name)
            chosen = self._newest_fitting(releases, env, wanted)
            with self._guess_mutex:
                if self._wanted.get(name) is wanted:  # else narrowed meanwhile: again
                    self._guessed[name] = chosen[0].version if chosen is not None else None
                    break
        if chosen is None:
            return
        rel, wheel = chosen
        known = self._locked_requires(rel)
        if known is not None:
            self._crawl_requirements(known)
            return
        fut = self.shared.metadata_async(wheel)
        if fut is not None:
            fut.add_done_callback(self._crawl_dependencies)

    @staticmethod
    def _newest_fitting(
        releases: Sequence[Release], env: Environment, wanted: SpecifierSet | None
    ) -> tuple[Release, UpstreamFile] | None:
        """The newest final release ``wanted`` allows that has a wheel for ``env``, and
        that wheel (the one the resolver reads first); when ``wanted`` allows no final
        release, the newest prerelease it allows that has one (a project with betas only,
        or pinned to one: the resolver takes prereleases when they are the only match)."""
        fitting = [
            r
            for r in sorted(releases, key=lambda r: r.version, reverse=True)
            if wanted is None or wanted.contains(r.version, prereleases=True)
        ]
        finals = [r for r in fitting if not r.version.is_prerelease]
        for rel in finals or fitting:
            wheels, _ = usable_files(rel, env, allow_yanked=False)
            if wheels:
                return rel, wheels[0]
        return None

    def download_certain(
        self, roots: Iterable[str], files_of: Callable[[Release], Iterable[UpstreamFile]]
    ) -> None:
        """Start downloading, ahead of the resolver, the files of every release that any
        successful resolution of ``roots`` must pin in this environment; ``files_of`` gives
        the files the build mirrors for a pinned release.

        A name is certain when a root requirement names it (its marker holding here), or
        when a certain release depends on it unconditionally; a certain name's release is
        certain when it is the only release with a file this environment can use (a final,
        not yanked one that fits every specifier seen on the way). Whatever the resolver
        pins otherwise, it must pin that release or fail, so these files are exactly
        files the generation will hold: a project with one release and large wheels (a
        model, a runtime) starts streaming a few round trips after its parent's metadata,
        not when the resolver reaches it (which is after every project before it in its
        order). Pins from a lock are left to the resolver (it tries them first), and so is
        a universal target (its markers say what may hold, not what must).
        """
        env = self.env
        if env is None or isinstance(env, UniversalTarget) or self.shared.offline:
            return
        self._files_of = files_of
        self._certain_requirements(roots, env)

    def _be_certain(self, name: NormalizedName, specifier: SpecifierSet) -> None:
        if self._pinned_by_lock(name) or name in self.hidden:
            return
        with self._guess_mutex:
            seen = self._certain.get(name)
            if seen is not None:
                seen.append(specifier)
                return
            self._certain[name] = [specifier]
        self.shared.prefetch([name], then=self._certain_page)

    def _certain_page(self, name: NormalizedName) -> None:
        """``name`` is certain and its page is in: download its release's files if only
        one release can be pinned, and follow that release's dependencies."""
        env = self.env
        if env is None or name in self.shared.statuses:  # not active: policy decides
            return
        try:
            releases = self.shared.releases(name)
        except (ProjectNotFoundError, BuildError, RuleError):
            return  # the resolver meets the same error itself, with its context
        usable: list[Release] = []
        for r in reversed(releases):  # newest first: a second usable release ends the look
            if any(usable_files(r, env, allow_yanked=True)):
                usable.append(r)
                if len(usable) > 1:
                    return
        if len(usable) != 1 or usable[0].version.is_prerelease:
            return
        rel = usable[0]
        wheels, sdists = usable_files(rel, env, allow_yanked=False)
        if not wheels and not sdists:
            return  # yanked: only an == pin may take it
        with self._guess_mutex:
            specifiers = list(self._certain.get(name, ()))
        if not all(s.contains(rel.version, prereleases=True) for s in specifiers):
            return  # no resolution can succeed: nothing to fetch for it
        if self._files_of is not None:
            for f in self._files_of(rel):
                self.shared.fetch_async(f)
        known = self._locked_requires(rel)
        if known is not None:
            self._certain_requirements(known, env)
            return
        # The resolver reads the dependencies of the best wheel (yanked allowed).
        source = usable_files(rel, env, allow_yanked=True)[0]
        fut = self.shared.metadata_async(source[0]) if source else None
        if fut is not None:
            fut.add_done_callback(self._certain_dependencies)

    def _certain_dependencies(self, done: Future[MetadataOut]) -> None:
        """A certain release's metadata is in: what it needs here is certain too."""
        env = self.env
        if env is None or done.exception() is not None:
            return
        out = done.result()
        if out.requires_python and not env.accepts_requires_python(out.requires_python):
            return  # no resolution can succeed
        self._certain_requirements(out.requires_dist, env)

    def _certain_requirements(self, texts: Iterable[str], env: Environment) -> None:
        """Each requirement of ``texts`` whose marker holds in ``env`` (without extras) and
        that names an index project makes that project certain, within its specifier."""
        for text in texts:
            try:
                req = parse_requirement(text)
            except InvalidRequirement:
                continue
            if req.url is None and evaluate_marker(req.marker, env, ""):
                self._be_certain(NormalizedName(canonicalize_name(req.name)), req.specifier)

    def _crawl_dependencies(self, done: Future[MetadataOut]) -> None:
        """Prefetch the pages of what a guessed release needs in this environment."""
        if self.env is None or done.exception() is not None:
            return  # the resolver meets the same error itself, with its context
        self._crawl_requirements(done.result().requires_dist)

    def _crawl_requirements(self, texts: Iterable[str]) -> None:
        """Prefetch the pages of the requirements ``texts`` whose markers hold here."""
        env = self.env
        if env is None:
            return
        names = []
        wanted: dict[NormalizedName, SpecifierSet] = {}
        for text in texts:
            try:
                req = parse_requirement(text)
            except InvalidRequirement:
                continue
            if evaluate_marker(req.marker, env, ""):
                name = NormalizedName(canonicalize_name(req.name))
                names.append(name)
                if req.specifier and name not in wanted:
                    wanted[name] = req.specifier
        self._prefetch(names, wanted, urgent=False)
