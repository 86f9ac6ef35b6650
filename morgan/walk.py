"""The executor's walk over a plan graph: a node runs when all its predecessors are done.

The plan (:mod:`morgan.plan`) is an ``nx.DiGraph`` whose nodes carry a :class:`Step`. The
walk counts in-degrees; among ready nodes it submits in a deterministic order (by node id)
to the executor, which runs each on its resource pool (downloads on the network pool,
everything else on the small pool) and consults the action cache. A node's key is blake3
over its kind, version, parameters and the *output digests* of its predecessors, so a
predecessor that re-ran but produced the same output leaves the key unchanged and the node
is reused (early cutoff). A node already started (a download begun while resolution was
still running) is the same executor node: the walk attaches to it instead of starting it
again.
"""

from __future__ import annotations

import heapq
import queue
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from morgan.errors import BuildError
from morgan.executor import Executor, Node, Record
from rules.errors import RuleError
from store.digest import Digest, blake3_hex, canonical_json

if TYPE_CHECKING:
    import networkx as nx

Kind = Literal[
    "fetch", "wheel-metadata", "provenance", "render", "index", "lock", "manifest", "generation"
]


@dataclass(frozen=True, slots=True)
class Step:
    """One node of the plan: what the executor runs and what it puts into the tree.

    ``run`` gets the records of the node's predecessors (by node id). ``entries`` maps a
    finished record to the tree paths whose content it is (a file in each view that lists
    it, a project's two pages, ...): every entry of a generation has exactly one producer.
    """

    id: str
    kind: Kind
    version: int
    params: Mapping[str, object]
    run: Callable[[Mapping[str, Record]], Record]
    entries: Callable[[Record], dict[str, Digest]] = field(default=lambda _rec: {})
    produces: tuple[str, ...] = ()  # the tree paths of ``entries``, known before it runs
    cacheable: bool = True
    # An effect node (the switch) is not cached; this says, from its inputs, when it has
    # nothing to do (its record then), so that it counts as reused and does not run.
    current: Callable[[Mapping[str, Record]], Record | None] | None = None


def output_digest(record: Record) -> str:
    """What a node's dependants see of it: the digest of its (deterministic) record."""
    return "blake3:" + blake3_hex(canonical_json(record))


def node_of(step: Step, inputs: Mapping[str, str]) -> Node:
    """The executor node of ``step`` given its predecessors' output digests."""
    return Node(
        id=step.id,
        kind=step.kind,
        version=step.version,
        params=step.params,
        inputs=dict(inputs),
        cacheable=step.cacheable,
        volatile="the switch: the served tree or its side files differ",
        stored=step.cacheable or step.kind != "generation",
    )


def walk(
    graph: nx.DiGraph,
    ex: Executor,
    *,
    on_done: Callable[[Step, Record], None] = lambda _s, _r: None,
) -> dict[str, Record]:
    """Run every node of ``graph`` once its predecessors are done; every node's record.

    ``on_done`` is called in the walking thread for each finished node (to link its tree
    entries while others still run). A failed node's dependants do not run; the others do,
    so one build reports every failed download: a :class:`BuildError` names the first
    failure (by node id) and how many more there were.
    """
    waiting = {n: graph.in_degree(n) for n in graph.nodes}
    ready = [n for n, d in waiting.items() if d == 0]
    heapq.heapify(ready)
    records: dict[str, Record] = {}
    failed: dict[str, BaseException] = {}
    finished: queue.SimpleQueue[tuple[str, Future[Record]]] = queue.SimpleQueue()
    running = 0

    def start(node_id: str) -> None:
        step: Step = graph.nodes[node_id]["step"]
        preds = {p: records[p] for p in graph.predecessors(node_id)}
        inputs = {p: output_digest(r) for p, r in sorted(preds.items())}
        done = step.current(preds) if step.current is not None else None
        if done is not None:
            ex.note_reused(node_id)
            fut: Future[Record] = Future()
            fut.set_result(done)
        else:
            fut = ex.submit(node_of(step, inputs), lambda: step.run(preds))
        fut.add_done_callback(lambda done: finished.put((node_id, done)))

    while ready or running:
        while ready:
            start(heapq.heappop(ready))
            running += 1
        node_id, done = finished.get()
        running -= 1
        exc = done.exception()
        if exc is not None:
            failed[node_id] = exc
            _skip_dependants(graph, node_id, waiting)
            continue
        records[node_id] = done.result()
        on_done(graph.nodes[node_id]["step"], records[node_id])
        for succ in graph.successors(node_id):
            waiting[succ] -= 1
            if waiting[succ] == 0:
                heapq.heappush(ready, succ)
    if failed:
        _raise(failed)
    return records


def _skip_dependants(graph: nx.DiGraph, node_id: str, waiting: dict[str, int]) -> None:
    import networkx as nx

    for d in nx.descendants(graph, node_id):
        waiting[d] = -1  # never reaches 0: it does not run


def _raise(failed: Mapping[str, BaseException]) -> None:
    errors = [failed[k] for k in sorted(failed)]
    for e in errors:
        if not isinstance(e, BuildError | RuleError):
            raise e  # an internal error or an interrupt: as it is
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    raise BuildError(str(errors[0]) + more)
