"""Generation trees: made entry by entry from many threads, renamed into place whole."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from rules.errors import RuleError
from rules.lib.materialize import TreeWriter, materialize
from store.digest import Digest
from store.objects import Store


def blobs(store: Store, n: int) -> dict[str, Digest]:
    """``n`` entries spread over a few projects of two views."""
    out = {}
    for i in range(n):
        view = "" if i % 2 else "env/linux/"
        out[f"{view}simple/p{i % 7}/f{i}.whl"] = store.put_bytes(f"file {i}".encode()).digest
    return out


def tree(root: Path) -> dict[str, bytes]:
    """Every entry under ``root``: relative path → the bytes reached through it."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_symlink() or p.is_file()
    }


def test_entries_added_from_many_threads_give_the_same_tree_as_all_at_once(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path / "store")
    entries = blobs(store, 300)
    gens = tmp_path / "generations"
    materialize(store, entries, gens / "1")
    writer = TreeWriter(store, gens / ".tmp-2-1")
    names = sorted(entries)

    def add_all(part: list[str]) -> None:
        for rel in part:
            writer.add(rel, entries[rel])

    threads = [threading.Thread(target=add_all, args=(names[k::6],)) for k in range(6)]
    for t in threads:
        t.start()
    writer.add(names[0], entries[names[0]])  # a second add of one path does nothing
    for t in threads:
        t.join()
    assert not (gens / "2").exists()  # nothing visible before the commit
    writer.commit(gens / "2", entries)
    assert tree(gens / "2") == tree(gens / "1")
    assert len(tree(gens / "2")) == 300
    assert str((gens / "2" / "simple" / "p1" / "f1.whl").readlink()) == (
        f"../../../../store/objects/{entries['simple/p1/f1.whl'].hex[:2]}/"
        f"{entries['simple/p1/f1.whl'].hex}"
    )
    assert sorted(p.name for p in gens.iterdir()) == ["1", "2"]  # no temporary left


def test_commit_completes_what_was_not_added_yet(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    entries = blobs(store, 20)
    writer = TreeWriter(store, tmp_path / ".tmp-1-1")
    writer.add("simple/p1/f1.whl", entries["simple/p1/f1.whl"])
    writer.commit(tmp_path / "1", entries)
    assert tree(tmp_path / "1") == {rel: store.read_bytes(d) for rel, d in entries.items()}


def test_a_failed_add_fails_the_commit_and_leaves_nothing(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    entries = blobs(store, 20)
    writer = TreeWriter(store, tmp_path / ".tmp-1-1")
    # A file where a folder must go: the add fails (in a callback nobody awaits) ...
    (tmp_path / ".tmp-1-1" / "simple").write_text("in the way")
    writer.add("simple/p1/f1.whl", entries["simple/p1/f1.whl"])
    # ... and the commit reports it, with no generation and no temporary left.
    with pytest.raises(NotADirectoryError):
        writer.commit(tmp_path / "1", entries)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store"]


def test_an_entry_outside_the_manifest_is_refused(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    entries = blobs(store, 4)
    writer = TreeWriter(store, tmp_path / ".tmp-1-1")
    writer.add("simple/stray/x.whl", next(iter(entries.values())))
    with pytest.raises(RuleError, match=r"entries outside the manifest: \['simple/stray/x.whl'\]"):
        writer.commit(tmp_path / "1", entries)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store"]


def test_discard_removes_the_tree_and_later_adds_do_nothing(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    entries = blobs(store, 4)
    writer = TreeWriter(store, tmp_path / ".tmp-1-1")
    writer.add("simple/p1/f1.whl", entries["simple/p1/f1.whl"])
    writer.discard()
    writer.add("simple/p3/f3.whl", entries["simple/p3/f3.whl"])  # a late callback
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store"]
