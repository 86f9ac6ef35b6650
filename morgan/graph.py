"""Why each package is in the mirror: the lock's dependency edges as one graph per environment.

The lock records, per environment, every edge a resolution followed: ``<spec>`` → a project
(the spec's own requirement), project → project (``Requires-Dist``, marker already
evaluated for that environment) and ``"<sdist name> <version>"`` → project for an sdist's
``[build-system].requires``. :func:`load_graph` turns them into a ``networkx.MultiDiGraph``
per environment; :func:`why` lists every path from the spec to a project; the renderers
print the whole graph as text, Graphviz dot, JSON or Mermaid (HTML: :mod:`morgan.graph_html`).
Nothing here touches the network or the store: the lock alone is enough.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import networkx as nx
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from morgan.lock import EdgeKind, Lock, LockedEnvironment, Role

SPEC_NODE = "<spec>"


def is_root(name: str) -> bool:
    """``<spec>`` or an input lock (``<pylock.toml>``): where every path starts."""
    return name.startswith("<") and name.endswith(">")


MAX_PATHS = 100  # per environment: a diamond-rich graph has exponentially many paths
JSON_SCHEMA_VERSION = 1


@dataclass(frozen=True, slots=True)
class Step:
    """One edge of a path: ``parent`` (at ``parent_version``) requires ``child``."""

    parent: str
    parent_version: str
    child: str
    child_version: str
    requirement: str
    kind: EdgeKind

    def to_json(self) -> dict[str, str]:
        return {
            "parent": self.parent,
            "parent-version": self.parent_version,
            "child": self.child,
            "child-version": self.child_version,
            "requirement": self.requirement,
            "kind": self.kind,
        }


@dataclass(frozen=True, slots=True)
class EnvWhy:
    """Why a project is in one environment: its pins, the paths, the sdists that need it."""

    env: str
    versions: dict[str, str]  # role -> its newest pinned version
    paths: tuple[tuple[Step, ...], ...]
    truncated: bool
    needed_to_build: tuple[str, ...]  # "<sdist name> <version> (<filename>)"
    pins: tuple[tuple[str, str], ...] = ()  # every (version, role) pinned, run first


@dataclass(frozen=True, slots=True)
class Why:
    """The answer of ``morgan graph --why NAME``."""

    name: str
    environments: tuple[EnvWhy, ...]
    absent_from: tuple[str, ...]


class UnknownProjectError(Exception):
    """``--why`` named a project no environment has; carries close names."""

    def __init__(self, name: str, close: list[str], where: str) -> None:
        hint = f"; close names: {', '.join(close)}" if close else ""
        super().__init__(f"{name!r} is not in the mirror ({where}){hint}")
        self.close = close


@dataclass(frozen=True, slots=True)
class MirrorGraph:
    """The lock as one dependency graph per environment (nodes: project names)."""

    lock: Lock
    graphs: dict[str, nx.MultiDiGraph]

    def env_names(self) -> list[str]:
        return sorted(self.graphs)

    def version(self, env: str, name: str, role: Role) -> str:
        """The version ``env`` pins for ``name`` in ``role`` (falling back to any role)."""
        if name == SPEC_NODE:
            return ""
        versions: dict[str, str] = self.graphs[env].nodes[name].get("versions", {})
        return versions.get(role) or next(iter(sorted(versions.values())), "?")


def load_graph(lock: Lock) -> MirrorGraph:
    """Build the per-environment graphs from ``lock`` (pure: no I/O)."""
    return MirrorGraph(lock, {env.name: _env_graph(env) for env in lock.environments})


def _env_graph(env: LockedEnvironment) -> nx.MultiDiGraph:
    g = nx.MultiDiGraph(name=env.name, python=env.python, platform=env.platform)
    g.add_node(SPEC_NODE, versions={}, extras=(), pins=[])
    # A name may be pinned several times in one role (``[policy] versions = N``): every pin
    # is kept in ``pins``; ``versions`` names the newest per role.
    for pin in sorted(env.pins, key=lambda p: (p.name, _ROLE_ORDER.get(p.role, 9), _v(p.version))):
        if pin.name not in g:
            g.add_node(pin.name, versions={}, extras=(), pins=[])
        node = g.nodes[pin.name]
        node["versions"][pin.role] = pin.version
        node["pins"].insert(0, (pin.version, pin.role))
        node["extras"] = tuple(sorted({*node["extras"], *pin.extras}))
    for e in sorted(env.edges, key=lambda e: (e.parent, e.child, e.requirement, e.kind)):
        parent, sdist = e.parent, ""
        if e.kind == "build-system":
            parent = e.parent.partition(" ")[0]
            sdist = e.parent
        for name in (parent, e.child):
            if name not in g:  # an edge to a pin the lock lost: keep it visible, unversioned
                g.add_node(name, versions={}, extras=(), pins=[])
        g.add_edge(
            parent,
            e.child,
            requirement=e.requirement,
            kind=e.kind,
            sdist=sdist,
            parent_version=e.parent_version,
            child_version=e.child_version,
        )
    return g


_ROLE_ORDER = {"run": 0, "build": 1, "version-policy": 2}


def _v(version: str) -> Version | str:
    try:
        return Version(version)
    except InvalidVersion:
        return version


def pins_of(g: nx.MultiDiGraph, name: str) -> tuple[tuple[str, str], ...]:
    """(version, role) of every pin of ``name``: run, then build, then version-policy;
    newest first within a role."""
    pins: list[tuple[str, str]] = g.nodes[name].get("pins", [])
    return tuple(sorted(pins, key=lambda p: _ROLE_ORDER.get(p[1], 9)))


def _role_of(kind: str) -> Role:
    """The pin role an edge of ``kind`` leads to (version-policy edges to version-policy
    pins; build and build-system edges to build pins)."""
    if kind == "run":
        return "run"
    if kind == "version-policy":
        return "version-policy"
    return "build"


@dataclass(frozen=True, slots=True)
class _Up:
    """An edge into a node, with the versions it joins: ``parent_version`` is None when
    the lock does not say (then the role of the edge above decides, see :func:`_fits`)."""

    step: Step
    parent_version: str | None


def _child_version(graph: MirrorGraph, env: str, node: str, data: dict[str, Any]) -> str:
    """The version of ``node`` an edge reaches: as the lock recorded it (version-policy
    edges), else the pin of the edge's role. A version-policy edge of an older lock, which
    recorded none, reaches the newest version-policy pin its requirement admits
    (``app==1.0`` → 1.0), else the newest pin of any role it admits."""
    if data.get("child_version"):
        return str(data["child_version"])
    if data["kind"] == "version-policy":
        try:
            spec = Requirement(data["requirement"]).specifier
        except InvalidRequirement:
            spec = None
        if spec is not None:
            pins = [p for p in pins_of(graph.graphs[env], node) if spec.contains(p[0], True)]
            fitting = [v for v, r in pins if r == "version-policy"] or [v for v, _ in pins]
            if fitting:
                return fitting[0]  # newest first within a role
    return graph.version(env, node, _role_of(data["kind"]))


def _up(graph: MirrorGraph, env: str, parent: str, node: str, data: dict[str, Any]) -> _Up:
    """The edge ``parent`` → ``node`` (its ``data``) with the versions it joins."""
    kind = data["kind"]
    parent_version: str | None = data.get("parent_version") or None
    if kind == "build-system":
        parent_version = data["sdist"].partition(" ")[2] or None
    elif is_root(parent):
        parent_version = ""
    step = Step(
        parent=parent,
        parent_version="",
        child=node,
        child_version=_child_version(graph, env, node, data),
        requirement=data["requirement"],
        kind=kind,
    )
    return _Up(step, parent_version)


def _edge_order(t: tuple[str, str, dict[str, Any]]) -> tuple[str, ...]:
    return (t[0], t[1], t[2]["requirement"], t[2]["kind"], t[2].get("parent_version", ""))


def _ups(graph: MirrorGraph, env: str, node: str) -> list[_Up]:
    """Every edge into ``node``, in a stable order, with the versions it joins."""
    edges = sorted(graph.graphs[env].in_edges(node, data=True), key=_edge_order)
    return [_up(graph, env, parent, child, data) for parent, child, data in edges]


def _fits(up: _Up, below: _Up | None) -> bool:
    """Whether a node reached through ``up`` can be the parent of ``below``.

    A name can be pinned several times: a run version and a build version, and with
    ``[policy] versions = N`` several version-policy ones. ``up`` must reach the version
    ``below`` leaves when the lock says which (a version-policy edge records it, a
    build-system edge names its sdist's); and a run edge hangs off the run pin, a build
    edge off the build pin, a version-policy edge off a version-policy edge's pin.
    """
    if below is None:
        return True
    if below.parent_version is not None and up.step.child_version != below.parent_version:
        return False
    return below.step.kind == "build-system" or _role_of(up.step.kind) == _role_of(below.step.kind)


def paths_to(graph: MirrorGraph, env: str, name: str) -> tuple[list[tuple[Step, ...]], bool]:
    """Every simple path from the spec to ``name`` in ``env`` (at most MAX_PATHS)."""
    found: list[tuple[Step, ...]] = []

    def back(node: str, suffix: list[_Up], seen: frozenset[str]) -> Iterator[tuple[Step, ...]]:
        if is_root(node):
            yield _with_parent_versions(tuple(u.step for u in reversed(suffix)))
            return
        below = suffix[-1] if suffix else None
        for up in _ups(graph, env, node):
            if up.step.parent in seen or not _fits(up, below):
                continue
            yield from back(up.step.parent, [*suffix, up], seen | {up.step.parent})

    for path in back(name, [], frozenset({name})):
        if len(found) == MAX_PATHS:
            return found, True
        found.append(path)
    return found, False


def shortest_paths(graph: MirrorGraph, env: str) -> dict[str, dict[str, tuple[Step, ...]]]:
    """For every name of ``env`` and each of its pinned versions, one shortest path from
    the spec (or an input lock): one breadth-first search forward over the edges
    :func:`paths_to` follows (from the roots in name order, edges in a stable order)."""
    g = graph.graphs[env]
    below: dict[str, list[_Up]] = {}
    for parent, child, data in sorted(g.edges(data=True), key=_edge_order):
        below.setdefault(parent, []).append(_up(graph, env, parent, child, data))
    # A state is where an edge leads: (name, version, role of the edge). What may follow
    # depends on nothing else (see _fits), so each state is reached once, first = shortest.
    back: dict[tuple[str, str, str], tuple[tuple[str, str, str] | None, _Up]] = {}
    frontier: list[tuple[tuple[str, str, str] | None, _Up]] = [
        (None, up) for root in sorted(n for n in g if is_root(n)) for up in below.get(root, [])
    ]
    out: dict[str, dict[str, tuple[Step, ...]]] = {}
    while frontier:
        later: list[tuple[tuple[str, str, str] | None, _Up]] = []
        for came_from, up in frontier:
            state = (up.step.child, up.step.child_version, _role_of(up.step.kind))
            if state in back:
                continue
            back[state] = (came_from, up)
            versions = out.setdefault(state[0], {})
            if state[1] not in versions:
                steps: list[Step] = []
                at: tuple[str, str, str] | None = state
                while at is not None:
                    at, step_up = back[at]
                    steps.append(step_up.step)
                versions[state[1]] = _with_parent_versions(tuple(reversed(steps)))
            later.extend((state, nxt) for nxt in below.get(state[0], []) if _fits(up, nxt))
        frontier = later
    return out


def _with_parent_versions(path: tuple[Step, ...]) -> tuple[Step, ...]:
    out: list[Step] = []
    previous = ""
    for s in path:
        out.append(Step(s.parent, previous, s.child, s.child_version, s.requirement, s.kind))
        previous = s.child_version
    return tuple(out)


def why(graph: MirrorGraph, name: str, env: str | None = None) -> Why:
    """Why ``name`` is in the mirror, per environment (only ``env`` when given).

    Raises :class:`UnknownProjectError` (with close names) when no chosen environment has it.
    """
    wanted = canonicalize_name(name)
    envs = [env] if env is not None else graph.env_names()
    answers: list[EnvWhy] = []
    absent: list[str] = []
    for e in envs:
        g = graph.graphs[e]
        if wanted not in g:
            absent.append(e)
            continue
        paths, truncated = paths_to(graph, e, wanted)
        pins = pins_of(g, wanted)
        # The paths in the order of the pins they reach: run first, then newest first.
        order = {v: i for i, (v, _) in reversed(list(enumerate(pins)))}
        paths.sort(key=lambda p: order.get(p[-1].child_version, len(order)))
        answers.append(
            EnvWhy(
                env=e,
                versions=dict(sorted(g.nodes[wanted]["versions"].items())),
                paths=tuple(paths),
                truncated=truncated,
                needed_to_build=_sdists_needing(graph, e, wanted),
                pins=pins,
            )
        )
    if not answers:
        names = sorted({n for g in graph.graphs.values() for n in g if not is_root(n)})
        where = f"environment {env!r}" if env is not None else "no environment has it"
        if env is not None:
            elsewhere = [n for n, g in sorted(graph.graphs.items()) if wanted in g]
            if elsewhere:
                where += f"; it is in {', '.join(elsewhere)}"
                raise UnknownProjectError(name, [], where)
        raise UnknownProjectError(name, difflib.get_close_matches(wanted, names, n=5), where)
    return Why(wanted, tuple(answers), tuple(absent))


def _sdists_needing(graph: MirrorGraph, env: str, name: str) -> tuple[str, ...]:
    """The sdists whose ``[build-system].requires`` reach ``name`` (directly or through
    other build dependencies)."""
    g = graph.graphs[env]
    out: set[str] = set()
    seen = {name}
    frontier = [name]
    while frontier:
        node = frontier.pop()
        for parent, _, data in g.in_edges(node, data=True):
            if data["kind"] == "build-system":
                n, _, v = data["sdist"].partition(" ")
                rel = graph.lock.release(n, v)
                files = (
                    [f.filename for f in rel.files if not f.filename.endswith(".whl")]
                    if rel
                    else []
                )
                out.add(f"{data['sdist']} ({', '.join(files)})" if files else data["sdist"])
            elif data["kind"] == "build" and parent not in seen:
                seen.add(parent)
                frontier.append(parent)
    return tuple(sorted(out))


# -- rendering ------------------------------------------------------------------------------


def _label(name: str, version: str) -> str:
    return name if is_root(name) else f"{name} {version}"


def format_path(path: tuple[Step, ...]) -> str:
    """``<spec> --[app[cli]]--> app 1.0 ==[build-system: flit]==> flit 3.9``."""
    parts = [path[0].parent if path else SPEC_NODE]
    for s in path:
        arrow = (
            f"==[build-system: {s.requirement}]==>"
            if s.kind == "build-system"
            else (f"--[{s.requirement}]-->")
        )
        parts.append(f"{arrow} {_label(s.child, s.child_version)}")
    return " ".join(parts)


def render_why_text(graph: MirrorGraph, answer: Why) -> str:
    lines = []
    for w in answer.environments:
        g = graph.graphs[w.env]
        pins = ", ".join(f"{v} ({role})" for v, role in w.pins) or "not pinned"
        lines.append(
            f"{answer.name} in environment {w.env} (Python {g.graph['python']},"
            f" {g.graph['platform']}): {pins}"
        )
        lines.extend(f"  {format_path(p)}" for p in w.paths)
        if w.truncated:
            lines.append(f"  ... more paths (only the first {MAX_PATHS} are shown)")
        if not w.paths:
            lines.append("  no path from the spec or an input lock (the lock has no edge to it)")
        if w.needed_to_build:
            only = "only " if set(w.versions) == {"build"} else ""
            lines.append(f"  {only}a build dependency of: {'; '.join(w.needed_to_build)}")
    if answer.absent_from:
        lines.append(f"not in environment(s): {', '.join(answer.absent_from)}")
    return "\n".join(lines) + "\n"


def why_json(answer: Why) -> dict[str, Any]:
    return {
        "name": answer.name,
        "environments": {
            w.env: {
                "versions": w.versions,
                "pins": [{"version": v, "role": role} for v, role in w.pins],
                "paths": [[s.to_json() for s in p] for p in w.paths],
                "truncated": w.truncated,
                "needed-to-build": list(w.needed_to_build),
            }
            for w in answer.environments
        },
        "absent-from": list(answer.absent_from),
    }


def _children(g: nx.MultiDiGraph, node: str) -> list[tuple[str, dict[str, str]]]:
    return sorted(
        ((c, d) for _, c, d in g.out_edges(node, data=True)),
        key=lambda t: (t[0], t[1]["requirement"], t[1]["kind"]),
    )


def _walks(role: str, kind: str) -> bool:
    """Whether an edge of ``kind`` leaves a node pinned in ``role`` (see :func:`_fits_below`)."""
    return kind == "build-system" or _role_of(kind) == role


def render_text(graph: MirrorGraph, envs: list[str]) -> str:
    """An indented tree per environment; a subtree already shown is folded to one line.
    Each pinned version is its own branch: ``[policy] versions = N`` pins are shown under
    the edges that keep them, each with the dependencies of that version."""
    out: list[str] = []
    for env in envs:
        g = graph.graphs[env]
        out.append(f"environment {env} (Python {g.graph['python']}, {g.graph['platform']})")
        shown: set[tuple[str, str, str]] = set()
        for root in sorted(n for n in g if is_root(n) and (n == SPEC_NODE or g.out_degree(n))):
            out.append(root)
            _tree(graph, env, out, (root, "run", "", ""), shown, frozenset({root}))
        out.append("")
    return "\n".join(out)


def _tree_kids(
    graph: MirrorGraph, env: str, node: str, role: str, version: str
) -> list[tuple[str, dict[str, Any]]]:
    """The edges leaving ``node`` pinned at ``version`` in ``role``: from a root every edge;
    else those of the role (:func:`_walks`) that the lock does not tie to another version."""
    kids = []
    for child, data in _children(graph.graphs[env], node):
        if is_root(node):
            kids.append((child, data))
            continue
        tied = _up(graph, env, node, child, data).parent_version
        if _walks(role, data["kind"]) and tied in (None, version):
            kids.append((child, data))
    return kids


def _tree(  # noqa: PLR0917 - a private recursive helper; its state is positional
    graph: MirrorGraph,
    env: str,
    out: list[str],
    at: tuple[str, str, str, str],
    shown: set[tuple[str, str, str]],
    path: frozenset[str],
) -> None:
    node, role, version, prefix = at
    kids = _tree_kids(graph, env, node, role, version)
    for i, (child, data) in enumerate(kids):
        last = i == len(kids) - 1
        crole = _role_of(data["kind"])
        cversion = _child_version(graph, env, child, data)
        branch = "`-- " if last else "|-- "
        tag = f" [{data['kind']}]" if data["kind"] in {"build-system", "version-policy"} else ""
        line = f"{prefix}{branch}{child} {cversion}  ({data['requirement']}){tag}"
        if child in path:
            out.append(line + " (cycle)")
            continue
        key = (child, crole, cversion)
        if key in shown and _tree_kids(graph, env, child, crole, cversion):
            out.append(line + " (see above)")
            continue
        out.append(line)
        shown.add(key)
        child_prefix = prefix + ("    " if last else "|   ")
        _tree(graph, env, out, (child, crole, cversion, child_prefix), shown, path | {child})


def _q(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def render_dot(graph: MirrorGraph, envs: list[str]) -> str:
    """Graphviz: one cluster per environment; build-system edges dashed."""
    out = ["digraph morgan {", "  rankdir=LR;", "  node [shape=box, fontsize=10];"]
    for env in envs:
        g = graph.graphs[env]
        out.append(f"  subgraph {_q('cluster_' + env)} {{")
        title = f"{env} (Python {g.graph['python']}, {g.graph['platform']})"
        out.append(f"    label={_q(title)};")
        for node in sorted(g):
            label = node + "".join(f"\n{v} ({r})" for v, r in pins_of(g, node))
            out.append(f"    {_q(env + '/' + node)} [label={_q(label)}];")
        for parent, child, data in sorted(
            g.edges(data=True), key=lambda t: (t[0], t[1], t[2]["requirement"])
        ):
            style = ", style=dashed" if data["kind"] != "run" else ""
            out.append(
                f"    {_q(env + '/' + parent)} -> {_q(env + '/' + child)}"
                f" [label={_q(data['requirement'])}{style}];"
            )
        out.append("  }")
    out.append("}")
    return "\n".join(out) + "\n"


def _mermaid_text(text: str) -> str:
    return text.replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")


def render_mermaid(graph: MirrorGraph, envs: list[str]) -> str:
    """A Mermaid flowchart: one subgraph per environment."""
    out = ["flowchart LR"]
    for e_index, env in enumerate(envs):
        g = graph.graphs[env]
        ids = {node: f"e{e_index}n{i}" for i, node in enumerate(sorted(g))}
        out.append(f'  subgraph e{e_index}["{_mermaid_text(env)}"]')
        for node, ident in ids.items():
            label = " ".join([node, *dict.fromkeys(v for v, _ in pins_of(g, node))])
            out.append(f'    {ident}["{_mermaid_text(label)}"]')
        for parent, child, data in sorted(
            g.edges(data=True), key=lambda t: (t[0], t[1], t[2]["requirement"])
        ):
            arrow = "-->" if data["kind"] == "run" else "-.->"
            label = _mermaid_text(data["requirement"])
            out.append(f'    {ids[parent]} {arrow}|"{label}"| {ids[child]}')
        out.append("  end")
    return "\n".join(out) + "\n"


def graph_json(graph: MirrorGraph, envs: list[str]) -> dict[str, Any]:
    """The documented JSON schema (docs/graph-gc-verify.md)."""
    environments = []
    for env in envs:
        g = graph.graphs[env]
        environments.append(
            {
                "name": env,
                "python": g.graph["python"],
                "platform": g.graph["platform"],
                "nodes": [
                    {
                        "name": n,
                        "versions": dict(sorted(g.nodes[n]["versions"].items())),
                        "pins": [{"version": v, "role": r} for v, r in pins_of(g, n)],
                        "extras": list(g.nodes[n]["extras"]),
                    }
                    for n in sorted(g)
                    if not is_root(n)
                ],
                "edges": [
                    {
                        "parent": p,
                        "child": c,
                        "requirement": d["requirement"],
                        "kind": d["kind"],
                        **({"sdist": d["sdist"]} if d["sdist"] else {}),
                        **({"parent-version": d["parent_version"]} if d["parent_version"] else {}),
                        **({"child-version": d["child_version"]} if d["child_version"] else {}),
                    }
                    for p, c, d in sorted(
                        g.edges(data=True), key=lambda t: (t[0], t[1], t[2]["requirement"])
                    )
                ],
            }
        )
    releases = [
        {
            "name": r.name,
            "version": r.version,
            "files": [
                {"filename": f.filename, "size": f.size, "sha256": f.sha256} for f in r.files
            ],
        }
        for r in sorted(graph.lock.releases, key=lambda r: (r.name, r.version))
    ]
    return {"version": JSON_SCHEMA_VERSION, "environments": environments, "releases": releases}
