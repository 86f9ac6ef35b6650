"""Copying a stream into a file while hashing it (blake3 and sha256, one pass).

A stream that may be large is copied by three threads: the caller's reads, one hashes
(blake3 and sha256 release the GIL on large chunks) and one writes, each chunk handed on
through short queues, so a download's reading, hashing and writing overlap instead of taking
turns (at most ``2 × _DEPTH`` chunks of ``CHUNK_SIZE`` in flight per stream). Small streams
(pages, metadata, small files), and streams the caller asks not to overlap, are copied by
the calling thread alone.

Overlap pays when reading costs the reader little per byte (a plain socket hands over up to
a chunk per read). Over TLS the reader decrypts one 16 KiB record per read, taking the GIL
back each time; two more threads per stream then mostly add GIL hand-offs: the real top200
case made 410 000–430 000 context switches with them and 155 000–160 000 without, for
~10 % less wall time and ~2.9 s less CPU (docs/performance.md, seventh round).
"""

from __future__ import annotations

import hashlib
import queue
import threading
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import blake3

from store import fsio
from store.errors import IntegrityError, StoreError

if TYPE_CHECKING:
    from _typeshed import SupportsRead

CHUNK_SIZE = 1 << 20


def copy_hashed(
    fd: int,
    tmp: Path,
    readable: BinaryIO | SupportsRead[bytes],
    expect_size: int | None,
    *,
    overlap: bool = True,
) -> tuple[int, str, str]:
    """Copy ``readable`` into ``fd`` (the temp file ``tmp``); (size, blake3 hex, sha256 hex).

    A stream longer than ``expect_size`` is abandoned (:class:`IntegrityError`) as soon as
    that is known; write failures become the store's errors naming ``tmp``; an exception
    from ``readable`` propagates unchanged. No helper thread outlives the call.
    """
    hashes = _Hashes()
    if not overlap or (expect_size is not None and expect_size <= _SERIAL_MAX):
        size = _copy_serial(fd, tmp, readable, hashes, expect_size)
    else:
        size = _copy_pipelined(fd, tmp, readable, hashes, expect_size)
    return size, hashes.b3.hexdigest(), hashes.sha.hexdigest()


# Streams up to this size (pages, metadata, small files) are copied by the calling thread:
# two more threads cost more than they overlap there.
_SERIAL_MAX = 4 * CHUNK_SIZE
_DEPTH = 4


class _Hashes:
    def __init__(self) -> None:
        self.b3 = blake3.blake3()
        self.sha = hashlib.sha256()

    def update(self, chunk: bytes) -> None:
        self.b3.update(chunk)
        self.sha.update(chunk)


def _next_chunk(
    readable: BinaryIO | SupportsRead[bytes], size: int, expect_size: int | None
) -> bytes:
    chunk = readable.read(CHUNK_SIZE)
    if chunk and expect_size is not None and size + len(chunk) > expect_size:
        raise IntegrityError(
            f"expected size {expect_size} bytes, got more than {expect_size} bytes"
        )
    return chunk


def _write_chunk(fd: int, tmp: Path, chunk: bytes) -> None:
    """Write ``chunk`` whole; an OSError becomes the store's one-line error naming ``tmp``."""
    try:
        fsio.write_all(fd, chunk)
    except OSError as exc:
        raise fsio.write_error(exc, tmp) from exc


def _copy_serial(
    fd: int,
    tmp: Path,
    readable: BinaryIO | SupportsRead[bytes],
    hashes: _Hashes,
    expect_size: int | None,
) -> int:
    size = 0
    while chunk := _next_chunk(readable, size, expect_size):
        size += len(chunk)
        hashes.update(chunk)
        _write_chunk(fd, tmp, chunk)
    return size


def _copy_pipelined(
    fd: int,
    tmp: Path,
    readable: BinaryIO | SupportsRead[bytes],
    hashes: _Hashes,
    expect_size: int | None,
) -> int:
    to_hash: queue.Queue[bytes | None] = queue.Queue(_DEPTH)
    to_write: queue.Queue[bytes | None] = queue.Queue(_DEPTH)
    failed: list[BaseException] = []

    def hash_all() -> None:
        while (chunk := to_hash.get()) is not None:
            hashes.update(chunk)

    def write_all() -> None:
        while (chunk := to_write.get()) is not None:
            if failed:
                continue  # drain: the reader stops at its next chunk
            try:
                _write_chunk(fd, tmp, chunk)
            except StoreError as exc:
                failed.append(exc)

    threads = [
        threading.Thread(target=hash_all, name="morgan-hash", daemon=True),
        threading.Thread(target=write_all, name="morgan-write", daemon=True),
    ]
    for t in threads:
        t.start()
    size = 0
    try:
        while not failed and (chunk := _next_chunk(readable, size, expect_size)):
            size += len(chunk)
            to_hash.put(chunk)
            to_write.put(chunk)
    finally:
        # Both helpers end (and the fd is theirs no more) before this returns or raises.
        to_hash.put(None)
        to_write.put(None)
        for t in threads:
            t.join()
    if failed:
        raise failed[0]
    return size
