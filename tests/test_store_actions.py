"""The action cache: stable keys, atomic entries, corrupt entries are misses."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from store import actions as actions_module
from store import fsio
from store.actions import ActionCache, action_key, record_digests
from store.digest import Digest, blake3_hex
from store.errors import DiskFullError
from store.objects import Store


@pytest.fixture
def cache(tmp_path: Path) -> ActionCache:
    return ActionCache(Store(tmp_path / "store"))


def test_action_key_is_blake3_of_canonical_json() -> None:
    key = action_key("fetch", 2, {"url": "u", "size": 3}, {"page": "blake3:" + "a" * 64})
    expected = blake3_hex(
        b'{"inputs":{"page":"blake3:' + b"a" * 64 + b'"},"kind":"fetch",'
        b'"params":{"size":3,"url":"u"},"version":2}'
    )
    assert key == expected
    assert key == action_key("fetch", 2, {"size": 3, "url": "u"}, {"page": "blake3:" + "a" * 64})
    assert key != action_key("fetch", 3, {"size": 3, "url": "u"}, {"page": "blake3:" + "a" * 64})


def test_round_trip(cache: ActionCache) -> None:
    key = action_key("render", 1, {}, {})
    assert cache.get(key) is None
    record = {"outputs": {"html": "blake3:" + "b" * 64}, "note": "é"}
    cache.put(key, record)
    assert cache.get(key) == record
    assert key in cache
    assert cache.keys() == [key]
    assert cache.path(key) == cache.store.root / "actions" / key[:2] / key
    cache.put(key, {"outputs": {}})  # a later put replaces the entry
    assert cache.get(key) == {"outputs": {}}
    assert cache.remove(key) == len(b'{"outputs":{}}')
    assert cache.get(key) is None
    assert cache.remove(key) == 0
    assert list((cache.store.root / "tmp").iterdir()) == []


@pytest.mark.parametrize("content", [b"", b"{not json", b"\xff\xfe", b"[1, 2]", b'"text"'])
def test_a_corrupt_entry_is_a_miss(cache: ActionCache, content: bytes) -> None:
    key = "c" * 64
    cache.put(key, {"ok": True})
    path = cache.path(key)
    path.chmod(0o644)
    path.write_bytes(content)
    assert cache.get(key) is None
    assert cache.get_complete(key) is None


def test_get_complete_needs_every_named_blob(cache: ActionCache) -> None:
    present = cache.store.put_bytes(b"present").digest
    absent = Digest.of(b"absent")
    cache.put("1" * 64, {"outputs": [str(present)]})
    cache.put("2" * 64, {"outputs": {"a": str(present), "b": [{"c": str(absent)}]}})
    assert cache.get_complete("1" * 64) == {"outputs": [str(present)]}
    assert cache.get_complete("2" * 64) is None
    assert cache.get("2" * 64) is not None


def test_record_digests_finds_digests_at_any_depth() -> None:
    a, b = Digest.of(b"a"), Digest.of(b"b")
    record = {"x": str(a), "y": [{"z": (str(b), "blake3:nope")}, 3, None], "w": "text"}
    assert record_digests(record) == {a, b}


def test_keys_must_be_hex(cache: ActionCache) -> None:
    with pytest.raises(ValueError, match=r"^bad action key '\.\./\.\./x': expected 64 lowercase"):
        cache.put("../../x", {})
    assert "../../x" not in cache


def test_a_record_that_is_not_json_is_refused_and_leaves_nothing(cache: ActionCache) -> None:
    with pytest.raises(TypeError, match=r"^canonical_json cannot encode"):
        cache.put("d" * 64, {"x": object()})
    assert cache.keys() == []


def test_disk_full_keeps_the_previous_entry(
    cache: ActionCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = "e" * 64
    cache.put(key, {"generation": 1})

    def write_all(fd: int, data: bytes | memoryview) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(fsio, "write_all", write_all)
    with pytest.raises(DiskFullError) as exc:
        cache.put(key, {"generation": 2})
    assert str(exc.value) == (
        f"disk full while writing to {cache.path(key)}: free space or move the store"
    )
    assert cache.get(key) == {"generation": 1}
    assert list((cache.store.root / "tmp").iterdir()) == []


def test_a_build_appends_its_entries_and_a_torn_line_is_a_miss(tmp_path: Path) -> None:
    # A build's entries (not fsynced) are lines appended to their fan-out folder's log.
    store = Store(tmp_path / "store")
    first, other = "a" * 64, "aa" + "0" * 62
    build = ActionCache(store, record=True)
    build.put(first, {"n": 1}, durable=False)
    build.put(other, {"n": 2}, durable=False)
    build.put(first, {"n": 3}, durable=False)  # a node that ran again: the last line wins
    log = store.root / "actions" / "aa" / "log"
    assert sorted(p.name for p in log.parent.iterdir()) == ["log"]
    assert ActionCache(store).get(first) == {"n": 3}
    assert ActionCache(store).keys() == sorted([first, other])
    # A power cut tears the last line and leaves zeros: that line is no entry (the key's
    # earlier line, if any, is read; a node whose outputs are gone runs again).
    data = log.read_bytes()
    log.write_bytes(data[:-4] + b"\0" * 100)
    assert ActionCache(store).get(first) == {"n": 1}
    assert ActionCache(store).get(other) == {"n": 2}
    # The next build's line is whole after it; removing an entry drops the torn line too.
    ActionCache(store, record=True).put(other, {"n": 4}, durable=False)
    assert ActionCache(store).get(other) == {"n": 4}
    cache = ActionCache(store)
    assert cache.remove(first) > 0
    assert cache.keys() == [other]
    assert log.read_bytes() == b"\n" + other.encode() + b' {"n":4}'


def test_a_log_of_stale_lines_is_rewritten_by_a_build_never_by_a_reader(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    key = "b" * 64
    for n in range(40):
        ActionCache(store, record=True).put(key, {"n": n}, durable=False)
    log = store.root / "actions" / "bb" / "log"
    assert ActionCache(store).get(key) == {"n": 39}  # gc --dry-run, graph: read only
    assert log.read_bytes().count(b"\n") == 40
    assert ActionCache(store, record=True).get(key) == {"n": 39}  # a build
    assert log.read_bytes() == b"\n" + key.encode() + b' {"n":39}'


def test_a_cold_builds_cache_finds_what_it_wrote_and_packs_only_what_was_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A cold store has no fan-out folder: a lookup there is a miss without an open, unless
    # this cache wrote the key (an entry, or a trace of a node's last run).
    store = Store(tmp_path / "store")
    build = ActionCache(store, record=True)
    entry, trace, torn = "c" * 64, "d" * 64, "e" * 64
    assert build.get(entry) is None
    build.put(entry, {"blob": "x"}, durable=False)
    build.put(trace, {"trace": True, "key": entry}, durable=False)
    assert build.get(entry) == {"blob": "x"}
    assert build.get(trace) == {"trace": True, "key": entry}

    def write_all(fd: int, data: bytes | memoryview) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(fsio, "write_all", write_all)
    with pytest.raises(DiskFullError):
        build.put(torn, {"blob": "y"}, durable=False)
    monkeypatch.undo()
    assert build.get(torn) is None
    build.save_pack()
    assert ActionCache(store).get(entry) == {"blob": "x"}
    assert ActionCache(store).get(torn) is None
    pack = (store.root / "action-pack").read_bytes()
    assert entry.encode() in pack
    assert torn.encode() not in pack
    assert trace.encode() not in pack  # traces are not packed


def test_a_prepared_new_stores_cache_reads_nothing_to_find_no_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A cold build makes the store's folders while it starts (Store.prepare), actions/
    # fan-out folders included: empty ones, in a store without a pack, are known to hold
    # no entry, as missing ones are, so a lookup reads no file; one that holds an entry
    # (a store whose pack was lost) is still read.
    store = Store(tmp_path / "store")
    store.prepare()
    assert sorted(p.name for p in (store.root / "actions").iterdir()) == list(fsio.FANOUTS)
    read: list[Path] = []  # the files read under actions/
    read_bytes = Path.read_bytes

    def reading(path: Path) -> bytes:
        if path.parent.parent == store.root / "actions":
            read.append(path)
        return read_bytes(path)

    monkeypatch.setattr(Path, "read_bytes", reading)
    build = ActionCache(store, record=True)
    keys = [blake3_hex(str(n).encode()) for n in range(64)]
    assert all(build.get(k) is None for k in keys)
    assert read == []
    build.put(keys[0], {"blob": "x"}, durable=False)
    assert build.get(keys[0]) == {"blob": "x"}
    assert read == []
    later = ActionCache(store, record=True)  # no pack was saved: the entry's folder is read
    assert later.get(keys[0]) == {"blob": "x"}
    assert later.get(keys[1]) is None
    assert store.root / "actions" / keys[0][:2] / "log" in read


def test_a_builds_cache_keeps_the_entries_it_used_in_a_spool_and_packs_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The entries a build's cache writes are kept for the next pack in a spool file (an
    int per entry in memory, not its text): found again by get() whether the spool wrote
    them out or still holds them, and packed as they were written; a cache whose spool
    cannot be made keeps the texts and packs the same."""
    monkeypatch.setattr(actions_module, "_SPOOL_RUN", 300)  # a few entries per run
    keys = [blake3_hex(str(n).encode()) for n in range(40)]
    records = {k: {"blob": f"entry {n} é", "n": n} for n, k in enumerate(keys)}
    packs = []
    for spool in (True, False):
        store = Store(tmp_path / f"store-{spool}")
        if not spool:

            def no_spool(_tmp: Path) -> None:
                raise OSError(errno.EROFS, os.strerror(errno.EROFS))

            monkeypatch.setattr(actions_module, "_Spool", no_spool)
        build = ActionCache(store, record=True)
        for k in keys:
            build.put(k, records[k], durable=False)
        assert all(isinstance(v, int) == spool for v in build._used.values())
        assert all(build.get(k) == records[k] for k in reversed(keys))
        build.save_pack()
        assert all(ActionCache(store).get(k) == records[k] for k in keys)
        packs.append((store.root / "action-pack").read_bytes())
    assert packs[0] == packs[1]
