"""The plan: (spec, selected files) compiled into an ``nx.DiGraph`` of rule nodes.

Resolution (dynamic: pages and metadata reveal what to read next) ends in the selected
releases of every environment. Everything after that has static dependencies, so it is
compiled ahead into a graph that :func:`morgan.walk.walk` runs::

    fetch:<file> ──> wheel-metadata:<file>, provenance:<file>
         │                 │
         └──────┬──────────┘
                v
    render:<view>:<project>     (per view and project; the two project pages)
    index:<view>                (per view; the root pages)
    lock                        (mirror.lock, from every file's digests)
                │
                v
    manifest ──> generation     (the tree manifest; root, tree, side files, switch)

Every entry of a generation's tree — file, ``.metadata``, page, ``mirror.lock``,
``manifest.json`` — is the output of exactly one node (``produces``); the generation node
makes the links and switches. This module says only which node depends on which: each rule
kind is a module of ``rules/`` (its kind, version, typed output, run function and
``step``), so a new rule kind is one module there and one line in :func:`compile_plan`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from morgan.records import Recorded
from rules import fetch, generation, index, lock, manifest, provenance, render, wheel_metadata
from rules.files import FileNodes, node_ids
from rules.model import NormalizedName, UpstreamFile, ViewId
from rules.rule import Step
from store.digest import Digest
from store.objects import Store

if TYPE_CHECKING:
    import networkx as nx


@dataclass(frozen=True, slots=True)
class View:
    """One index tree of a generation: an index's union or one target's view."""

    id: ViewId  # names the render and index nodes; says where the tree lives
    projects: Mapping[str, Sequence[str]]  # project -> its filenames in this view
    statuses: Mapping[str, tuple[str, str]] = field(default_factory=dict)  # PEP 792


class Fetcher(fetch.Fetcher, provenance.Fetcher, Protocol):
    """What the fetch and provenance nodes run (the upstream catalog)."""


class _NoEdgeData(dict[str, object]):
    """The one attribute dict every plan edge shares: plan edges carry no data, and a dict
    per edge was 4 MB of the plan at 2 000 projects (67 000 edges)."""

    def __setitem__(self, key: str, value: object) -> None:
        raise TypeError("plan edges carry no data")

    def update(self, *args: Any, **kwargs: Any) -> None:
        if any(args) or kwargs:
            raise TypeError("plan edges carry no data")


_NO_EDGE_DATA = _NoEdgeData()


@functools.cache
def _plan_graph_type() -> type[nx.DiGraph]:
    import networkx as nx

    class PlanGraph(nx.DiGraph):  # type: ignore[misc]
        """A DiGraph whose edges share one empty, read-only attribute dict."""

        def edge_attr_dict_factory(self) -> dict[str, object]:
            return _NO_EDGE_DATA

    return PlanGraph


def _plan_graph() -> nx.DiGraph:
    return _plan_graph_type()()


def file_ids(wanted: Mapping[str, UpstreamFile]) -> dict[str, FileNodes]:
    """filename -> the file and the ids of its nodes."""
    return {fn: FileNodes.of(f) for fn, f in sorted(wanted.items())}


def compile_plan(
    catalog: Fetcher,
    store: Store,
    views: Sequence[View],
    wanted: Mapping[str, UpstreamFile],  # filename -> file, every selected file
    *,
    make_lock: lock.LockMaker,
    lock_skeleton: str,
    publish: generation.Publisher,
    served: generation.Served,
    recorded: Mapping[str, Recorded] | None = None,
    has_blob: Callable[[Digest], bool] | None = None,
) -> nx.DiGraph:
    """The plan graph: nodes carry their :class:`~rules.rule.Step` (``step``) and ``kind``.

    ``recorded``: projects whose part of the plan (their files' nodes, their render nodes)
    is left out, their project records (:mod:`morgan.records`) giving the lock their files
    and the manifest their entries. ``has_blob``: whether the store holds a blob, as the
    build knows it (the manifest checks each one it lists)."""
    recorded = recorded or {}
    skip = {fn for rec in recorded.values() for fn in rec.files}
    g = _plan_graph()
    steps: dict[str, Step[Any]] = {}

    def add(step: Step[Any], *after: str) -> str:
        steps[step.id] = step
        g.add_node(step.id, step=step, kind=step.kind)
        g.add_edges_from((p, step.id) for p in after)
        return step.id

    paths: dict[str, list[str]] = {}  # filename -> its path in every view that lists it
    for view in views:
        for name, filenames in sorted(view.projects.items()):
            for fn in filenames:
                paths.setdefault(fn, []).append(f"{view.id.prefix}simple/{name}/{fn}")
    ids = file_ids(wanted)
    for fn, n in ids.items():
        if fn in skip:
            continue
        add(fetch.step(catalog, n.file, paths[fn]))
        if n.metadata is not None:
            meta = [p + ".metadata" for p in paths[fn]]
            add(wheel_metadata.step(store, fn, n.fetch, meta), n.fetch)
        if n.provenance is not None:
            prov = [p + ".provenance" for p in paths[fn]]
            add(provenance.step(catalog, n.file, n.fetch, prov), n.fetch)
    for view in views:
        for name, filenames in sorted(view.projects.items()):
            if name in recorded:
                continue
            files = [ids[fn] for fn in sorted(filenames)]
            status = view.statuses.get(name, render.ACTIVE)
            add(render.step(store, view.id, NormalizedName(name), files, status), *node_ids(files))
        add(index.step(store, view.id, view.projects))
    walked = {fn: n for fn, n in ids.items() if fn not in skip}
    lock_files = {fn: f for rec in recorded.values() for fn, f in rec.files.items()}
    add(
        lock.step(store, walked, make_lock, lock_skeleton, recorded=lock_files),
        *node_ids(list(walked.values())),
    )
    written = manifest.Written()  # the manifest's entries, handed to the generation node
    entries = {
        f"{folder}/{leaf}": d
        for rec in recorded.values()
        for folder, names in rec.folders.items()
        for leaf, d in names.items()
    }
    add(
        manifest.step(store, steps, written, recorded=entries, has=has_blob),
        *[n for n in steps if steps[n].produces],
    )
    add(generation.step(store, publish, served, written), manifest.ID)
    return g
