"""Node traces: what each node's last run was keyed by, for ``morgan build --explain``.

A node that runs leaves its output in the action cache under its key, and its *trace* (its
key, kind, rule version, parameters and input digests) here, under its id, so that the next
run of the same node can say what changed (:func:`morgan.executor.explain`). Traces are
appended, never rewritten in place: ``traces/<ab>`` holds one line per run,
``<id key> <trace JSON>``, where the id key is the blake3 (hex) of the node id and ``ab``
its first two digits; the last line for an id is its trace. Each line is written with the
newline *before* it, so a line torn by a power cut is ended by the next one appended. A run
costs one append to an open-for-append file (no temporary file, no rename, no new inode),
and a build that runs nothing reads nothing here.

Like the action entries, traces are a cache: not fsynced. A killed build leaves whole lines
(the kernel has them); a power cut may leave a torn last line or zeros, which read as no
line: a node whose trace is lost explains itself as ``new``, nothing else changes. Lines
pile up only when a node runs again, which writes a new action entry too; ``gc`` rewrites
each file with the last line of each id whose action entry it keeps (traces follow their
entries), and a build that reads a file with more stale lines than live ones rewrites it.
A file is only ever replaced whole (temporary file, rename), under the store lock.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import blake3

from store import fsio
from store.digest import canonical_json
from store.objects import Store

TRACES = "traces"  # under the store's root


def id_key(node_id: str) -> str:
    """Where a node's trace is filed: the blake3 (hex) of its id."""
    return str(blake3.blake3(node_id.encode("utf-8")).hexdigest())


def _lines(data: bytes) -> dict[str, bytes]:
    """The last whole line of each id key in a trace file (torn or damaged lines skipped)."""
    found: dict[str, bytes] = {}
    for line in data.split(b"\n"):
        if len(line) > 66 and line[64:66] == b" {" and line.endswith(b"}"):
            try:
                key = line[:64].decode("ascii")
            except UnicodeDecodeError:
                continue
            found[key] = line[65:]
    return found


def _parse(text: bytes) -> dict[str, Any] | None:
    try:
        record = json.loads(text)
    except ValueError:  # JSON or UTF-8: a damaged line is no trace
        return None
    return record if isinstance(record, dict) and isinstance(record.get("key"), str) else None


class TraceLog:
    """The traces of one store: :meth:`get` the last trace of a node, :meth:`put` a new one.

    Used by one build at a time (under the store lock), from many threads."""

    def __init__(self, store: Store) -> None:
        self.root = store.root / TRACES
        self._tmp = store.tmp_dir
        self._lock = threading.Lock()
        self._present: frozenset[str] | None = None  # the files there when first used
        self._loaded: dict[str, dict[str, bytes]] = {}  # file name -> id key -> trace JSON

    def _files(self) -> frozenset[str]:
        """The trace files present when this log was first used (the caller holds the
        lock): a file made since holds only this build's lines, and a build runs a node
        once, so it never has to read them."""
        present = self._present
        if present is None:
            try:
                present = frozenset(os.listdir(self.root))  # noqa: PTH208
            except OSError:
                present = frozenset()
            self._present = present
        return present

    def get(self, node_id: str) -> dict[str, Any] | None:
        """The trace of ``node_id``'s last run, or None (never ran, or its trace is lost)."""
        key = id_key(node_id)
        name = key[:2]
        with self._lock:
            if name not in self._files():
                return None
            lines = self._loaded.get(name)
            if lines is None:
                lines = self._loaded[name] = self._load(name)
            text = lines.get(key)
        return None if text is None else _parse(text)

    def _load(self, name: str) -> dict[str, bytes]:
        """A trace file's last line per id; the file is rewritten with only those when
        most of its lines are stale (the caller holds the lock: no append meanwhile)."""
        path = self.root / name
        try:
            data = path.read_bytes()
        except OSError:
            return {}
        lines = _lines(data)
        if data.count(b"\n") > 2 * len(lines) + 16:
            fsio.atomic_write(self._tmp, path, _body(lines), mode=0o644, durable=False)
        return lines

    def put(self, node_id: str, trace: Mapping[str, Any]) -> None:
        """Append ``trace`` as ``node_id``'s last run (not fsynced: see the module)."""
        key = id_key(node_id)
        line = b"\n" + key.encode("ascii") + b" " + canonical_json(trace)
        path = self.root / key[:2]
        with self._lock:
            self._files()  # before this build's first file exists
            fsio.append(path, line)
            loaded = self._loaded.get(key[:2])
            if loaded is not None:
                loaded[key] = line[66:]

    def filter(self, keep: Callable[[Mapping[str, Any]], bool]) -> int:
        """Rewrite every trace file with the last trace of each id that ``keep`` accepts
        (gc: those whose action entry it keeps); a file left empty is removed. Returns the
        bytes freed."""
        freed = 0
        try:
            names = sorted(os.listdir(self.root))  # noqa: PTH208
        except OSError:
            return 0
        for name in names:
            path = self.root / name
            try:
                data = path.read_bytes()
            except OSError:
                continue
            kept = {}
            for key, text in _lines(data).items():
                record = _parse(text)
                if record is not None and keep(record):
                    kept[key] = text
            body = _body(kept)
            if body == data:
                continue
            freed += len(data) - len(body)
            if kept:
                fsio.atomic_write(self._tmp, path, body, mode=0o644, durable=False)
            else:
                fsio.remove_file(path)
        return freed


def _body(lines: Mapping[str, bytes]) -> bytes:
    return b"".join(b"\n" + k.encode("ascii") + b" " + t for k, t in sorted(lines.items()))


def trace_files(store: Store) -> list[Path]:
    """The store's trace files (for tests and tools)."""
    root = store.root / TRACES
    try:
        return sorted(root / n for n in os.listdir(root))  # noqa: PTH208
    except OSError:
        return []
