"""``morgan build``: spec → per-environment resolution → fetch → render → a new generation.

The steps, each through the executor so that only what changed runs:

1. With an up-to-date ``mirror.lock`` (same spec digest, no ``--upgrade``) the selection is
   read from the lock: no project page is requested, only blobs missing from the store are
   fetched. Otherwise each environment is resolved, locked versions first.
2. Selection: for every selected release, every wheel that fits the environment and the
   sdist; for every release an environment would have to build from source, its build
   closure (``[build-system].requires`` or each client's fallback, plus what the backend
   asks for at build time: morgan/backends.py) resolved for that environment, recursively.
3. Every selected file is fetched (fixed output, verified), every wheel gets its exact
   METADATA as the ``.metadata`` blob, pages are rendered for the union index and for each
   environment's view, and the tree manifest is materialized as ``generations/<n>`` before
   ``index`` is switched to it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import json
import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from blake3 import blake3
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from resolvelib import BaseReporter
from resolvelib.structs import RequirementInformation

from morgan import heap
from morgan.backends import DEFAULT_BUILD_REQUIRES, dynamic_requires, requirement_sets
from morgan.catalog import (
    EnvCatalog,
    UpstreamCatalog,
    UpstreamIndex,
    locked_release,
    private_names,
)
from morgan.credentials import public_spec_text
from morgan.environments import Environment
from morgan.errors import BuildError
from morgan.executor import Executor, Ran, Reporter
from morgan.generations import (
    current_generation,
    manifest_digest,
    remove_leftovers,
    switch_to,
)
from morgan.generations import start_tree as start_generation_tree
from morgan.incremental import Carried, previous_spec, resolve_change
from morgan.lock import (
    BUILT_URL,
    EDGE_ORDER,
    PARSED_LOCK,
    PARSED_PREVIOUS,
    EnvironmentTexts,
    Lock,
    LockedEdge,
    LockedEnvironment,
    LockedFile,
    LockedIndex,
    LockedPin,
    LockedRelease,
    LockedStatus,
    Role,
    dump_runs,
    parsed_data,
    parsed_runs,
    write_parsed,
)
from morgan.lock import dumps as dump_lock
from morgan.lock import load as load_lock
from morgan.lock_inputs import LockedInput, read_lock_input
from morgan.noop import stamp
from morgan.plan import compile_plan
from morgan.records import ProjectRecords
from morgan.resolve import (
    PYTHON,
    SPEC,
    Candidate,
    Dependencies,
    Edge,
    Release,
    Req,
    Resolution,
    parse_requirement,
    resolve,
    usable_files,
)
from morgan.screening import screen
from morgan.selected_files import (
    env_files,
    forget_files,
    usable_with_yanked,
    views_of,
    wanted_files,
)
from morgan.source_builds import SourceBuild, source_builds
from morgan.spec import Policy, Spec
from morgan.universal import PLATFORM as UNIVERSAL
from morgan.universal import UniversalTarget, evaluate_marker
from morgan.walk import walk
from morgan.wheels import Built, WheelResult, build_wheels, strip_built
from rules import generation as generation_rule
from rules import lock as lock_rule
from rules import manifest as manifest_rule
from rules.files import skeleton_files
from rules.generation import Switched
from rules.lib.materialize import Mode
from rules.lock import Stored
from rules.model import MirrorFile, NormalizedName, UpstreamFile
from rules.rule import Inputs, Output, Step
from store import fsio
from store.digest import Digest, blake3_hex
from store.errors import StoreError
from store.lock import StoreLock
from store.manifests import manifest_digests
from store.objects import Store


@dataclass(frozen=True, slots=True)
class BuildOptions:
    out: Path | None = None
    offline: bool = False
    upgrade: bool | frozenset[str] = False
    materialize: Mode = "symlink"
    workers: int = 16
    lock_timeout: float | None = 0.0
    reporter: Reporter | None = None


@dataclass(frozen=True, slots=True)
class Pin:
    """A release selected for an environment, as run-time or build-time dependency."""

    release: Release
    role: Role
    extras: frozenset[str] = frozenset()


@dataclass
class EnvSelection:
    env: Environment
    pins: list[Pin] = field(default_factory=list)
    # (a dict for its order: a rebuild's carried edges come in the lock's order, which the
    # lock writes them in; the lock's environments are made sorted, see locked_environments)
    edges: dict[LockedEdge, None] = field(default_factory=dict)
    unknown: set[str] = field(default_factory=set)
    sdists: bool = True  # [policy] sdists: false keeps an sdist only where no wheel fits
    index: str | None = None  # the named index this resolution is for (None: the default)


@dataclass(frozen=True, slots=True)
class BuildResult:
    mirror: Path
    generation: int
    digest: str
    changed: bool
    projects: int
    files: int
    bytes_total: int
    fetched: int
    reused: int
    requests: int
    ran: tuple[Ran, ...]
    unknown_metadata: tuple[str, ...]
    kept: tuple[str, ...] = ()  # "upstream no longer lists X; kept", once per removal
    warnings: tuple[str, ...] = ()  # policy findings that did not stop the build
    source_builds: tuple[SourceBuild, ...] = ()  # releases a target gets only as an sdist
    wheel_warnings: tuple[str, ...] = ()  # [build] wheels that could not be built
    resolutions: tuple[str, ...] = ()  # how each environment was resolved (--explain)


def mirror_dir(spec: Spec, opts: BuildOptions) -> Path:
    return (opts.out or spec.output).resolve()


def build(spec: Spec, client: object, opts: BuildOptions) -> BuildResult:
    """Run a whole build; raises BuildError with the previous generation left served."""
    mirror = mirror_dir(spec, opts)
    mirror.mkdir(parents=True, exist_ok=True)
    store = Store(mirror / "store")
    with StoreLock(store.root).exclusive(timeout=opts.lock_timeout):
        try:
            return _build_locked(spec, client, opts, mirror, store)
        except OSError as exc:
            # A write outside the store (generation tree, index link, lock): disk full,
            # read-only... one line, not a traceback.
            # symlink(), link() and rename() name what they create second.
            created = exc.filename2 if exc.filename2 is not None else exc.filename
            if created is not None:
                raise BuildError(str(fsio.write_error(exc, Path(created)))) from exc
            raise BuildError(f"{exc.strerror or exc}: free space or fix permissions") from exc
        finally:
            forget_files()  # the build's releases may go
            gc.unfreeze()  # what _settled() set aside is the collector's again


@contextlib.contextmanager
def _settled() -> Iterator[None]:
    """Run a phase that only builds data (no network, no reference cycles to find) without
    Python's cyclic garbage collector, then set what is alive aside from it for the rest of
    the build (``gc.freeze``; :func:`build` gives it back).

    A rebuild holds the old lock, the selections and the plan (~250 MB at 2 000 projects),
    and each full collection walked all of it again: 10-11 of them, 4.3 s of a 2 000-project
    add-one's 7.7 s of CPU. Reference counting still frees these objects; only a cycle
    among them waits for the end of the build."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
        gc.freeze()


def _build_locked(
    spec: Spec, client: object, opts: BuildOptions, mirror: Path, store: Store
) -> BuildResult:
    lock_path = spec.path.parent / "mirror.lock"
    remove_leftovers(mirror, spec.path.parent)
    with _settled():  # the old lock (5 MB of TOML at 2 000 projects)
        old = load_lock(lock_path, parsed=store.root / PARSED_LOCK)
    fresh = old is not None and old.spec_digest == spec.digest() and opts.upgrade is False
    upstreams = _upstream_indexes(spec, datetime.now(UTC))
    with Executor(store, workers=opts.workers, reporter=opts.reporter) as ex:
        refresh: frozenset[str] | bool = (
            opts.upgrade
            if isinstance(opts.upgrade, bool)
            else frozenset(canonicalize_name(n) for n in opts.upgrade)
        )
        catalog = UpstreamCatalog(
            ex,
            store,
            client,  # type: ignore[arg-type]
            upstreams,
            lock=old,
            refresh=refresh,
            offline=opts.offline,
            private=spec.all_private,
            environments=spec.targets,
        )
        resolutions: tuple[str, ...] = ()
        if not fresh:
            _warm_imports()
        if fresh and old is not None:
            selections = select_from_lock(spec, old)
            infos = {(r.name, r.version): r for r in old.releases}
        else:
            previous, why_full = None, "no lock"
            if old is not None and opts.upgrade is not False:
                why_full = "--upgrade"
            elif old is not None:
                previous = previous_spec(spec, mirror, old)
                why_full = "the spec changed beyond its requirements"
            selections, infos, resolutions = _resolve_all(
                spec, catalog, old, opts.reporter, previous=previous, why_full=why_full
            )
        gc.freeze()  # the selections (see _settled)
        built = _with_built_wheels(spec, selections, catalog)
        statuses = _statuses(selections, old, catalog.statuses)
        # What screening reads: the files without provenance of the projects that
        # [policy] require-provenance names, and every pin only for [policy] advisories
        # (not a tuple per pin and file of every build: 70 000 at 5 000 projects).
        unattested = [
            (p.release.name, str(p.release.version), f.filename)
            for s in selections
            for p in s.pins
            if p.release.name in spec.policy.require_provenance
            for f in env_files(p.release, s.env)
            if f.provenance_url is None
        ]
        pinned = _pinned(selections) if spec.policy.advisories is not None else []
        warnings = screen(spec, pinned, statuses, sorted(set(unattested)))
        views = views_of(selections, statuses)
        wanted = {fn: f for fn, (_project, f) in wanted_files(selections).items()}
        # A lock that still fits the spec most likely gives the current tree again: then
        # the tree is not begun ahead (it would only be thrown away).
        tree = None if fresh else start_generation_tree(store, mirror, mode=opts.materialize)
        kept_files, kept_notes = _kept(catalog, old, wanted)
        # The old lock is read no more (~60 MB of objects at 5 000 projects): let go before
        # the plan, the new lock and the manifest are made (what is kept of it, the
        # selections hold).
        old = None
        catalog.forget_lock()
        heap.trim()  # what resolution let go (pages, parsed bodies): see morgan.heap

        # blake3 of a lock's text made here -> its parsed form (the next build's
        # store/parsed-lock-rows.json) and its source builds: made with the text, in the
        # lock node, so that the Lock (~60 MB at 5 000 projects) is not held through the
        # manifest and the switch.
        made_locks: dict[str, tuple[Path, list[SourceBuild]]] = {}
        # The lock's environments (pins and edges) do not depend on the files: made and
        # written once for the skeleton, the lock and the parsed lock.
        lock_envs = locked_environments(selections)
        env_texts = EnvironmentTexts()
        layout = lock_layout(selections, infos)  # (the same for the skeleton and the lock)

        def lock_of(files: Mapping[str, MirrorFile]) -> Lock:
            return _make_lock(
                spec,
                selections,
                infos,
                files,
                kept_files,
                statuses=statuses,
                built=built.built,
                environments=lock_envs,
                layout=layout,
            )

        def lock_notes(lock: Lock, digest: str) -> tuple[Path, list[SourceBuild]]:
            """The lock's source builds, and its parsed form written now, in pieces, to a
            file of the store's tmp/ that the build's end puts in place (_keep_parsed)."""
            builds = source_builds(lock, spec.environments)
            notes = {"source-builds": [b.to_json() for b in builds]}
            staged = store.tmp_dir / f"{PARSED_LOCK}.{digest}"
            write_parsed(staged, parsed_runs(lock, digest, notes))
            return staged, builds

        def discard_parsed() -> None:
            """Remove the parsed forms the lock node wrote to tmp/ and nothing moved in
            place (a failed build leaves no temporary file; one that fails after the walk
            leaves it to gc)."""
            for parsed, _builds in made_locks.values():
                fsio.discard(parsed)
            made_locks.clear()

        def make_lock(files: Mapping[str, MirrorFile]) -> list[bytes]:
            heap.trim()  # what the walk let go so far, before the lock's own peak
            lock = lock_of(files)
            # Encoded as it is written, in runs (13 MB at 5 000 projects: never the text
            # and its bytes at once, nor its bytes in one piece); the lock node stores
            # these bytes as they are.
            runs = dump_runs(lock, env_texts)
            env_texts.clear()  # written into the lock: not needed again
            hasher = blake3()
            for run in runs:
                hasher.update(run)
            digest = hasher.hexdigest()
            made_locks[digest] = lock_notes(lock, digest)
            return runs

        def link(step: Step[Any], output: Output) -> None:
            if tree is not None:
                tree.add_many(step.entries(output))
            if step.id == lock_rule.ID:
                heap.trim()  # the lock, its text and its parsed form: before the manifest

        staged_lock: list[str] = []  # the blake3 of the lock's bytes, once written out
        # The blobs of the tree this build switched to: what its manifest keeps alive besides
        # itself (a generation manifest lists exactly its entries' blobs), for the stamp,
        # without parsing the manifest back (8.7 MB of JSON at 2 000 projects).
        switched_blobs: list[frozenset[Digest]] = []

        def sides(
            lock_text: bytes | Callable[[], bytes | Iterable[bytes]],
        ) -> Mapping[str, bytes | Iterable[bytes]]:
            return _Sides({**_sources(spec, mirror, lock_path, lock_text), **_server()})

        def served(manifest: Digest) -> Switched | None:
            """The switch done when ``manifest`` is served with these side files."""
            n = current_generation(mirror)
            if n is None or manifest_digest(mirror, n) != manifest:
                return None
            entries = json.loads(store.read_bytes(manifest))["entries"]
            lock_blob = Digest.parse(entries["mirror.lock"])
            side_files = sides(lambda: store.read_runs(lock_blob))
            if not all(_same_file(mirror / k, v) for k, v in side_files.items()):
                return None
            if tree is not None:
                tree.discard()
            return Switched(n, changed=False)

        # The new lock is written out before the switch (a full disk fails there, with
        # nothing switched) and renamed into place after it (the lock always describes
        # the served generation; a rename needs no space).
        try:
            with fsio.replacing(lock_path) as staged:

                def stage(lock_blob: Digest) -> None:
                    """Write the lock's blob out a run at a time (13 MB at 5 000 projects,
                    at the build's high-water mark: never whole in memory)."""
                    hasher = blake3()
                    for run in store.read_runs(lock_blob):
                        try:
                            staged.write(run)
                        except StoreError as exc:  # the workspace's file: no "store:"
                            raise BuildError(str(exc)) from exc
                        hasher.update(run)
                    staged_lock.append(hasher.hexdigest())

                def publish(manifest: Digest, entries: Mapping[str, Digest]) -> Switched:
                    heap.trim()  # the manifest's texts, before the tree's commit
                    switched_blobs.append(frozenset(entries.values()))
                    lock_blob = entries["mirror.lock"]
                    stage(lock_blob)
                    # The mirror's copy of the lock is copied from its blob a run at a time
                    # when it is written, after the tree.
                    n, changed = switch_to(
                        store,
                        mirror,
                        manifest,
                        entries,
                        mode=opts.materialize,
                        tree=tree,
                        sides=sides(lambda: store.read_runs(lock_blob)),
                    )
                    return Switched(n, changed)

                with _settled():  # the plan
                    recs = ProjectRecords(store, views, wanted, statuses, ex.cache.has_blob)
                    plan = compile_plan(
                        catalog,
                        store,
                        views,
                        wanted,
                        make_lock=make_lock,
                        lock_skeleton=lock_skeleton(
                            spec,
                            selections,
                            infos=infos,
                            wanted=wanted,
                            kept=kept_files,
                            statuses=statuses,
                            built=built.built,
                            environments=lock_envs,
                            texts=env_texts,
                            layout=layout,
                        ),
                        publish=publish,
                        served=served,
                        recorded=recs.taken,
                        has_blob=ex.cache.has_blob,
                    )
                    if tree is not None:
                        taken = recs.folders()
                        tree.expect(
                            (r for n in plan for r in plan.nodes[n]["step"].produces), taken
                        )
                        tree.add_folders(taken, recs.objects())
                    ex.note_recorded(recs.nodes())
                walked = walk(plan, ex, on_done=link, notes=recs.notes, spend=True)
                outputs = Inputs(walked)
                lock_blob = outputs.get(lock_rule.ID, Stored).blob
                if not staged_lock:  # the generation was served already: no switch ran
                    stage(lock_blob)
        except BaseException:
            if tree is not None:
                tree.discard()
            discard_parsed()
            raise
        gc.freeze()  # the walk's outputs (see _settled)
        # (only the digest of the lock's bytes is kept: 13 MB at 5 000 projects)
        lock_digest = staged_lock[0]
        ex.cache.save_pack()  # the next build reads this build's entries from one file
        from morgan.plan_view import save_outcome  # networkx, imported by _warm_imports

        save_outcome(mirror, plan, str(lock_blob), ran=ex.ran, hits=ex.hits, also=recs.ids())
        files = recs.files(outputs)
        recs.save(plan, walked, files)  # the next build's project records
        builds = _keep_parsed(
            store,
            made_locks.get(lock_digest),
            lambda digest: lock_notes(lock_of(files), digest),
            lock_digest,
        )
        discard_parsed()  # (the one kept was moved in place)
        switched = outputs.get(generation_rule.ID, Switched)
        manifest = outputs.get(manifest_rule.ID, Stored).blob
        made = (switched.number, str(manifest), switched.changed)
        stamp(
            mirror,
            spec.path.read_bytes(),
            lock_digest,
            made[0],
            manifest=str(manifest),
            objects=(
                str(d)
                for d in (
                    switched_blobs[0] - {manifest}
                    if switched_blobs
                    else manifest_digests(store, manifest) - {manifest}
                )
            ),
        )
        return BuildResult(
            mirror=mirror,
            generation=made[0],
            digest=made[1],
            changed=made[2],
            projects=len({p.release.name for s in selections for p in s.pins}),
            files=len(files),
            bytes_total=sum(r.size for r in files.values()),
            fetched=sum(1 for r in ex.ran if r.id.startswith("file:")),
            reused=ex.reused,
            requests=int(getattr(client, "requests_sent", 0)),
            ran=tuple(sorted(ex.ran, key=lambda r: r.id)),
            unknown_metadata=tuple(sorted({u for s in selections for u in s.unknown})),
            kept=kept_notes,
            warnings=tuple(warnings),
            source_builds=tuple(builds),
            wheel_warnings=tuple(built.warnings),
            resolutions=resolutions,
        )


def _with_built_wheels(
    spec: Spec, selections: Sequence[EnvSelection], catalog: UpstreamCatalog
) -> WheelResult:
    """``[build] wheels``: build what the listed environments would have to build, and add
    each built wheel to every environment's pin of that release where it fits.

    Wheels a previous build made (in the lock) are taken out first: they are made again,
    or found in the action cache, only while ``[build] wheels`` still asks for them.
    """
    for sel in selections:
        for i, p in enumerate(sel.pins):
            stripped = strip_built(p.release)
            if stripped is not p.release:  # (most builds have none: no copy of every pin)
                sel.pins[i] = dataclasses.replace(p, release=stripped)
    if not spec.build.wheels:
        return WheelResult({}, [])
    targets = [
        (sel.env, [p.release for p in sel.pins if p.role != "build"], [p.release for p in sel.pins])
        for sel in selections
        if sel.env.name in spec.build.wheels
    ]
    rebuilt, result = build_wheels(targets, catalog, timeout=spec.build.timeout)
    extra: dict[tuple[str, str], set[UpstreamFile]] = {}
    for (_env, name, version), rel in rebuilt.items():
        extra.setdefault((name, version), set()).update(
            f for f in rel.files if f.url.startswith(BUILT_URL)
        )
    for sel in selections:
        for i, pin in enumerate(sel.pins):
            wheels = extra.get((pin.release.name, str(pin.release.version)))
            if wheels:
                files = tuple(sorted({*pin.release.files, *wheels}, key=lambda f: f.filename))
                sel.pins[i] = dataclasses.replace(
                    pin, release=dataclasses.replace(pin.release, files=files)
                )
    return result


def _kept(
    catalog: UpstreamCatalog, old: Lock | None, files: Mapping[str, object]
) -> tuple[frozenset[str], tuple[str, ...]]:
    """The selected files upstream no longer lists, and the notes not said before.

    A file stays marked while its project's page is not read again (a build from the lock);
    a page that lists it again clears the mark. A note is said by the build that first
    finds the removal: later builds see the mark in the lock.
    """
    before = {f.filename for r in (old.releases if old else ()) for f in r.files if f.kept}
    carried = {
        f.filename
        for r in (old.releases if old else ())
        if r.name not in catalog.listed
        for f in r.files
        if f.kept
    }
    found = [k for k in catalog.kept if any(n in files for n in k.filenames)]
    marked = (carried | {n for k in found for n in k.filenames}) & files.keys()
    notes = tuple(sorted({k.note for k in found if not set(k.filenames) <= before}))
    return frozenset(marked), notes


def _warm_imports() -> None:
    """Import networkx (the plan's graph: ~0.1 s of CPU on a quiet machine, 0.2 s under
    load) in a thread while resolution waits on the network, instead of on the main thread
    between resolution and the plan, where every download not yet started waits for it."""

    def run() -> None:
        import networkx  # noqa: F401

    threading.Thread(target=run, name="morgan-imports").start()


def _upstream_indexes(spec: Spec, now: datetime) -> list[UpstreamIndex]:
    """The spec's upstreams, each with its absolute cut-off (its own, else the policy's)."""
    out = []
    for u in spec.upstreams:
        rule = u.exclude_newer or spec.policy.exclude_newer
        cutoff = rule.cutoff(now) if rule is not None else None
        out.append(UpstreamIndex(u.name, u.index_url, frozenset(u.projects), cutoff))
    return out


def _statuses(
    selections: Sequence[EnvSelection], old: Lock | None, fetched: Mapping[str, tuple[str, str]]
) -> dict[str, tuple[str, str]]:
    """PEP 792 status of each selected project that is not active: from the page when this
    build read it, else from the lock."""
    known = {s.name: (s.status, s.reason) for s in old.statuses} if old is not None else {}
    known.update(fetched)
    names = {p.release.name for s in selections for p in s.pins}
    return {n: known[n] for n in sorted(names) if n in known}


def lock_statuses(selections: Sequence[EnvSelection], lock: Lock) -> dict[str, tuple[str, str]]:
    """The PEP 792 statuses a build from ``lock`` alone gives its pages."""
    return _statuses(selections, lock, {})


def _pinned(selections: Sequence[EnvSelection]) -> list[tuple[str, str, str]]:
    """(name, version, environment) of every selected release (in any index)."""
    return sorted(
        {(p.release.name, str(p.release.version), s.env.name) for s in selections for p in s.pins}
    )


# -- selection ------------------------------------------------------------------------------


def select_from_lock(spec: Spec, lock: Lock) -> list[EnvSelection]:
    out = []
    for index, env in _resolutions(spec):
        locked = _locked_env(lock, index, env.name)
        if locked is None:  # the spec digest matched, so this cannot happen unless edited
            where = f" of index {index!r}" if index is not None else ""
            raise BuildError(
                f"mirror.lock has no environment {env.name!r}{where}: delete the lock to re-resolve"
            )
        sel = EnvSelection(env, sdists=spec.policy.sdists, index=index)
        for p in locked.pins:
            rel = lock.release(p.name, p.version)
            if rel is None:
                raise BuildError(
                    f"mirror.lock pins {p.name} {p.version} without a release entry: "
                    "delete the lock to re-resolve"
                )
            sel.pins.append(Pin(locked_release(rel), p.role, frozenset(p.extras)))
        sel.edges.update(dict.fromkeys(locked.edges))
        sel.unknown.update(locked.unknown_metadata)
        out.append(sel)
    return out


def _resolutions(spec: Spec) -> list[tuple[str | None, Environment]]:
    """(index, target) of every resolution a build makes: the default index's, then each
    named index's, each for every environment and universal view."""
    names: list[str | None] = [None, *(i.name for i in spec.indexes)]
    return [(name, env) for name in names for env in spec.targets]


def _locked_env(lock: Lock, index: str | None, env: str) -> LockedEnvironment | None:
    envs = lock.audience(index)
    return next((e for e in envs if e.name == env), None) if envs is not None else None


def _locked_map(
    old: Lock | None, env: str, role: Role, index: str | None = None
) -> dict[str, LockedRelease]:
    if old is None:
        return {}
    locked = _locked_env(old, index, env)
    if locked is None:
        return {}
    out = {}
    for p in locked.pins:
        rel = old.release(p.name, p.version)
        if p.role == role and rel is not None:
            out[p.name] = rel
    return out


@dataclass(frozen=True, slots=True)
class Audience:
    """What one index resolves: the default index (``index`` None) or a named one."""

    index: str | None
    requirements: tuple[str, ...]
    private: frozenset[NormalizedName]  # a named index's private projects: served in it
    hidden: Mapping[NormalizedName, str]  # private projects of other indexes -> the fix

    def label(self, env: str) -> str:
        return env if self.index is None else f"{self.index}/{env}"


def audiences(spec: Spec) -> dict[str | None, Audience]:
    """The default index and every named one, with the private projects each may see."""
    visible: dict[str | None, frozenset[NormalizedName]] = {None: private_names(spec.private)}
    for named in spec.indexes:
        visible[named.name] = private_names(named.private)
    owners: dict[NormalizedName, list[str]] = {}
    for name in sorted(visible[None]):
        owners.setdefault(name, []).append("the default index (top-level private)")
    for named in spec.indexes:
        for name in sorted(private_names(named.own_private)):
            owners.setdefault(name, []).append(f"index {named.name!r}")
    out: dict[str | None, Audience] = {}
    for named_or_none in (None, *spec.indexes):
        index = named_or_none.name if named_or_none is not None else None
        reqs = spec.requirements if named_or_none is None else named_or_none.requirements
        hidden = {
            name: (
                f"{name!r} is a private package of {' and '.join(who)}, which this index does "
                "not inherit — list its file in this index's private too"
                + ("" if index is None else ", or inherit that index")
            )
            for name, who in owners.items()
            if name not in visible[index]
        }
        private = visible[index] if index is not None else frozenset()
        out[index] = Audience(index, tuple(str(r) for r in reqs), private, hidden)
    return out


def _resolve_all(
    spec: Spec,
    catalog: UpstreamCatalog,
    old: Lock | None,
    reporter: Reporter | None = None,
    *,
    previous: Spec | None = None,
    why_full: str = "no lock",
) -> tuple[list[EnvSelection], dict[tuple[str, str], LockedRelease], tuple[str, ...]]:
    """Every environment's selection, and how each was resolved; with ``previous`` (the
    spec that wrote ``old``, when only requirements changed since), each keeps its locked
    pins where it can (morgan/incremental.py), else ``why_full`` says why not."""
    policy = spec.policy
    catalog.prefetch(NormalizedName(canonicalize_name(r.name)) for r in spec.all_requirements)
    lock_inputs = [item for path in spec.locks for item in read_lock_input(path)]
    groups = audiences(spec)
    before = audiences(previous) if previous is not None else {}
    notes: dict[str, str] = {}  # environment -> how it was resolved (--explain)

    def one(
        index: str | None, env: Environment
    ) -> tuple[EnvSelection, dict[tuple[str, str], Dependencies]]:
        aud = groups[index]
        deps: dict[tuple[str, str], Dependencies] = {}
        sel = EnvSelection(env, sdists=spec.policy.sdists, index=index)
        try:
            roots = [*aud.requirements, *_private_roots(aud, env, catalog)]
            env_catalog = EnvCatalog(
                catalog, _locked_map(old, env.name, "run", index), "run", env, aud.hidden
            )
            env_catalog.download_certain(
                roots, lambda rel: env_files(rel, env, sdists=spec.policy.sdists)
            )
            fetch_ahead = _FetchAhead(catalog, env, sdists=spec.policy.sdists)
            run = None
            incremental = False
            locked_env = _locked_env(old, index, env.name) if old is not None else None
            if index in before and locked_env is not None:
                was = [*before[index].requirements, *_private_roots(aud, env, catalog)]
                run, how = resolve_change(
                    env,
                    roots,
                    was,
                    locked_env,
                    env_catalog,
                    policy,
                    reporter=fetch_ahead,
                    carry=True,
                )
                incremental = run is not None
                if run is None:
                    how = f"resolved in full: {how}"
            else:
                how = f"resolved in full: {why_full if previous is None else 'not in the lock'}"
            if run is None:  # with a fresh head start: the attempt may have backtracked
                fetch_ahead = _FetchAhead(catalog, env, sdists=spec.policy.sdists)
                run = resolve(env, roots, env_catalog, policy, reporter=fetch_ahead)
            notes[aud.label(env.name)] = how
            if isinstance(run, Carried):
                _absorb_carried(sel, run, deps)
            else:
                _absorb(sel, run, "run", deps)
            if index is None:  # input locks feed the default index
                for item in lock_inputs:
                    _add_lock_input(sel, item, deps, catalog)
                if lock_inputs:
                    _link_lock_inputs(sel, deps)
            if spec.policy.versions != "needed":
                _add_policy_versions(
                    spec, env, sel, aud, catalog=catalog, old=old, policy=policy, deps=deps
                )
            if spec.policy.build_dependencies:
                _resolve_build_deps(
                    env, sel, aud, catalog=catalog, old=old, policy=policy, deps=deps
                )
        except BuildError as exc:
            if index is None:
                raise
            raise BuildError(f"index {index!r}: {exc}") from None
        if reporter is not None:
            reporter.environment_resolved(aud.label(env.name), len(sel.pins))
        # Start downloading this environment's files now, while slower environments are
        # still resolving; the plan walk later finds the same nodes already under way.
        # Pins an incremental resolution kept from the lock were fetched by the build that
        # locked them (the walk fetches any blob gone since).
        kept = (
            {(p.name, p.version) for p in locked_env.pins} if incremental and locked_env else set()
        )
        for pin in sel.pins:
            if (pin.release.name, str(pin.release.version)) in kept:
                continue
            for f in env_files(pin.release, env, sdists=sel.sdists):
                catalog.fetch_async(f)
        return sel, deps

    # Environments resolve concurrently: each waits on the network for pages and metadata
    # most of the time, and the executor shares every page and file between them. Results
    # are merged in spec order so the lock does not depend on which thread finished first.
    jobs = _resolutions(spec)
    with ThreadPoolExecutor(max_workers=min(len(jobs), 32) or 1) as pool:
        futures = [pool.submit(one, index, env) for index, env in jobs]
        results = [f.result() for f in futures]
    selections = [sel for sel, _ in results]
    deps: dict[tuple[str, str], Dependencies] = {}
    for _, env_deps in results:
        for dep_key, value in env_deps.items():
            deps.setdefault(dep_key, value)
    infos: dict[tuple[str, str], LockedRelease] = {}
    keys = _ReleaseKeys()
    for sel in selections:
        for pin in sel.pins:
            key = keys.of(pin.release)
            if key in infos:
                continue
            d = deps.get(key) or Dependencies((), None)
            infos[key] = LockedRelease(
                name=key[0],
                version=key[1],
                requires_dist=d.requires_dist,
                requires_python=d.requires_python,
                known=d.known,
                metadata_source=d.source,
                build_requires=(),
                files=(),
            )
    how = tuple(f"{label}: {notes[label]}" for label in sorted(notes))
    return selections, infos, how


class _FetchAhead(BaseReporter[Req, Candidate, str]):
    """Starts downloading a release's files the moment the resolver pins it.

    Downloads then overlap resolution instead of following it. A pin only changes when
    the resolver backtracks, so the head start stops at the first conflict: from then on
    a pinned release may still be dropped, and its files would be bytes fetched for
    nothing. (The files of the final pins are fetched after resolution anyway.)
    """

    def __init__(self, catalog: UpstreamCatalog, env: Environment, *, sdists: bool) -> None:
        self.catalog = catalog
        self.env = env
        self.sdists = sdists
        self.backtracked = catalog.offline

    def resolving_conflicts(
        self, causes: Collection[RequirementInformation[Req, Candidate]]
    ) -> None:
        del causes
        self.backtracked = True

    def pinning(self, candidate: Candidate) -> None:
        if self.backtracked or candidate.name == PYTHON:
            return
        for f in env_files(candidate.release, self.env, sdists=self.sdists):
            self.catalog.fetch_async(f)


def _absorb(
    sel: EnvSelection, res: Resolution, role: Role, deps: dict[tuple[str, str], Dependencies]
) -> None:
    have = {(p.release.name, p.release.version, p.role) for p in sel.pins}
    anyrole = {(n, v) for n, v, _ in have}
    for name, rel in res.pins.items():
        if role == "version-policy" and (name, rel.version) in anyrole:
            continue
        if (name, rel.version, role) not in have:
            sel.pins.append(Pin(rel, role, res.extras.get(name, frozenset())))
        deps.setdefault(
            (name, str(rel.version)), res.dependencies.get(name) or Dependencies((), None)
        )
    for e in res.edges:
        # A build resolution's roots hang off "<sdist name> <version>": the sdist's
        # [build-system].requires, recorded as such so `morgan graph` can say so.
        kind = "build-system" if " " in e.parent else role
        if role != "version-policy":
            sel.edges[LockedEdge(e.parent, e.child, e.requirement, kind)] = None
            continue
        # One resolution per extra version: each name has one version in it, recorded on
        # the edge so `morgan graph --why` follows app 1.0's edges from app 1.0.
        parent = res.pins.get(NormalizedName(e.parent))
        edge = LockedEdge(
            e.parent,
            e.child,
            e.requirement,
            kind,
            str(parent.version) if parent is not None else "",
            str(res.pins[e.child].version) if e.child in res.pins else "",
        )
        sel.edges[edge] = None
    for n, v, src in res.unknown:
        sel.unknown.add(f"{n} {v}: {src}")


def _absorb_carried(
    sel: EnvSelection, carried: Carried, deps: dict[tuple[str, str], Dependencies]
) -> None:
    """:func:`_absorb` of a run resolution, for the lock's pins and edges carried as they
    are (morgan/incremental.py): the same pins in the same order, the same edges, unknown
    metadata and dependencies, into a selection that holds nothing yet."""
    none = Dependencies((), None)
    for name, version, rel, extras in carried.pins:
        sel.pins.append(Pin(rel, "run", extras))
        deps.setdefault((name, version), carried.dependencies.get(name) or none)
    sel.edges.update(carried.edges)  # (in the lock's order, then the new closure's)
    sel.unknown.update(carried.unknown)


def _add_lock_input(
    sel: EnvSelection,
    item: LockedInput,
    deps: dict[tuple[str, str], Dependencies],
    catalog: UpstreamCatalog,
) -> None:
    """Pin exactly what an input lock says, for an environment its marker admits.

    The release's core metadata (read from its wheel or sdist, which is fetched anyway; no
    page request) gives its Requires-Python, served on the pages as upstream does, and its
    dependencies, which become edges to the other packages the lock pins and which
    ``morgan verify`` resolves against the mirror.
    """
    if item.marker is not None and not evaluate_marker(item.marker, sel.env, ""):
        return
    release = Release(item.name, item.version, item.files)
    if not env_files(release, sel.env):
        return  # a universal lock lists files for other targets too
    if any(p.release.name == item.name and p.release.version == item.version for p in sel.pins):
        return
    wheels, sdists = usable_files(release, sel.env, allow_yanked=True)
    found = catalog.dependencies_of(release, (wheels or sdists)[0])
    if found.requires_python:
        release = Release(
            item.name,
            item.version,
            tuple(
                f
                if f.requires_python
                else dataclasses.replace(f, requires_python=found.requires_python)
                for f in item.files
            ),
        )
    sel.pins.append(Pin(release, "run"))
    sel.edges[LockedEdge(f"<{item.source}>", item.name, f"{item.name}=={item.version}", "run")] = (
        None
    )
    deps.setdefault((item.name, str(item.version)), found)


def _link_lock_inputs(sel: EnvSelection, deps: Mapping[tuple[str, str], Dependencies]) -> None:
    """Edges between the packages input locks pinned, from their declared dependencies."""
    pinned: dict[str, Release] = {p.release.name: p.release for p in sel.pins}
    inputs = [e.child for e in sel.edges if e.parent.startswith("<") and e.parent != SPEC]
    for name in inputs:
        rel = pinned.get(name)
        found = deps.get((name, str(rel.version))) if rel is not None else None
        if found is None:
            continue
        for text in found.requires_dist:
            try:
                req = parse_requirement(text)
            except ValueError:
                continue
            child = NormalizedName(canonicalize_name(req.name))
            if child != name and child in pinned and evaluate_marker(req.marker, sel.env, ""):
                sel.edges[LockedEdge(name, child, text, "run")] = None


def _private_roots(aud: Audience, env: Environment, catalog: UpstreamCatalog) -> list[str]:
    """A named index serves its private projects: each one with a file that fits ``env``
    is a requirement of that index there."""
    return [
        name
        for name in sorted(aud.private)
        if any(any(usable_files(rel, env, allow_yanked=False)) for rel in catalog.releases(name))
    ]


def _add_policy_versions(
    spec: Spec,
    env: Environment,
    sel: EnvSelection,
    aud: Audience,
    *,
    catalog: UpstreamCatalog,
    old: Lock | None,
    policy: Policy,
    deps: dict[tuple[str, str], Dependencies],
) -> None:
    """``[policy] versions = "all" | N``: more versions of each top-level requirement.

    Each extra version is resolved on its own (``name==version`` for this environment) so
    that it is installable from the mirror too, not just present.
    """
    locked = _locked_map(old, env.name, "version-policy", aud.index)
    env_catalog = EnvCatalog(catalog, locked, "run", env, aud.hidden)
    chosen = {(p.release.name, p.release.version) for p in sel.pins}
    for req in (Requirement(r) for r in aud.requirements):
        if req.marker is not None and not evaluate_marker(req.marker, env, ""):
            continue
        name = NormalizedName(canonicalize_name(req.name))
        matching = [
            rel
            for rel in catalog.releases(name)
            if req.specifier.contains(rel.version, prereleases=False)
            and any(usable_files(rel, env, allow_yanked=False))
        ]
        matching.sort(key=lambda r: r.version, reverse=True)
        keep = matching if spec.policy.versions == "all" else matching[: int(spec.policy.versions)]
        for rel in keep:
            if (name, rel.version) in chosen:
                continue
            res = resolve(env, [f"{name}=={rel.version}"], env_catalog, policy)
            _absorb(sel, res, "version-policy", deps)
            chosen.update((n, r.version) for n, r in res.pins.items())


def _resolve_build_deps(
    env: Environment,
    sel: EnvSelection,
    aud: Audience,
    *,
    catalog: UpstreamCatalog,
    old: Lock | None,
    policy: Policy,
    deps: dict[tuple[str, str], Dependencies],
) -> None:
    """Resolve ``[build-system].requires`` of every sdist ``env`` would have to build."""
    locked = _locked_map(old, env.name, "build", aud.index)
    env_catalog = EnvCatalog(catalog, locked, "build", env, aud.hidden)
    done: set[tuple[str, str]] = set()
    # Every pin so far: the resolution's, an input lock's, the versions policy's.
    queue = [p.release for p in sel.pins]
    solved: dict[tuple[str, ...], Resolution] = {}
    while queue:
        rel = queue.pop(0)
        key = (rel.name, str(rel.version))
        if key in done:
            continue
        done.add(key)
        wheels, sdists = usable_with_yanked(rel, env)
        if wheels or not sdists:
            continue
        meta = catalog.metadata(sdists[0])
        backend = meta.build_backend
        parent = f"{rel.name} {rel.version}"
        # Each client generation's first step, then what the backend asks for in the second
        # (morgan/backends.py), each resolved on its own as a client's build env does.
        for reqs in requirement_sets(meta.build_requires, backend):
            res = _solve(
                env, reqs, catalog=env_catalog, policy=policy, parent=parent, solved=solved
            )
            _absorb(sel, res, "build", deps)
            queue.extend(res.pins.values())
            extra = dynamic_requires(backend, res.pins, env, declared=meta.backend_requires)
            if extra:
                res = _solve(
                    env, extra, catalog=env_catalog, policy=policy, parent=parent, solved=solved
                )
                _absorb(sel, res, "build", deps)
                queue.extend(res.pins.values())


def _solve(
    env: Environment,
    reqs: Sequence[str],
    *,
    catalog: EnvCatalog,
    policy: Policy,
    parent: str,
    solved: dict[tuple[str, ...], Resolution],
) -> Resolution:
    """``reqs`` resolved for ``env`` once per distinct set; the roots hang off ``parent``."""
    key = tuple(sorted(reqs))
    res = solved.get(key)
    if res is None:
        res = solved[key] = resolve(env, list(key), catalog, policy, parent=parent)
    first = next((e.parent for e in res.edges if " " in e.parent), parent)
    if first == parent:
        return res
    # Shared with another sdist: the same pins, with this sdist's own build-system edges.
    edges = tuple(Edge(parent, e.child, e.requirement) if " " in e.parent else e for e in res.edges)
    return dataclasses.replace(res, edges=edges)


class _Sides(Mapping[str, bytes | Iterable[bytes]]):
    """The side files of a generation (name -> bytes, or runs of bytes), a value given as a
    function read only when it is asked for (each time: nothing is kept)."""

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, bytes | Callable[[], bytes | Iterable[bytes]]]) -> None:
        self._values = values

    def __getitem__(self, name: str) -> bytes | Iterable[bytes]:
        value = self._values[name]
        return value if isinstance(value, bytes) else value()

    def __contains__(self, name: object) -> bool:
        return name in self._values  # (not read to say so)

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


def _sources(
    spec: Spec,
    mirror: Path,
    lock_path: Path,
    lock_text: bytes | Callable[[], bytes | Iterable[bytes]],
) -> dict[str, bytes | Callable[[], bytes | Iterable[bytes]]]:
    """The mirror's copies of what built its generation (for verify/graph offline)."""
    out: dict[str, bytes | Callable[[], bytes | Iterable[bytes]]] = {}
    if spec.path.resolve() != (mirror / "mirror.toml").resolve():
        # The mirror's copy never holds index-url credentials (it travels in bundles).
        public = public_spec_text(spec.path.read_bytes().decode("utf-8"))
        out["mirror.toml"] = public.encode("utf-8")
    if lock_path.resolve() != (mirror / "mirror.lock").resolve():
        out["mirror.lock"] = lock_text
    return out


# -- the lock -------------------------------------------------------------------------------


# A lock's releases as the selections give them, before any file's digests: per release
# (sorted), its key, what is recorded of it, its build requirements and its files (each as
# the last environment and pin that selects it gives it), sorted by filename.
LockLayout = list[tuple[tuple[str, str], LockedRelease, tuple[str, ...], list[UpstreamFile]]]


def lock_layout(
    selections: Sequence[EnvSelection], infos: Mapping[tuple[str, str], LockedRelease]
) -> LockLayout:
    """The releases of the lock of ``selections``, whatever their files' digests: a build
    writes its lock twice (blanked, to key the lock node; then with the digests), and the
    walk over every environment's pins and files (24 000 pins at 5 000 projects and six
    environments) is the same both times."""
    rel_files: dict[tuple[str, str], dict[str, UpstreamFile]] = {}
    keys = _ReleaseKeys()
    # A file is in most environments' selections: it is written once, as the last
    # environment (and pin) that selects it gives it (taken in reverse, the first one).
    for sel in reversed(selections):
        for pin in reversed(sel.pins):
            key = keys.of(pin.release)
            chosen = env_files(pin.release, sel.env, sdists=sel.sdists)
            fmap = rel_files.get(key)
            if fmap is None:
                if not chosen:
                    continue
                fmap = rel_files[key] = {}
            for f in reversed(chosen):
                if f.filename not in fmap:
                    fmap[f.filename] = f
    build_requires: dict[tuple[str, str], set[str]] = {}
    for sel in selections:
        for e in sel.edges:
            if e.kind == "build-system":
                name, _, version = e.parent.partition(" ")
                build_requires.setdefault((name, version), set()).add(e.requirement)
    layout: LockLayout = []
    for key, fmap in sorted(rel_files.items()):
        info = infos.get(key)
        if info is None:
            raise BuildError(f"internal: no metadata recorded for {key[0]} {key[1]}")
        layout.append(
            (
                key,
                info,
                tuple(sorted(build_requires.get(key, info.build_requires))),
                [fmap[k] for k in sorted(fmap)],
            )
        )
    return layout


def _make_lock(
    spec: Spec,
    selections: Sequence[EnvSelection],
    infos: Mapping[tuple[str, str], LockedRelease],
    files: Mapping[str, MirrorFile],
    kept: frozenset[str] = frozenset(),
    *,
    statuses: Mapping[str, tuple[str, str]],
    built: Mapping[str, Built] | None = None,
    environments: Mapping[str | None, Sequence[LockedEnvironment]] | None = None,
    layout: LockLayout | None = None,
) -> Lock:
    """The lock of ``selections`` with ``files``' digests; ``environments``: what
    :func:`locked_environments` gives for them, ``layout`` what :func:`lock_layout` gives
    (one build makes them once: they do not depend on the files, and a lock writer given
    the same environment objects writes them once)."""
    made = built or {}
    releases = [
        LockedRelease(
            name=key[0],
            version=key[1],
            requires_dist=info.requires_dist,
            requires_python=info.requires_python,
            known=info.known,
            metadata_source=info.metadata_source,
            build_requires=build_requires,
            files=tuple(
                [
                    _locked_file(f, files[f.filename], f.filename in kept, made.get(f.filename))
                    for f in fs
                ]
            ),
        )
        for key, info, build_requires, fs in (
            lock_layout(selections, infos) if layout is None else layout
        )
    ]
    envs = locked_environments(selections) if environments is None else environments
    return Lock(
        spec_digest=spec.digest(),
        releases=tuple(releases),
        environments=tuple(envs.get(None, ())),
        statuses=tuple(LockedStatus(n, st, why) for n, (st, why) in sorted(statuses.items())),
        indexes=tuple(
            LockedIndex(name, tuple(found)) for name, found in envs.items() if name is not None
        ),
    )


def _locked_file(f: UpstreamFile, m: MirrorFile, kept: bool, made: Built | None) -> LockedFile:
    """What the lock says of ``f``, which the mirror serves as ``m`` (its fields in order:
    12 000 files at 5 000 projects, made for the skeleton and again for the lock)."""
    return LockedFile(
        f.filename,
        f.url,
        m.size,
        m.sha256,
        m.blake3,
        f.upload_time,
        f.requires_python,
        f.yanked,
        f.yanked_reason,
        m.metadata_sha256,
        m.metadata_blake3,
        kept,
        f.provenance_url,
        m.provenance_sha256,
        m.provenance_blake3,
        made.sdist_sha256 if made else None,
        made.builder if made else None,
    )


class _ReleaseKeys:
    """(name, version text) of releases, each made once: every environment pins the same
    release objects, and ``str`` of a ``Version`` is made anew on each call (100 000 of
    them in a 5 000-project rebuild)."""

    def __init__(self) -> None:
        self._made: dict[int, tuple[Release, tuple[str, str]]] = {}

    def of(self, release: Release) -> tuple[str, str]:
        known = self._made.get(id(release))
        if known is not None and known[0] is release:
            return known[1]
        key = (release.name, str(release.version))
        self._made[id(release)] = (release, key)  # (holding it: its id stays its own)
        return key


def locked_environments(
    selections: Sequence[EnvSelection],
) -> dict[str | None, list[LockedEnvironment]]:
    """Each index's (None: the default's) environments as the lock records them."""
    envs: dict[str | None, list[LockedEnvironment]] = {}
    for sel in selections:
        envs.setdefault(sel.index, []).append(
            LockedEnvironment(
                name=sel.env.name,
                python=sel.env.python,
                platform=UNIVERSAL if isinstance(sel.env, UniversalTarget) else sel.env.platform,
                members=tuple(m.name for m in getattr(sel.env, "members", ())),
                pins=tuple(
                    LockedPin(
                        p.release.name, str(p.release.version), p.role, tuple(sorted(p.extras))
                    )
                    for p in sel.pins
                ),
                # In the lock's order: the lock's text and its parsed form sort them
                # again, and sorting a sorted list is one pass. A rebuild's carried edges
                # are in that order already (the lock's), the new ones after them: two
                # runs to merge, not ~15 000 edges per environment in a set's order.
                edges=tuple(sorted(sel.edges, key=EDGE_ORDER)),
                unknown_metadata=tuple(sorted(sel.unknown)),
            )
        )
    return envs


__all__ = ["DEFAULT_BUILD_REQUIRES", "SPEC", "BuildOptions", "BuildResult", "build"]


def _server() -> dict[str, bytes]:
    """``server.py``, refreshed by every build (absent only in odd installs)."""
    src = Path(__file__).with_name("server.py")
    return {"server.py": src.read_bytes()} if src.exists() else {}


def lock_skeleton(
    spec: Spec,
    selections: Sequence[EnvSelection],
    *,
    infos: Mapping[tuple[str, str], LockedRelease],
    wanted: Mapping[str, UpstreamFile],
    kept: frozenset[str],
    statuses: Mapping[str, tuple[str, str]],
    built: Mapping[str, Built] | None = None,
    environments: Mapping[str | None, Sequence[LockedEnvironment]] | None = None,
    texts: EnvironmentTexts | None = None,
    layout: LockLayout | None = None,
) -> str:
    """The digest of the lock with every fetched digest blanked: the lock node's parameter
    (with its inputs, the files' digests, it determines the lock's text). ``environments``
    and ``texts``: as the build's own lock writer gets them (the same text, made once)."""
    blank = skeleton_files(wanted)
    lock = _make_lock(
        spec,
        selections,
        infos,
        blank,
        kept,
        statuses=statuses,
        built=built,
        environments=environments,
        layout=layout,
    )
    text = dump_lock(lock, texts)
    return blake3_hex(text.encode("utf-8"))


def _keep_parsed(
    store: Store,
    made: tuple[Path, list[SourceBuild]] | None,
    make: Callable[[str], tuple[Path, list[SourceBuild]]],
    digest: str,
) -> list[SourceBuild]:
    """Keep the parsed form of the lock whose text has blake3 ``digest`` for the next build
    (``store/parsed-lock-rows.json``) and give its source builds.

    ``made``: its parsed form (written to the store's tmp/) and source builds, when this
    build's lock node made them.
    When the lock node was taken from the cache (the lock is one an earlier build made:
    a requirement added and removed again), the parsed form kept before it, the previous
    one, is that lock's when the digest says so: it becomes the current one again, and
    its source builds are read from it. Only when neither holds this lock is the lock made
    again from the files (``make``). The two files are a cache: any of them missing, torn
    or of another lock costs that work, or the next build a TOML parse."""
    current, previous = store.root / PARSED_LOCK, store.root / PARSED_PREVIOUS
    if made is None:
        for found in (current, previous):
            builds = _kept_source_builds(found, digest)
            if builds is None:
                continue
            if found == previous:  # the last two locks change places
                aside = store.root / f"{PARSED_PREVIOUS}.swap"
                for old, new in ((current, aside), (previous, current), (aside, previous)):
                    with contextlib.suppress(OSError):
                        old.replace(new)
            return builds
        made = make(digest)
    with contextlib.suppress(OSError):
        current.replace(previous)
    with contextlib.suppress(OSError):  # (a cache: not written, the next build parses)
        made[0].replace(current)
    return made[1]


def _kept_source_builds(path: Path, digest: str) -> list[SourceBuild] | None:
    """The source builds a kept parsed lock of the lock with blake3 ``digest`` holds;
    None when ``path`` is not that (absent, torn, of another lock or form)."""
    try:
        data = parsed_data(path, digest)
        if data is None:
            return None
        return [SourceBuild.from_json(b) for b in data["source-builds"]]
    except (KeyError, TypeError, ValueError):
        return None


def _same_file(path: Path, data: bytes | Iterable[bytes]) -> bool:
    """Whether ``path`` holds ``data`` (bytes, or runs of bytes compared a run at a time)."""
    runs = (data,) if isinstance(data, bytes) else data
    try:
        with path.open("rb") as f:
            for run in runs:
                if f.read(len(run)) != run:
                    return False
            return f.read(1) == b""
    except OSError:
        return False
