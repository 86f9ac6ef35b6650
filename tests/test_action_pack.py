"""The action pack (``store/action-pack``): a rebuild reads the last build's cache entries
from one file. What a user sees must not depend on it: a rebuild after adding a requirement
serves what a cold build of the same spec serves, with the pack whole, damaged, filtered
by gc, or naming a blob that is gone."""

from __future__ import annotations

import os
from pathlib import Path

from store.actions import PACK
from tests.build_scenario import morgan
from tests.test_build_incremental import spec
from tests.upstream import FakeUpstream


def served(ws: Path) -> dict[str, bytes]:
    """Every file of the served generation (links followed), by path."""
    root = ws / "mirror" / "index"
    out: dict[str, bytes] = {}
    for folder, dirs, files in os.walk(root, followlinks=True):
        dirs.sort()
        for name in files:
            path = Path(folder) / name
            out[str(path.relative_to(root))] = path.read_bytes()
    return out


def releases(up: FakeUpstream) -> None:
    up.add_release("top", "1.0", requires_dist=["mid>=1"])
    up.add_release("mid", "1.0", requires_dist=["leaf"])
    up.add_release("leaf", "1.0")
    up.add_release("other", "1.0", requires_dist=["leaf"])
    up.add_release("more", "1.0")


def build(ws: Path, *args: str) -> str:
    proc = morgan(ws, "build", *args)
    assert proc.returncode == 0, proc.stderr
    return proc.stderr


def cold(up: FakeUpstream, ws: Path, requirements: list[str]) -> dict[str, bytes]:
    spec(ws, up.url, requirements)
    build(ws)
    return served(ws)


def test_rebuilds_through_the_pack_serve_what_a_cold_build_serves(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    releases(upstream)
    ws = tmp_path / "ws"
    spec(ws, upstream.url, ["top"])
    build(ws)
    pack = ws / "mirror" / "store" / PACK
    assert pack.is_file()  # the first build leaves its entries for the next one

    spec(ws, upstream.url, ["top", "other"])
    out = build(ws, "--explain")
    assert "ran render:union:top" not in out  # reused: an unchanged project is not rendered
    assert served(ws) == cold(upstream, tmp_path / "cold-2", ["top", "other"])

    # A damaged pack is not read: the entries come from their own files.
    data = bytearray(pack.read_bytes())
    data[-10] ^= 1
    pack.chmod(0o644)
    pack.write_bytes(bytes(data))
    spec(ws, upstream.url, ["top", "other", "more"])
    out = build(ws, "--explain")
    assert "ran render:union:top" not in out
    assert served(ws) == cold(upstream, tmp_path / "cold-3", ["top", "other", "more"])

    # gc keeps in the pack only entries whose blobs it keeps; the next rebuild is whole.
    proc = morgan(ws, "gc", "--keep", "1")
    assert proc.returncode == 0, proc.stderr
    spec(ws, upstream.url, ["top", "more"])
    build(ws)
    assert served(ws) == cold(upstream, tmp_path / "cold-4", ["top", "more"])


def test_a_blob_the_pack_names_that_is_gone_is_made_again(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    releases(upstream)
    ws = tmp_path / "ws"
    spec(ws, upstream.url, ["top", "other"])
    build(ws)
    store = ws / "mirror" / "store"
    pack = (store / PACK).read_text(encoding="utf-8")
    assert '"kind"' not in pack  # outputs only: no traces
    # The served page of `top` in the union: a render node's output the pack names.
    page = (ws / "mirror" / "index" / "simple" / "top" / "index.html").resolve()
    assert page.parent.parent.name == "objects"
    assert page.name in pack
    page.chmod(0o644)
    page.unlink()
    spec(ws, upstream.url, ["top", "other", "more"])
    out = build(ws, "--explain")
    assert "ran render:union:top: output missing" in out
    assert served(ws) == cold(upstream, tmp_path / "cold", ["top", "other", "more"])
