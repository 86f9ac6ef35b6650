"""The action cache: a rule's key -> the record of what it produced.

A key is the blake3 of the canonical JSON of the rule kind, its implementation version,
its normalized parameters and the content digests of its inputs (never paths, times or host
names), so the same work always has the same key. A record is any JSON object; every string
in it that is a digest (``"blake3:<hex>"``, at any depth) names a blob the record depends on:
:meth:`ActionCache.get_complete` answers only when all of them are present, and gc drops an
entry once one of them is gone. Entries live in ``actions/ab/<key>`` as canonical JSON.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from store import fsio
from store.digest import Digest, blake3_hex, canonical_json
from store.objects import Store

_KEY = re.compile(r"[0-9a-f]{64}")


def action_key(
    kind: str, version: int, params: Mapping[str, object], inputs: Mapping[str, str]
) -> str:
    """The cache key of one rule run: 64 hex digits of blake3 over its canonical JSON."""
    return blake3_hex(
        canonical_json({"kind": kind, "version": version, "params": params, "inputs": inputs})
    )


def record_digests(record: object) -> frozenset[Digest]:
    """Every digest a record names: strings ``"blake3:<hex>"`` found at any depth."""
    found: set[Digest] = set()
    stack: list[object] = [record]
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            with contextlib.suppress(ValueError):  # most strings are not digests
                found.add(Digest.parse(value))
        elif isinstance(value, Mapping):
            stack.extend(value.values())
        elif isinstance(value, list | tuple):
            stack.extend(value)
    return frozenset(found)


def is_trace(record: Mapping[str, Any]) -> bool:
    """A trace entry: what a node's last run was keyed by (for ``--explain``), not an output.
    It names the key of its output entry under ``key``."""
    return record.get("trace") is True


class ActionCache:
    """Rule key -> JSON record, stored under the store's ``actions/`` directory."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.root = store.root / "actions"

    def path(self, key: str) -> Path:
        """Where the entry for ``key`` lives; ``ValueError`` if ``key`` is not 64 hex digits."""
        if not _KEY.fullmatch(key):
            raise ValueError(f"bad action key {key!r}: expected 64 lowercase hex digits")
        return self.root / key[:2] / key

    def get(self, key: str) -> dict[str, Any] | None:
        """The record under ``key``, or None if absent or unreadable (a corrupt entry is a miss)."""
        try:
            data = self.path(key).read_bytes()
        except FileNotFoundError:
            return None
        try:
            record = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            return None
        return record if isinstance(record, dict) else None

    def get_complete(self, key: str) -> dict[str, Any] | None:
        """Like :meth:`get`, but None unless every blob the record names is in the store."""
        record = self.get(key)
        if record is None or not all(self.store.has(d) for d in record_digests(record)):
            return None
        return record

    def put(self, key: str, record: Mapping[str, Any], *, durable: bool = True) -> None:
        """Store ``record`` under ``key`` atomically (replacing any previous entry).

        ``durable=False`` skips fsync: a power loss may then lose the entry (a cache miss
        later), never tear it into a wrong record, since a torn entry reads as a miss.
        Raises ``TypeError`` if the record is not plain JSON, and the store's write errors.
        """
        target = self.path(key)
        fsio.atomic_write(self.store.tmp_dir, target, canonical_json(record), durable=durable)

    def remove(self, key: str) -> int:
        """Delete the entry; return the bytes freed (0 if it was absent)."""
        path = self.path(key)
        return fsio.remove_file(path)

    def size(self, key: str) -> int:
        """The entry's size in bytes (0 if absent)."""
        try:
            return self.path(key).stat().st_size
        except FileNotFoundError:
            return 0

    def keys(self) -> list[str]:
        """Every key with an entry, sorted."""
        return list(self)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and _KEY.fullmatch(key) is not None and self.path(key).is_file()

    def __iter__(self) -> Iterator[str]:
        try:
            fanouts = sorted(p for p in self.root.iterdir() if p.is_dir())
        except FileNotFoundError:
            return
        for fanout in fanouts:
            for entry in sorted(os.scandir(fanout), key=lambda e: e.name):
                if _KEY.fullmatch(entry.name) and entry.name.startswith(fanout.name):
                    yield entry.name
