"""The walk over a plan graph: ready nodes start in node-id order, whatever the order the
graph was built in."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import networkx as nx

from morgan.executor import Executor
from morgan.walk import walk
from rules.rule import Inputs, Node, Output, Rule, Step
from store.objects import Store
from tests.test_executor import Text

RULE = Rule("render", 1, Text)
# A small plan: four roots; a fans out to a1 and a2 (ready at the same moment); bc waits
# for b and c; z for a1, bc and d.
EDGES = [("a", "a1"), ("a", "a2"), ("b", "bc"), ("c", "bc"), ("a1", "z"), ("bc", "z"), ("d", "z")]
NODES = sorted({n for edge in EDGES for n in edge})


class Started:
    """A reporter that records the order in which the executor starts nodes."""

    def __init__(self) -> None:
        self.order: list[str] = []

    def node_started(self, node: Node[Any]) -> None:
        self.order.append(node.id)

    def node_finished(self, node: Node[Any], output: Output, *, cached: bool) -> None:
        pass

    def environment_resolved(self, name: str, pins: int) -> None:
        pass


def _returns(text: str) -> Callable[[Inputs], Text]:
    return lambda _inputs: Text(text)


def plan(nodes: list[str], edges: list[tuple[str, str]]) -> nx.DiGraph:
    g: nx.DiGraph = nx.DiGraph()
    for n in nodes:
        step = Step(id=n, rule=RULE, params={"n": n}, run=_returns(n))
        g.add_node(n, step=step, kind=step.kind)
    g.add_edges_from(edges)
    return g


def test_ready_nodes_start_in_node_id_order_whatever_the_insertion_order(tmp_path: Path) -> None:
    # Sorted, reversed, and rotated node and edge lists (the in-degree table, the ready
    # list and each node's successors then come in those orders).
    orders = [(NODES, EDGES), (NODES[::-1], EDGES[::-1])]
    orders += [(NODES[k:] + NODES[:k], EDGES[-k:] + EDGES[:-k]) for k in (3, 5, 6)]
    seen = []
    for i, (nodes, edges) in enumerate(orders):
        started = Started()
        # One worker: the executor starts nodes in the order the walk hands them over.
        with Executor(Store(tmp_path / f"s{i}"), small_workers=1, reporter=started) as ex:
            outputs = walk(plan(nodes, edges), ex)
        assert sorted(outputs) == NODES
        seen.append(started.order)
    # The roots by id; a's two dependants, ready together, by id; then as they become ready.
    assert seen == [["a", "b", "c", "d", "a1", "a2", "bc", "z"]] * len(orders)
