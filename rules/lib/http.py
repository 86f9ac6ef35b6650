"""The upstream HTTP client: pages, small files and streamed downloads, with bounded retries.

One :class:`requests.Session` per thread (sessions are not thread-safe). Transient faults —
connection errors, timeouts, resets, truncated bodies, 429 and 5xx gateway answers — are
retried with exponential backoff and jitter, honouring ``Retry-After``. Everything else fails
at once with one line naming the URL and the cause. Credentials (URL userinfo, the
``credentials`` argument, or ``~/.netrc`` / ``$NETRC`` through requests) are sent but never
appear in a returned URL, an error or a log line.
"""

from __future__ import annotations

import contextlib
import email.utils
import functools
import logging
import os
import random
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast
from urllib.parse import unquote, urlsplit, urlunsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from requests.auth import _basic_auth_str
from requests.cookies import extract_cookies_to_jar
from requests.utils import get_netrc_auth, requote_uri, select_proxy

from rules.errors import RuleError, UpstreamError
from rules.lib.project_page import strip_credentials

if TYPE_CHECKING:
    from requests.sessions import _Settings

logger = logging.getLogger(__name__)

PAGE_ACCEPT = (
    "application/vnd.pypi.simple.v1+json, "
    "application/vnd.pypi.simple.v1+html;q=0.2, "
    "text/html;q=0.01"
)
MAX_PAGE_BYTES = 64 * 1024 * 1024
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_RETRY_AFTER = 60.0
MAX_BACKOFF = 30.0
MAX_REDIRECTS = 10
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_CHUNK = 64 * 1024
# A download's read waits for this many bytes or more only when the body has been arriving
# at a rate that brings them within _READ_SLICE seconds (see Download.read).
_BIG_READ = 64 * 1024
_READ_SLICE = 0.25
_BIG_AFTER = 1024 * 1024  # ... and once this much of it has come (its rate is known)
# Environment variables that override the retry policy of clients built with defaults
# (``morgan build`` makes one): tests and slow networks tune it without a code change.
ENV_RETRIES = "MORGAN_HTTP_RETRIES"
ENV_BACKOFF = "MORGAN_HTTP_BACKOFF"
ENV_TIMEOUT = "MORGAN_HTTP_TIMEOUT"
ENV_MIN_RATE = "MORGAN_HTTP_MIN_RATE"
ENV_MIN_RATE_AFTER = "MORGAN_HTTP_MIN_RATE_AFTER"

T = TypeVar("T")
# Threads that GET the pages :meth:`HttpClient.get_pages_early` is given.
EARLY_THREADS = 16


def _default_user_agent() -> str:
    try:
        version = metadata.version("morgan-mirror")
    except metadata.PackageNotFoundError:  # running from a checkout
        version = "dev"
    return f"morgan/{version}"


@dataclass(frozen=True, slots=True)
class PageResponse:
    """An upstream page: status 200 (``body`` set), 304 (unchanged) or 404 (no such project)."""

    status: int
    body: bytes
    content_type: str
    url: str  # the final URL after redirects, without credentials
    etag: str | None


@dataclass(frozen=True, slots=True)
class RangeBody:
    """Part of a file: its bytes from ``start``, and the whole file's size."""

    start: int
    data: bytes
    total: int


_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+)")


class _Transient(Exception):  # noqa: N818 - internal signal, never escapes this module
    """A fault worth retrying; ``delay`` is the server's Retry-After, if it gave one."""

    def __init__(self, cause: str, delay: float | None = None) -> None:
        super().__init__(cause)
        self.cause = cause
        self.delay = delay


def _env_number(name: str, default: float, *, minimum: float, whole: bool = False) -> float:
    """The number in environment variable ``name``, or ``default`` when it is unset or empty."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = minimum - 1
    if not value >= minimum or value == float("inf") or (whole and not value.is_integer()):
        kind = "a whole number" if whole else "a number"
        raise RuleError(f"{name}={text!r} is not {kind} >= {minimum:g}: fix it or unset it")
    return value


class _Response(Protocol):
    """What this client reads of a response: a :class:`requests.Response`, or a
    :class:`_DirectResponse` read straight from urllib3."""

    @property
    def status_code(self) -> int: ...

    @property
    def reason(self) -> str: ...

    @property
    def url(self) -> str: ...

    @property
    def headers(self) -> Mapping[str, str]: ...

    @property
    def raw(self) -> Any: ...

    def iter_content(self, chunk_size: int) -> Iterator[bytes]: ...

    def close(self) -> None: ...


class _DirectResponse:
    """A response that urllib3 read, without a :class:`requests.Response` made of it (see
    :meth:`HttpClient._send`): what the handlers read, closed as requests closes one."""

    __slots__ = ("headers", "raw", "reason", "status_code", "url")

    def __init__(self, raw: urllib3.BaseHTTPResponse, url: str) -> None:
        self.raw = raw
        self.url = url
        self.status_code = raw.status
        self.reason = raw.reason or ""
        self.headers: Mapping[str, str] = raw.headers

    def iter_content(self, chunk_size: int) -> Iterator[bytes]:
        return self.raw.stream(chunk_size, decode_content=True)

    def close(self) -> None:
        # What requests.Response.close does: a body read to its end has given its
        # connection back to the pool already; any other is closed with its connection.
        self.raw.close()
        self.raw.release_conn()


@dataclass(frozen=True, slots=True)
class _Route:
    """How one thread sends a request to one scheme and host straight through urllib3:
    the connection pool's key (requests' own, so the same pool and TLS settings as a
    request sent through requests), the session's headers and the host's ``.netrc``
    credentials."""

    manager: urllib3.PoolManager
    host: Mapping[str, Any]
    pool: Mapping[str, Any]
    headers: Mapping[str, str]
    netrc: tuple[str, str] | None


class BodyBrokenError(UpstreamError):
    """The connection broke while a response body was being read (worth a new attempt)."""


class Download:
    """A streamed response body: ``read(n)`` returns at most ``n`` bytes, ``b""`` at the end.

    A broken connection while reading raises :class:`BodyBrokenError`; :meth:`HttpClient.download`
    starts the whole request again when that happens, :meth:`HttpClient.stream` leaves it to
    the caller.
    """

    def __init__(
        self,
        response: _Response,
        url: str,
        count: Callable[[int], None],
        *,
        min_rate: float = 0.0,
        min_rate_after: float = 60.0,
    ) -> None:
        self._response = response
        self._url = url
        self._count = count
        length = response.headers.get("Content-Length", "")
        self.size: int | None = int(length) if length.isdigit() else None
        # A body that trickles in, every read inside the timeout, would otherwise hold a
        # build for as long as it likes: below ``min_rate`` bytes/s on average once
        # ``min_rate_after`` seconds have passed, the download counts as broken (retried
        # like a reset). ``read1`` returns what has arrived, so this is checked as it comes.
        self._min_rate = min_rate
        self._min_rate_after = min_rate_after
        self._started = time.monotonic()
        self._received = 0
        raw = response.raw
        self._read1 = getattr(raw, "read1", raw.read)
        self._read_full = raw.read

    def read(self, n: int = _CHUNK) -> bytes:
        # A read returns what has arrived (read1: over TLS one 16 KiB record), unless the
        # body has come fast enough that ``n`` bytes are due within _READ_SLICE: then it
        # waits for up to that many. Each record read takes the GIL back, and the caller
        # hashes and writes what it gets: one large read per 64 records instead of a
        # read, two hashes and a write each (docs/performance.md, eleventh round).
        # A body that slows down is still checked against the minimum rate after each
        # read: a large read is only asked of a body that has brought its first MiB, and
        # only for as much as it brought per _READ_SLICE on average.
        big = 0
        if n > _BIG_READ and self._received >= _BIG_AFTER:
            elapsed = time.monotonic() - self._started
            rate = self._received / elapsed if elapsed > 0 else float("inf")
            big = int(min(n, rate * _READ_SLICE))
        try:
            if big >= _BIG_READ:
                data: bytes = self._read_full(big, decode_content=True)
            else:
                data = self._read1(n, decode_content=True)
        except (urllib3.exceptions.HTTPError, requests.RequestException, OSError) as exc:
            raise BodyBrokenError(
                f"GET {self._url}: connection broken while reading the body: {_describe(exc)}"
            ) from exc
        self._count(len(data))
        self._received += len(data)
        if self._min_rate and data and self._received != self.size:
            elapsed = time.monotonic() - self._started
            if elapsed > self._min_rate_after and self._received < self._min_rate * elapsed:
                raise BodyBrokenError(
                    f"GET {self._url}: connection broken while reading the body: slower than "
                    f"{self._min_rate:g} bytes/s after {self._min_rate_after:g} s "
                    f"(see {ENV_MIN_RATE})"
                )
        return data


class _Session(requests.Session):
    """A session that reads the environment's proxy and CA settings once per scheme and
    host, not on every request: requests' own lookup walks ``os.environ`` twice per
    request (``getproxies_environment``), a tenth of a cold build's CPU. The environment
    does not change during a build; a redirect to another host is still judged by requests
    against the environment."""

    def __init__(self) -> None:
        super().__init__()
        self._settings: dict[tuple[object, ...], _Settings] = {}
        # (scheme, host) -> how to send there straight through urllib3 (None: through
        # requests only: a proxy, a client certificate, another adapter)
        self.routes: dict[tuple[str, str], _Route | None] = {}

    def merge_environment_settings(
        self,
        url: Any,
        proxies: Any,
        stream: Any,
        verify: Any,
        cert: Any,
    ) -> _Settings:
        if proxies:  # never passed by this client; as requests does it, then
            return super().merge_environment_settings(url, proxies, stream, verify, cert)
        parts = urlsplit(url)
        key = (parts.scheme, parts.netloc, stream, verify, cert)
        settings = self._settings.get(key)
        if settings is None:
            settings = super().merge_environment_settings(url, proxies, stream, verify, cert)
            self._settings[key] = settings
        fresh = settings.copy()
        fresh["proxies"] = dict(settings["proxies"])  # requests may add to it
        return fresh


class _Early:
    """One request made early: taken by whichever comes first, the early thread (which
    then keeps the answer for :meth:`HttpClient.get_page` / :meth:`HttpClient.get_bytes`)
    or that method itself. ``urls``: every URL whose answer this is (the ``.metadata`` of
    a release's wheels with one advertised hash); ``max_bytes``: a small file's limit
    (None: a page)."""

    def __init__(self, urls: tuple[str, ...], max_bytes: int | None) -> None:
        self.urls = urls
        self.max_bytes = max_bytes
        self._claimed = threading.Lock()
        self._done = threading.Event()
        self._answer: Any = None
        self._error: BaseException | None = None

    def claim(self) -> bool:
        """Whether the caller is the one to send the request (the first to ask)."""
        return self._claimed.acquire(blocking=False)

    def fill(self, get: Callable[[str], Any], url: str) -> bool:
        """Send the request; whether it was answered (an error is kept for the taker)."""
        try:
            self._answer = get(url)
        except BaseException as exc:  # noqa: BLE001 - handed to the taker, which raises it
            self._error = exc
            return False
        finally:
            self._done.set()
        return True

    def take(self) -> Any:
        self._done.wait()
        if self._error is not None:
            raise self._error
        return self._answer


class HttpClient:
    """A thread-safe upstream client; see the module docstring for its retry policy."""

    def __init__(
        self,
        *,
        retries: int | None = None,
        backoff: float | None = None,
        timeout: float | None = None,
        user_agent: str | None = None,
        credentials: Mapping[str, tuple[str, str]] | None = None,
        pool_size: int = 10,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        """Build a client.

        ``retries`` is the number of retries after the first attempt (default 4), ``backoff``
        the first retry's delay in seconds, doubling for each further one (default 0.5), and
        ``timeout`` the connect and per-read timeout in seconds (default 30); when not given
        they come from ``MORGAN_HTTP_RETRIES``, ``MORGAN_HTTP_BACKOFF`` and
        ``MORGAN_HTTP_TIMEOUT`` if set (a value that is not a number raises
        :class:`RuleError` naming it). A file download slower than ``MORGAN_HTTP_MIN_RATE``
        bytes/s on average (default 1024; 0: no floor) once ``MORGAN_HTTP_MIN_RATE_AFTER``
        seconds have passed (default 60) counts as broken. ``credentials`` maps a
        host (``"host"`` or ``"host:port"``) to ``(user, password)``; credentials found in a
        requested URL are remembered for its host too. ``sleep``, ``clock`` and ``jitter``
        (a number in [0, 1)) are injectable so tests never wait.
        """
        if retries is None:
            retries = int(_env_number(ENV_RETRIES, 4, minimum=0, whole=True))
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries}")
        self.retries = retries
        self.backoff = backoff if backoff is not None else _env_number(ENV_BACKOFF, 0.5, minimum=0)
        self.timeout = (
            timeout if timeout is not None else _env_number(ENV_TIMEOUT, 30.0, minimum=0.001)
        )
        self.min_rate = _env_number(ENV_MIN_RATE, 1024.0, minimum=0)
        self.min_rate_after = _env_number(ENV_MIN_RATE_AFTER, 60.0, minimum=0.001)
        self.user_agent = user_agent or _default_user_agent()
        self._pool_size = pool_size
        self._sleep = sleep
        self._clock = clock
        self._jitter = jitter
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._lock = threading.Lock()
        self._credentials: dict[str, tuple[str, str]] = dict(credentials or {})
        self._requests_sent = 0
        self._bytes_received = 0
        self._early: dict[str, _Early] = {}
        # What get_pages_early / get_bytes_early were asked for and no thread took yet: the
        # slot, its URL, and what to call with the answer; the threads working on them.
        self._early_todo: deque[tuple[_Early, str, Callable[[str, Any], None] | None]] = deque()
        self._early_threads = 0
        # While early requests may still be added (an early thread runs): every URL asked
        # for early or by get_page / get_bytes, so that none is asked for twice (a page
        # the engine took, or asked for itself, is not asked for early again).
        self._early_asked: set[str] | None = None

    def close(self) -> None:
        """Close the connection pools of every thread's session."""
        with self._lock:
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def requests_sent(self) -> int:
        """HTTP requests sent so far by every thread, retries included."""
        with self._lock:
            return self._requests_sent

    @property
    def bytes_received(self) -> int:
        """Response body bytes received so far by every thread."""
        with self._lock:
            return self._bytes_received

    def get_pages_early(
        self, urls: Iterable[str], then: Callable[[str, PageResponse], None] | None = None
    ) -> None:
        """Start GETting these pages now, on up to :data:`EARLY_THREADS` threads (with
        :meth:`get_bytes_early`'s); the first :meth:`get_page` of each URL (without
        ``etag``) takes that answer, or that failure, instead of asking again (or sends
        the request itself if no thread has yet). ``then(url, page)`` runs in the thread
        that got a page (any answer but a failure) before it takes the next request; what
        it raises is ignored (the early crawl: morgan/early.py).

        A cold build asks for its root projects' pages this way while it still imports the
        resolver (~0.1-0.2 s), so the first answers are in when resolution starts. The
        threads are daemons: a build that stops before asking for a page does not wait
        for it."""
        self._early_start([((url,), None) for url in urls], then)

    def get_bytes_early(
        self,
        files: Iterable[Sequence[str]],
        *,
        max_bytes: int,
        then: Callable[[str, bytes], None] | None = None,
    ) -> None:
        """Start GETting small files now, as :meth:`get_pages_early` does pages. Each item
        lists the URLs of one content (the ``.metadata`` of a release's wheels, equal by
        their advertised hash): the first is asked for, and the first :meth:`get_bytes`
        of any of them with this ``max_bytes`` takes the answer."""
        self._early_start([(tuple(urls), max_bytes) for urls in files if urls], then)

    def _early_start(
        self,
        items: Sequence[tuple[tuple[str, ...], int | None]],
        then: Callable[[str, Any], None] | None,
    ) -> None:
        with self._lock:
            asked = self._early_asked
            if asked is None:
                asked = self._early_asked = set()
            for urls, max_bytes in items:
                if any(url in asked for url in urls):
                    continue
                asked.update(urls)
                slot = _Early(urls, max_bytes)
                for url in urls:
                    self._early[url] = slot
                self._early_todo.append((slot, urls[0], then))
            more = min(len(self._early_todo), EARLY_THREADS - self._early_threads)
            self._early_threads += max(more, 0)
        for _ in range(more):
            threading.Thread(target=self._early_work, name="morgan-early", daemon=True).start()

    def _early_work(self) -> None:
        while True:
            with self._lock:
                if not self._early_todo:
                    self._early_threads -= 1
                    if not self._early_threads:  # nothing more is asked for early
                        self._early_asked = None
                    return
                slot, url, then = self._early_todo.popleft()
            if not slot.claim():
                continue  # asked for by its taker first
            if slot.max_bytes is None:
                answered = slot.fill(self._get_page, url)
            else:
                answered = slot.fill(
                    functools.partial(self._get_bytes, max_bytes=slot.max_bytes), url
                )
            if answered and then is not None:
                with contextlib.suppress(Exception):
                    then(url, slot.take())

    def _take_early(self, url: str, max_bytes: int | None) -> _Early | None:
        """The early slot of ``url`` for this kind of request, unless it is none or the
        caller is to send the request itself (no thread took it yet)."""
        with self._lock:
            if self._early_asked is not None:
                self._early_asked.add(url)
            early = self._early.pop(url, None)
            if early is not None:
                for alias in early.urls:
                    self._early.pop(alias, None)
        if early is None or early.max_bytes != max_bytes or early.claim():
            return None
        return early

    def get_page(self, url: str, *, etag: str | None = None) -> PageResponse:
        """GET a Simple API page, preferring PEP 691 JSON.

        With ``etag`` the request is conditional and an unchanged page gives status 304 and
        an empty body. 404 and 410 give status 404 (the project does not exist there).
        Raises :class:`UpstreamError` for any other failure, after retries when transient.
        """
        if self._early or self._early_asked is not None:
            early = self._take_early(url, None)
            if early is not None and etag is None:
                return cast(PageResponse, early.take())
        return self._get_page(url, etag=etag)

    def _get_page(self, url: str, *, etag: str | None = None) -> PageResponse:
        headers = {"Accept": PAGE_ACCEPT}
        if etag is not None:
            headers["If-None-Match"] = etag

        def read(response: _Response, clean: str) -> PageResponse:
            final = strip_credentials(response.url)
            found = response.headers.get("ETag")
            content_type = response.headers.get("Content-Type", "")
            if response.status_code in (404, 410):
                return PageResponse(404, b"", content_type, final, None)
            if response.status_code == 304:
                return PageResponse(304, b"", content_type, final, found or etag)
            self._check_ok(response, clean)
            body = self._read_body(response, clean, MAX_PAGE_BYTES)
            return PageResponse(200, body, content_type, final, found)

        return self._with_retries(url, headers, read)

    def get_bytes(self, url: str, *, max_bytes: int) -> bytes:
        """GET a small file (a PEP 658 ``.metadata``) whole; at most ``max_bytes`` bytes.

        Raises :class:`UpstreamError` on any status but 200, or a larger body.
        """
        if self._early or self._early_asked is not None:
            early = self._take_early(url, max_bytes)
            if early is not None:
                return cast(bytes, early.take())
        return self._get_bytes(url, max_bytes=max_bytes)

    def _get_bytes(self, url: str, *, max_bytes: int) -> bytes:
        headers = {"Accept-Encoding": "identity"}

        def read(response: _Response, clean: str) -> bytes:
            self._check_ok(response, clean)
            return self._read_body(response, clean, max_bytes)

        return self._with_retries(url, headers, read)

    def get_range(self, url: str, first: int, last: int | None) -> RangeBody | None:
        """GET part of a file: bytes ``first`` to ``last`` (inclusive), or with ``last``
        None and ``first`` negative its last ``-first`` bytes. None when the server answers
        with the whole file (it does not serve ranges): the body is then not read.

        Raises :class:`UpstreamError` on another status, a ``Content-Range`` that is not the
        range asked for, or a body that is not as long as it says.
        """
        want = f"bytes={first}-" if last is None else f"bytes={first}-{last}"
        if last is None and first < 0:
            want = f"bytes={first}"
        headers = {"Accept-Encoding": "identity", "Range": want}

        def read(response: _Response, clean: str) -> RangeBody | None:
            if response.status_code == 200:
                return None
            if response.status_code != 206:
                self._check_ok(response, clean)
            found = _RANGE.fullmatch(response.headers.get("Content-Range", "").strip())
            if found is None:
                raise UpstreamError(
                    f"GET {clean} ({want}): HTTP 206 without a usable Content-Range"
                    f" ({response.headers.get('Content-Range')!r})"
                )
            start, end, total = (int(g) for g in found.groups())
            asked = total + first if last is None and first < 0 else first
            if end < start or end >= total or start != max(asked, 0):
                raise UpstreamError(
                    f"GET {clean} ({want}): the server sent bytes {start}-{end}/{total}"
                )
            body = self._read_body(response, clean, end - start + 1)
            if len(body) != end - start + 1:
                raise _Transient(f"body broken: {len(body)} of {end - start + 1} bytes")
            return RangeBody(start, body, total)

        return self._with_retries(url, headers, read)

    @contextmanager
    def stream(self, url: str) -> Iterator[Download]:
        """GET a file as a stream; the caller reads (and hashes) it in chunks.

        Retries cover connecting and the status line only; see :class:`Download`.
        """
        headers = {"Accept-Encoding": "identity"}

        def opened(response: _Response, clean: str) -> _Response:
            self._check_ok(response, clean)
            return response

        response = self._with_retries(url, headers, opened, close=False)
        try:
            yield self._download(response, strip_credentials(url))
        finally:
            response.close()

    def download(self, url: str, consume: Callable[[Download], T]) -> T:
        """GET a file and give its body to ``consume``; return what ``consume`` returns.

        Unlike :meth:`stream`, a connection that breaks mid-body (reset, truncated) counts as
        a transient fault: the whole request is retried with the usual backoff, and
        ``consume`` is called again from the start, so it must be restartable (the store's
        ``put_stream`` is: a failed write leaves nothing behind). Any other exception from
        ``consume`` propagates at once.
        """
        headers = {"Accept-Encoding": "identity"}
        clean = strip_credentials(url)

        def handle(response: _Response, _clean: str) -> T:
            self._check_ok(response, clean)
            try:
                return consume(self._download(response, clean))
            except BodyBrokenError as exc:
                cause = str(exc).removeprefix(f"GET {clean}: ")
                raise _Transient(cause) from exc

        return self._with_retries(url, headers, handle)

    # --- internals --------------------------------------------------------------------------

    def _download(self, response: _Response, url: str) -> Download:
        return Download(
            response,
            url,
            self._count_bytes,
            min_rate=self.min_rate,
            min_rate_after=self.min_rate_after,
        )

    def _session(self) -> _Session:
        session: _Session | None = getattr(self._local, "session", None)
        if session is None:
            session = _Session()
            adapter = HTTPAdapter(
                pool_connections=self._pool_size, pool_maxsize=self._pool_size, max_retries=0
            )
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            session.max_redirects = MAX_REDIRECTS
            session.headers["User-Agent"] = self.user_agent
            self._local.session = session
            with self._lock:
                self._sessions.append(session)
        return session

    def _auth_for(self, url: str) -> tuple[str, tuple[str, str] | None]:
        """The URL without userinfo, and the credentials to send with it (None: netrc)."""
        parts = urlsplit(url)
        host = parts.netloc.rpartition("@")[2]
        with self._lock:
            if "@" in parts.netloc:
                user, _, password = parts.netloc.rpartition("@")[0].partition(":")
                self._credentials[host] = (unquote(user), unquote(password))
            auth = self._credentials.get(host) or self._credentials.get(parts.hostname or "")
        return strip_credentials(url), auth

    def _count_bytes(self, n: int) -> None:
        with self._lock:
            self._bytes_received += n

    def _with_retries(
        self,
        url: str,
        headers: dict[str, str],
        handle: Callable[[_Response, str], T],
        *,
        close: bool = True,
    ) -> T:
        clean, auth = self._auth_for(url)
        attempts = self.retries + 1
        for attempt in range(1, attempts + 1):
            try:
                return self._attempt(clean, auth, headers, handle, close=close)
            except _Transient as fault:
                if attempt == attempts:
                    raise UpstreamError(
                        f"GET {clean}: {fault.cause} after {attempts} "
                        + ("attempt" if attempts == 1 else "attempts")
                    ) from fault
                delay = self._delay(attempt, fault.delay)
                logger.info(
                    "GET %s: %s; retry %d/%d in %.1fs",
                    clean,
                    fault.cause,
                    attempt,
                    self.retries,
                    delay,
                )
                self._sleep(delay)
        raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover

    def _attempt(
        self,
        clean: str,
        auth: tuple[str, str] | None,
        headers: dict[str, str],
        handle: Callable[[_Response, str], T],
        *,
        close: bool,
    ) -> T:
        with self._lock:
            self._requests_sent += 1
        try:
            response = self._send(clean, auth, headers)
        except requests.TooManyRedirects as exc:
            raise UpstreamError(
                f"GET {clean}: redirect loop (more than {MAX_REDIRECTS} redirects)"
            ) from exc
        except (requests.exceptions.SSLError, urllib3.exceptions.SSLError) as exc:
            raise UpstreamError(
                f"GET {clean}: TLS error: {_describe(exc)} "
                "(set REQUESTS_CA_BUNDLE to your CA certificates if the index uses a private CA)"
            ) from exc
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise _Transient(_describe(exc)) from exc
        except requests.RequestException as exc:
            raise UpstreamError(f"GET {clean}: {_describe(exc)}") from exc
        except (urllib3.exceptions.LocationValueError, urllib3.exceptions.InvalidHeader) as exc:
            raise UpstreamError(f"GET {clean}: {_describe(exc)}") from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:  # sent straight (see _send)
            raise _Transient(_describe(exc)) from exc
        keep_open = False
        try:
            if response.status_code in RETRY_STATUSES:
                raise _Transient(
                    f"HTTP {response.status_code} {response.reason}",
                    self._retry_after(response.headers.get("Retry-After")),
                )
            result = handle(response, clean)
            keep_open = not close
            return result
        finally:
            if not keep_open:
                response.close()

    def _send(
        self, clean: str, auth: tuple[str, str] | None, headers: Mapping[str, str]
    ) -> _Response:
        """GET ``clean``, its body not read yet.

        Straight through the thread's urllib3 connection pool for the URL's host when
        requests would send it there unchanged (no proxy, no client certificate, no cookie
        kept): the request requests would make (its headers, the credentials, else the
        host's ``.netrc`` entry), without a prepared request, settings merged, hooks and a
        response object per request, which cost as much CPU as the rest of a small file's
        download (docs/performance.md, ninth round). A redirect is then followed by requests
        from the response it answers (its rules: credentials dropped for another host, the
        limit on redirects), and a cookie set is kept as requests keeps it; anything else
        goes through requests whole.
        """
        session = self._session()
        parts = urlsplit(clean)
        key = (parts.scheme, parts.netloc)
        try:
            route = session.routes[key]
        except KeyError:
            route = session.routes[key] = _route(session, clean)
        if route is None or session.cookies:
            return session.get(clean, headers=headers, auth=auth, timeout=self.timeout, stream=True)
        sent = {**route.headers, **headers}
        user = auth or route.netrc
        if user is not None:
            sent["Authorization"] = _basic_auth_str(*user)
        path = requote_uri(urlunsplit(("", "", parts.path or "/", parts.query, "")))
        pool = route.manager.connection_from_host(**route.host, pool_kwargs=dict(route.pool))
        raw = pool.urlopen(
            "GET",
            path,
            headers=sent,
            redirect=False,
            assert_same_host=False,
            preload_content=False,
            decode_content=False,
            retries=False,
            timeout=urllib3.Timeout(connect=self.timeout, read=self.timeout),
        )
        if raw.status not in _REDIRECT_STATUSES and "set-cookie" not in raw.headers:
            return _DirectResponse(raw, clean)
        # What requests.Session.send does after its adapter answered, from this answer on.
        request = session.prepare_request(
            requests.Request("GET", clean, headers=dict(headers), auth=auth)
        )
        adapter = cast(HTTPAdapter, session.get_adapter(clean))  # as _route checked
        first = adapter.build_response(request, raw)
        extract_cookies_to_jar(session.cookies, request, raw)  # type: ignore[no-untyped-call]
        if not first.is_redirect:
            return first
        settings = session.merge_environment_settings(clean, {}, True, None, None)
        try:
            history = list(
                session.resolve_redirects(
                    first,
                    request,
                    stream=True,
                    timeout=self.timeout,
                    verify=settings["verify"],  # type: ignore[arg-type]
                    cert=settings["cert"],
                    proxies=settings["proxies"],
                )
            )
        except BaseException:
            first.close()
            raise
        if not history:
            return first
        final: requests.Response = history.pop()
        final.history = [first, *history]
        return final

    def _check_ok(self, response: _Response, clean: str) -> None:
        if response.status_code == 200:
            return
        hint = ""
        if response.status_code in (401, 403):
            hint = " (check the credentials for this host in ~/.netrc or the index URL)"
        raise UpstreamError(f"GET {clean}: HTTP {response.status_code} {response.reason}{hint}")

    def _read_body(self, response: _Response, clean: str, limit: int) -> bytes:
        length = response.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > limit:
            raise UpstreamError(f"GET {clean}: response of {length} bytes exceeds {limit} bytes")
        chunks: list[bytes] = []
        total = 0
        try:
            for chunk in response.iter_content(_CHUNK):
                total += len(chunk)
                self._count_bytes(len(chunk))
                if total > limit:
                    raise UpstreamError(f"GET {clean}: response exceeds {limit} bytes")
                chunks.append(chunk)
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            # A reset or a truncated body: the whole request is worth another try.
            raise _Transient(f"body broken: {_describe(exc)}") from exc
        return b"".join(chunks)

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return retry_after
        base = min(self.backoff * 2.0 ** (attempt - 1), MAX_BACKOFF)
        # "Equal jitter": at least half the backoff, so parallel workers spread out but
        # never hammer the upstream immediately.
        return base / 2 + base / 2 * self._jitter()

    def _retry_after(self, value: str | None) -> float | None:
        if value is None:
            return None
        value = value.strip()
        if value.isdigit():
            seconds = float(value)
        else:
            try:
                when = email.utils.parsedate_to_datetime(value)
            except (TypeError, ValueError):
                return None  # unparseable: fall back to our own backoff
            seconds = when.timestamp() - self._clock()
        return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def _route(session: _Session, url: str) -> _Route | None:
    """How ``session`` can send a request for ``url`` straight through urllib3 (see
    :meth:`HttpClient._send`), or None when only requests can (a proxy for this host, a
    client certificate, a URL that is not plain ASCII http or https, an adapter of
    another kind or of a requests without the pool-key method)."""
    parts = urlsplit(url)
    if not url.isascii() or parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    adapter = session.get_adapter(url)
    if type(adapter) is not HTTPAdapter or not hasattr(
        adapter, "build_connection_pool_key_attributes"
    ):
        return None
    settings = session.merge_environment_settings(url, {}, True, None, None)
    if settings["cert"] is not None or select_proxy(url, settings["proxies"]):
        return None
    probe = requests.PreparedRequest()  # what the pool key is made of: scheme, host, port
    probe.url = urlunsplit((parts.scheme, parts.netloc, "/", "", ""))
    verify = settings["verify"]
    host, pool = adapter.build_connection_pool_key_attributes(
        probe, True if verify is None else verify, None
    )
    netrc = get_netrc_auth(url) if session.trust_env and not session.auth else None
    headers = cast(Mapping[str, str], session.headers)
    return _Route(adapter.poolmanager, host, pool, dict(headers), netrc)


def _describe(exc: BaseException) -> str:
    """A short cause for an exception from requests/urllib3, without URLs or credentials."""
    if isinstance(exc, requests.exceptions.ConnectTimeout) or (
        isinstance(exc, urllib3.exceptions.ConnectTimeoutError)
        and not isinstance(exc, urllib3.exceptions.NewConnectionError)
    ):
        return "connect timeout"
    if isinstance(
        exc, requests.exceptions.ReadTimeout | urllib3.exceptions.ReadTimeoutError | TimeoutError
    ):
        return "read timeout"
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ConnectionRefusedError):
            return "connection refused"
        if isinstance(current, ConnectionResetError):
            return "connection reset"
        if isinstance(
            current, urllib3.exceptions.IncompleteRead | urllib3.exceptions.ProtocolError
        ):
            text = str(current)
            if "IncompleteRead" in text or isinstance(current, urllib3.exceptions.IncompleteRead):
                return "body truncated (connection closed early)"
        if isinstance(current, urllib3.exceptions.NameResolutionError):
            return "host name not found"
        nested = [a for a in current.args if isinstance(a, BaseException)]
        reason = getattr(current, "reason", None)
        if isinstance(reason, BaseException):
            nested.insert(0, reason)
        current = nested[0] if nested else (current.__cause__ or current.__context__)
    return type(exc).__name__
