"""Fixed-output fetches: a file is named by what upstream promised (sha256 + size).

The bytes are streamed into the store and verified while they stream; a mismatch leaves
nothing behind and is reported with the URL, the expected and the actual values.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar

from rules.errors import UpstreamError
from store.errors import IntegrityError
from store.objects import Blob, Store


class Readable(Protocol):
    def read(self, n: int = -1, /) -> bytes: ...


T = TypeVar("T")


class Downloader(Protocol):
    """What a fetch needs from the HTTP client."""

    def download(self, url: str, consume: Callable[[Readable], T]) -> T:
        """GET ``url``, give the body to ``consume`` (again from the start on a broken body)."""
        ...

    def get_bytes(self, url: str, *, max_bytes: int) -> bytes: ...


MAX_METADATA_BYTES = 16 * 1024 * 1024


def fetch_file(
    client: Downloader, store: Store, url: str, *, sha256: str | None, size: int | None
) -> Blob:
    """Stream ``url`` into ``store``, verified against ``sha256`` and ``size`` when given.

    A download that breaks mid-body is started again by the client (bounded retries); bytes
    that do not match what upstream promised are not retried: :class:`UpstreamError`.
    An ``https`` body is hashed and written by the thread that reads it (see
    :mod:`store.streams`: over TLS, helper threads cost more GIL hand-offs than they save).
    """
    overlap = not url.startswith("https:")

    def consume(body: Readable) -> Blob:
        return store.put_stream(body, expect_sha256=sha256, expect_size=size, overlap=overlap)

    try:
        return client.download(url, consume)
    except IntegrityError as exc:
        raise UpstreamError(f"GET {_public(url)}: {exc}") from None


def fetch_metadata(client: Downloader, store: Store, url: str, *, sha256: str | None) -> Blob:
    """Fetch a PEP 658 ``.metadata`` file, verified against the hash the page advertised."""
    data = client.get_bytes(url, max_bytes=MAX_METADATA_BYTES)
    try:
        return store.put_bytes(data, expect_sha256=sha256)
    except IntegrityError as exc:
        raise UpstreamError(f"GET {_public(url)}: {exc}") from None


def _public(url: str) -> str:
    """``url`` without credentials, for messages."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    host, slash, path = rest.partition("/")
    return f"{scheme}://{host.rpartition('@')[2]}{slash}{path}"
