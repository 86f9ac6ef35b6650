"""The executor's walk over a plan graph: a node runs when all its predecessors are done.

The plan (:mod:`morgan.plan`) is an ``nx.DiGraph`` whose nodes carry a
:class:`~rules.rule.Step`. The walk counts in-degrees; among ready nodes it submits in a
deterministic order (by node id) to the executor, which runs each on its resource pool
(downloads on the network pool, everything else on the small pool) and consults the action
cache. A node's key is blake3 over its kind, version, parameters and the *output digests*
of its predecessors, so a predecessor that re-ran but produced the same output leaves the
key unchanged and the node is reused (early cutoff). A node already started (a download
begun while resolution was still running) is the same executor node: the walk attaches to
it instead of starting it again. At most :data:`IN_FLIGHT` nodes per pool are submitted and
not finished: the rest wait as ids, in order.
"""

from __future__ import annotations

import heapq
import queue
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from morgan.errors import BuildError
from morgan.executor import Executor
from rules.errors import RuleError
from rules.rule import Inputs, Output, Step
from store.digest import blake3_hex, canonical_json

if TYPE_CHECKING:
    import networkx as nx


def output_digest(output: Output) -> str:
    """What a node's dependants see of it: the digest of its (deterministic) output."""
    return "blake3:" + blake3_hex(canonical_json(output.to_json()))


@dataclass(frozen=True, slots=True)
class Notes:
    """What a walk leaves of its nodes for project records (:mod:`morgan.records`), and
    what it takes from them: ``outside`` holds, for a node some of whose predecessors were
    left out of the graph (their project's record stands for them), those predecessors'
    output digests, so that its key is the one the whole graph would give it."""

    outside: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)  # node id -> action key
    digests: dict[str, str] = field(default_factory=dict)  # node id -> output digest


# Nodes submitted to one of the executor's pools and not finished yet, at most: a ready node
# waits in the walk as an id, not as a queued task holding its inputs (at 2 000 projects the
# ~17 000 wheel-metadata and render nodes that become ready as the files land held ~45 MB
# queued at once). Well above each pool's threads, so neither pool idles.
IN_FLIGHT = 64


def walk(
    graph: nx.DiGraph,
    ex: Executor,
    *,
    on_done: Callable[[Step[Any], Output], None] = lambda _s, _o: None,
    notes: Notes | None = None,
    spend: bool = False,
) -> dict[str, Output]:
    """Run every node of ``graph`` once its predecessors are done; every node's output.

    ``on_done`` is called in the walking thread for each finished node (to link its tree
    entries while others still run). A failed node's dependants do not run; the others do,
    so one build reports every failed download: a :class:`BuildError` names the first
    failure (by node id) and how many more there were. ``notes``: what the walk keeps of
    each node's key and output digest, and the predecessors of nodes that are not in the
    graph (:class:`Notes`). ``spend``: each finished step lets go of what it ran with
    (:meth:`~rules.rule.Step.spend`), its key noted first: the graph is walked once, and
    read afterwards only for its steps' ids, rules, entries and products.
    """
    waiting = {n: graph.in_degree(n) for n in graph.nodes}
    # Downloads and everything else run on different pools: each has its own ready heap
    # and its own bound, so a queue of downloads never holds back a render.
    ready: dict[bool, list[str]] = {True: [], False: []}
    for n, d in waiting.items():
        if d == 0:
            ready[_is_fetch(graph, n)].append(n)
    for heap in ready.values():
        heapq.heapify(heap)
    outputs: dict[str, Output] = {}
    # a finished node's output digest, made once for all its users
    digests: dict[str, str] = notes.digests if notes is not None else {}
    outside = notes.outside if notes is not None else {}
    failed: dict[str, BaseException] = {}
    finished: queue.SimpleQueue[tuple[str, Future[Any]]] = queue.SimpleQueue()
    running = {True: 0, False: 0}

    def start(node_id: str) -> Output | None:
        """Start a ready node; its output when there is nothing to run (served already,
        or reused from the cache in this thread), else None (it runs on the executor)."""
        # Finished already in this build (a file resolution started): its output, with no
        # round trip through the pool and the queue.
        earlier: Output | None = ex.finished(node_id)
        step: Step[Any] = graph.nodes[node_id]["step"]
        if earlier is not None:
            if spend and notes is not None and graph.in_degree(node_id) == 0:
                # (its key as a node with no inputs, as project records would make it
                # from the step's parameters, which spend() lets go)
                notes.keys[node_id] = step.node({}).key
            return earlier
        preds = {p: outputs[p] for p in graph.predecessors(node_id)}
        inputs = {p: digests[p] for p in sorted(preds)}
        inputs.update(outside.get(node_id, {}))
        given = Inputs(preds)
        done: Output | None = step.current(given) if step.current is not None else None
        if done is not None:
            ex.note_reused(node_id)
            return done
        node = step.node(inputs)
        if notes is not None and node.cacheable:
            notes.keys[node_id] = node.key
        reused: Output | None = ex.reuse(node)
        if reused is not None:
            return reused
        fut = ex.submit(node, lambda: step.run(given))
        fut.add_done_callback(lambda done: finished.put((node_id, done)))
        return None

    def finish(node_id: str, output: Output) -> None:
        outputs[node_id] = output
        if graph.out_degree(node_id):
            digests[node_id] = output_digest(output)
        step: Step[Any] = graph.nodes[node_id]["step"]
        on_done(step, output)
        if spend:
            step.spend()
        for succ in graph.successors(node_id):
            waiting[succ] -= 1
            if waiting[succ] == 0:
                heapq.heappush(ready[_is_fetch(graph, succ)], succ)

    while True:
        started = True
        while started:  # a node finished in this thread may make others ready, in either heap
            started = False
            for fetches, heap in ready.items():
                while heap and running[fetches] < IN_FLIGHT:
                    started = True
                    node_id = heapq.heappop(heap)
                    now = start(node_id)
                    if now is None:
                        running[fetches] += 1
                    else:
                        finish(node_id, now)
        if not any(running.values()):
            break  # (the heaps are empty too: a heap stops filling only at its bound)
        node_id, done = finished.get()
        running[_is_fetch(graph, node_id)] -= 1
        exc = done.exception()
        if exc is not None:
            failed[node_id] = exc
            _skip_dependants(graph, node_id, waiting)
            continue
        finish(node_id, done.result())
    if failed:
        _raise(failed)
    return outputs


def _is_fetch(graph: nx.DiGraph, node_id: str) -> bool:
    """Whether the node runs on the executor's download pool."""
    return bool(graph.nodes[node_id]["kind"] == "fetch")


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
