"""``morgan build --explain`` end to end: the reason each node ran, from real builds.

What a user sees on stderr (``ran <node>: <reason>``), in ``--json`` (``ran``) and in
``morgan graph --build --format json`` (each plan node's status, reason and key), after a
lost blob (early cutoff), a ``[policy]`` change (a node parameter) and an upstream page
change (a predecessor's output digest).
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import networkx as nx

from morgan.walk import output_digest
from rules.lock import Stored
from store.digest import Digest
from tests.build_scenario import morgan
from tests.small_scenario import populate, write_spec
from tests.test_build_incremental import small, spec
from tests.upstream import FakeUpstream


def ran_lines(stderr: str) -> list[str]:
    return sorted(line for line in stderr.splitlines() if line.startswith("ran "))


def plan(ws: Path) -> nx.DiGraph:
    proc = morgan(ws, "graph", "--build", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    return nx.node_link_graph(json.loads(proc.stdout))


def test_a_lost_blob_is_fetched_again_and_its_dependants_stop_there(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    populate(upstream)
    ws = tmp_path / "ws"
    write_spec(ws, upstream.url)
    assert morgan(ws, "build").returncode == 0
    before = plan(ws)
    lock = tomllib.loads((ws / "mirror.lock").read_text())
    wheel = next(
        f
        for r in lock["release"]
        for f in r["files"]
        if f["filename"] == "util-1.5-py3-none-any.whl"
    )
    blob = ws / "mirror" / "store" / "objects" / wheel["blake3"][:2] / wheel["blake3"]
    blob.unlink()
    upstream.clear_requests()

    proc = morgan(ws, "build", "--explain", "--json")
    assert proc.returncode == 0, proc.stderr
    # Only the fetch of the lost file ran, for that reason; the file came back as it was.
    fetch = f"file:util-1.5-py3-none-any.whl:{wheel['sha256'][:16]}"
    reason = f"output missing (blake3:{wheel['blake3']})"
    assert ran_lines(proc.stderr) == [f"ran {fetch}: {reason}"]
    assert json.loads(proc.stdout)["ran"] == [{"node": fetch, "reason": reason}]
    assert upstream.file_requests() == ["/files/util-1.5-py3-none-any.whl"]
    assert blob.exists()
    assert "unchanged, still generation 1" in proc.stderr

    # Its output digest is the one it had, so every node after it keeps its key and is
    # reused: the wheel's metadata, the pages listing it in each view, the lock, the
    # manifest and the generation.
    after = plan(ws)
    assert (after.nodes[fetch]["status"], after.nodes[fetch]["reason"]) == ("ran", reason)
    dependants = nx.descendants(after, fetch)
    kinds = {after.nodes[n]["kind"] for n in dependants}
    assert kinds == {"wheel-metadata", "render", "lock", "manifest", "generation"}
    assert {"render:env-linux:util", "render:env-windows:util", "render:union:util"} <= dependants
    assert {n: after.nodes[n]["status"] for n in dependants} == dict.fromkeys(dependants, "reused")
    keys = dict(after.nodes(data="key"))
    assert keys == dict(before.nodes(data="key"))
    # Nothing else ran either (the union and env index pages, the other files' nodes).
    assert {n for n, s in after.nodes(data="status") if s != "reused"} == {fetch}


def test_a_policy_change_names_the_node_parameter_it_changed(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    small(upstream)
    ws = tmp_path / "ws"
    spec(ws, upstream.url, ["top"])
    assert morgan(ws, "build").returncode == 0
    sdist_nodes = {
        n: d
        for n, d in plan(ws).nodes(data=True)
        if d["kind"] == "fetch" and n.split(":")[1].endswith(".tar.gz")
    }
    assert len(sdist_nodes) == 3  # top, mid, leaf
    upstream.clear_requests()
    toml = ws / "mirror.toml"
    toml.write_text(toml.read_text() + "\n[policy]\nsdists = false\n")

    proc = morgan(ws, "build", "--explain")
    assert proc.returncode == 0, proc.stderr
    lines = ran_lines(proc.stderr)
    # Every project page lists fewer files: its `files` parameter changed; the lock's text
    # too. Nothing is fetched, no root page changes (same projects).
    renders = [
        f"ran render:{view}:{name}: parameter files changed"
        for view in ("env-linux", "env-old", "union")
        for name in ("leaf", "mid", "top")
    ]
    assert set(renders) <= set(lines)
    assert "ran lock: parameter skeleton changed" in lines
    assert not [line for line in lines if line.startswith(("ran file:", "ran index:"))]
    assert upstream.file_requests() == []
    # The manifest lost the sdists' links: an input gone (first by name: an sdist's fetch).
    first = min(sdist_nodes)
    [manifest] = [line for line in lines if line.startswith("ran manifest:")]
    assert manifest.startswith(f"ran manifest: input {first} changed (")
    assert manifest.endswith(" → none)")


def _lock_digest(ws: Path) -> str:
    """The lock node's output digest, as ``--explain`` shortens it, from ``mirror.lock``."""
    out = Stored(Digest.of((ws / "mirror.lock").read_bytes()))
    return output_digest(out).removeprefix("blake3:")[:12]


def test_an_upstream_page_change_names_the_input_that_changed_old_and_new(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    small(upstream)
    ws = tmp_path / "ws"
    spec(ws, upstream.url, ["top"])
    assert morgan(ws, "build").returncode == 0
    old_lock = _lock_digest(ws)
    # Upstream marks leaf archived (PEP 792); refreshing its page brings that in.
    upstream.statuses["leaf"] = ("archived", "no longer maintained")
    proc = morgan(ws, "build", "--explain", "--upgrade", "leaf")
    assert proc.returncode == 0, proc.stderr
    new_lock = _lock_digest(ws)
    assert old_lock != new_lock
    lines = ran_lines(proc.stderr)
    assert lines == [
        "ran generation: volatile (the switch: the served tree or its side files differ)",
        "ran lock: parameter skeleton changed",
        f"ran manifest: input lock changed ({old_lock} → {new_lock})",
        "ran page:leaf: volatile (upstream page refresh)",
        "ran render:env-linux:leaf: parameter status changed",
        "ran render:env-old:leaf: parameter status changed",
        "ran render:union:leaf: parameter status changed",
    ]
    served: dict[str, Any] = json.loads(
        (ws / "mirror" / "index" / "env" / "linux" / "simple" / "leaf" / "index.json").read_text()
    )
    assert served["project-status"]["status"] == "archived"
