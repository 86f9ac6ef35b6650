"""Per-environment dependency resolution: a resolvelib provider with no I/O of its own.

Everything the resolver needs from the outside world — which releases a project has, what a
release depends on — comes through a :class:`Catalog`, injected by the build. The resolver
evaluates markers and ``Requires-Python`` for *one* described target, honours extras, and
prefers, in order: the version already locked, versions with a wheel that fits the target
(newest first), then versions that would need a source build (newest first).
"""

from __future__ import annotations

import functools
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version
from resolvelib import AbstractProvider, BaseReporter
from resolvelib.resolvers import ResolutionImpossible, ResolutionTooDeep

from morgan.environments import Environment
from morgan.errors import BuildError
from morgan.explain import exclusion, why_nothing_fits
from morgan.lean_resolver import LeanResolver
from morgan.spec import Policy
from morgan.universal import UniversalTarget, evaluate_marker
from rules.model import NormalizedName, UpstreamFile

PYTHON = "<python>"  # the virtual project that stands for the target interpreter
# The resolver's round limit: a round pins one name (or backtracks), so the limit grows with
# the names a resolution meets; the floor leaves small resolutions room to backtrack.
MIN_ROUNDS = 20_000
ROUNDS_PER_NAME = 20
# How many releases past a passed-over candidate the provider hints the catalog at (their
# dependencies are read side by side while the resolver checks the candidate).
LOOKAHEAD = 4
SPEC = "<spec>"  # the parent of the spec's own requirements


@dataclass(frozen=True, slots=True)
class Release:
    """One version of a project with the files upstream lists for it."""

    name: NormalizedName
    version: Version
    files: tuple[UpstreamFile, ...]


@dataclass(frozen=True, slots=True)
class Dependencies:
    """What a release declares, read from one of its files' core metadata."""

    requires_dist: tuple[str, ...]
    requires_python: str | None
    known: bool = True  # False: an sdist whose dependencies cannot be known without running code
    source: str = ""


class Catalog(Protocol):
    """The resolver's window on upstream and on the lock (implemented by the build)."""

    def locked(self, name: NormalizedName) -> Release | None:
        """The release this environment had locked, without any network access."""

    def releases(self, name: NormalizedName) -> Sequence[Release]:
        """Every release upstream lists (may fetch a page); raises ProjectNotFoundError."""

    def dependencies(self, release: Release, file: UpstreamFile) -> Dependencies:
        """The declared dependencies of ``release``, read from ``file``."""

    def prefetch(
        self,
        names: Iterable[NormalizedName],
        wanted: Mapping[NormalizedName, SpecifierSet] | None = None,
    ) -> None:
        """A hint: these projects' pages will probably be needed soon (``wanted``: what
        the requirements that named them allow, for a guess at the release to read)."""

    def withheld(self, name: NormalizedName) -> str | None:
        """What policy hid from ``name``'s releases (for messages), None when nothing."""

    def guess_dependencies(self, release: Release, file: UpstreamFile) -> None:
        """A hint: ``dependencies(release, file)`` will probably be asked soon."""


class UnknownProjectError(BuildError):
    """No upstream has a project the resolution needs (the build may add close names)."""

    def __init__(self, message: str, name: NormalizedName) -> None:
        super().__init__(message)
        self.name = name


class ProjectNotFoundError(Exception):
    """Raised by a catalog for a project no upstream has."""

    def __init__(self, name: NormalizedName, where: str, *, fix: str | None = None) -> None:
        super().__init__(f"{name} not found on {where}")
        self.name = name
        self.where = where
        self.fix = fix  # what to do, when it is not "check the name, or add an upstream"


@dataclass(frozen=True, slots=True)
class Req:
    """A requirement as the resolver sees it: who asked, and for what."""

    name: NormalizedName
    extras: frozenset[str]
    specifier: SpecifierSet
    text: str
    parent: str  # "<spec>" or "<name> <version>"

    @property
    def identifier(self) -> str:
        return identifier_of(self.name, self.extras)


@dataclass(frozen=True, slots=True)
class Candidate:
    """A release chosen for an identifier (a project, or a project with extras)."""

    release: Release
    extras: frozenset[str]

    @property
    def name(self) -> NormalizedName:
        return self.release.name

    @property
    def version(self) -> Version:
        return self.release.version


@dataclass(frozen=True, slots=True)
class Edge:
    """A dependency edge in one environment's resolution."""

    parent: str  # "<spec>" or a project name
    child: NormalizedName
    requirement: str


@dataclass(frozen=True, slots=True)
class Resolution:
    """The outcome for one environment."""

    pins: Mapping[NormalizedName, Release]
    extras: Mapping[NormalizedName, frozenset[str]]
    edges: tuple[Edge, ...]
    unknown: tuple[tuple[NormalizedName, str, str], ...]  # (name, version, missing source)
    dependencies: Mapping[NormalizedName, Dependencies] = field(default_factory=dict)


def identifier_of(name: str, extras: Iterable[str]) -> str:
    ex = sorted(extras)
    return f"{name}[{','.join(ex)}]" if ex else name


def is_wheel(filename: str) -> bool:
    return filename.endswith(".whl")


def usable_files(
    release: Release, env: Environment, *, allow_yanked: bool
) -> tuple[list[UpstreamFile], list[UpstreamFile]]:
    """(wheels that fit ``env`` best first, sdists) of ``release`` usable by ``env``."""
    return usable_among(release.files, env, allow_yanked=allow_yanked)


class FileLike(Protocol):
    """What :func:`usable_among` reads of a file (an upstream or a locked file)."""

    @property
    def filename(self) -> str: ...
    @property
    def size(self) -> int | None: ...
    @property
    def requires_python(self) -> str | None: ...
    @property
    def yanked(self) -> bool: ...


F = TypeVar("F", bound=FileLike)


def usable_among(
    files: Iterable[F], env: Environment, *, allow_yanked: bool
) -> tuple[list[F], list[F]]:
    """(wheels that fit ``env`` best first, sdists) among ``files`` of one release."""
    wheels: list[tuple[int, F]] = []
    sdists: list[F] = []
    foreign: list[F] = []
    # (three times per kept pin and environment in a rebuild: 70 000 calls at 5 000
    # projects; the methods are looked up once, a file without Requires-Python is not asked)
    rank_of, fits = env.wheel_rank, env.accepts_requires_python
    for f in files:
        if f.yanked and not allow_yanked:
            continue
        requires = f.requires_python
        if requires and not fits(requires):
            continue
        filename = f.filename
        if filename.endswith(".whl"):  # (is_wheel)
            rank = rank_of(filename)
            if rank is not None:
                wheels.append((rank, f))
            else:
                foreign.append(f)
        else:
            sdists.append(f)
    wheels.sort(key=lambda rf: (rf[0], rf[1].filename))
    if not wheels and foreign and isinstance(env, UniversalTarget):
        # No member can install it (pywin32 for a Linux group), yet lock-file tools read
        # its metadata to lock it for other platforms: one wheel, the smallest, serves that.
        return [min(foreign, key=lambda f: (f.size or 0, f.filename))], sdists
    return [f for _, f in wheels], sdists


@functools.lru_cache(maxsize=1 << 14)
def parse_requirement(text: str) -> Requirement:
    """``Requirement(text)``, parsed once per process (every environment reads the same
    requirement strings, and the resolver asks for a candidate's dependencies more than
    once). The result is shared: never modify it."""
    return Requirement(text)


def to_req(text: str, parent: str) -> Req:
    r = parse_requirement(text)
    if r.url:
        raise BuildError(
            f"requirement {text!r} (required by {parent}) is a direct URL: a mirror can only "
            "serve index packages — add the file under `private` instead"
        )
    return Req(
        name=NormalizedName(canonicalize_name(r.name)),
        extras=frozenset(canonicalize_name(e) for e in r.extras),
        specifier=r.specifier,
        text=text,
        parent=parent,
    )


def _pinned_version(req: Req) -> str | None:
    specs = list(req.specifier)
    if len(specs) == 1 and specs[0].operator in ("==", "===") and "*" not in specs[0].version:
        return specs[0].version
    return None


@dataclass
class _State:
    first_parent: dict[NormalizedName, Req] = field(default_factory=dict)
    deps_cache: dict[tuple[NormalizedName, Version], Dependencies] = field(default_factory=dict)
    unknown: dict[tuple[NormalizedName, str], str] = field(default_factory=dict)


class _Provider(AbstractProvider[Req, Candidate, str]):
    # get_preference reads only the identifier, its own criterion's information and the
    # backtrack causes, find_matches its requirements and incompatibilities by identifier
    # only: the lean resolver keeps the unsatisfied names in a heap by preference and
    # hands a round's new criteria over the current ones rather than in a whole copy.
    reads_by_identifier = True

    def __init__(
        self,
        env: Environment,
        catalog: Catalog,
        policy: Policy,
        fixed: Mapping[NormalizedName, Release] | None = None,
    ) -> None:
        self.env = env
        self.catalog = catalog
        self.policy = policy
        self.fixed = fixed or {}
        self.state = _State()
        self._contains: dict[tuple[str, Version], bool] = {}
        # usable_files of a release, by the release object (kept in the value: an id is
        # only unique while its object lives): resolvelib asks find_matches again and
        # again, and each call ranks the wheels of every release of the project.
        self._files: dict[tuple[int, bool], tuple[Release, bool, bool]] = {}
        self._sorted: dict[int, tuple[Sequence[Release], list[Release]]] = {}
        self._python_ok: dict[str, bool] = {}
        self.python_release = Release(NormalizedName(PYTHON), env.python_version(), ())

    # -- resolvelib hooks -------------------------------------------------------------------

    def identify(self, requirement_or_candidate: Req | Candidate) -> str:
        if isinstance(requirement_or_candidate, Req):
            return requirement_or_candidate.identifier
        return identifier_of(requirement_or_candidate.name, requirement_or_candidate.extras)

    def get_preference(
        self,
        identifier: str,
        resolutions: Mapping[str, Candidate],
        candidates: Mapping[str, Iterator[Candidate]],
        information: Mapping[str, Iterator[Any]],
        backtrack_causes: Sequence[Any],
    ) -> tuple[bool, bool, bool, str]:
        infos = list(information[identifier])
        pinned = any(_pinned_version(i.requirement) for i in infos)
        causes = {c.requirement.name for c in backtrack_causes}
        return (identifier != PYTHON, not pinned, identifier not in causes, identifier)

    def find_matches(
        self,
        identifier: str,
        requirements: Mapping[str, Iterator[Req]],
        incompatibilities: Mapping[str, Iterator[Candidate]],
    ) -> Callable[[], Iterator[Candidate]]:
        reqs = list(requirements[identifier])
        bad = {c.version for c in incompatibilities[identifier]}
        if identifier == PYTHON:
            py = self.python_release
            # Every Python the target stands for (one, or a universal view's group). Asked
            # again, of every Requires-Python met so far, each time one more is met.
            ok = all(self._python_accepts(r) for r in reqs)
            cands = [Candidate(py, frozenset())] if ok else []
            return lambda: iter(cands)
        name = reqs[0].name
        extras = frozenset().union(*(r.extras for r in reqs))
        for r in reqs:
            self.state.first_parent.setdefault(r.name, r)
        return lambda: self._matches(name, extras, reqs, bad)

    def _python_accepts(self, req: Req) -> bool:
        """Whether the environment's Python satisfies a Requires-Python ``req`` (by its
        text, which holds its specifier)."""
        ok = self._python_ok.get(req.text)
        if ok is None:
            ok = self._python_ok[req.text] = self.env.accepts_requires_python(str(req.specifier))
        return ok

    def _matches(
        self, name: NormalizedName, extras: frozenset[str], reqs: list[Req], bad: set[Version]
    ) -> Iterator[Candidate]:
        pins = {p for r in reqs if (p := _pinned_version(r)) is not None}
        fixed = self.fixed.get(name)
        if fixed is not None:  # the only candidate: no page is read
            if self._acceptable(fixed, reqs, bad, pins, prerelease_ok=True):
                yield Candidate(fixed, extras)
            return
        locked = self.catalog.locked(name)
        yielded: set[Version] = set()
        if locked is not None and self._acceptable(locked, reqs, bad, pins, prerelease_ok=True):
            yielded.add(locked.version)
            yield Candidate(locked, extras)
        try:
            releases = self.catalog.releases(name)
        except ProjectNotFoundError as exc:
            raise UnknownProjectError(self._not_found_message(exc, reqs), exc.name) from None
        explicit_pre = any(r.specifier.prereleases for r in reqs)
        allow_pre = self.policy.prereleases == "allow" or (
            self.policy.prereleases == "if-needed" and explicit_pre
        )
        found = False
        ordered = self._ordered(releases, reqs, bad, pins, prerelease_ok=allow_pre)
        ahead: deque[Release] = deque()
        while (rel := ahead.popleft() if ahead else next(ordered, None)) is not None:
            found = True
            if rel.version in yielded:
                continue
            if yielded:
                # The resolver passed over the candidates before this one (their
                # dependencies conflicted): it walks back through the releases one at a
                # time, each a metadata read (a wheel's download without PEP 658). The
                # next few are read ahead, side by side, while it checks this one.
                while len(ahead) < LOOKAHEAD and (nxt := next(ordered, None)) is not None:
                    ahead.append(nxt)
                for later in ahead:
                    self._guess_dependencies(later)
            yielded.add(rel.version)
            yield Candidate(rel, extras)
        if not found and self.policy.prereleases == "if-needed":
            # PEP 440: prereleases are acceptable when they are the only match.
            for rel in self._ordered(releases, reqs, bad, pins, prerelease_ok=True):
                if rel.version not in yielded:
                    yield Candidate(rel, extras)

    def _ordered(
        self,
        releases: Sequence[Release],
        reqs: list[Req],
        bad: set[Version],
        pins: set[str],
        *,
        prerelease_ok: bool,
    ) -> Iterator[Release]:
        """The acceptable ``releases``: those with a wheel for the environment, newest
        first, then those with only an sdist, newest first. Lazily: resolvelib asks a new
        criterion whether it has any candidate (the first) each time a requirement on the
        name is added, and most pins are the newest release that fits, so ranking every
        release of a project with thousands of them each time was most of the resolver's
        time on the real index."""
        source_only: list[Release] = []
        for rel in self._newest_first(releases):
            if not self._acceptable(rel, reqs, bad, pins, prerelease_ok=prerelease_ok):
                continue
            has_wheel, _ = self._usable(rel, self._yank_ok(rel, pins))
            if has_wheel:
                yield rel
            else:
                source_only.append(rel)
        yield from source_only

    def _newest_first(self, releases: Sequence[Release]) -> list[Release]:
        """``releases`` sorted by version, newest first (once per list the catalog gave)."""
        known = self._sorted.get(id(releases))
        if known is not None and known[0] is releases:
            return known[1]
        newest = sorted(releases, key=lambda r: r.version, reverse=True)
        self._sorted[id(releases)] = (releases, newest)
        return newest

    def _yank_ok(self, rel: Release, pins: set[str]) -> bool:
        if self.policy.yanked != "pinned":
            return False
        return any(Version(p) == rel.version for p in pins if _parses(p))

    def _acceptable(
        self,
        rel: Release,
        reqs: list[Req],
        bad: set[Version],
        pins: set[str],
        *,
        prerelease_ok: bool,
    ) -> bool:
        if rel.version in bad:
            return False
        if rel.version.is_prerelease and not prerelease_ok and self.policy.prereleases != "allow":
            return False
        if self.policy.prereleases == "never" and rel.version.is_prerelease:
            return False
        for r in reqs:
            if not self.contains(r, rel.version):
                return False
        has_wheel, has_sdist = self._usable(rel, self._yank_ok(rel, pins))
        return has_wheel or has_sdist

    def _usable(self, rel: Release, allow_yanked: bool) -> tuple[bool, bool]:
        """Whether ``rel`` has a wheel, and an sdist, that ``self.env`` can use."""
        key = (id(rel), allow_yanked)
        known = self._files.get(key)
        if known is not None and known[0] is rel:
            return known[1], known[2]
        wheels, sdists = usable_files(rel, self.env, allow_yanked=allow_yanked)
        self._files[key] = (rel, bool(wheels), bool(sdists))
        return bool(wheels), bool(sdists)

    def is_satisfied_by(self, requirement: Req, candidate: Candidate) -> bool:
        return self.contains(requirement, candidate.version)

    def contains(self, requirement: Req, version: Version) -> bool:
        """``version in requirement.specifier``, memoized by the requirement's text.

        resolvelib re-checks every pin against every criterion each round (hundreds of
        thousands of checks on a large graph), and SpecifierSet is slow to hash and compare.
        """
        key = (requirement.text, version)
        hit = self._contains.get(key)
        if hit is None:
            hit = self._contains[key] = requirement.specifier.contains(version, prereleases=True)
        return hit

    def get_dependencies(self, candidate: Candidate) -> list[Req]:
        if candidate.name == PYTHON:
            return []
        deps = self.dependencies(candidate.release)
        parent = f"{candidate.name} {candidate.version}"
        out: list[Req] = []
        if candidate.extras:
            # The extras candidate pins its base so both resolve to the same version.
            out.append(
                Req(
                    candidate.name,
                    frozenset(),
                    SpecifierSet(f"=={candidate.version}"),
                    f"{candidate.name}=={candidate.version}",
                    parent,
                )
            )
        elif deps.requires_python:
            try:
                spec = SpecifierSet(deps.requires_python)
            except ValueError:
                spec = None
            if spec is not None:
                out.append(
                    Req(
                        NormalizedName(PYTHON),
                        frozenset(),
                        spec,
                        f"Requires-Python {deps.requires_python}",
                        parent,
                    )
                )
        for text in deps.requires_dist:
            try:
                r = parse_requirement(text)
            except ValueError:
                continue  # recorded as a metadata problem when the metadata was read
            if candidate.extras:
                wanted = any(evaluate_marker(r.marker, self.env, e) for e in candidate.extras)
            else:
                wanted = evaluate_marker(r.marker, self.env, "")
            if wanted:
                out.append(to_req(text, parent))
        self.catalog.prefetch(r.name for r in out if r.name != PYTHON)
        return out

    def _guess_dependencies(self, release: Release) -> None:
        """Hint the catalog at the file :meth:`dependencies` would read for ``release``."""
        if (release.name, release.version) in self.state.deps_cache:
            return
        wheels, sdists = usable_files(release, self.env, allow_yanked=True)
        source = wheels[0] if wheels else (sdists[0] if sdists else None)
        if source is not None:
            self.catalog.guess_dependencies(release, source)

    def dependencies(self, release: Release) -> Dependencies:
        key = (release.name, release.version)
        cached = self.state.deps_cache.get(key)
        if cached is not None:
            return cached
        wheels, sdists = usable_files(release, self.env, allow_yanked=True)
        source = wheels[0] if wheels else (sdists[0] if sdists else None)
        if source is None:
            deps = Dependencies((), None)
        else:
            deps = self.catalog.dependencies(release, source)
        if not deps.known:
            self.state.unknown[(release.name, str(release.version))] = deps.source
        self.state.deps_cache[key] = deps
        return deps

    # -- messages -----------------------------------------------------------------------------

    def explain(self, req: Req) -> str | None:
        """Why no release of ``req.name`` fits this environment on its own; None when some
        release does (the failure is then a conflict between requirements)."""
        try:
            releases = self.catalog.releases(req.name)
        except (ProjectNotFoundError, BuildError):
            return None
        if not releases:
            return why_nothing_fits(req.name, str(req.specifier), None, {}, self.env)
        newest = max(r.version for r in releases)
        matching = sorted(
            (r for r in releases if self.contains(req, r.version)),
            key=lambda r: r.version,
            reverse=True,
        )
        pins = {p} if (p := _pinned_version(req)) is not None else set()
        explicit = bool(req.specifier.prereleases) or any(
            not r.version.is_prerelease for r in matching
        )
        prerelease_ok = self.policy.prereleases == "allow" or (
            self.policy.prereleases == "if-needed"
            and (bool(req.specifier.prereleases) or not explicit)
        )
        reasons: dict[str, list[Version]] = {}
        for rel in matching:
            reason = exclusion(
                rel.version,
                rel.files,
                self.env,
                prerelease_ok=prerelease_ok,
                yank_ok=self._yank_ok(rel, pins),
                usable=functools.partial(_usable, rel, self.env),
            )
            if reason is None:
                return None
            if reason == "yanked" and self.policy.yanked != "pinned":
                reason = "yanked-skip"  # pinning would not help: the policy skips them all
            reasons.setdefault(reason, []).append(rel.version)
        return why_nothing_fits(req.name, str(req.specifier), newest, reasons, self.env)

    def chain(self, name: NormalizedName) -> str:
        parts: list[str] = []
        seen: set[str] = set()
        current: str = name
        while current not in seen:
            seen.add(current)
            req = self.state.first_parent.get(NormalizedName(current))
            if req is None:
                break
            parts.append(f"{req.text!r} (required by {req.parent})")
            if req.parent == SPEC:
                break
            current = req.parent.split(" ", 1)[0]
        return " ← ".join(parts)

    def _not_found_message(self, exc: ProjectNotFoundError, reqs: list[Req]) -> str:
        return (
            f"environment {self.env.name!r}: project {exc.name!r} not found on {exc.where}; "
            f"needed by {self.chain(exc.name) or reqs[0].text}: "
            + (exc.fix or "check the name, or add an upstream that has it")
        )


def _parses(text: str) -> bool:
    try:
        Version(text)
    except InvalidVersion:
        return False
    return True


def resolve(
    env: Environment,
    requirements: Sequence[str],
    catalog: Catalog,
    policy: Policy,
    *,
    parent: str = SPEC,
    reporter: BaseReporter[Req, Candidate, str] | None = None,
    fixed: Mapping[NormalizedName, Release] | None = None,
) -> Resolution:
    """Resolve ``requirements`` for ``env``; raise BuildError naming the conflict.

    A name in ``fixed`` has that release as its only candidate (incremental resolution:
    morgan/incremental.py); the result then holds only what ``requirements`` reach."""
    reqs = _spec_reqs(env, requirements, parent)
    # The crawl ahead starts at the roots (their pages and likely metadata), not at the
    # first pin's dependencies: resolvelib reads every root's page before it pins any.
    roots = [r for r in reqs if r.name != PYTHON and r.name not in (fixed or {})]
    wanted: dict[NormalizedName, SpecifierSet] = {}
    for r in roots:
        if r.specifier:
            wanted[r.name] = wanted[r.name] & r.specifier if r.name in wanted else r.specifier
    catalog.prefetch((r.name for r in roots), wanted)
    provider = _Provider(env, catalog, policy, fixed)
    resolver = LeanResolver(provider, reporter or BaseReporter())
    try:
        result = resolver.resolve(reqs, max_rounds=MIN_ROUNDS, rounds_per_criterion=ROUNDS_PER_NAME)
    except ResolutionImpossible as exc:
        raise BuildError(_impossible_message(env, exc, provider)) from None
    except ResolutionTooDeep as exc:
        raise BuildError(
            f"environment {env.name!r}: resolution did not converge after {exc.round_count} "
            f"rounds ({ROUNDS_PER_NAME} per project met, at least {MIN_ROUNDS}); "
            "pin some requirements more tightly"
        ) from None
    return _outcome(provider, reqs, parent, list(result.mapping.values()))


def _spec_reqs(env: Environment, requirements: Sequence[str], parent: str) -> list[Req]:
    """The requirements whose markers hold for ``env``."""
    reqs = []
    for text in requirements:
        r = parse_requirement(text)
        if evaluate_marker(r.marker, env, ""):
            reqs.append(to_req(text, parent))
    return reqs


def _outcome(
    provider: _Provider, reqs: Sequence[Req], parent: str, chosen: Sequence[Candidate]
) -> Resolution:
    """The resolution of ``reqs`` that chose ``chosen`` (one candidate per identifier)."""
    pins: dict[NormalizedName, Release] = {}
    extras: dict[NormalizedName, set[str]] = {}
    for cand in chosen:
        if cand.name == PYTHON:
            continue
        pins[cand.name] = cand.release
        extras.setdefault(cand.name, set()).update(cand.extras)
    edges: set[Edge] = {Edge(parent, r.name, r.text) for r in reqs}
    for cand in chosen:
        if cand.name == PYTHON:
            continue
        for dep in provider.get_dependencies(cand):
            if dep.name in pins and dep.name != cand.name:
                edges.add(Edge(cand.name, dep.name, dep.text))
    unknown = tuple(
        sorted(
            (n, v, src)
            for (n, v), src in provider.state.unknown.items()
            if n in pins and str(pins[n].version) == v
        )
    )
    return Resolution(
        pins=dict(sorted(pins.items())),
        extras={k: frozenset(v) for k, v in sorted(extras.items()) if v},
        edges=tuple(sorted(edges, key=lambda e: (e.parent, e.child, e.requirement))),
        unknown=unknown,
        dependencies={n: provider.dependencies(rel) for n, rel in pins.items()},
    )


def closure(
    env: Environment,
    requirements: Sequence[str],
    pinned: Mapping[NormalizedName, Release],
    catalog: Catalog,
    policy: Policy,
) -> Resolution | None:
    """What ``requirements`` reach through ``pinned`` (a previous resolution's pins), as
    :func:`resolve` reports it when it keeps those pins; None when they do not satisfy it
    (a name ``pinned`` lacks, or a version outside a requirement). Reads no page."""
    reqs = _spec_reqs(env, requirements, SPEC)
    provider = _Provider(env, catalog, policy, pinned)
    chosen: dict[str, Candidate] = {}
    todo = list(reqs)
    while todo:
        req = todo.pop()
        if req.name == PYTHON:
            continue  # the environment is the one the pins were resolved for
        rel = pinned.get(req.name)
        if rel is None or not provider.contains(req, rel.version):
            return None
        for ident, cand in (
            (req.name, Candidate(rel, frozenset())),
            (req.identifier, Candidate(rel, req.extras)),
        ):
            if ident not in chosen:
                chosen[ident] = cand
                todo.extend(provider.get_dependencies(cand))
    return _outcome(provider, reqs, SPEC, list(chosen.values()))


def _withheld(catalog: Catalog, label: str) -> str:
    why = catalog.withheld(NormalizedName(label)) if not label.startswith("Python ") else None
    return f" ({why})" if why else ""


def _usable(
    release: Release, env: Environment, allow_yanked: bool
) -> tuple[list[UpstreamFile], list[UpstreamFile]]:
    return usable_files(release, env, allow_yanked=allow_yanked)


def _impossible_message(
    env: Environment, exc: ResolutionImpossible[Req, Candidate], provider: _Provider
) -> str:
    causes = list(exc.causes)
    explained: dict[str, str] = {}
    for info in causes:
        req: Req = info.requirement
        if req.name != PYTHON and req.text not in explained:
            why = provider.explain(req)
            if why is not None:
                withheld = _withheld(provider.catalog, req.name)
                chain = provider.chain(req.name) or req.text
                explained[req.text] = f"{why}{withheld}; needed by {chain}"
    if explained:
        return (
            f"environment {env.name!r} (Python {env.python}, {env.platform}): "
            f"{'; '.join(explained.values())}: relax the requirement, or remove the "
            "environment that cannot have it"
        )
    by_name: dict[str, list[str]] = {}
    for info in causes:
        req = info.requirement
        who = info.parent
        parent = f"{who.name} {who.version}" if who is not None else SPEC
        label = "Python " + str(env.python_version()) if req.name == PYTHON else req.name
        by_name.setdefault(label, []).append(f"{req.text} (required by {parent})")
    parts = [
        f"{name}: " + ", ".join(sorted(set(texts))) + _withheld(provider.catalog, name)
        for name, texts in sorted(by_name.items())
    ]
    return (
        f"environment {env.name!r} (Python {env.python}, {env.platform}): no set of versions "
        f"satisfies these constraints — {'; '.join(parts)}: relax a requirement, or remove the "
        "environment that cannot have it"
    )
