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


def test_a_spending_walk_lets_go_of_what_each_step_ran_with_and_keeps_its_key(
    tmp_path: Path,
) -> None:
    """With ``spend``, each step that finished keeps what a build reads after the walk (id,
    rule, entries, products) but not its parameters or run function; a step that finished
    before the walk (a file resolution fetched) has its key noted first, as a node with no
    inputs, which is what project records would otherwise make from its parameters."""
    from morgan.walk import Notes

    g = plan(NODES, EDGES)
    steps: dict[str, Step[Any]] = {n: g.nodes[n]["step"] for n in NODES}
    keys = {n: steps[n].node({}).key for n in ("a", "d")}
    notes = Notes()
    with Executor(Store(tmp_path / "s"), small_workers=1) as ex:
        ex.run(steps["a"].node({}), lambda: Text("a"))  # finished before the walk
        outputs = walk(g, ex, notes=notes, spend=True)
    assert {n: out.text for n, out in outputs.items() if isinstance(out, Text)} == {
        n: n for n in NODES
    }
    assert all(steps[n].spent and not steps[n].params for n in NODES)
    assert g.nodes["z"]["step"] is steps["z"]  # the same objects, changed in place
    assert notes.keys["a"] == keys["a"]  # (finished before the walk: noted all the same)
    assert notes.keys["d"] == keys["d"]
    with Executor(Store(tmp_path / "s2"), small_workers=1) as ex:
        assert sorted(walk(plan(NODES, EDGES), ex)) == NODES  # without spend: as before
