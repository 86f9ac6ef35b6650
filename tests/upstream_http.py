"""The HTTP layer of the fake upstream: a threaded HTTP/1.1 server that injects faults.

The server knows nothing about packages: it asks a `Site` (FakeUpstream) for the response
to each request and for the fault to apply to it, and records every request there.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

_CHUNK = 64 * 1024
_DRIP_CHUNK = 256


@dataclass(slots=True)
class Fault:
    """What to do to requests whose path matches the pattern given to `set_fault`.

    Applied in this order: `delay` (seconds, before anything); `reset` without `truncate`
    (close the connection with a TCP RST before any response); `status` (answer with that
    status, a short body and `Retry-After` if set, instead of the normal response);
    `redirect_to` (answer 302 with that Location). Otherwise the normal response is sent,
    changed by: `wrong_body` (same length, first byte flipped), `extra_bytes` (that many more
    zero bytes, Content-Length counting them), `truncate` (headers claim the full length,
    only N body bytes are sent, then the connection closes — with an RST if `reset`),
    `drip_bytes_per_sec` (the body trickles at that rate, 256 bytes at a time), `body`
    (these bytes instead of the normal body, e.g. malformed JSON, same status and headers).
    `times` is how many requests the fault applies to (None: all of them).
    """

    status: int | None = None
    times: int | None = None
    delay: float = 0
    truncate: int | None = None
    reset: bool = False
    drip_bytes_per_sec: float | None = None
    wrong_body: bool = False
    retry_after: str | None = None
    redirect_to: str | None = None
    extra_bytes: int = 0
    body: bytes | None = None


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request as the server received it: path with query, header names lowercased."""

    method: str
    path: str
    headers: dict[str, str]
    at: float = field(default_factory=time.monotonic, compare=False)  # when it arrived
    # When its response was sent in full (empty until then, or if the connection broke).
    done: list[float] = field(default_factory=list, compare=False)


@dataclass(slots=True)
class Response:
    """A response to send: a body in memory, or `length` bytes of `file` from `start`."""

    status: int
    headers: dict[str, str]
    body: bytes | None = None
    file: Path | None = None
    start: int = 0
    length: int = 0


class Site(Protocol):
    """What the server needs from the index it serves."""

    latency: float
    bandwidth: float  # bytes per second shared by all connections; 0: unlimited
    stopping: threading.Event

    def record(self, request: RecordedRequest) -> None:
        """Log a request (called before anything else happens to it)."""

    def take_fault(self, path: str) -> Fault | None:
        """The fault for a request path (without query), using up one of its `times`."""

    def respond(self, method: str, raw_path: str, headers: dict[str, str]) -> Response:
        """The normal response to a request."""


def text_response(status: int, text: str) -> Response:
    """A short text/plain response."""
    body = text.encode("utf-8")
    headers = {"Content-Type": "text/plain; charset=utf-8", "Content-Length": str(len(body))}
    return Response(status, headers, body=body)


def redirect_response(location: str, status: int = HTTPStatus.MOVED_PERMANENTLY) -> Response:
    """A redirect to `location`."""
    response = text_response(status, f"see {location}\n")
    response.headers["Location"] = location
    return response


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """A single `bytes=a-b`, `bytes=a-` or `bytes=-n` range → (start, length), or None."""
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, _, last = spec.strip().partition("-")
    try:
        if first == "":
            n = int(last)
            if n <= 0:
                return None
            start = max(0, size - n)
            return start, size - start
        start = int(first)
        end = int(last) if last else size - 1
    except ValueError:
        return None
    if start >= size or end < start:
        return None
    return start, min(end, size - 1) - start + 1


def file_response(path: Path, size: int, etag: str, range_header: str | None) -> Response:
    """A file download: Content-Length, Accept-Ranges, ETag, and 206/416 for a Range."""
    headers = {
        "Content-Type": "application/octet-stream",
        "Accept-Ranges": "bytes",
        "ETag": f'"{etag}"',
    }
    start, length, status = 0, size, HTTPStatus.OK
    if range_header is not None:
        parsed = parse_range(range_header, size)
        if parsed is None:
            headers |= {"Content-Range": f"bytes */{size}", "Content-Length": "0"}
            return Response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE, headers, body=b"")
        start, length = parsed
        status = HTTPStatus.PARTIAL_CONTENT
        headers["Content-Range"] = f"bytes {start}-{start + length - 1}/{size}"
    headers["Content-Length"] = str(length)
    return Response(status, headers, file=path, start=start, length=length)


class Link:
    """One shared network link: bodies leave no faster than `rate` bytes/s in total.

    Each chunk books the next free slot on the link, so concurrent connections share the
    capacity as they would on a real line, and the caller sleeps until its slot ends.

    A slot may start up to `SLACK` seconds in the past: the time this server spent reading
    and writing a chunk, or oversleeping, after the link's last slot ended. A real line
    keeps sending what the sender's buffers hold meanwhile; without the slack a lone
    connection left the link idle for that time after every chunk and got ~60 % of `rate`
    (one `curl` stream: 31.7 MB/s on a 52.4 MB/s link), so no client could reach a floor
    computed from `rate`. A sender sleeps only once its booked slots run more than `AHEAD`
    seconds past now, so it wakes once per few chunks, not after each. Over any stretch the
    link still carries at most ``rate × (stretch + SLACK + AHEAD)`` bytes: with both, one
    `curl` stream gets 50.4–50.8 MB/s of the 52.4 (at load 15).
    """

    SLACK = 0.010
    AHEAD = 0.004

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._free_at = 0.0

    def pace(self, nbytes: int, rate: float, stopping: threading.Event) -> bool:
        """Wait until `nbytes` could have crossed the link; True if the server is stopping."""
        now = time.monotonic()
        with self._lock:
            start = max(now - self.SLACK, self._free_at)
            self._free_at = start + nbytes / rate
            done = self._free_at
        # Sleeping only once ahead by AHEAD keeps the sleeps (and their late wake-ups, which
        # SLACK absorbs) to one per few chunks.
        return stopping.wait(done - now) if done - now > self.AHEAD else stopping.is_set()


class Server(ThreadingHTTPServer):
    """A thread per connection; `close_connections` unblocks idle keep-alive ones at stop."""

    daemon_threads = True
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], site: Site) -> None:
        super().__init__(address, _Handler)
        self.site = site
        self.link = Link()
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def handle_error(self, request: object, client_address: object) -> None:
        """Report a handler's exception, except a client hanging up (tests do that on purpose:
        timeouts, abandoned downloads)."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)  # type: ignore[arg-type]

    def track(self, conn: socket.socket, *, open_: bool) -> None:
        """Remember (or forget) a live connection."""
        with self._connections_lock:
            if open_:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def close_connections(self) -> None:
        """Shut down every live connection, so no handler thread waits on an idle client."""
        with self._connections_lock:
            connections = list(self._connections)
        for conn in connections:
            # OSError: the client closed it already; nothing left to unblock.
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: without TCP_NODELAY, Nagle's algorithm and
    # delayed ACKs add ~40 ms to every keep-alive request.
    disable_nagle_algorithm = True
    # Idle keep-alive connections end after this long, so threads do not pile up.
    timeout = 30
    server: Server

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib name
        """Keep test output quiet: the request log is the site's."""

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, open_=True)

    def finish(self) -> None:
        self.server.track(self.connection, open_=False)
        super().finish()

    def do_GET(self) -> None:
        self._handle("GET")

    def do_HEAD(self) -> None:
        self._handle("HEAD")

    def _handle(self, method: str) -> None:
        site = self.server.site
        headers = {k.lower(): v for k, v in self.headers.items()}
        request = RecordedRequest(method, self.path, headers)
        site.record(request)
        if site.latency:
            site.stopping.wait(site.latency)
        fault = site.take_fault(urlsplit(self.path).path)
        if fault is not None and fault.delay:
            site.stopping.wait(fault.delay)
        if fault is not None and fault.reset and fault.truncate is None:
            self._reset()
            return
        if fault is not None and fault.status is not None:
            response = text_response(fault.status, f"injected {fault.status}\n")
            if fault.retry_after is not None:
                response.headers["Retry-After"] = fault.retry_after
        elif fault is not None and fault.redirect_to is not None:
            response = redirect_response(fault.redirect_to, HTTPStatus.FOUND)
        else:
            response = site.respond(method, self.path, headers)
            if fault is not None and fault.body is not None:
                response.body, response.file = fault.body, None
        self._send(method, response, fault or Fault())
        request.done.append(time.monotonic())

    def _send(self, method: str, response: Response, fault: Fault) -> None:
        body_len = len(response.body) if response.body is not None else response.length
        self.send_response(response.status)
        for key, value in response.headers.items():
            if key == "Content-Length":
                value = str(body_len + fault.extra_bytes)  # noqa: PLW2901 - the one rewrite
            self.send_header(key, value)
        self.end_headers()
        if method == "HEAD":
            return
        sent = 0
        flip = fault.wrong_body
        rate = fault.drip_bytes_per_sec
        stopping = self.server.site.stopping
        for original in _chunks(response, fault.extra_bytes, small=rate is not None):
            chunk = original
            if flip and chunk:
                chunk = bytes([chunk[0] ^ 0xFF]) + chunk[1:]
                flip = False
            if fault.truncate is not None and sent + len(chunk) >= fault.truncate:
                self.wfile.write(chunk[: fault.truncate - sent])
                self._cut(reset=fault.reset)
                return
            self.wfile.write(chunk)
            sent += len(chunk)
            if rate is not None and stopping.wait(len(chunk) / rate):
                self.close_connection = True  # the server is stopping: give up
                return
            link_rate = self.server.site.bandwidth
            if link_rate and self.server.link.pace(len(chunk), link_rate, stopping):
                self.close_connection = True
                return
        if fault.truncate is not None:
            # The body was shorter than the limit: still end the connection as promised.
            self._cut(reset=fault.reset)

    def _cut(self, *, reset: bool) -> None:
        self.close_connection = True
        if reset:
            self._reset()

    def _reset(self) -> None:
        """Close the connection with a TCP RST (SO_LINGER 0) instead of a clean FIN."""
        self.close_connection = True
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        # Close the descriptor now: socketserver would otherwise shut the socket down
        # cleanly (a FIN) before its last reference goes.
        os.close(self.connection.detach())


def _chunks(response: Response, extra: int, *, small: bool) -> Iterable[bytes]:
    size = _DRIP_CHUNK if small else _CHUNK
    if response.body is not None:
        body = response.body + b"\0" * extra
        return [body[i : i + size] for i in range(0, len(body), size)]
    if response.file is None:
        raise ValueError("a Response needs a body or a file")
    return _file_chunks(response.file, response.start, response.length, extra, size)


def _file_chunks(path: Path, start: int, length: int, extra: int, size: int) -> Iterator[bytes]:
    """`length` bytes of a file from `start`, streamed, then `extra` zero bytes."""
    with path.open("rb") as f:
        f.seek(start)
        left = length
        while left > 0:
            chunk = f.read(min(size, left))
            if not chunk:
                raise OSError(f"{path} shrank while being served")
            left -= len(chunk)
            yield chunk
    if extra:
        yield b"\0" * extra
