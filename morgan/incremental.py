"""Resolve only what a change of requirements touches: the lock is sticky, as in ``uv lock``.

When the spec's requirements are all that changed since the lock was written, an
environment's previous pins are kept for every name they cover and only the new
requirements' closure is resolved against them (:func:`resolve_change`):

- a **removed** requirement takes out the pins nothing else reaches any more: the closure
  of the remaining requirements is walked through the kept pins' own metadata (from the
  lock: no request), exactly as a resolution that kept those pins reports it;
- an **added** requirement that a kept pin already satisfies only gains its edge; the
  others are resolved together with every kept pin as its name's only candidate, and the
  result is united with the kept pins. Only the new names' pages are read.

Anything else (a conflict with a kept pin, a kept pin the lock can no longer give, a change
of anything but the requirements) returns None and the caller resolves the environment in
full, preferring the locked versions, as before. docs/resolution.md says when the two can
differ.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name
from resolvelib import BaseReporter

from morgan.environments import Environment
from morgan.errors import BuildError, SpecError
from morgan.lock import Lock, LockedEdge, LockedEnvironment
from morgan.resolve import (
    SPEC,
    Candidate,
    Catalog,
    Dependencies,
    Edge,
    Release,
    Req,
    Resolution,
    closure,
    parse_requirement,
    resolve,
)
from morgan.selected_files import usable_with_yanked
from morgan.spec import Policy, Spec, parse_spec
from morgan.universal import evaluate_marker
from rules.model import NormalizedName


def previous_spec(spec: Spec, mirror: Path, old: Lock) -> Spec | None:
    """The spec that wrote ``old`` (the mirror's copy of it), when it differs from ``spec``
    in its requirements only; None otherwise or when that cannot be told."""
    copy = mirror / "mirror.toml"
    try:
        if copy.resolve() == spec.path.resolve():
            return None  # the workspace is the mirror: its copy is the edited spec
        # Read as if it stood where the spec does: private paths compare as written.
        prev = parse_spec(copy.read_text(encoding="utf-8"), spec.path)
    except (OSError, UnicodeDecodeError, SpecError):
        return None
    if spec.locks or prev.digest() != old.spec_digest:
        return None
    if dataclasses.replace(prev, requirements=spec.requirements).digest() != spec.digest():
        return None
    return prev


def _applying(env: Environment, requirements: Sequence[str]) -> dict[str, None]:
    """The requirement texts whose markers hold for ``env`` (resolve() drops the others)."""
    return dict.fromkeys(
        t for t in requirements if evaluate_marker(parse_requirement(t).marker, env, "")
    )


@dataclass(slots=True)
class Carried:
    """An environment's run selection after a change that removed nothing: the lock's run
    pins and edges carried as they are, plus what the new requirements' closure brought.
    It is exactly what the run :class:`Resolution` of the kept pins united with the new
    closure gives once recorded in a selection (``build._absorb``), without making that
    Resolution: the lock's edge objects are the selection's, each pin's version text is
    the lock's (``tests/test_incremental.py`` compares the two ways)."""

    pins: list[tuple[NormalizedName, str, Release, frozenset[str]]]  # by name
    edges: dict[LockedEdge, None]  # the lock's run edges in its order, then the new ones
    unknown: set[str]  # "name version: source", as a selection records them
    dependencies: dict[NormalizedName, Dependencies]


def resolve_change(  # noqa: PLR0917 - the before/after pair reads best positionally
    env: Environment,
    requirements: Sequence[str],
    before: Sequence[str],
    locked: LockedEnvironment,
    catalog: Catalog,
    policy: Policy,
    *,
    reporter: BaseReporter[Req, Candidate, str] | None = None,
    carry: bool = False,
) -> tuple[Resolution | Carried | None, str]:
    """``requirements`` (were ``before``) resolved for ``env`` keeping ``locked``'s run
    pins, and what was done (for ``--explain``); no resolution when the full resolution
    must decide, and why (see the module's docstring). With ``carry``, a change that
    removed nothing gives :class:`Carried` (the lock's pins and edges as they are) rather
    than a Resolution."""
    now, was = _applying(env, requirements), _applying(env, before)
    spec_edges = {e.requirement for e in locked.edges if e.parent == SPEC and e.kind == "run"}
    if spec_edges != set(was):
        return None, "the lock's requirements are not the previous spec's"
    kept: dict[NormalizedName, Release] = {}
    for p in locked.pins:
        if p.role == "run":
            rel = catalog.locked(NormalizedName(p.name))
            if rel is None or str(rel.version) != p.version:
                # --upgrade NAME, a cut-off that now hides some of its files, ...
                return None, f"the locked {p.name} {p.version} cannot be kept as it is"
            kept[NormalizedName(p.name)] = rel
    staying = [t for t in now if t in was]
    if carry and len(staying) == len(was):
        return _carry(env, now, was, locked, kept, catalog, policy, reporter)
    if len(staying) == len(was):
        base: Resolution | None = _as_locked(env, locked, kept, catalog)
    else:
        base = closure(env, staying, kept, catalog, policy)
    if base is None:
        return None, "the remaining requirements are not met by the locked pins"
    dropped = len(kept) - len(base.pins)
    note = f"kept {len(base.pins)} locked pins" + (
        f", dropped {dropped} no longer needed" if dropped else ""
    )
    added = [t for t in now if t not in was]
    unmet = [t for t in added if not _met(t, base)]
    new = None
    if unmet:
        try:
            new = resolve(env, unmet, catalog, policy, reporter=reporter, fixed=base.pins)
        except BuildError:
            return None, f"{', '.join(unmet)} conflicts with a locked pin"
        fresh = len(set(new.pins) - set(base.pins))
        note += f", resolved {', '.join(unmet)} against them ({fresh} more pins)"
    if len(unmet) < len(added):
        note += f", {len(added) - len(unmet)} new requirement(s) already met"
    met = [Edge(SPEC, _name(t), t) for t in added if t not in unmet]
    return (_union(base, new, met) if added else base), note


def _carry(  # noqa: PLR0917 - resolve_change's own values, handed on
    env: Environment,
    now: Mapping[str, None],
    was: Mapping[str, None],
    locked: LockedEnvironment,
    kept: dict[NormalizedName, Release],
    catalog: Catalog,
    policy: Policy,
    reporter: BaseReporter[Req, Candidate, str] | None,
) -> tuple[Carried | None, str]:
    """:func:`resolve_change` when nothing was removed: the lock's run pins and edges
    carried as they are, united with the closure of the new requirements they do not meet
    (what ``_union(_as_locked(...), new, met)`` recorded by ``build._absorb`` gives)."""
    extras = {
        NormalizedName(p.name): set(p.extras) for p in locked.pins if p.role == "run" and p.extras
    }
    versions: dict[NormalizedName, str] = {}
    deps: dict[NormalizedName, Dependencies] = {}
    unknown: set[str] = set()
    none = Dependencies((), None)
    for p in locked.pins:
        if p.role != "run":
            continue
        name = NormalizedName(p.name)
        rel = kept[name]
        versions[name] = p.version  # (== str(rel.version): resolve_change checked it)
        # As the resolver reads them: from the file it would (the lock's metadata).
        wheels, sdists = usable_with_yanked(rel, env)
        files = wheels or sdists
        d = catalog.dependencies(rel, files[0]) if files else none
        deps[name] = d
        if not d.known:
            unknown.add(f"{name} {p.version}: {d.source}")
    # A run edge of the lock is the edge a selection records for it (kind "run", no
    # versions) unless its parent reads as an sdist's ("name version": then build-system).
    # (The lock's run edges are never otherwise; such a one is recorded as _absorb would.)
    edges = {
        e
        if " " not in e.parent and not e.parent_version and not e.child_version
        else LockedEdge(
            e.parent, e.child, e.requirement, "build-system" if " " in e.parent else "run"
        ): None
        for e in locked.edges
        if e.kind == "run"
    }
    note = f"kept {len(kept)} locked pins"
    added = [t for t in now if t not in was]
    base = Resolution(kept, {k: frozenset(v) for k, v in extras.items()}, (), ())
    unmet = [t for t in added if not _met(t, base)]
    pins = dict(kept)
    if unmet:
        try:
            new = resolve(
                env, unmet, catalog, policy, reporter=reporter, fixed=dict(sorted(kept.items()))
            )
        except BuildError:
            return None, f"{', '.join(unmet)} conflicts with a locked pin"
        fresh = len(set(new.pins) - set(kept))
        note += f", resolved {', '.join(unmet)} against them ({fresh} more pins)"
        for name, rel in new.pins.items():
            if kept.get(name) is not rel:  # (a kept pin is its name's only candidate)
                versions[name] = str(rel.version)
            pins[name] = rel
        for k, v in new.extras.items():
            extras.setdefault(k, set()).update(v)
        edges.update(
            dict.fromkeys(
                LockedEdge(
                    e.parent, e.child, e.requirement, "build-system" if " " in e.parent else "run"
                )
                for e in new.edges
            )
        )
        unknown.update(f"{n} {v}: {src}" for n, v, src in new.unknown)
        for k, d in new.dependencies.items():
            deps.setdefault(k, d)
    if len(unmet) < len(added):
        note += f", {len(added) - len(unmet)} new requirement(s) already met"
    edges.update(
        dict.fromkeys(LockedEdge(SPEC, _name(t), t, "run") for t in added if t not in unmet)
    )
    carried = Carried(
        pins=[
            (name, versions[name], rel, frozenset(extras.get(name, ())))
            for name, rel in sorted(pins.items())
        ],
        edges=edges,
        unknown=unknown,
        dependencies=deps,
    )
    return carried, note


def _name(text: str) -> NormalizedName:
    return NormalizedName(canonicalize_name(parse_requirement(text).name))


def _met(text: str, res: Resolution) -> bool:
    """Whether a pin of ``res`` already satisfies requirement ``text`` (extras included)."""
    req = parse_requirement(text)
    name = _name(text)
    rel = res.pins.get(name)
    if rel is None or not req.specifier.contains(rel.version, prereleases=True):
        return False
    extras = {canonicalize_name(e) for e in req.extras}
    return extras <= res.extras.get(name, frozenset())


def _as_locked(
    env: Environment,
    locked: LockedEnvironment,
    kept: Mapping[NormalizedName, Release],
    catalog: Catalog,
) -> Resolution:
    """The run resolution ``locked`` records, as :func:`resolve` returned it."""
    edges = tuple(
        sorted(
            (
                Edge(e.parent, NormalizedName(e.child), e.requirement)
                for e in locked.edges
                if e.kind == "run"
            ),
            key=lambda e: (e.parent, e.child, e.requirement),
        )
    )
    deps: dict[NormalizedName, Dependencies] = {}
    unknown = []
    for name, rel in kept.items():
        # As the resolver reads them: from the file it would (the lock's metadata).
        wheels, sdists = usable_with_yanked(rel, env)
        files = wheels or sdists
        d = catalog.dependencies(rel, files[0]) if files else Dependencies((), None)
        deps[name] = d
        if not d.known:
            unknown.append((name, str(rel.version), d.source))
    return Resolution(
        pins=dict(sorted(kept.items())),
        extras={
            NormalizedName(p.name): frozenset(p.extras)
            for p in sorted(locked.pins, key=lambda p: p.name)
            if p.role == "run" and p.extras
        },
        edges=edges,
        unknown=tuple(sorted(unknown)),
        dependencies=deps,
    )


def _union(base: Resolution, new: Resolution | None, met: Sequence[Edge]) -> Resolution:
    pins = dict(base.pins)
    extras = {k: set(v) for k, v in base.extras.items()}
    edges = {*base.edges, *met}
    unknown = set(base.unknown)
    deps = dict(base.dependencies)
    if new is not None:
        pins.update(new.pins)
        for k, v in new.extras.items():
            extras.setdefault(k, set()).update(v)
        edges.update(new.edges)
        unknown.update(new.unknown)
        for k, d in new.dependencies.items():
            deps.setdefault(k, d)
    return Resolution(
        pins=dict(sorted(pins.items())),
        extras={k: frozenset(v) for k, v in sorted(extras.items()) if v},
        edges=tuple(sorted(edges, key=lambda e: (e.parent, e.child, e.requirement))),
        unknown=tuple(sorted(unknown)),
        dependencies=deps,
    )
