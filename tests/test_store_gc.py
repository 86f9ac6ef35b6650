"""GC roots, manifests, and mark & sweep: dry run vs real, bytes freed, what survives."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

from store.actions import ActionCache
from store.digest import Digest, canonical_json
from store.errors import StoreError
from store.gc import collect, live_from_roots
from store.objects import Store
from store.roots import remove_root, roots, set_root


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "store")


def manifest(store: Store, objects: list[Digest], manifests: tuple[Digest, ...] = ()) -> Digest:
    body: dict[str, object] = {"objects": [str(d) for d in objects], "kind": "generation"}
    if manifests:
        body["manifests"] = [str(d) for d in manifests]
    return store.put_bytes(canonical_json(body)).digest


def snapshot(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_size for p in root.rglob("*") if p.is_file()}


# -- roots ----------------------------------------------------------------------------------


def test_roots_round_trip(store: Store) -> None:
    a, b = Digest.of(b"a"), Digest.of(b"b")
    assert roots(store) == {}
    set_root(store, "gen-2", b)
    set_root(store, "gen-1", a)
    assert list(roots(store).items()) == [("gen-1", a), ("gen-2", b)]
    assert (store.root / "roots" / "gen-1").read_text() == f"{a}\n"
    set_root(store, "gen-1", b)
    assert roots(store)["gen-1"] == b
    assert remove_root(store, "gen-1") is True
    assert remove_root(store, "gen-1") is False
    assert roots(store) == {"gen-2": b}


@pytest.mark.parametrize("name", ["", ".hidden", "../escape", "a/b", "-x", "x" * 129])
def test_root_names_cannot_escape(store: Store, name: str) -> None:
    with pytest.raises(
        ValueError, match=rf"^bad root name {re.escape(repr(name))}: use 1-128 letters"
    ):
        set_root(store, name, Digest.of(b""))


def test_an_unreadable_root_stops_everything(store: Store) -> None:
    set_root(store, "gen-1", Digest.of(b""))
    (store.root / "roots" / "gen-1").write_text("garbage\n")
    with pytest.raises(StoreError) as exc:
        roots(store)
    assert str(exc.value) == (
        f"GC root {store.root / 'roots' / 'gen-1'} is not a digest (not a digest: 'garbage'"
        " — expected 'blake3:' and 64 lowercase hex digits): restore it or remove it;"
        " nothing is collected while a root is unreadable"
    )


def test_live_from_roots_is_the_union_of_root_manifests(store: Store) -> None:
    a, b, c = (store.put_bytes(x).digest for x in (b"a", b"b", b"c"))
    inner = manifest(store, [b, c])
    outer = manifest(store, [a], (inner,))
    old = manifest(store, [a])
    set_root(store, "gen-1", outer)
    set_root(store, "gen-0", old)
    assert live_from_roots(store) == {outer, inner, old, a, b, c}


def test_a_root_naming_a_missing_manifest_stops_gc(store: Store) -> None:
    gone = Digest.of(b"gone")
    set_root(store, "gen-1", gone)
    with pytest.raises(StoreError) as exc:
        live_from_roots(store)
    assert str(exc.value) == (
        f"GC root 'gen-1': manifest {gone} is missing: restore it (import or rebuild) or"
        " remove its root; nothing is collected until then"
    )


# -- collect --------------------------------------------------------------------------------


def test_collect_dry_run_then_real(store: Store) -> None:
    live_blob = store.put_bytes(b"kept wheel").digest
    dead_blob = store.put_bytes(b"old wheel" * 100).digest
    dead_page = store.put_bytes(b"<html>old</html>").digest
    gen = manifest(store, [live_blob])
    set_root(store, "gen-1", gen)

    cache = ActionCache(store)
    cache.put("1" * 64, {"outputs": [str(live_blob)]})
    cache.put("2" * 64, {"outputs": [str(live_blob), str(dead_page)]})
    cache.put("3" * 64, {"outputs": []})  # names no blob: nothing kept reaches it
    cache.put("5" * 64, {"trace": True, "key": "1" * 64})  # the trace of a kept entry
    cache.put("6" * 64, {"trace": True, "key": "2" * 64})  # the trace of a dropped one
    cache.put("4" * 64, {})
    corrupt = cache.path("4" * 64)
    corrupt.chmod(0o644)
    corrupt.write_bytes(b"{broken")

    old_tmp = store.tmp_dir / "123-deadbeef.tmp"
    old_tmp.write_bytes(b"x" * 1000)
    hour_ago = time.time() - 3700
    os.utime(old_tmp, (hour_ago, hour_ago))
    fresh_tmp = store.tmp_dir / "456-cafe.tmp"
    fresh_tmp.write_bytes(b"y" * 10)

    before = snapshot(store.root)
    live = live_from_roots(store)
    dry = collect(store, live, dry_run=True)
    assert snapshot(store.root) == before  # nothing touched

    assert dry.dry_run is True
    assert dry.deleted_objects == tuple(sorted([dead_blob, dead_page]))
    assert dry.object_bytes == 900 + 16
    assert dry.deleted_actions == ("2" * 64, "3" * 64, "4" * 64, "6" * 64)
    assert dry.action_bytes == (
        before[f"actions/22/{'2' * 64}"]
        + before[f"actions/33/{'3' * 64}"]
        + len(b"{broken")
        + before[f"actions/66/{'6' * 64}"]
    )
    assert dry.deleted_temp == ("tmp/123-deadbeef.tmp",)
    assert dry.temp_bytes == 1000
    assert dry.kept_objects == 2
    assert dry.missing_live == ()
    freed_files = [
        store.relpath(dead_blob),
        store.relpath(dead_page),
        f"actions/22/{'2' * 64}",
        f"actions/33/{'3' * 64}",
        f"actions/44/{'4' * 64}",
        f"actions/66/{'6' * 64}",
        "tmp/123-deadbeef.tmp",
    ]
    assert dry.bytes_freed == sum(before[f] for f in freed_files)

    real = collect(store, live, dry_run=False)
    assert real.dry_run is False
    assert (
        real.deleted_objects,
        real.object_bytes,
        real.deleted_actions,
        real.action_bytes,
        real.deleted_temp,
        real.temp_bytes,
        real.kept_objects,
    ) == (
        dry.deleted_objects,
        dry.object_bytes,
        dry.deleted_actions,
        dry.action_bytes,
        dry.deleted_temp,
        dry.temp_bytes,
        dry.kept_objects,
    )
    after = snapshot(store.root)
    assert set(before) - set(after) == set(freed_files)
    assert sum(before.values()) - sum(after.values()) == real.bytes_freed
    assert sorted(store) == sorted([live_blob, gen])
    for digest in store:
        store.verify(digest)
    assert cache.keys() == ["1" * 64, "5" * 64]
    assert fresh_tmp.exists()

    again = collect(store, live, dry_run=False)
    assert (again.deleted_objects, again.deleted_actions, again.bytes_freed) == ((), (), 0)


def test_collect_reports_live_digests_the_store_lacks(store: Store) -> None:
    present = store.put_bytes(b"here").digest
    absent = Digest.of(b"not here")
    dead = store.put_bytes(b"dead").digest
    report = collect(store, [present, absent], dry_run=True)
    assert report.missing_live == (absent,)
    assert report.to_json() == {
        "dry-run": True,
        "bytes-freed": 4,
        "objects": {"deleted": [str(dead)], "bytes": 4, "kept": 1},
        "actions": {"deleted": [], "bytes": 0},
        "temp": {"deleted": [], "bytes": 0},
        "missing-live": [str(absent)],
        "folders": {"deleted": []},
    }
    assert store.has(dead)


def test_collect_with_nothing_live_empties_the_store(store: Store) -> None:
    for i in range(5):
        store.put_bytes(bytes([i]) * (i + 1))
    report = collect(store, [], dry_run=False)
    assert report.object_bytes == 1 + 2 + 3 + 4 + 5
    assert list(store) == []


def test_collect_on_an_empty_store(tmp_path: Path) -> None:
    report = collect(Store(tmp_path / "none"), [], dry_run=False)
    assert report.bytes_freed == 0
    assert not (tmp_path / "none").exists()
