"""``morgan graph --format html``: one self-contained page that draws the dependency graph.

No CDN and no network: the layout is computed here (layers by longest path from the spec,
order within a layer by two barycenter sweeps), embedded as JSON, and drawn as SVG by a few
lines of inline JavaScript. Clicking a package shows, per environment, its versions, who
requires it (with the requirement string), for each pinned version one shortest path from
the spec (as ``--why`` prints it), and its files and sizes. When it has rendered, the page
sets ``data-rendered="ok"`` on ``<body>`` (``data-rendered="error: ..."`` on a script
error) so a headless browser can check it.
"""

from __future__ import annotations

import html
import json
from typing import Any

import networkx as nx

from morgan.graph import SPEC_NODE, MirrorGraph, format_path, pins_of, shortest_paths

X_STEP = 220
Y_STEP = 28
MARGIN = 20
NODE_WIDTH = 180


def layout(graph: MirrorGraph, envs: list[str]) -> dict[str, tuple[int, int]]:
    """Node name -> (x, y): layered left to right from the spec, cycles condensed."""
    union: nx.DiGraph = nx.DiGraph()
    union.add_node(SPEC_NODE)
    for env in envs:
        g = graph.graphs[env]
        union.add_nodes_from(g.nodes)
        union.add_edges_from((p, c) for p, c in g.edges() if p != c)
    dag = nx.condensation(union)
    members = dag.graph["mapping"]  # node -> component
    comp_layer: dict[int, int] = {}
    for comp in nx.topological_sort(dag):
        preds = [comp_layer[p] for p in dag.predecessors(comp)]
        comp_layer[comp] = max(preds) + 1 if preds else 0
    layers: dict[int, list[str]] = {}
    for node in sorted(union.nodes):
        layers.setdefault(comp_layer[members[node]], []).append(node)
    position: dict[str, float] = {}
    for layer in sorted(layers):
        for i, node in enumerate(layers[layer]):
            position[node] = i
    for _ in range(2):  # barycenter sweeps: place each node near its parents
        for layer in sorted(layers)[1:]:
            nodes = layers[layer]

            def center(n: str) -> tuple[float, str]:
                ps = [position[p] for p in union.predecessors(n)]
                return (sum(ps) / len(ps) if ps else position[n], n)

            nodes.sort(key=center)
            for i, node in enumerate(nodes):
                position[node] = i
    return {
        node: (MARGIN + layer * X_STEP, MARGIN + i * Y_STEP)
        for layer, nodes in layers.items()
        for i, node in enumerate(nodes)
    }


def page_data(graph: MirrorGraph, envs: list[str]) -> dict[str, Any]:
    """Everything the page shows, as plain JSON values."""
    coords = layout(graph, envs)
    names = sorted(coords)
    index = {n: i for i, n in enumerate(names)}
    edges: dict[tuple[int, int], str] = {}
    info: dict[str, Any] = {}
    for env in envs:
        g = graph.graphs[env]
        paths = shortest_paths(graph, env)
        for p, c, d in g.edges(data=True):
            key = (index[p], index[c])
            edges[key] = "run" if d["kind"] == "run" or edges.get(key) == "run" else "build"
        for n in g.nodes:
            if n == SPEC_NODE:
                continue
            parents = sorted(
                [p, d["requirement"], d["kind"]] for p, _, d in g.in_edges(n, data=True)
            )
            entry = info.setdefault(n, {"envs": {}, "files": []})
            entry["envs"][env] = {
                "versions": g.nodes[n]["versions"],
                "pins": [list(p) for p in pins_of(g, n)],
                "parents": parents,
                # One shortest path per pinned version, as `morgan graph --why` prints it.
                "paths": {v: format_path(p) for v, p in paths.get(n, {}).items()},
            }
    for rel in sorted(graph.lock.releases, key=lambda r: (r.name, r.version)):
        if rel.name in info:
            info[rel.name]["files"].extend([f.filename, f.size] for f in rel.files)
    return {
        "nodes": [
            {"name": n, "label": _label(graph, envs, n), "x": coords[n][0], "y": coords[n][1]}
            for n in names
        ],
        "edges": [[s, t, k] for (s, t), k in sorted(edges.items())],
        "envs": [
            {
                "name": e,
                "python": graph.graphs[e].graph["python"],
                "platform": graph.graphs[e].graph["platform"],
            }
            for e in envs
        ],
        "info": info,
        "spec": SPEC_NODE,
        "width": max((x for x, _ in coords.values()), default=0) + NODE_WIDTH + 2 * MARGIN,
        "height": max((y for _, y in coords.values()), default=0) + Y_STEP + 2 * MARGIN,
    }


def _label(graph: MirrorGraph, envs: list[str], name: str) -> str:
    """``name version`` when every environment agrees, else ``name (k versions)``."""
    if name == SPEC_NODE:
        return name
    versions = {
        v for e in envs if name in graph.graphs[e] for v, _ in pins_of(graph.graphs[e], name)
    }
    if len(versions) == 1:
        return f"{name} {next(iter(versions))}"
    return f"{name} ({len(versions)} versions)"


def render_html(graph: MirrorGraph, envs: list[str]) -> str:
    """The whole page as one string (inline CSS, SVG drawn by inline JS, data as JSON)."""
    data = json.dumps(page_data(graph, envs), separators=(",", ":"), sort_keys=True)
    data = data.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    count = sum(1 for n in page_data_names(graph, envs))
    title = html.escape(f"morgan graph: {count} projects, {len(envs)} environments")
    return (
        _TEMPLATE.replace("@TITLE@", title)
        .replace("@DATA@", data)
        .replace("@NODE_WIDTH@", str(NODE_WIDTH))
        .replace("@STYLE@", PAGE_STYLE)
    )


def page_data_names(graph: MirrorGraph, envs: list[str]) -> set[str]:
    return {n for e in envs for n in graph.graphs[e].nodes if n != SPEC_NODE}


# The pages' look, shared by the dependency page and ``graph --build``'s plan page.
PAGE_STYLE = """<style>
body { margin: 0; font: 13px system-ui, sans-serif; display: flex; height: 100vh; }
#canvas { flex: 1; overflow: auto; background: #fff; }
#details { width: 360px; overflow: auto; padding: 12px; border-left: 1px solid #ccc;
  background: #f7f7f9; }
.node rect { fill: #e8f0fe; stroke: #3367d6; rx: 4; cursor: pointer; }
.node.spec rect { fill: #fde7c8; stroke: #c77700; }
.node.sel rect { fill: #3367d6; }
.node.sel text { fill: #fff; }
.node text { font-size: 11px; pointer-events: none; }
.edge { fill: none; stroke: #8a8a8a; stroke-width: 1; }
.edge.build { stroke-dasharray: 4 3; stroke: #c77700; }
.edge.hot { stroke: #d93025; stroke-width: 2.5; }
h2 { font-size: 15px; margin: 0 0 8px; }
h3 { font-size: 13px; margin: 12px 0 4px; }
ul { margin: 0; padding-left: 18px; }
code { font-size: 12px; }
</style>"""

_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>@TITLE@</title>
@STYLE@
</head>
<body data-rendered="no">
<div id="canvas"></div>
<div id="details"><h2>Click a package</h2><p>Solid edges: run-time requirements.
Dashed: build dependencies ([build-system] of an sdist).</p></div>
<script id="data" type="application/json">@DATA@</script>
<script>
"use strict";
window.onerror = function (msg) { document.body.dataset.rendered = "error: " + msg; };
const D = JSON.parse(document.getElementById("data").textContent);
const NS = "http://www.w3.org/2000/svg";
const W = @NODE_WIDTH@, H = 20;
function el(tag, attrs, parent) {
  const e = document.createElementNS(NS, tag);
  for (const k in attrs) e.setAttribute(k, attrs[k]);
  if (parent) parent.appendChild(e);
  return e;
}
function h(tag, text, parent) {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  parent.appendChild(e);
  return e;
}
const svg = el("svg", {width: D.width, height: D.height, id: "graph"});
document.getElementById("canvas").appendChild(svg);
const edgeEls = [];
for (const [s, t, kind] of D.edges) {
  const a = D.nodes[s], b = D.nodes[t];
  const x1 = a.x + W, y1 = a.y + H / 2, x2 = b.x, y2 = b.y + H / 2, mx = (x1 + x2) / 2;
  const p = el("path", {d: `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}`,
    class: "edge " + kind}, svg);
  edgeEls.push({s: s, t: t, el: p});
}
const nodeEls = [];
D.nodes.forEach((n, i) => {
  const g = el("g", {class: "node" + (n.name === D.spec ? " spec" : ""),
    transform: `translate(${n.x},${n.y})`}, svg);
  el("rect", {width: W, height: H}, g);
  const label = el("text", {x: 6, y: 14}, g);
  label.textContent = n.label.length > 28 ? n.label.slice(0, 27) + "\\u2026" : n.label;
  el("title", {}, g).textContent = n.name;
  g.addEventListener("click", () => show(i));
  nodeEls.push(g);
});
const byName = {};
D.nodes.forEach((n, i) => { byName[n.name] = i; });
function show(i) {
  const name = D.nodes[i].name;
  nodeEls.forEach((g, j) => g.classList.toggle("sel", j === i));
  edgeEls.forEach(e => e.el.classList.toggle("hot", e.t === i));
  const box = document.getElementById("details");
  box.textContent = "";
  h("h2", name, box);
  const entry = D.info[name];
  if (!entry) { h("p", "the spec: the root of every path", box); return; }
  for (const env of D.envs) {
    const e = entry.envs[env.name];
    h("h3", `${env.name} (Python ${env.python}, ${env.platform})`, box);
    if (!e) { h("p", "not in this environment", box); continue; }
    const vs = e.pins.map(([v, r]) => `${v} (${r})`).join(", ");
    h("p", "version: " + vs, box);
    const versions = [];
    for (const [v] of e.pins) if (!versions.includes(v)) versions.push(v);
    for (const v of versions) {
      if (v in e.paths) h("p", `why ${v}: ${e.paths[v]}`, box);
    }
    const ul = h("ul", undefined, box);
    for (const [p, req, kind] of e.parents) {
      h("li", `required by ${p}: ${req}` + (kind === "run" ? "" : ` (${kind})`), ul);
    }
  }
  h("h3", "files", box);
  const files = h("ul", undefined, box);
  for (const [f, size] of entry.files) {
    h("li", `${f} \\u2014 ${size.toLocaleString()} bytes`, files);
  }
}
// "page.html#util" opens with util selected (a link one can share; also how tests click).
const wanted = decodeURIComponent(location.hash.slice(1));
if (wanted in byName) show(byName[wanted]);
document.body.dataset.rendered = "ok";
document.body.dataset.nodes = String(D.nodes.length);
</script>
</body>
</html>
"""
