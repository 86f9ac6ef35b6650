"""Mark and sweep: delete what no root reaches.

Callers compute the live set from the roots (:func:`live_from_roots`, plus anything a
running build holds) and call :func:`collect` while holding the store's exclusive lock
(``store.lock().exclusive()``), so no build writes while the sweep runs.

What a root keeps alive is defined by its manifest: see :mod:`store.manifests`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from store import fsio
from store.actions import ActionCache, filter_pack, is_trace, record_digests
from store.digest import Digest
from store.errors import MissingObjectError, StoreError
from store.manifests import manifest_digests
from store.objects import Store
from store.roots import roots
from store.traces import TraceLog

DEFAULT_GRACE_SECONDS = 3600.0


@dataclass(frozen=True, slots=True)
class GcReport:
    """What a collection deleted (or, with ``dry_run``, would delete) and the bytes freed.

    Byte counts are file sizes (``st_size``) measured just before deletion.
    """

    dry_run: bool
    deleted_objects: tuple[Digest, ...]
    object_bytes: int
    deleted_actions: tuple[str, ...]
    action_bytes: int
    deleted_temp: tuple[str, ...]  # paths relative to the store root: "tmp/<name>"
    temp_bytes: int
    kept_objects: int
    missing_live: tuple[Digest, ...]  # live digests the store did not hold
    deleted_folders: tuple[str, ...] = ()  # shared folders (store/folders) no generation uses

    @property
    def bytes_freed(self) -> int:
        """All bytes freed: objects, action entries and stale temp files."""
        return self.object_bytes + self.action_bytes + self.temp_bytes

    def to_json(self) -> dict[str, object]:
        """The report as plain JSON values (digests as ``"blake3:<hex>"`` text)."""
        return {
            "dry-run": self.dry_run,
            "bytes-freed": self.bytes_freed,
            "objects": {
                "deleted": [str(d) for d in self.deleted_objects],
                "bytes": self.object_bytes,
                "kept": self.kept_objects,
            },
            "actions": {"deleted": list(self.deleted_actions), "bytes": self.action_bytes},
            "temp": {"deleted": list(self.deleted_temp), "bytes": self.temp_bytes},
            "missing-live": [str(d) for d in self.missing_live],
            "folders": {"deleted": list(self.deleted_folders)},
        }


def live_from_roots(store: Store) -> frozenset[Digest]:
    """Everything reachable from every GC root (see :mod:`store.roots`)."""
    live: set[Digest] = set()
    for name, digest in roots(store).items():
        try:
            live |= manifest_digests(store, digest)
        except StoreError as exc:
            raise StoreError(f"GC root {name!r}: {exc}") from exc
    return frozenset(live)


def collect(
    store: Store,
    live: Iterable[Digest],
    *,
    dry_run: bool,
    grace_seconds: float = DEFAULT_GRACE_SECONDS,
) -> GcReport:
    """Delete objects not in ``live``, action entries naming a blob that will not survive
    (and unreadable ones), and temp files older than ``grace_seconds``.

    With ``dry_run`` nothing is touched and the report says what would go. The caller holds
    the exclusive store lock; ``live`` must include everything any kept root reaches.
    """
    live_set = frozenset(live)
    now = time.time()

    kept: set[Digest] = set()
    doomed: list[tuple[Digest, int]] = []
    for digest in store:
        if digest in live_set:
            kept.add(digest)
            continue
        try:
            doomed.append((digest, store.size(digest)))
        except MissingObjectError:
            continue  # deleted under us: nothing to free
    missing = tuple(sorted(live_set - kept))

    cache = ActionCache(store, pack=False)
    stale, kept_keys = _unreachable_actions(cache, kept)
    stale_actions = [(key, cache.size(key)) for key in stale]

    stale_temp = _stale_temp(store, now, grace_seconds)

    if not dry_run:
        # Action entries first: an interrupted gc then leaves no entry naming a deleted blob.
        # Each group is gone before the next starts; within one, several unlinks at once.
        # The pack keeps the entries whose blobs all survive, like the entry files.
        filter_pack(
            store,
            lambda _k, r: not is_trace(r) and bool(names := record_digests(r)) and names <= kept,
        )
        # The trace log keeps each node's last trace while its entry is kept.
        TraceLog(store).filter(lambda trace: trace["key"] in kept_keys)
        cache.remove_all(key for key, _ in stale_actions)
        fsio.remove_files([store.path(digest) for digest, _ in doomed])
        for path, _ in stale_temp:
            _unlink(path)

    return GcReport(
        dry_run=dry_run,
        deleted_objects=tuple(d for d, _ in doomed),
        object_bytes=sum(size for _, size in doomed),
        deleted_actions=tuple(k for k, _ in stale_actions),
        action_bytes=sum(size for _, size in stale_actions),
        deleted_temp=tuple(str(p.relative_to(store.root)) for p, _ in stale_temp),
        temp_bytes=sum(size for _, size in stale_temp),
        kept_objects=len(kept),
        missing_live=missing,
    )


def _unreachable_actions(
    cache: ActionCache, kept: frozenset[Digest] | set[Digest]
) -> tuple[list[str], set[str]]:
    """Action entries no kept blob backs, and the keys of those kept: a record is kept only
    if it names blobs (its outputs, or what it was read from: ``about``) and every one of
    them survives; a trace an older Morgan kept among the entries
    (:func:`store.actions.is_trace`) only if the entry of the key it names is kept. An
    entry that names nothing (or cannot be read) goes: after the sweep, every remaining
    entry is reachable from a kept generation's blobs."""
    stale: list[str] = []
    traces: dict[str, str] = {}
    kept_keys: set[str] = set()
    for key in cache:
        record = cache.get(key)
        if record is None:
            stale.append(key)
        elif is_trace(record):
            traces[key] = str(record.get("key"))
        elif (names := record_digests(record)) and names <= kept:
            kept_keys.add(key)
        else:
            stale.append(key)
    stale.extend(key for key, named in traces.items() if named not in kept_keys)
    return sorted(stale), kept_keys


def _stale_temp(store: Store, now: float, grace_seconds: float) -> list[tuple[Path, int]]:
    """Temp files untouched for ``grace_seconds`` (an active writer keeps its mtime fresh)."""
    try:
        entries = sorted(os.scandir(store.tmp_dir), key=lambda e: e.name)
    except FileNotFoundError:
        return []
    stale = []
    for entry in entries:
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            st = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue  # its writer finished and removed it
        if now - st.st_mtime >= grace_seconds:
            stale.append((Path(entry.path), st.st_size))
    return stale


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        return
    except OSError as exc:
        raise fsio.write_error(exc, path) from exc


__all__ = ["DEFAULT_GRACE_SECONDS", "GcReport", "collect", "live_from_roots", "manifest_digests"]
