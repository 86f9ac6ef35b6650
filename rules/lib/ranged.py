"""A wheel's METADATA read with HTTP range requests, without downloading the wheel.

When an index offers no PEP 658 ``.metadata`` for a wheel (devpi, Artifactory, Nexus and
some proxies of PyPI strip it), the resolver would have to download the whole wheel (numpy:
16 MB, torch: 800 MB) before it knows a single dependency, and the next level of the graph
waits for those bytes. A zip keeps its directory at the end: the file's last bytes (one
request) hold the directory and, in a wheel, usually the ``.dist-info`` members just before
it; at most one or two more requests reach the rest. :class:`RangeFile` is a seekable file
over those requests, read by the same zip code that reads a downloaded wheel
(:func:`rules.lib.metadata.wheel_metadata_bytes`), with its limits.

The bytes are not covered by the wheel's sha256 until the wheel itself is downloaded (the
mirror keeps every wheel the resolver reads, so it always is): the build then compares the
METADATA of the verified wheel with what the ranges gave (``morgan/catalog.py``).
"""

from __future__ import annotations

import io
from collections.abc import Callable

from rules.lib.http import RangeBody

# The first request: the file's last bytes (a wheel's directory with its .dist-info members).
TAIL_BYTES = 256 * 1024
# Any further request reads at least this much from where the zip reader is.
BLOCK_BYTES = 128 * 1024
# Beyond this many requests, reading by ranges is slower than the download it avoids.
MAX_REQUESTS = 6


class RangesUnsupportedError(Exception):
    """The server answered a range request with the whole file (``by_server``), or the
    zip needed more requests than :data:`MAX_REQUESTS`: read the downloaded file instead."""

    def __init__(self, message: str, *, by_server: bool = False) -> None:
        super().__init__(message)
        self.by_server = by_server


GetRange = Callable[[int, int | None], RangeBody | None]


class RangeFile(io.RawIOBase):
    """A read-only, seekable view of a remote file through ``get_range(first, last)``."""

    def __init__(self, get_range: GetRange, *, size: int | None = None) -> None:
        super().__init__()
        self._get = get_range
        self.requests = 0
        tail = self._fetch(-TAIL_BYTES, None)
        if size is not None and tail.total != size:
            raise RangesUnsupportedError(f"the server says {tail.total} bytes, the index {size}")
        self._size = tail.total
        self._spans: list[tuple[int, bytes]] = [(tail.start, tail.data)]
        self._pos = 0

    def _fetch(self, first: int, last: int | None) -> RangeBody:
        if self.requests >= MAX_REQUESTS:
            raise RangesUnsupportedError(f"more than {MAX_REQUESTS} range requests")
        self.requests += 1
        got = self._get(first, last)
        if got is None:
            raise RangesUnsupportedError("the server does not serve byte ranges", by_server=True)
        return got

    @property
    def size(self) -> int:
        return self._size

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        if base + offset < 0:
            raise ValueError(f"negative seek position {base + offset}")
        self._pos = base + offset
        return self._pos

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        start = self._pos
        end = min(start + len(buffer), self._size)
        if end <= start:
            return 0
        data = self._bytes(start, end)
        buffer[: len(data)] = data
        self._pos += len(data)
        return len(data)

    def _bytes(self, start: int, end: int) -> bytes:
        for at, data in self._spans:
            if at <= start and end <= at + len(data):
                return data[start - at : end - at]
        last = min(self._size, max(end, start + BLOCK_BYTES)) - 1
        got = self._fetch(start, last)
        if got.total != self._size or len(got.data) != last - start + 1:
            raise RangesUnsupportedError("the server's ranges do not agree with each other")
        self._spans.append((start, got.data))
        return got.data[: end - start]
