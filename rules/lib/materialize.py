"""A tree manifest (relative path -> blob digest) made real as a generation directory.

Entries become relative symlinks into ``store/objects`` (or copies / hard links for
filesystems and OSes without symlinks). The tree is built under a temporary name next to
its final place and renamed into place only when complete, so no reader ever sees half a
generation.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath
from typing import Literal

from rules.errors import RuleError
from store.digest import Digest
from store.objects import Store

Mode = Literal["symlink", "copy", "hardlink"]

_THREADS = 4
_THREADED = 64  # fewer entries than this: added in the calling thread
_SAFE_PART = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._+!~-]*$")


def check_entry_path(rel: str) -> PurePosixPath:
    """Refuse any manifest path that could leave the generation (``..``, absolute, odd chars)."""
    path = PurePosixPath(rel)
    if path.is_absolute() or not path.parts or not all(_SAFE_PART.match(p) for p in path.parts):
        raise RuleError(f"refusing unsafe path {rel!r} in a generation manifest")
    return path


class TreeWriter:
    """A generation directory made entry by entry, from any thread, then renamed into place
    whole (or thrown away): readers never see a half-made generation.

    It is made under ``tmp`` (a sibling of the final name: the same depth, so relative links
    stay right after the rename). A build adds each file's entries the moment the file is in,
    while other files still download, so the links do not all wait for the last byte.
    """

    def __init__(self, store: Store, tmp: Path, *, mode: Mode = "symlink") -> None:
        self.store = store
        self.tmp = tmp
        self.mode = mode
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        # From a folder N levels inside the generation, the objects folder is N levels up,
        # then this path.
        self._objects = os.path.relpath(store.objects_dir, tmp)
        self._claimed: set[str] = set()
        self._folders: set[tuple[str, ...]] = {()}
        self._busy = 0
        self._error: BaseException | None = None
        self._cond = threading.Condition()

    def add(self, rel: str, digest: Digest) -> None:
        """Create entry ``rel`` (once: a second add of the same path does nothing). An error
        is kept and raised by :meth:`commit`, since callers may be callbacks nobody awaits."""
        parts = check_entry_path(rel).parts
        with self._cond:
            if rel in self._claimed or self._error is not None:
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
            todo = [rel for rel in entries if rel not in self._claimed]
        for rel in sorted(todo):
            folders.setdefault(check_entry_path(rel).parts[:-1], []).append(rel)
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
            self.tmp.rename(final)
        except BaseException:
            self.discard()
            raise

    def _settle(self, entries: Mapping[str, Digest]) -> None:
        """Wait for adds under way in other threads; raise the first error any add met."""
        with self._cond:
            while self._busy:
                self._cond.wait()
            if self._error is not None:
                raise self._error
            extra = self._claimed - set(entries)
        if extra:
            raise RuleError(f"internal: entries outside the manifest: {sorted(extra)[:3]}")

    def discard(self) -> None:
        """Remove the unfinished tree (also when entries are still being added elsewhere)."""
        with self._cond:
            self._error = self._error or RuleError("generation discarded")
            while self._busy:
                self._cond.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)


def materialize(
    store: Store, entries: Mapping[str, Digest], final: Path, *, mode: Mode = "symlink"
) -> None:
    """Create directory ``final`` holding ``entries``; atomic: all or nothing."""
    writer = TreeWriter(store, final.with_name(f".tmp-{final.name}-{os.getpid()}"), mode=mode)
    writer.commit(final, entries)
