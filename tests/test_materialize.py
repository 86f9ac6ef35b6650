"""Generation trees: made entry by entry from many threads, renamed into place whole."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import pytest

from rules.errors import RuleError
from rules.lib import materialize as materialize_module
from rules.lib.materialize import Mode, TreeWriter, materialize
from store.digest import Digest
from store.folders import leaf_folders, make_folder
from store.objects import Store


def blobs(store: Store, n: int) -> dict[str, Digest]:
    """``n`` entries spread over a few projects of two views."""
    out = {}
    for i in range(n):
        view = "" if i % 2 else "env/linux/"
        out[f"{view}simple/p{i % 7}/f{i}.whl"] = store.put_bytes(f"file {i}".encode()).digest
    return out


def tree(root: Path) -> dict[str, bytes]:
    """Every file reached under ``root`` (through links to folders too): path → bytes."""
    out = {}
    for folder, _dirs, files in os.walk(root, followlinks=True):
        for name in files:
            path = Path(folder, name)
            out[path.relative_to(root).as_posix()] = path.read_bytes()
    return dict(sorted(out.items()))


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
    # A folder of files is a link to a shared folder object of links into the objects.
    shared = (gens / "2" / "simple" / "p1").readlink()
    assert shared.parts[:5] == ("..", "..", "..", "store", "folders")
    assert shared == (gens / "1" / "simple" / "p1").readlink()  # made once, used twice
    digest = entries["simple/p1/f1.whl"]
    assert str((gens / "2" / "simple" / "p1" / "f1.whl").readlink()) == (
        f"../../../objects/{digest.hex[:2]}/{digest.hex}"
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
    with pytest.raises(OSError, match="simple"):
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


def test_a_new_generation_writes_only_the_folders_that_changed(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    entries = blobs(store, 70)
    gens = tmp_path / "generations"
    materialize(store, entries, gens / "1")
    folders = sorted((tmp_path / "store" / "folders").glob("*/*"))
    assert len(folders) == 14  # 7 projects in 2 views
    changed = {**entries, "simple/p1/new.whl": store.put_bytes(b"new").digest}
    materialize(store, changed, gens / "2")
    after = sorted((tmp_path / "store" / "folders").glob("*/*"))
    assert len(after) == 15  # one new folder object: simple/p1 of generation 2
    assert tree(gens / "1") == {rel: store.read_bytes(d) for rel, d in entries.items()}
    assert tree(gens / "2") == {rel: store.read_bytes(d) for rel, d in changed.items()}
    assert (gens / "2" / "simple" / "p1").readlink() != (gens / "1" / "simple" / "p1").readlink()
    assert (gens / "2" / "simple" / "p2").readlink() == (gens / "1" / "simple" / "p2").readlink()


@pytest.mark.parametrize("mode", ["copy", "hardlink"])
def test_copied_trees_hold_real_folders(tmp_path: Path, mode: Mode) -> None:
    store = Store(tmp_path / "store")
    entries = blobs(store, 20)
    materialize(store, entries, tmp_path / "1", mode=mode)
    assert not (tmp_path / "store" / "folders").exists()
    assert not (tmp_path / "1" / "simple" / "p1").is_symlink()
    assert tree(tmp_path / "1") == {rel: store.read_bytes(d) for rel, d in entries.items()}


def test_expected_folders_are_made_while_entries_still_arrive(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    entries = blobs(store, 28)
    writer = TreeWriter(store, tmp_path / "generations" / ".tmp-1-1")
    writer.expect(entries)
    folders = tmp_path / "store" / "folders"
    p1 = {rel: d for rel, d in entries.items() if rel.startswith("simple/p1/")}
    for rel, digest in p1.items():  # every entry of one folder, nothing of the others
        writer.add(rel, digest)
    deadline = time.monotonic() + 30
    while not list(folders.glob("*/*")) and time.monotonic() < deadline:
        time.sleep(0.01)
    made = list(folders.glob("*/*"))
    assert len(made) == 1  # that folder, before the commit
    assert {p.name for p in made[0].iterdir()} == {rel.rsplit("/", 1)[1] for rel in p1}
    writer.commit(tmp_path / "generations" / "1", entries)
    assert tree(tmp_path / "generations" / "1") == {
        rel: store.read_bytes(d) for rel, d in entries.items()
    }
    assert (tmp_path / "generations" / "1" / "simple" / "p1").resolve() == made[0]


@pytest.mark.parametrize(
    "change",
    ["name in an expected folder", "path outside the folders", "root page for a file", "none"],
)
def test_a_commit_of_other_paths_than_expected_makes_the_tree_it_is_given(
    tmp_path: Path, change: str
) -> None:
    """commit() takes the folders expect() computed only when it is given exactly the
    expected paths (the writer keeps no set of them: their count, their folders and the
    few paths outside those); as many paths with one of them another gives that tree."""
    store = Store(tmp_path / "store")
    expected = {**blobs(store, 28), "simple/index.html": store.put_bytes(b"root").digest}
    given = dict(expected)
    blob = store.put_bytes(b"other").digest
    if change == "name in an expected folder":
        del given["simple/p1/f1.whl"]
        given["simple/p1/g1.whl"] = blob
    elif change == "path outside the folders":
        del given["simple/p1/f1.whl"]
        given["extra.html"] = blob
    elif change == "root page for a file":
        del given["simple/index.html"]
        given["simple/p2/extra.whl"] = blob
    assert len(given) == len(expected)
    writer = TreeWriter(store, tmp_path / "generations" / ".tmp-1-1")
    writer.expect(expected)
    for rel, digest in given.items():
        writer.add(rel, digest)
    writer.commit(tmp_path / "generations" / "1", given)
    assert tree(tmp_path / "generations" / "1") == {
        rel: store.read_bytes(d) for rel, d in given.items()
    }


def test_unchanged_folders_are_linked_from_the_served_generation(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    entries = blobs(store, 70)
    gens = tmp_path / "generations"
    materialize(store, entries, gens / "1")
    # Generation 1's link of simple/p4 made by hand to read otherwise: not taken from there.
    (gens / "1" / "simple" / "p4").unlink()
    (gens / "1" / "simple" / "p4").symlink_to("elsewhere")
    changed = {**entries, "simple/p1/new.whl": store.put_bytes(b"new").digest}
    writer = TreeWriter(store, gens / ".tmp-2-1", previous=gens / "1")
    writer.commit(gens / "2", changed)
    assert tree(gens / "2") == {rel: store.read_bytes(d) for rel, d in changed.items()}
    for folder in ("simple/p2", "env/linux/simple/p1", "env/linux/simple/p4"):
        old, new = (gens / "1" / folder).lstat(), (gens / "2" / folder).lstat()
        assert (new.st_ino, new.st_nlink) == (old.st_ino, 2)  # the same symlink, linked
    for folder in ("simple/p1", "simple/p4"):  # changed, or not the link it needs
        assert (gens / "2" / folder).lstat().st_nlink == 1
        assert (gens / "2" / folder).readlink().parts[:5] == ("..", "..", "..", "store", "folders")
    # A previous generation that is gone: every link is made.
    writer = TreeWriter(store, gens / ".tmp-3-1", previous=gens / "9")
    writer.commit(gens / "3", changed)
    assert tree(gens / "3") == tree(gens / "2")
    assert (gens / "3" / "simple" / "p2").lstat().st_nlink == 1


@pytest.mark.parametrize("child", ["works", "fails", "cannot start"])
def test_folders_known_before_the_walk_are_linked_by_a_child_and_the_tree_is_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, child: str
) -> None:
    """Folders taken whole from project records (their objects in the store) are linked by
    a child process while the walk runs; the tree is the one commit() makes alone, also
    when a folder's entries changed since, and when the child fails or cannot start."""
    monkeypatch.setattr(materialize_module, "PRELINK_MIN", 1)
    if child == "fails":
        monkeypatch.setattr(materialize_module, "_PRELINK", "import sys; sys.exit(3)")
    elif child == "cannot start":
        monkeypatch.setattr(sys, "executable", str(tmp_path / "no-python"))
    store = Store(tmp_path / "store")
    entries = blobs(store, 70)
    gens = tmp_path / "generations"
    materialize(store, entries, gens / "1")
    (gens / "1" / "simple" / "p4").unlink()  # a link that reads otherwise: not taken
    (gens / "1" / "simple" / "p4").symlink_to("elsewhere")
    whole = {
        folder: {name: entries[rel] for name, rel in names.items()}
        for folder, names in leaf_folders(entries).items()
    }
    objects = {folder: make_folder(store, names) for folder, names in whole.items()}
    # One folder's file is another blob by the commit (not what its record said).
    changed = {**entries, "simple/p1/f1.whl": store.put_bytes(b"changed").digest}
    writer = TreeWriter(store, gens / ".tmp-2-1", previous=gens / "1")
    writer.expect((), whole)
    writer.add_folders(whole, objects)
    assert (writer._prelinker is not None) == (child != "cannot start")
    writer.commit(gens / "2", changed)
    assert tree(gens / "2") == {rel: store.read_bytes(d) for rel, d in changed.items()}
    assert not list(gens.glob(".tmp-*"))
    for folder in ("simple/p2", "env/linux/simple/p1"):  # unchanged: the served link
        old, new = (gens / "1" / folder).lstat(), (gens / "2" / folder).lstat()
        assert (new.st_ino, new.st_nlink) == (old.st_ino, 2)
    for folder in ("simple/p1", "simple/p4"):  # changed, or not the link it needs
        assert (gens / "2" / folder).lstat().st_nlink == 1


def test_a_tree_discarded_while_its_child_links_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(materialize_module, "PRELINK_MIN", 1)
    monkeypatch.setattr(materialize_module, "_PRELINK", "import time; time.sleep(60)")
    store = Store(tmp_path / "store")
    entries = blobs(store, 70)
    whole = {
        folder: {name: entries[rel] for name, rel in names.items()}
        for folder, names in leaf_folders(entries).items()
    }
    objects = {folder: make_folder(store, names) for folder, names in whole.items()}
    writer = TreeWriter(store, tmp_path / "generations" / ".tmp-1-1")
    writer.expect((), whole)
    writer.add_folders(whole, objects)
    started = time.monotonic()
    writer.discard()
    assert time.monotonic() - started < 30  # the child is stopped, not waited for
    assert not (tmp_path / "generations" / ".tmp-1-1").exists()


@pytest.mark.parametrize(
    ("folder", "name"),
    [
        ("simple/p1", ".."),
        ("simple/p1", "a/b"),
        ("simple/p1", ""),
        ("simple/p1", "-x.whl"),
        ("simple/p1", "f é.whl"),
        ("../p1", "f.whl"),
        ("/abs", "f.whl"),
        ("simple//p1", "f.whl"),
    ],
)
def test_folders_from_records_with_an_unsafe_path_are_refused(
    tmp_path: Path, folder: str, name: str
) -> None:
    """A folder taken whole (from a project record) is checked like any entry: an unsafe
    folder or name among safe ones stops the tree, whichever it is."""
    store = Store(tmp_path / "store")
    blob = store.put_bytes(b"x").digest
    writer = TreeWriter(store, tmp_path / "generations" / ".tmp-1-1")
    writer.expect(())
    names = {"a.whl": blob, name: blob, "z.whl": blob}
    with pytest.raises(RuleError, match="refusing unsafe"):
        writer.add_folders({"simple/ok": {"f.whl": blob}, folder: names})
    writer.discard()


def test_folders_from_records_with_safe_paths_are_taken(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    entries = blobs(store, 30)
    whole = {
        folder: {name: entries[rel] for name, rel in names.items()}
        for folder, names in leaf_folders(entries).items()
    }
    writer = TreeWriter(store, tmp_path / "generations" / ".tmp-1-1")
    writer.expect((), whole)
    writer.add_folders({**whole, "simple/empty": {}})
    writer.commit(tmp_path / "generations" / "1", entries)
    assert tree(tmp_path / "generations" / "1") == {
        rel: store.read_bytes(d) for rel, d in entries.items()
    }
