"""A tree manifest (relative path -> blob digest) made real as a generation directory.

Entries become relative symlinks into ``store/objects`` (or copies / hard links for
filesystems and OSes without symlinks). With symlinks, a folder that holds only files (a
project's folder in the union or a view) is a link to a folder object of the store
(:mod:`store.folders`), made once and shared by every generation with the same folder: a
new generation writes one link per such folder, and links per file only for new folders.
The tree is built under a temporary name next to its final place and renamed into place
only when complete, so no reader ever sees half a generation.
"""

from __future__ import annotations

import bisect
import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Collection, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal

from rules.errors import RuleError
from store.digest import Digest
from store.folders import FOLDERS, listed_folders, make_folder
from store.objects import Store

Mode = Literal["symlink", "copy", "hardlink"]

_THREADS = 4
_THREADED = 64  # fewer entries than this: added in the calling thread
_RUN = 512  # shared folders per thread task
_EARLY_THREADS = 2  # threads making shared folders during the walk
# Folders known before the walk (taken from project records) are linked by a child process
# while the walk runs when there are at least this many (fewer: commit() links them).
PRELINK_MIN = 2048
# The child: for each "folder NUL name" record of its stdin, the folder's link as
# commit() makes it (a hard link of the served generation's link when that reads the same,
# else a new symlink); it prints one byte per record, "1" made, "0" not.
_PRELINK = r"""
import os, sys
tmp, prev, to_folders = sys.argv[1:4]
data = sys.stdin.buffer.read().decode("utf-8", "surrogateescape")
out = bytearray()
parts = data.split("\0") if data else []
for i in range(0, len(parts) - 1, 2):
    folder, name = parts[i], parts[i + 1]
    link = "../" * folder.count("/") + to_folders + "/" + name[:2] + "/" + name
    new = tmp + "/" + folder
    try:
        try:
            if not prev or os.readlink(prev + "/" + folder) != link:
                raise OSError
            os.link(prev + "/" + folder, new, follow_symlinks=False)
        except (OSError, NotImplementedError):
            os.symlink(link, new)
        out += b"1"
    except OSError:
        out += b"0"
sys.stdout.buffer.write(bytes(out))
"""
# Each part of a path: no "..", no absolute path, no odd characters, no empty part.
_SAFE_PATH = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._+!~-]*(?:/[A-Za-z0-9_][A-Za-z0-9._+!~-]*)*\Z")


def check_entry_path(rel: str) -> tuple[str, ...]:
    """Refuse any manifest path that could leave the generation (``..``, absolute, odd
    chars, empty parts); its parts. (One match over the whole path: a rebuild checks
    every entry of the tree, 59 572 at 2 000 projects.)"""
    if not _SAFE_PATH.match(rel):
        raise RuleError(f"refusing unsafe path {rel!r} in a generation manifest")
    return tuple(rel.split("/"))


def _check_folder(folder: str, names: Collection[str]) -> None:
    """:func:`check_entry_path` of ``folder`` and of each of ``names``, refusing a name with
    a ``/``. One match over the folder and its names joined does it (a name with a ``/``
    adds one too many; an empty one makes an empty part): a rebuild at 5 000 projects takes
    27 700 folders and 148 000 names from its records. Names are checked one by one only
    when that fails, to say which."""
    joined = "/".join(names)
    if names and joined.count("/") == len(names) - 1 and _SAFE_PATH.match(f"{folder}/{joined}"):
        return
    check_entry_path(folder)
    for name in names:
        if "/" in name:
            raise RuleError(f"refusing unsafe name {name!r} in folder {folder!r}")
        check_entry_path(name)


class TreeWriter:
    """A generation directory made entry by entry, from any thread, then renamed into place
    whole (or thrown away): readers never see a half-made generation.

    It is made under ``tmp`` (a sibling of the final name: the same depth, so relative links
    stay right after the rename). A build adds each file's entries the moment the file is in,
    while other files still download, so the links do not all wait for the last byte.
    """

    def __init__(
        self,
        store: Store,
        tmp: Path,
        *,
        mode: Mode = "symlink",
        share: bool | None = None,
        previous: Path | None = None,
    ) -> None:
        self.store = store
        self.tmp = tmp
        self.mode = mode
        # The served generation (a sibling of ``tmp``): a folder's link there that reads as
        # the link this tree needs is hard-linked rather than made again (see _link_folder).
        self.previous = previous
        # Folders of files as shared folder objects (symlink mode only): entries are then
        # only noted by add() and the tree is written by commit().
        self.share = mode == "symlink" if share is None else share
        if self.share and mode != "symlink":
            raise ValueError("shared folders need symlink mode")
        self._noted: dict[str, Digest] = {}  # share mode: every entry added, not yet written
        # With expect(): each shared folder is made as soon as its last entry is added
        # (while other files still download), by a small pool; commit() links them.
        # folder -> its paths, sorted (the strings the caller gave: no name and no dict
        # per folder, ~20 MB at 5 000 projects)
        self._expected: dict[str, tuple[str, ...]] = {}
        # The expected paths outside those folders (root pages, the lock, the manifest), and
        # how many paths were expected in all: with ``_expected``, what commit() needs to
        # know that it is given exactly the expected paths (not a set of every path: 4-8 MB
        # at 5 000 projects, held through the commit); None: nothing expected.
        self._expected_loose: frozenset[str] = frozenset()
        self._expected_count: int | None = None
        self._remaining: dict[str, int] = {}
        self._early: dict[str, str] = {}  # folder -> its folder object's name, made
        self._listed: frozenset[str] | None = None  # the store's folder objects (add_folders)
        self._ready: list[tuple[str, dict[str, Digest]]] = []  # complete, not taken yet
        self._makers = 0  # tasks of the pool taking complete folders from _ready
        self._early_error: BaseException | None = None
        self._early_pool: ThreadPoolExecutor | None = None
        # The child linking folders during the walk (see _prelink) and what it was asked
        # (folder -> folder object name, in the order sent).
        self._prelinker: subprocess.Popen[bytes] | None = None
        self._prelink_asked: dict[str, str] = {}
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        # From a folder N levels inside the generation, the objects folder is N levels up,
        # then this path.
        self._objects = os.path.relpath(store.objects_dir, tmp)
        self._claimed: set[str] = set()  # entries written (or being written) by add()
        self._folders: set[tuple[str, ...]] = {()}
        self._busy = 0
        self._error: BaseException | None = None
        self._cond = threading.Condition()

    def expect(
        self, paths: Iterable[str], folders: Mapping[str, Mapping[str, object]] | None = None
    ) -> None:
        """The paths the tree will hold (a plan knows them before it runs): each shared
        folder is then made the moment its last entry is added, off the caller's thread.
        ``folders``: more folders of files (folder -> its names), known to be leaves (a
        project's folder in a view), with their paths."""
        if not self.share:
            return
        listed = frozenset(paths)
        leaves, rest = _leaves_and_rest(listed)
        more = {f: tuple(sorted(f"{f}/{n}" for n in names)) for f, names in (folders or {}).items()}
        parents = {f.rpartition("/")[0] for f in more}
        for parent in parents:  # (a view's simple/ holds its root pages and these folders)
            up = parent
            while up:
                rest.extend(leaves.pop(up, ()))
                up = up.rpartition("/")[0]
        for folder, rels in more.items():  # (a leaf of ``paths`` given again: these names)
            rest.extend(rel for rel in leaves.get(folder, ()) if not _among(rels, rel))
        leaves.update(more)
        # (a union copies the set even with nothing to add: 8 MB at 5 000 projects)
        expected = listed.union(*more.values()) if more else listed
        with self._cond:
            # (``rest`` and the leaves' paths together are ``expected``)
            self._expected_loose, self._expected_count = frozenset(rest), len(expected)
            self._expected = leaves
            self._remaining = {f: len(rels) for f, rels in leaves.items()}
            self._early_pool = ThreadPoolExecutor(
                max_workers=_EARLY_THREADS, thread_name_prefix="tree"
            )

    def _folder_done(self, folder: str) -> None:
        """(the caller holds the lock) Start making ``folder``'s object: all its entries are in."""
        cut = len(folder) + 1
        entries = {rel[cut:]: self._noted[rel] for rel in self._expected[folder]}
        if self._early_pool is not None:
            self._ready.append((folder, entries))
            if self._makers < _EARLY_THREADS:
                self._makers += 1
                self._early_pool.submit(self._make_ready)

    def _make_ready(self) -> None:
        """(a task of the pool) Make complete folders until none is waiting. A task takes
        every folder completed meanwhile: a task per folder cost more in hand-offs (11 177
        at 2 000 projects) than making the folders, most of which a rebuild finds made."""
        while True:
            with self._cond:
                run, self._ready = self._ready, []
                if not run or self._early_error is not None:
                    self._makers -= 1
                    self._cond.notify_all()
                    return
            try:
                made = {folder: make_folder(self.store, entries) for folder, entries in run}
            except BaseException as exc:  # noqa: BLE001 - raised by commit()
                with self._cond:
                    self._early_error = self._early_error or exc
                continue
            with self._cond:
                self._early.update(made)

    def _count_in(self, folder: str, rel: str) -> None:
        """(the caller holds the lock) One more of ``folder``'s expected entries is in."""
        left = self._remaining.get(folder)
        if left is not None and _among(self._expected[folder], rel):
            self._remaining[folder] = left - 1
            if left == 1:
                self._folder_done(folder)

    def add_many(self, entries: Mapping[str, Digest]) -> None:
        """:meth:`add` each of ``entries`` (one node's: a file in every view that lists it,
        a project's two pages); in share mode under one hold of the lock."""
        if not self.share:
            for rel, digest in entries.items():
                self.add(rel, digest)
            return
        for rel in entries:
            check_entry_path(rel)
        with self._cond:
            if self._error is not None:
                return
            for rel, digest in entries.items():
                if rel not in self._noted:
                    self._noted[rel] = digest
                    self._count_in(rel.rpartition("/")[0], rel)

    def add_folders(
        self,
        folders: Mapping[str, Mapping[str, Digest]],
        objects: Mapping[str, str] | None = None,
    ) -> None:
        """:meth:`add` every entry of whole folders (folder -> {name: blob}); in share mode,
        a folder :meth:`expect` expects with exactly these names is complete at once.
        ``objects``: the names of these folders' folder objects, as made before from the
        same entries: one the store holds is linked as it is (no ``make_folder``)."""
        if not self.share:
            for folder, names in folders.items():
                self.add_many({f"{folder}/{n}": d for n, d in names.items()})
            return
        for folder, names in folders.items():
            _check_folder(folder, names)
        known: dict[str, str] = {}  # folder -> its object's name, in the store already
        with self._cond:
            if self._error is not None:
                return
            for folder, names in folders.items():
                expected = self._expected.get(folder)
                cut = len(folder) + 1
                whole = (
                    expected is not None
                    and self._remaining.get(folder) == len(expected) == len(names)
                    and all(rel[cut:] in names for rel in expected)
                )
                if whole and expected is not None:
                    self._noted.update((rel, names[rel[cut:]]) for rel in expected)
                    self._remaining[folder] = 0
                    made = (objects or {}).get(folder)
                    if made is not None and made in self._stored():
                        self._early[folder] = made
                        known[folder] = made
                    else:
                        self._folder_done(folder)
                    continue
                for name, digest in names.items():
                    rel = f"{folder}/{name}"
                    if rel not in self._noted:
                        self._noted[rel] = digest
                        self._count_in(folder, rel)
        if len(known) >= PRELINK_MIN and self._prelinker is None:
            self._prelink(known)

    def _prelink(self, known: Mapping[str, str]) -> None:
        """Link ``known`` folders (folder -> object name) in a child process, while the
        caller goes on (the walk): 27 700 folder links at 5 000 projects, each a ``readlink``
        and a hard link, are ~0.8 s of system calls, and a thread of this process making
        them would get the GIL back after each call only as often as the walk's threads let
        go of it. commit() links them here itself if the child did not make them all, and
        checks each one against the link it needs: the tree is the same either way."""
        parents = {f.rpartition("/")[0] for f in known} - {""}
        try:
            for parent in sorted(parents):
                (self.tmp / parent).mkdir(parents=True, exist_ok=True)
            text = "\0".join(f"{f}\0{n}" for f, n in known.items())
            with tempfile.TemporaryFile(dir=self.tmp.parent) as listing:
                listing.write(text.encode("utf-8", "surrogateescape"))
                listing.seek(0)
                self._prelinker = subprocess.Popen(
                    [
                        sys.executable,
                        "-I",
                        "-S",
                        "-c",
                        _PRELINK,
                        str(self.tmp),
                        str(self.previous) if self.previous is not None else "",
                        os.path.relpath(self.store.root / FOLDERS, self.tmp),
                    ],
                    stdin=listing,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                )
        except (OSError, ValueError):
            return  # commit() links them all, as without a child
        self._prelink_asked = dict(known)

    def _prelinked(self) -> dict[str, str]:
        """Wait for the child: the folders it linked (folder -> object name); none when it
        failed (commit() then checks every folder it was asked for)."""
        child, asked = self._prelinker, self._prelink_asked
        if child is None:
            return {}
        self._prelinker = None
        out, _ = child.communicate()
        if child.returncode != 0 or len(out) != len(asked):
            return {}
        return {f: n for (f, n), ok in zip(asked.items(), out, strict=True) if ok == ord("1")}

    def _stop_prelink(self) -> None:
        child = self._prelinker
        if child is not None:
            self._prelinker = None
            child.kill()
            child.communicate()

    def _stored(self) -> frozenset[str]:
        """(the caller holds the lock) The folder objects in the store, listed once."""
        if self._listed is None:
            self._listed = listed_folders(self.store)
        return self._listed

    def add(self, rel: str, digest: Digest) -> None:
        """Create entry ``rel`` (once: a second add of the same path does nothing). An error
        is kept and raised by :meth:`commit`, since callers may be callbacks nobody awaits."""
        parts = check_entry_path(rel)
        with self._cond:
            if rel in self._taken() or self._error is not None:
                return
            if self.share:
                self._noted[rel] = digest
                folder = rel.rpartition("/")[0]
                self._count_in(folder, rel)
                return
            self._claimed.add(rel)
            self._busy += 1
            made = parts[:-1] in self._folders
        try:
            where = self.tmp.joinpath(*parts[:-1])
            if not made:  # (several threads may make one folder at once: that is fine)
                where.mkdir(parents=True, exist_ok=True)
                with self._cond:
                    self._folders.add(parts[:-1])  # only once it exists
            self._link(where / parts[-1], len(parts) - 1, digest)
        except BaseException as exc:  # noqa: BLE001 - kept for commit(), see above
            with self._cond:
                self._error = self._error or exc
        finally:
            with self._cond:
                self._busy -= 1
                self._cond.notify_all()

    def _taken(self) -> Collection[str]:
        """(the caller holds the lock) The entries added so far."""
        return self._noted.keys() if self.share else self._claimed

    def _link(self, target: Path, depth: int, digest: Digest) -> None:
        if self.mode == "symlink":
            target.symlink_to(f"{'../' * depth}{self._objects}/{digest.hex[:2]}/{digest.hex}")
        elif self.mode == "hardlink":
            os.link(self.store.path(digest), target)
        else:
            shutil.copyfile(self.store.path(digest), target)
            target.chmod(0o444)

    def add_all(self, entries: Mapping[str, Digest]) -> None:
        """Every entry not added yet, folders filled by a few threads (link and copy calls
        release the GIL; on a busy journal that costs less)."""
        folders: dict[tuple[str, ...], list[str]] = {}
        with self._cond:
            taken = self._taken()
            todo = [rel for rel in entries if rel not in taken]
        if self.share:  # only noted here: commit() writes the tree
            for rel in todo:
                check_entry_path(rel)
            with self._cond:
                self._noted.update((rel, entries[rel]) for rel in todo)
            return
        for rel in sorted(todo):
            folders.setdefault(check_entry_path(rel)[:-1], []).append(rel)
        if len(todo) < _THREADED:
            for rel in todo:
                self.add(rel, entries[rel])
            return

        def fill(rels: list[str]) -> None:
            for rel in rels:
                self.add(rel, entries[rel])

        with ThreadPoolExecutor(max_workers=_THREADS) as pool:
            list(pool.map(fill, folders.values()))

    def commit(self, final: Path, entries: Mapping[str, Digest]) -> None:
        """Complete the tree to exactly ``entries`` and rename it to ``final``; on any error
        the tree is removed and the error raised."""
        try:
            self.add_all(entries)
            self._settle(entries)
            if self.share:
                self._write_shared(entries)
            self.tmp.rename(final)
        except BaseException:
            self.discard()
            raise
        self._forget()

    def _forget(self) -> None:
        """Let go of what the tree was made from (a path and a digest per entry, by entry
        and by folder: tens of MB at 5 000 projects), once it is written."""
        with self._cond:
            self._noted, self._expected, self._remaining, self._early = {}, {}, {}, {}
            self._expected_loose, self._expected_count = frozenset(), None
            self._claimed = set()
            self._prelink_asked = {}

    def _settle(self, entries: Mapping[str, Digest]) -> None:
        """Wait for adds under way in other threads; raise the first error any add met."""
        with self._cond:
            while self._busy:
                self._cond.wait()
            if self._error is not None:
                raise self._error
            # (not a set of every entry taken less the manifest's: two sets of ~150 000
            # paths at 5 000 projects, the high-water mark of the walk's end)
            extra = [rel for rel in self._taken() if rel not in entries]
        if extra:
            raise RuleError(f"internal: entries outside the manifest: {sorted(extra)[:3]}")

    def _write_shared(self, entries: Mapping[str, Digest]) -> None:
        """The tree of ``entries``: each folder of files a link to its folder object (made
        if new), every other entry a link to its blob; several threads make the links."""
        # The paths expect() was given are the usual case: their folders are known already.
        # (entries are the expected paths when there are as many and each is in an expected
        # folder or among the other expected paths)
        leaves = self._expected
        loose = [rel for rel in entries if not _in_leaf(leaves, rel)]
        if len(entries) != self._expected_count or not self._expected_loose.issuperset(loose):
            leaves = leaf_paths(entries)
            loose = [rel for rel in entries if not _in_leaf(leaves, rel)]
        loose.sort()
        prelinked, asked = self._prelinked(), self._prelink_asked
        for folder in asked.keys() - leaves.keys():  # (not the usual case: not in the tree)
            _unlink(f"{self.tmp}/{folder}")
        parents = {f.rpartition("/")[0] for f in leaves} | {r.rpartition("/")[0] for r in loose}
        for folder in sorted(parents - {""}):
            (self.tmp / folder).mkdir(parents=True, exist_ok=True)
        to_folders = os.path.relpath(self.store.root / FOLDERS, self.tmp)

        tmp = str(self.tmp)
        prev = str(self.previous) if self.previous is not None else None

        early = self._settle_early()

        def shared(folders: list[str]) -> None:
            for folder in folders:
                rels = leaves[folder]
                made = early.get(folder)
                if (
                    made is not None
                    and self._expected.get(folder) == rels
                    # (the same objects when both come from one record or node: no __eq__)
                    and all(
                        (a := self._noted[rel]) is (b := entries[rel]) or a == b for rel in rels
                    )
                ):
                    name = made  # made during the walk from the same entries
                else:
                    cut = len(folder) + 1
                    name = make_folder(self.store, {rel[cut:]: entries[rel] for rel in rels})
                if prelinked.get(folder) == name:
                    continue  # linked by the child, as it is needed
                if folder in asked:
                    _unlink(f"{tmp}/{folder}")
                up = "../" * folder.count("/")
                link = f"{up}{to_folders}/{name[:2]}/{name}"
                if prev is None or not _link_folder(f"{prev}/{folder}", link, f"{tmp}/{folder}"):
                    os.symlink(link, f"{tmp}/{folder}")  # noqa: PTH211

        for rel in loose:
            self._link(self.tmp / rel, rel.count("/"), entries[rel])
        ordered = sorted(leaves)
        # A few threads, each a run of folders (link calls release the GIL; a task per
        # folder would cost more in hand-offs than the links themselves).
        runs = [ordered[k : k + _RUN] for k in range(0, len(ordered), _RUN)]
        if len(runs) < 2:
            for run in runs:
                shared(run)
            return
        with ThreadPoolExecutor(max_workers=_THREADS) as pool:
            list(pool.map(shared, runs))

    def _settle_early(self) -> dict[str, str]:
        """Wait for the folders made during the walk: folder -> object name (the first
        error raised)."""
        with self._cond:
            pool = self._early_pool
            if pool is None:
                return {}
            while self._makers:
                self._cond.wait()
            error, early = self._early_error, dict(self._early)
        try:
            if error is not None:
                raise error
            return early
        finally:
            pool.shutdown(wait=True)

    def discard(self) -> None:
        """Remove the unfinished tree (also when entries are still being added elsewhere)."""
        with self._cond:
            self._error = self._error or RuleError("generation discarded")
            while self._busy:
                self._cond.wait()
            pool = self._early_pool
        self._stop_prelink()
        if pool is not None:  # folder objects already made stay in the store (gc's)
            pool.shutdown(wait=True, cancel_futures=True)
        shutil.rmtree(self.tmp, ignore_errors=True)


def leaf_paths(entries: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """:func:`store.folders.leaf_folders` as each folder's paths, sorted (so by name too):
    folder -> paths. The strings are those of ``entries``; no name string is kept."""
    return _leaves_and_rest(entries)[0]


def _leaves_and_rest(entries: Iterable[str]) -> tuple[dict[str, tuple[str, ...]], list[str]]:
    """:func:`leaf_paths`, and the paths of ``entries`` in no leaf folder."""
    by_folder: dict[str, list[str]] = {}
    parents: set[str] = set()
    for rel in entries:
        folder = rel.rpartition("/")[0]
        rels = by_folder.get(folder)
        if rels is None:
            by_folder[folder] = [rel]
            while folder:
                folder = folder.rpartition("/")[0]
                parents.add(folder)
        else:
            rels.append(rel)
    leaves = {f: tuple(sorted(rels)) for f, rels in by_folder.items() if f and f not in parents}
    rest = [rel for f, rels in by_folder.items() if f not in leaves for rel in rels]
    return leaves, rest


def _among(rels: tuple[str, ...], rel: str) -> bool:
    """Whether ``rel`` is one of the sorted paths ``rels``."""
    i = bisect.bisect_left(rels, rel)
    return i < len(rels) and rels[i] == rel


def _in_leaf(leaves: Mapping[str, tuple[str, ...]], rel: str) -> bool:
    """Whether ``rel`` is one of the paths of ``leaves`` (folder -> its sorted paths),
    looked up by its folder rather than in a set of them all."""
    rels = leaves.get(rel.rpartition("/")[0])
    return rels is not None and _among(rels, rel)


def _unlink(path: str) -> None:
    """Remove a link the prelinking child may have made (absent: nothing to do)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)  # noqa: PTH108 - strings, as the child's


def _link_folder(old: str, link: str, new: str) -> bool:
    """Whether ``new`` was made a hard link of ``old``, a symlink that reads ``link``.

    A folder's link in the served generation, when it reads exactly as the link the new
    generation needs there (the same depth, so the same relative target), is the same
    symlink: a hard link to it is one directory entry, where a new symlink is a new inode
    too (on the build machine's ext4, 27 700 symlinks took 2-8 s of system time, their hard
    links 0.4-0.5 s with the readlinks). Any failure (no such link, a regular file, too
    many links, no hard links to symlinks here) leaves the caller to make the symlink."""
    try:
        if os.readlink(old) != link:  # noqa: PTH115 - 27 700 calls, strings
            return False
        os.link(old, new, follow_symlinks=False)
    except (OSError, NotImplementedError):
        return False
    return True


def materialize(
    store: Store, entries: Mapping[str, Digest], final: Path, *, mode: Mode = "symlink"
) -> None:
    """Create directory ``final`` holding ``entries``; atomic: all or nothing."""
    writer = TreeWriter(store, final.with_name(f".tmp-{final.name}-{os.getpid()}"), mode=mode)
    writer.commit(final, entries)
