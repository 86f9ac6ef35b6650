"""Rule ``wheel-metadata``: a fetched wheel's exact ``*.dist-info/METADATA`` bytes.

Input: the wheel's :class:`~rules.fetch.Fetched`. Output: :class:`Extracted`, the blob
served as ``<wheel>.metadata`` (PEP 658) with its sha256, which the pages advertise. Every
wheel gets one, whether or not upstream offered PEP 658.
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Self

from rules.errors import MetadataError
from rules.fetch import Fetched
from rules.lib.metadata import wheel_metadata_bytes
from rules.rule import Inputs, Json, Rule, Step, at_paths
from store.digest import Digest
from store.objects import Store


@dataclass(frozen=True, slots=True)
class Extracted:
    """A blob read out of a fetched file, with its sha256 (``.metadata``, ``.provenance``)."""

    blob: Digest
    sha256: str

    @property
    def blobs(self) -> tuple[Digest, ...]:
        return (self.blob,)

    def to_json(self) -> dict[str, object]:
        blob = str(self.blob)
        return {"blobs": [blob], "blob": blob, "sha256": self.sha256}

    @classmethod
    def from_json(cls, data: Json) -> Self:
        return cls(Digest.parse(data["blob"]), str(data["sha256"]))


# Version 1 as when this rule lived with the metadata rule: the same keys, the same cache.
RULE = Rule("wheel-metadata", 1, Extracted)


def run(store: Store, wheel: Fetched, filename: str) -> Extracted:
    """The METADATA of the wheel ``filename`` stored as ``wheel``, as its own blob."""
    try:
        data = metadata_bytes(store, wheel.blob, filename)
    except MetadataError as exc:
        raise MetadataError(f"{filename}: {exc}") from None
    blob = store.put_bytes(data)
    return Extracted(blob.digest, blob.sha256)


# METADATA read out of wheels lately, by blob: on an index without PEP 658 the resolver
# reads a wheel's METADATA to learn its dependencies, and the walk reads it again for the
# ``.metadata`` it serves; a large wheel's zip directory is thousands of entries to parse.
class _Recent:
    def __init__(self, keep_bytes: int) -> None:
        self.keep_bytes = keep_bytes
        self.held: OrderedDict[tuple[Digest, str], bytes] = OrderedDict()
        self.size = 0
        self.lock = threading.Lock()

    def get(self, key: tuple[Digest, str]) -> bytes | None:
        with self.lock:
            data = self.held.get(key)
            if data is not None:
                self.held.move_to_end(key)
            return data

    def put(self, key: tuple[Digest, str], data: bytes) -> None:
        with self.lock:
            if key in self.held:
                return
            self.held[key] = data
            self.size += len(data)
            while self.size > self.keep_bytes and self.held:
                self.size -= len(self.held.popitem(last=False)[1])


_RECENT = _Recent(8 << 20)


def metadata_bytes(store: Store, wheel: Digest, filename: str) -> bytes:
    """The exact METADATA bytes of the wheel ``filename`` stored as ``wheel`` (a blob's
    content never changes, so the few MB read last are kept and given again)."""
    key = (wheel, filename)
    data = _RECENT.get(key)
    if data is None:
        with store.open(wheel) as fh:
            data = wheel_metadata_bytes(fh, filename)
        _RECENT.put(key, data)
    return data


def step(store: Store, filename: str, fetch_id: str, paths: Sequence[str]) -> Step[Extracted]:
    """The plan's node for the wheel ``filename`` (fetched by ``fetch_id``): its
    ``.metadata`` at each of ``paths``."""
    produces = tuple(paths)
    # (partials, not closures: see at_paths)
    return Step(
        id=f"wheel-metadata:{filename}",
        rule=RULE,
        params={"filename": filename},
        run=functools.partial(_run_step, store, fetch_id, filename),
        entries=functools.partial(at_paths, produces),
        produces=produces,
    )


def _run_step(store: Store, fetch_id: str, filename: str, inputs: Inputs) -> Extracted:
    return run(store, inputs.get(fetch_id, Fetched), filename)
