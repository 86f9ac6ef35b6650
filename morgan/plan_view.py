"""``morgan graph --build``: the plan of the current lock, offline, as text, JSON, DOT or HTML.

The plan is compiled from the spec and ``mirror.lock`` exactly as a build compiles it (no
network: nothing runs). Each node gets its kind, the tree entries it produces and its key,
computed from the action cache the way the executor computes it (a node whose
predecessors' outputs are not in the cache has no key yet). After a build, each node also
says whether it ran or was reused, and why: the build leaves that in
``<mirror>/last-build.json``, which counts only while the lock is the one it was built from.
The JSON is networkx node-link data: ``nx.node_link_graph(json.load(f))`` gives the graph.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, NoReturn

import networkx as nx

from morgan.errors import UsageError
from morgan.executor import Ran, cached_output
from morgan.lock import Lock
from morgan.plan import compile_plan
from morgan.spec import Spec
from morgan.walk import output_digest
from morgan.wheels import Built
from rules import lock as lock_rule
from rules.fetch import Fetched
from rules.lock import Stored
from rules.model import UpstreamFile
from rules.rule import Output, Step
from rules.wheel_metadata import Extracted
from store import fsio
from store.actions import ActionCache
from store.digest import Digest
from store.objects import Store

OUTCOME = "last-build.json"


def save_outcome(
    mirror: Path,
    plan: nx.DiGraph,
    lock_blob: str,
    *,
    ran: Sequence[Ran],
    hits: Sequence[str],
    also: Iterable[str] = (),
) -> None:
    """Record what each plan node did in this build (for ``graph --build``); ``also``: the
    nodes left out of the plan because a project record stands for them (reused).

    Nearly every node of a rebuild is reused: the file names the nodes that ran (with
    why) and those that did neither, and every other node of the lock's plan was reused
    (47 000 nodes at 5 000 projects were a 2 MB file, written by every build)."""
    reasons = {r.id: r.reason for r in ran}
    reused = set(hits)
    reused.update(also)
    unknown = sorted(n for n in plan.nodes if n not in reasons and n not in reused)
    data = {"lock": lock_blob, "ran": reasons, "unknown": unknown}
    text = json.dumps(data, indent=1, sort_keys=True) + "\n"
    fsio.replace_file(mirror / OUTCOME, text.encode("utf-8"), durable=False)


class _NoFetch:
    def fetch_output(self, f: UpstreamFile) -> Fetched:
        raise AssertionError(f"graph --build never fetches ({f.filename})")

    def provenance_output(self, f: UpstreamFile, sha256: str) -> Extracted:
        raise AssertionError(f"graph --build never fetches ({f.filename}, {sha256})")


def _never(*_args: object) -> NoReturn:
    raise AssertionError("graph --build never runs a node")


def plan_graph(spec: Spec, lock: Lock, lock_bytes: bytes, mirror: Path) -> nx.DiGraph:
    """The plan of ``lock`` with ``kind``, ``produces``, ``key`` and (after a build of this
    lock) ``status`` and ``reason`` on every node; no ``step`` objects (plain data)."""
    from morgan.build import lock_skeleton, lock_statuses, select_from_lock
    from morgan.selected_files import views_of, wanted_files

    selections = select_from_lock(spec, lock)
    statuses = lock_statuses(selections, lock)
    store = Store(mirror / "store")
    wanted = {fn: f for fn, (_project, f) in wanted_files(selections).items()}
    infos = {(r.name, r.version): r for r in lock.releases}
    kept = frozenset(f.filename for r in lock.releases for f in r.files if f.kept) & set(wanted)
    # Wheels [build] wheels made: the lock marks them, and the build's lock key counts them.
    built = {
        f.filename: Built(f.filename, f.built_from, f.built_with)
        for r in lock.releases
        for f in r.files
        if f.built_from is not None and f.built_with is not None
    }
    plan = compile_plan(
        _NoFetch(),
        store,
        views_of(selections, statuses),
        wanted,
        make_lock=_never,
        lock_skeleton=lock_skeleton(
            spec,
            selections,
            infos=infos,
            wanted=wanted,
            kept=kept,
            statuses=statuses,
            built=built,
        ),
        publish=_never,
        served=_never,
    )
    lock_blob = Digest.of(lock_bytes)
    outcome = _outcome(mirror, str(lock_blob))
    cache = ActionCache(store)
    outputs: dict[str, Output] = {lock_rule.ID: Stored(lock_blob)}
    out: nx.DiGraph = nx.DiGraph()
    for n in nx.topological_sort(plan):
        step: Step[Any] = plan.nodes[n]["step"]
        preds = sorted(plan.predecessors(n))
        key = None
        if all(p in outputs for p in preds):
            node = step.node({p: output_digest(outputs[p]) for p in preds})
            key = node.key
            cached = cached_output(cache, node) if step.cacheable and n not in outputs else None
            if cached is not None:
                outputs[n] = cached
        done = outcome(n)
        out.add_node(
            n,
            kind=step.kind,
            key=key,
            produces=list(step.produces),
            status=done.get("status"),
            reason=done.get("reason"),
        )
    out.add_edges_from(plan.edges)
    return out


def _outcome(mirror: Path, lock_blob: str) -> Callable[[str], dict[str, Any]]:
    """What the last build says of a node: ``status`` and ``reason``, if it built this lock."""
    try:
        data = json.loads((mirror / OUTCOME).read_bytes())
    except (OSError, ValueError):
        data = None
    if not isinstance(data, dict) or data.get("lock") != lock_blob:
        return lambda _n: {}  # a build of another lock: it says nothing about this plan
    ran, unknown = data.get("ran"), data.get("unknown")
    if not isinstance(ran, dict) or not isinstance(unknown, list):
        return lambda _n: {}
    unknowns = set(unknown)

    def outcome(node_id: str) -> dict[str, Any]:
        if node_id in ran:
            return {"status": "ran", "reason": ran[node_id]}
        return {"status": "unknown" if node_id in unknowns else "reused", "reason": None}

    return outcome


# -- formats --------------------------------------------------------------------------------


def plan_json(g: nx.DiGraph) -> dict[str, Any]:
    data: dict[str, Any] = nx.node_link_data(g)
    return data


def plan_text(g: nx.DiGraph) -> str:
    lines = []
    for layer, nodes in enumerate(nx.topological_generations(g)):
        for n in sorted(nodes):
            a = g.nodes[n]
            key = (a["key"] or "-")[:12]
            what = a["status"] or ""
            if a["reason"]:
                what += f": {a['reason']}"
            lines.append(f"{layer:2} {a['kind']:<14} {n}  key {key}  {what}".rstrip())
    kinds: dict[str, int] = {}
    for _, kind in g.nodes(data="kind"):
        kinds[kind] = kinds.get(kind, 0) + 1
    summary = ", ".join(f"{c} {k}" for k, c in sorted(kinds.items()))
    lines.append(f"{g.number_of_nodes()} nodes ({summary}), {g.number_of_edges()} edges")
    return "\n".join(lines) + "\n"


def plan_dot(g: nx.DiGraph) -> str:
    out = ["digraph plan {", "  rankdir=LR;", '  node [shape=box, fontsize=10, fontname="sans"];']
    for n in sorted(g.nodes):
        a = g.nodes[n]
        label = f"{a['kind']}\\n{n}" + (f"\\n{a['status']}" if a["status"] else "")
        style = ', style=filled, fillcolor="#fde7c8"' if a["status"] == "ran" else ""
        out.append(f"  {json.dumps(n)} [label={json.dumps(label)}{style}];")
    out.extend(f"  {json.dumps(s)} -> {json.dumps(t)};" for s, t in sorted(g.edges))
    out.append("}")
    return "\n".join(out) + "\n"


def plan_html(g: nx.DiGraph) -> str:
    """One self-contained page: a table per layer of the plan, in the ``--why`` page's
    style; ``data-rendered="ok"`` on ``<body>`` once drawn (checked in headless Chromium)."""
    from morgan.graph_html import PAGE_STYLE

    layers = [sorted(nodes) for nodes in nx.topological_generations(g)]
    data = {
        "layers": layers,
        "nodes": {
            n: {k: g.nodes[n][k] for k in ("kind", "key", "status", "reason", "produces")}
            | {"after": sorted(g.predecessors(n))}
            for n in g.nodes
        },
    }
    text = json.dumps(data, separators=(",", ":"), sort_keys=True)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    title = html.escape(f"morgan graph --build: {g.number_of_nodes()} nodes")
    return _PAGE.replace("@TITLE@", title).replace("@STYLE@", PAGE_STYLE).replace("@DATA@", text)


def render_plan(g: nx.DiGraph, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(plan_json(g), indent=1, sort_keys=True) + "\n"
    if fmt == "text":
        return plan_text(g)
    if fmt == "dot":
        return plan_dot(g)
    if fmt == "html":
        return plan_html(g)
    raise UsageError(f"--build draws text, json, dot or html, not {fmt}: drop --format {fmt}")


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>@TITLE@</title>
@STYLE@
<style>
#canvas { padding: 12px; }
table { border-collapse: collapse; margin-bottom: 12px; }
td, th { border: 1px solid #ccc; padding: 2px 6px; text-align: left; font-size: 12px; }
tr.ran td { background: #fde7c8; }
tr.node { cursor: pointer; }
</style>
</head>
<body data-rendered="no">
<div id="canvas"></div>
<div id="details"><h2>Click a node</h2><p>The plan of the current lock: each layer runs
once the layers before it are done. Orange: ran in the last build.</p></div>
<script id="data" type="application/json">@DATA@</script>
<script>
"use strict";
window.onerror = function (msg) { document.body.dataset.rendered = "error: " + msg; };
const D = JSON.parse(document.getElementById("data").textContent);
function h(tag, text, parent) {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  parent.appendChild(e);
  return e;
}
const canvas = document.getElementById("canvas");
D.layers.forEach((nodes, i) => {
  h("h3", `layer ${i}: ${nodes.length} nodes`, canvas);
  const table = h("table", undefined, canvas);
  for (const id of nodes) {
    const n = D.nodes[id];
    const tr = h("tr", undefined, table);
    tr.className = "node" + (n.status === "ran" ? " ran" : "");
    tr.dataset.id = id;
    h("td", n.kind, tr); h("td", id, tr); h("td", (n.key || "-").slice(0, 12), tr);
    h("td", n.status ? n.status + (n.reason ? ": " + n.reason : "") : "", tr);
    tr.addEventListener("click", () => show(id));
  }
});
function show(id) {
  const n = D.nodes[id];
  const box = document.getElementById("details");
  box.textContent = "";
  h("h2", id, box);
  h("p", `kind ${n.kind}, key ${n.key || "not known yet"}`, box);
  if (n.status) h("p", n.status + (n.reason ? ": " + n.reason : ""), box);
  h("h3", "after", box);
  const after = h("ul", undefined, box);
  for (const p of n.after) h("li", p, after);
  h("h3", "produces", box);
  const produces = h("ul", undefined, box);
  for (const p of n.produces) h("li", p, produces);
}
const wanted = decodeURIComponent(location.hash.slice(1));
if (wanted in D.nodes) show(wanted);
document.body.dataset.rendered = "ok";
document.body.dataset.nodes = String(Object.keys(D.nodes).length);
</script>
</body>
</html>
"""
