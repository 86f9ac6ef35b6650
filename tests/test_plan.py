"""The plan graph is what runs: `morgan graph --build` draws it, and every entry of the
generation has exactly one producing node."""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import networkx as nx
import pytest

from tests.build_scenario import morgan
from tests.small_scenario import populate, write_spec
from tests.test_graph import CHROMIUM, _chromium
from tests.upstream import FakeUpstream


@dataclass
class Built:
    workspace: Path
    mirror: Path


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    root = tmp_path_factory.mktemp("plan")
    with FakeUpstream(root / "upstream").start() as up:
        populate(up)
        write_spec(root / "ws", up.url)
        proc = morgan(root / "ws", "build")
        assert proc.returncode == 0, proc.stderr
    return Built(root / "ws", root / "ws" / "mirror")


def plan(built: Built, *args: str) -> str:
    proc = morgan(built.workspace, "graph", "--build", *args)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def tree_entries(generation: Path) -> set[str]:
    """Every file and link of a generation folder (relative paths)."""
    out = set()
    for dirpath, _dirs, files in os.walk(generation, followlinks=True):
        for f in files:
            out.add(str(Path(dirpath, f).relative_to(generation)))
    return out


def test_every_file_page_and_link_has_exactly_one_producing_node(built: Built) -> None:
    data: dict[str, Any] = json.loads(plan(built, "--format", "json"))
    g = nx.node_link_graph(data)
    assert nx.is_directed_acyclic_graph(g)
    producers = Counter(p for _, produces in g.nodes(data="produces") for p in produces)
    entries = tree_entries((built.mirror / "index").resolve())
    assert entries  # pages, files, .metadata, mirror.lock, manifest.json
    assert {"simple/index.html", "env/linux/simple/index.json", "mirror.lock"} <= entries
    assert set(producers) == entries
    assert all(count == 1 for count in producers.values()), producers.most_common(3)
    # Each entry is the output of the node that produces it: a wheel's link is its fetch.
    owner = {p: n for n, produces in g.nodes(data="produces") for p in produces}
    wheel = next(e for e in sorted(entries) if e.endswith(".whl"))
    assert g.nodes[owner[wheel]]["kind"] == "fetch"
    assert g.nodes[owner[wheel + ".metadata"]]["kind"] == "wheel-metadata"
    assert (owner[wheel], owner[wheel + ".metadata"]) in g.edges
    assert g.nodes[owner["simple/util/index.html"]]["kind"] == "render"
    assert g.nodes[owner["simple/index.html"]]["kind"] == "index"
    assert g.nodes[owner["manifest.json"]]["kind"] == "manifest"
    # The generation node comes last, after the manifest; every key is known after a build.
    assert list(g.successors("manifest")) == ["generation"]
    assert all(key for n, key in g.nodes(data="key") if n not in ("lock", "generation"))
    # After the build, each node says what it did (a cold build: everything ran, new).
    # (A node whose key another node of the same build already produced is reused: the
    # union view's page of a project is often byte for byte an environment view's.)
    statuses = Counter(s for _, s in g.nodes(data="status"))
    assert set(statuses) <= {"ran", "reused"}
    assert statuses["ran"] > statuses["reused"]
    assert all(g.nodes[n]["status"] == "ran" for n in ("lock", "manifest", "generation"))
    assert g.nodes[owner[wheel]]["reason"] == "new"


def test_every_node_has_its_kind_and_the_nodes_it_reads_are_its_predecessors(
    built: Built,
) -> None:
    # The graph of a build is the plan: no node without a kind, one connected graph (the
    # executor's old record had kind-less placeholders and 56 pieces for this scenario).
    g = nx.node_link_graph(json.loads(plan(built, "--format", "json")))
    kinds = Counter(k for _, k in g.nodes(data="kind"))
    assert set(kinds) == {
        "fetch",
        "wheel-metadata",
        "render",
        "index",
        "lock",
        "manifest",
        "generation",
    }
    assert nx.number_weakly_connected_components(g) == 1
    # Who reads a file: its wheel's metadata, and the page of its project in every view
    # that lists it; util's wheel is in both environments' views and the union.
    wheel = next(n for n in g if n.startswith("file:util-1.5-py3-none-any.whl:"))
    assert sorted(g.successors(wheel)) == [
        "lock",
        "manifest",
        "render:env-linux:util",
        "render:env-windows:util",
        "render:union:util",
        "wheel-metadata:util-1.5-py3-none-any.whl",
    ]
    util_files = sorted(n for n in g if n.startswith("file:util-1.5"))
    assert len(util_files) == 2  # the wheel and the sdist
    assert sorted(g.predecessors("render:env-linux:util")) == [
        *util_files,
        "wheel-metadata:util-1.5-py3-none-any.whl",
    ]


def test_a_rebuild_reuses_every_node_and_the_text_plan_says_so(built: Built) -> None:
    # A comment in the spec: not the no-op shortcut but a full build, from the lock, offline.
    spec = built.workspace / "mirror.toml"
    spec.write_text(spec.read_text() + "# a comment changes no node\n")
    proc = morgan(built.workspace, "build", "--offline", "--explain")
    assert proc.returncode == 0, proc.stderr
    g = nx.node_link_graph(json.loads(plan(built, "--format", "json")))
    # Every node, the switch included (its manifest is served already), is reused.
    # Only the switch runs: the mirror's copy of mirror.toml is rewritten; no new generation.
    ran = {n: g.nodes[n]["reason"] for n, s in g.nodes(data="status") if s != "reused"}
    assert ran == {"generation": "volatile (the switch: the served tree or its side files differ)"}
    assert "unchanged" in proc.stderr
    text = plan(built)
    assert text.splitlines()[-1].startswith(f"{g.number_of_nodes()} nodes (")
    assert "fetch          file:util-1.5-py3-none-any.whl:" in text
    assert text.count("  reused") == g.number_of_nodes() - 1
    dot = plan(built, "--format", "dot")
    assert dot.startswith("digraph plan {")
    assert '"manifest" -> "generation";' in dot


@pytest.mark.slow
def test_the_plan_page_renders_in_headless_chromium(built: Built, tmp_path: Path) -> None:
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is required in CI (apt-get install chromium)")
        pytest.skip("chromium not installed: apt-get install chromium")
    page = tmp_path / "plan.html"
    proc = morgan(built.workspace, "graph", "--build", "--format", "html", "-o", str(page))
    assert proc.returncode == 0, proc.stderr
    assert "https://" not in page.read_text()
    nodes = nx.node_link_graph(json.loads(plan(built, "--format", "json"))).number_of_nodes()
    dom = _chromium(["--dump-dom", page.as_uri() + "#manifest"], tmp_path / "p1")
    assert dom.returncode == 0, dom.stderr
    assert 'data-rendered="ok"' in dom.stdout
    assert f'data-nodes="{nodes}"' in dom.stdout
    assert "<h2>manifest</h2>" in dom.stdout
    assert "<li>manifest.json</li>" in dom.stdout
