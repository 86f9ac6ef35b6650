"""Morgan's mirror server: one file, standard library only, Python 3.8+.

``morgan build`` copies this file into every mirror root, so ``python server.py`` serves the
mirror it sits in; ``morgan serve`` runs the same code in-process. It serves the generation
that ``<root>/index`` points at (resolved once per request, so a response never mixes two
generations and a new build is picked up without a restart):

- ``/simple/``, ``/simple/<project>/`` and ``/env/<name>/simple/...``: the pre-rendered
  ``index.html`` / ``index.json`` chosen by PEP 691 content negotiation (``Accept`` with
  q-values, ``?format=``), exact ``Content-Type``, ``Vary: Accept``, 404 for unknown
  projects, 301 to the normalized name and to the trailing-slash form, 406 when nothing
  offered is acceptable.
- files and ``.metadata``: ``Content-Length``, ``ETag`` (the blake3 content address),
  ``Last-Modified``, ``HEAD``, one ``Range`` (206/416), ``If-None-Match``/``If-Modified-Since``
  (304), immutable caching, streamed with ``sendfile``; never compressed.
- ``/``: a page for people (projects, versions, environments, sizes, a search form that
  needs no JavaScript).

Safety: request targets are parsed strictly (no dot segments, no encoded ``/`` or ``\\``, no
NUL, a whitelist of characters, bounded lengths), only GET and HEAD are served, a symlink is
followed only when it resolves inside ``<root>/store/objects/``, a regular file only when it
lies inside the generation, and nothing ever lists a directory. One waiter thread holds
every connection between requests and reads request heads without blocking; it answers a
head byte-identical to one answered before from memory (a kept :class:`Answer`: pages,
small files, redirects, 304s), without blocking; at most ``--max-connections`` worker
threads answer every other request, so idle keep-alive and slowloris connections hold no
worker, and a head not complete within 20 s gets its connection closed. ``--processes N``
runs N such processes on one listening socket (docs/server-load.md has the figures).

See docs/server.md for the decisions behind each header.
"""

import argparse
import base64
import binascii
import contextlib
import email.utils
import errno
import functools
import hashlib
import hmac
import html
import http
import io
import itertools
import json
import os
import queue
import re
import select
import selectors
import signal
import socket
import socketserver
import stat
import sys
import threading
import time
import traceback
import urllib.parse
from typing import IO, Callable, Dict, List, Optional, Sequence, Set, Tuple, Type, Union

try:
    import ssl
except ImportError:  # a Python built without OpenSSL still serves plain HTTP
    ssl = None  # type: ignore[assignment]

# What a non-blocking socket raises when it can take or give nothing now (a TLS socket
# raises its own "want read/write" errors, also when the other direction must move first).
_WOULD_BLOCK: Tuple[Type[BaseException], ...] = (BlockingIOError,)
if ssl is not None:
    _WOULD_BLOCK += (ssl.SSLWantReadError, ssl.SSLWantWriteError)

SERVER_NAME = "morgan-server"

DispatchFn = Callable[[socket.socket, object, bytes], None]
CloseFn = Callable[[socket.socket], None]
# (buffer, client address) -> (whole response, keep the connection, head length) or None
LookupFn = Callable[[socket.socket, bytearray, object], Optional[Tuple[bytes, bool, int]]]

MAX_REQUEST_LINE = 8192
MAX_PATH = 4096
MAX_SEGMENT = 255
MAX_HEADER_LINE = 8192
MAX_HEADER_BYTES = 32768
MAX_HEADER_COUNT = 64
MAX_PAGE_JSON = 64 * 1024 * 1024  # a project's JSON page read for the human page
# Bodies up to this size are read and sent with the head in one write (sendfile's set-up
# costs more than the copy for a page); store objects that small are kept in memory.
SMALL_BODY = 1024 * 1024
BODY_CACHE_BYTES = 64 * 1024 * 1024  # per generation
STREAM_TURN = 1024 * 1024  # bytes of a file the waiter sends to one connection per turn
EVICT_IDLE = 1.0  # s: at the connection cap, an answered connection this idle may be closed
EVICT_NEW = 0.25  # s: ... and one without a complete head this old
_SENDFILE = getattr(os, "sendfile", None)
RESOLVED_CACHE_ENTRIES = 65536  # per generation
DEFAULT_PROCESSES = 1  # see docs/server-load.md, "Several processes"
# Answers kept per generation by the exact bytes of the request head (see Answer): a head
# longer than this is never kept, and the table starts afresh past this many bytes of keys
# and response heads (bodies are shared with the body cache and not counted again).
ANSWER_KEY_BYTES = 4096
ANSWER_CACHE_BYTES = 16 * 1024 * 1024
# The User-Agent as logged: pip's and uv's carry JSON (Python, implementation, OS, libc, CPU)
# that `morgan missing` and `morgan clients` read, about 400 bytes; longer ones are cut.
MAX_AGENT = 1024

JSON_TYPE = "application/vnd.pypi.simple.v1+json"
V1_HTML_TYPE = "application/vnd.pypi.simple.v1+html"
TEXT_HTML = "text/html"
# The exact header each chosen representation is sent with: uv compares the part before ';'
# byte for byte and pip lower-cases and prefix-matches, so these are lowercase, no spaces.
CONTENT_TYPES = {
    JSON_TYPE: JSON_TYPE,
    V1_HTML_TYPE: V1_HTML_TYPE,
    TEXT_HTML: "text/html; charset=utf-8",
}
# ?format= values (PEP 691 names plus short forms) -> the representation they select.
FORMATS = {
    JSON_TYPE: JSON_TYPE,
    "application/vnd.pypi.simple.latest+json": JSON_TYPE,
    V1_HTML_TYPE: V1_HTML_TYPE,
    "application/vnd.pypi.simple.latest+html": V1_HTML_TYPE,
    TEXT_HTML: TEXT_HTML,
    "json": JSON_TYPE,
    "html": TEXT_HTML,
}
# Media ranges that name a representation exactly (PEP 691's "latest" aliases v1).
_EXACT = {
    JSON_TYPE: (JSON_TYPE, "application/vnd.pypi.simple.latest+json"),
    V1_HTML_TYPE: (V1_HTML_TYPE, "application/vnd.pypi.simple.latest+html"),
    TEXT_HTML: (TEXT_HTML,),
}
# Tie-break among equal q: when a client named types, the richer API wins; when only */*
# matched (a browser, curl), HTML wins as PEP 691 recommends for a default.
_PREFER_NAMED = {JSON_TYPE: 3, V1_HTML_TYPE: 2, TEXT_HTML: 1}
_PREFER_WILDCARD = {TEXT_HTML: 3, V1_HTML_TYPE: 2, JSON_TYPE: 1}

FILE_CACHE = "public, max-age=31536000, immutable"
PAGE_CACHE = "public, max-age=60"
ALLOWED_METHODS = "GET, HEAD"
KNOWN_METHODS = frozenset(["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT"])

_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_SEGMENT = re.compile(r"^[A-Za-z0-9_+!~-][A-Za-z0-9._+!~-]*$")
_PROJECT = re.compile(r"^([A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9._-]*[A-Za-z0-9])$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_RAW_PATH = re.compile(r"^[A-Za-z0-9._~!$&'()*+,;=:@%/-]*$")
_VERSION = re.compile(r"^HTTP/(\d)\.(\d)$")
_HEAD_LINE = re.compile(rb"^[^ ]+ [^ ]+ HTTP/1\.\d\r?$")
_RANGE_SPEC = re.compile(r"^([0-9]{0,18})-([0-9]{0,18})$")
# A request target is visible ASCII (RFC 9112 §3.2, RFC 3986): a control character (CR,
# NUL, ESC...) or a byte past 0x7e is refused before it can reach a header or the log.
_TARGET_UNSAFE = re.compile(r"[^\x21-\x7e]")
# What the access log writes as \xHH: anything but printable ASCII, and the backslash.
_LOG_UNSAFE = re.compile(r"[^\x20-\x5b\x5d-\x7e]")
_PHRASES = {status.value: status.phrase for status in http.HTTPStatus}
# [(whole second, its Date header value)]: one formatdate per second; the tuple is replaced
# whole, so a thread never reads a second with another second's text.
_DATE_CACHE = [(0, b"")]


_LOG_TIME_CACHE = [(0, "")]  # the same, for the access log's timestamp


def log_time() -> str:
    """The access log's timestamp for now (recomputed once a second)."""
    now = int(time.time())
    second, text = _LOG_TIME_CACHE[0]
    if second != now:
        text = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now))
        _LOG_TIME_CACHE[0] = (now, text)
    return text


def http_date_bytes() -> bytes:
    """The ``Date`` header value for now, as the bytes sent (recomputed once a second)."""
    now = int(time.time())
    second, text = _DATE_CACHE[0]
    if second != now:
        text = email.utils.formatdate(now, usegmt=True).encode("ascii")
        _DATE_CACHE[0] = (now, text)
    return text


class HttpError(Exception):
    """A request answered with an error status; ``close`` drops the connection after it,
    ``log`` is written to the error log."""

    def __init__(
        self,
        status: int,
        reason: str,
        headers: Optional[List[Tuple[str, str]]] = None,
        *,
        close: bool = False,
        log: Optional[str] = None,
        delay: float = 0.0,
    ) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.headers = headers or []
        self.close = close
        self.log = log  # what the server's error log must say about it (never the client)
        self.delay = delay  # seconds the response waits (in the waiter) before it is sent


def canonicalize(name: str) -> str:
    """PEP 503 normalized project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_target(target: str) -> Tuple[Tuple[str, ...], bool, str]:
    """Split an origin-form request target into decoded segments, trailing slash and query.

    Raises :class:`HttpError` (400 or 414) for anything that could name a path outside the
    tree or that no mirror file is called: dot segments, empty segments, backslashes, NUL and
    other control characters, non-ASCII, encoded ``/`` or ``%``, malformed escapes, fragments.
    """
    if len(target) > MAX_PATH:
        raise HttpError(414, "request target longer than %d bytes" % MAX_PATH)
    if not target.startswith("/"):
        raise HttpError(400, "request target must start with '/'")
    path, _, query = target.partition("?")
    if not _RAW_PATH.match(path):
        raise HttpError(400, "request path contains a character no mirror path has")
    parts = path.split("/")[1:]
    slash = parts[-1] == ""
    if slash:
        parts.pop()
    segments = []
    for raw in parts:
        if raw == "":
            raise HttpError(400, "empty path segment ('//')")
        try:
            segment = urllib.parse.unquote(raw, encoding="utf-8", errors="strict")
        except UnicodeDecodeError:
            raise HttpError(400, "path segment is not UTF-8") from None
        if "%" in raw and re.search(r"%(?![0-9A-Fa-f]{2})", raw):
            raise HttpError(400, "malformed percent-escape in path")
        if len(segment) > MAX_SEGMENT or not _SEGMENT.match(segment):
            raise HttpError(400, "path segment %r is not a mirror name" % segment[:80])
        segments.append(segment)
    return tuple(segments), slash, query


def parse_accept(header: Optional[str]) -> List[Tuple[str, float]]:
    """``Accept`` -> [(media range, q)]; no header means ``*/*``; bad ranges are dropped."""
    if header is None or not header.strip():
        return [("*/*", 1.0)]
    ranges = []
    for part in header.split(","):
        fields = part.split(";")
        media = fields[0].strip().lower()
        if media.count("/") != 1:
            continue
        q: Optional[float] = 1.0
        for param in fields[1:]:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value.strip())
                except ValueError:
                    q = None
                if q is not None and not 0.0 <= q <= 1.0:
                    q = None
        if q is not None:
            ranges.append((media, q))
    return ranges


def select_type(accept: Optional[str], offered: Sequence[str]) -> Optional[str]:
    """The offered representation the client prefers, or None (406): PEP 691 + RFC 9110.

    Each offer takes the q of its most specific matching range (exact, ``type/*``, ``*/*``);
    the highest q wins, then the more specific match, then :data:`_PREFER_NAMED` (or, when
    only ``*/*`` matched, :data:`_PREFER_WILDCARD`). q=0 means "not acceptable".
    """
    ranges = parse_accept(accept)
    best: Optional[Tuple[float, int, int]] = None
    chosen = None
    for offer in offered:
        major = offer.split("/")[0]
        match: Optional[Tuple[int, float]] = None
        for media, q in ranges:
            if media in _EXACT[offer]:
                spec = 2
            elif media == major + "/*":
                spec = 1
            elif media == "*/*":
                spec = 0
            else:
                continue
            if match is None or spec > match[0] or (spec == match[0] and q > match[1]):
                match = (spec, q)
        if match is None or match[1] <= 0.0:
            continue
        prefer = (_PREFER_NAMED if match[0] > 0 else _PREFER_WILDCARD)[offer]
        key = (match[1], match[0], prefer)
        if best is None or key > best:
            best, chosen = key, offer
    return chosen


def parse_range(header: str, size: int) -> Optional[Tuple[int, int]]:
    """A single ``bytes=`` range -> (start, length); None to ignore it (send everything).

    Raises :class:`HttpError` 416 when the one range is well-formed but unsatisfiable.
    Several ranges are answered with the whole file, which RFC 9110 allows.
    """
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    # ASCII digits only (str.isdigit also accepts "²" and other scripts' digits, which
    # int() then rejects), at most 18 of them (no file is an exabyte; int() of thousands of
    # digits is slow or refused): anything else is malformed, so the whole file is sent.
    match = _RANGE_SPEC.match(spec.strip())
    if match is None:
        return None
    first, last = match.group(1), match.group(2)
    if not first and not last:
        return None
    unsatisfiable = HttpError(
        416, "range not satisfiable", [("Content-Range", "bytes */%d" % size)]
    )
    if not first:  # suffix: the last N bytes
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise unsatisfiable
        length = min(suffix, size)
        return size - length, length
    start = int(first)
    if start >= size:
        raise unsatisfiable
    end = int(last) if last else size - 1
    if end < start:
        return None
    return start, min(end, size - 1) - start + 1


def etag_matches(header: str, etag: str) -> bool:
    """``If-None-Match`` weak comparison (RFC 9110 §13.1.2)."""
    if header.strip() == "*":
        return True
    for item in header.split(","):
        candidate = item.strip()
        if candidate.startswith("W/"):
            candidate = candidate[2:]
        if candidate == etag:
            return True
    return False


class CachedBody:
    """A small store object held in memory: its bytes and the headers derived from its stat."""

    __slots__ = ("body", "etag", "last_modified", "mtime")

    def __init__(self, body: bytes, etag: str, mtime: float) -> None:
        self.body = body
        self.etag = etag
        self.mtime = mtime
        self.last_modified = email.utils.formatdate(mtime, usegmt=True)


class Answer:
    """A complete response known to be a pure function of its request head's bytes and the
    generation (a page or small store object from memory, a redirect, a 304): sent again
    byte for byte, with a fresh ``Date``, to the same head. ``pre`` ends with ``Date: ``,
    ``post`` holds the rest of the head (and the body, for a small one) or ``body`` the body;
    ``line``, ``agent``, ``status`` and ``size`` are for the access log."""

    __slots__ = ("agent", "body", "keep", "line", "post", "pre", "size", "status")

    def __init__(
        self,
        pre: bytes,
        post: bytes,
        body: bytes,
        keep: bool,
        *,
        status: int,
        size: int,
        line: str,
        agent: str,
    ) -> None:
        self.pre = pre
        self.post = post
        self.body = body
        self.keep = keep
        self.status = status
        self.size = size
        self.line = line
        self.agent = agent


class Generation:
    """One resolved generation directory; every path of a response is taken from here.

    A generation is never modified after the build that wrote it, and store objects are
    immutable (named by their content), so this object remembers what it checked: which
    request paths resolve to which allowed file, and the bytes of small store objects. Only
    positive results are kept, each one verified exactly as an uncached lookup is.
    """

    def __init__(self, root: str, path: str) -> None:
        self.root = root
        self.path = path
        self.objects_prefix = os.path.join(root, "store", "objects") + os.sep
        self.prefix = path + os.sep
        self._resolved: Dict[str, Tuple[str, bool]] = {}
        self._bodies: Dict[str, CachedBody] = {}
        self._present: Set[str] = set()
        self._dirs: Set[str] = set()
        self._body_bytes = 0
        self._lock = threading.Lock()
        self.answers: Dict[bytes, Answer] = {}  # by the exact bytes of the head
        self.answers_by_key: Dict[bytes, Answer] = {}  # by answer_key()
        self._answer_bytes = 0

    def exists(self, path: str) -> bool:
        """Whether ``path`` names an entry of the tree (remembered once seen)."""
        if path in self._resolved or path in self._present:
            return True
        found = os.path.lexists(path)
        if found and len(self._present) < RESOLVED_CACHE_ENTRIES:
            self._present.add(path)
        return found

    def is_dir(self, path: str) -> bool:
        """Whether ``path`` is a directory of the tree (remembered once seen)."""
        if path in self._dirs:
            return True
        found = os.path.isdir(path)
        if found and len(self._dirs) < RESOLVED_CACHE_ENTRIES:
            self._dirs.add(path)
        return found

    def cached(self, path: str) -> Optional[CachedBody]:
        """The in-memory body of ``path`` when it is a small store object served before."""
        hit = self._resolved.get(path)
        return self._bodies.get(hit[0]) if hit is not None else None

    def remember(self, path: str, body: bytes, etag: str, mtime: float) -> None:
        """Keep the bytes of store object ``path`` (just read whole) for later requests."""
        hit = self._resolved.get(path)
        if hit is None or not hit[1] or len(body) > SMALL_BODY:
            return
        with self._lock:
            if hit[0] in self._bodies or self._body_bytes + len(body) > BODY_CACHE_BYTES:
                return
            self._bodies[hit[0]] = CachedBody(body, etag, mtime)
            self._body_bytes += len(body)

    def keep_answer(self, head: bytes, answer: Answer) -> None:
        """Remember ``answer`` for later requests whose head is exactly ``head``."""
        if len(head) > ANSWER_KEY_BYTES:
            return
        found = answer_key(head)
        cost = 2 * len(head) + len(answer.pre) + len(answer.post) + 400
        with self._lock:
            if self._answer_bytes + cost > ANSWER_CACHE_BYTES:
                # Many distinct heads (user agents, queries): start afresh, stay bounded.
                self.answers = {}
                self.answers_by_key = {}
                self._answer_bytes = 0
            if head not in self.answers:
                self.answers[head] = answer
                self._answer_bytes += cost
            if found is not None and found[0] not in self.answers_by_key:
                self.answers_by_key[found[0]] = answer

    def _resolve(self, path: str) -> Tuple[str, bool]:
        hit = self._resolved.get(path)
        if hit is not None:
            return hit
        try:
            link_stat = os.lstat(path)
        except OSError as exc:
            raise _open_error(exc, path) from None
        real = os.path.realpath(path)
        in_store = real.startswith(self.objects_prefix)
        if stat.S_ISLNK(link_stat.st_mode) and not in_store:
            raise HttpError(404, "not found (link points outside the store)")
        if not in_store and not real.startswith(self.prefix):
            raise HttpError(404, "not found (outside the generation)")
        if len(self._resolved) < RESOLVED_CACHE_ENTRIES:
            self._resolved[path] = (real, in_store)
        return real, in_store

    def open_file(self, path: str) -> Tuple[IO[bytes], os.stat_result, str, bool]:
        """Open a regular file of the tree -> (file, stat, ETag, in store); 404 when not servable.

        A symlink counts only if it resolves inside ``store/objects/``; anything else must
        resolve inside this generation. Only a regular file is served: a FIFO, socket, device
        or directory is the 404 of a missing file, found without blocking and without keeping
        a descriptor. An open that fails for another reason (permissions, no descriptors
        left) is a 500, logged. The ETag is the blake3 content address for a store object,
        else a strong validator from (size, mtime_ns, inode) of the file itself.
        """
        real, in_store = self._resolve(path)
        try:
            fobj, st = open_regular(real, follow=False)
        except OSError as exc:
            self._resolved.pop(path, None)  # removed (gc?) or replaced: check afresh next time
            raise _open_error(exc, path) from None
        name = os.path.basename(real)
        if in_store and _HEX64.match(name):
            etag = '"%s"' % name
        else:
            etag = '"%x-%x-%x"' % (st.st_size, st.st_mtime_ns, st.st_ino)
        return fobj, st, etag, in_store


# open() failures that mean "there is no servable file here" (404); any other is a 500.
_NOT_THERE = frozenset(
    [errno.ENOENT, errno.ENOTDIR, errno.ELOOP, errno.ENXIO, errno.ENAMETOOLONG, errno.EISDIR]
)


def open_regular(path: str, *, follow: bool) -> Tuple[IO[bytes], os.stat_result]:
    """Open ``path`` for reading if it is a regular file -> (unbuffered file, its stat).

    Opened with ``O_NONBLOCK`` (a FIFO opens at once instead of waiting for a writer; the
    flag changes nothing for a regular file) and checked with ``fstat`` on the descriptor,
    so a FIFO, socket, device or directory raises ``FileNotFoundError`` without ever
    blocking, and the descriptor is closed on every path that does not return it.
    ``follow=False`` refuses a symlink as the last component (``ELOOP``).
    """
    flags = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0)
    if not follow:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags)
    try:
        st = os.fstat(fd)
        fobj = os.fdopen(fd, "rb", buffering=0) if stat.S_ISREG(st.st_mode) else None
    except BaseException:
        os.close(fd)
        raise
    if fobj is None:
        os.close(fd)
        raise FileNotFoundError(errno.ENOENT, "not a regular file", path)
    return fobj, st


def _open_error(exc: OSError, path: str) -> "HttpError":
    if exc.errno in _NOT_THERE:
        return HttpError(404, "not found")
    return HttpError(
        500,
        "internal error: cannot open a file",
        close=True,
        log="cannot open %s: %s" % (path, exc),
    )


class Waiter:
    """Holds connections between requests, reads their request heads and sends responses,
    all in one thread that never blocks.

    A connection costs no worker thread until it sends a request that needs one, so idle
    keep-alive clients and slowloris clients that trickle bytes cannot occupy the workers.
    ``lookup(buf, address)`` is asked first for each complete head: it returns the bytes of
    the whole response, whether the connection stays open and how many bytes of ``buf`` the
    head took, or None. A head that ``lookup`` does not answer is handed to
    ``dispatch(sock, address, head)`` with the bytes received; the worker gives the
    connection back with :meth:`add`, with what it could not send at once (the rest of a
    head, a body, or a file to stream: a client that reads slowly, or never, holds no
    worker). Responses are sent without blocking, the rest when the socket is writable
    again (nothing more is read from that connection meanwhile, so pipelined requests are
    answered in order); a file goes out with ``os.sendfile`` at most 1 MiB per turn, so one
    fast download does not hold up the others. A head not complete ``timeout`` seconds
    after the connection arrived (or after the previous response), or a response that makes
    no progress for ``send_timeout`` seconds, gets the connection closed; so does
    :meth:`evict`, oldest first, when the server is at its connection cap. ``close(sock)``
    is called when a connection is dropped here, ``on_error(message)`` with the traceback
    of anything unexpected (the waiter goes on).
    """

    def __init__(
        self,
        timeout: float,
        dispatch: "DispatchFn",
        close: "CloseFn",
        on_error: Callable[[str], None],
        *,
        lookup: "Optional[LookupFn]" = None,
        send_timeout: float = 60.0,
    ) -> None:
        self._timeout = timeout
        self._send_timeout = send_timeout
        self._on_error = on_error
        self._dispatch = dispatch
        self._close = close
        self._lookup = lookup
        self._selector = selectors.DefaultSelector()
        self._incoming: List[_Incoming] = []
        self._held: List[_Incoming] = []  # responses held back until their time
        self._lock = threading.Lock()
        self._stop = False
        self._evict = 0
        self._next_scan = 0.0
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._thread = threading.Thread(target=self._run, name="morgan-waiter", daemon=True)
        self._thread.start()

    def add(
        self,
        sock: socket.socket,
        address: object,
        pending: bytes,
        *,
        out: bytes = b"",
        stream: "Optional[_Stream]" = None,
        keep: bool = True,
        answered: bool = True,
        hold: float = 0.0,
    ) -> None:
        """Take ``sock``: send ``out`` then ``stream`` (the rest of a response), then close
        it unless ``keep``, else wait for the next request head (``pending``: bytes of it
        already read). ``answered``: a request of this connection was answered already
        (False for a new connection: see :meth:`evict`). ``hold``: seconds to wait before
        sending ``out`` (a 401 after a failed login), holding no thread."""
        hold_until = time.monotonic() + hold if hold > 0 else 0.0
        with self._lock:
            self._incoming.append(
                _Incoming(
                    sock,
                    address,
                    pending,
                    out=out,
                    stream=stream,
                    keep=keep,
                    answered=answered,
                    hold_until=hold_until,
                )
            )
        self._wake()

    def evict(self, count: int) -> None:
        """Close ``count`` connections (the server is at its cap): those that have never
        completed a request head first, oldest first; then those that have waited longest
        for their next request or without progress on a response."""
        with self._lock:
            self._evict += count
        self._wake()

    def stop(self) -> None:
        """Close every waiting connection and end the thread."""
        self._stop = True
        self._wake()

    def _wake(self) -> None:
        # A full socketpair buffer already holds a wake-up: nothing is lost by skipping.
        with contextlib.suppress(BlockingIOError, OSError):
            self._wake_w.send(b"x")

    def _run(self) -> None:
        # Insertion order is age: a connection is (re)inserted when it starts waiting for a
        # request head and when a response makes progress, so the first is the one to evict.
        waiting: Dict[socket.socket, _Waiting] = {}
        while not self._stop:
            try:
                self._step(waiting)
            except Exception:  # the waiter must outlive any one bad connection: report it
                self._on_error("waiter: " + traceback.format_exc())
        for state in list(waiting.values()):
            self._drop(waiting, state)
        with self._lock:
            for item in self._incoming + self._held:
                if item.stream is not None:
                    item.stream.close()
                self._close(item.sock)
            self._incoming = []
            self._held = []
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()

    def _step(self, waiting: "Dict[socket.socket, _Waiting]") -> None:
        for key, _ in self._selector.select(timeout=0.25):
            if key.data is None:
                with contextlib.suppress(BlockingIOError, OSError):
                    self._wake_r.recv(4096)
                continue
            state = key.data
            try:
                self._event(waiting, state)
            except Exception:  # one connection's failure: report it, drop only that one
                self._on_error("waiter: " + traceback.format_exc())
                if state.sock in waiting:
                    self._drop(waiting, state)
        with self._lock:
            incoming, self._incoming = self._incoming, []
            evict, self._evict = self._evict, 0
        now = time.monotonic()
        for item in incoming:
            if item.hold_until > now:
                self._held.append(item)
            else:
                self._take(waiting, item, now)
        if self._held:
            due = [item for item in self._held if item.hold_until <= now]
            self._held = [item for item in self._held if item.hold_until > now]
            for item in due:
                self._take(waiting, item, now)
        if evict:
            self._evict_oldest(waiting, evict)
        if now >= self._next_scan:  # a scan is O(connections): at most 4 a second
            self._next_scan = now + 0.25
            for state in [w for w in waiting.values() if w.deadline <= now]:
                self._drop(waiting, state)  # idle keep-alive, too slow, or not reading

    def _evict_oldest(self, waiting: "Dict[socket.socket, _Waiting]", count: int) -> None:
        """Drop ``count`` connections: first those that never completed a request head
        (slowloris, connections that send nothing), oldest first; then, only if there are
        not enough of those, the rest oldest first (idle keep-alive, the slowest readers)
        among those idle for :data:`EVICT_IDLE` s at least: a client between two requests
        on its keep-alive connection is not cut as its next request arrives, nor a new one
        before its head could arrive (:data:`EVICT_NEW`); the accepting thread waits a
        moment for room instead."""
        now = time.monotonic()
        # A connection younger than EVICT_NEW has had no fair chance to send its head yet.
        fresh = now - EVICT_NEW
        unanswered = (w for w in waiting.values() if not w.answered and w.since <= fresh)
        states = list(itertools.islice(unanswered, count))
        if len(states) < count:
            idle_since = now - EVICT_IDLE
            rest = (w for w in waiting.values() if w.answered and w.since <= idle_since)
            states += itertools.islice(rest, count - len(states))
        for state in states:
            self._drop(waiting, state)

    def _take(
        self, waiting: "Dict[socket.socket, _Waiting]", item: "_Incoming", now: float
    ) -> None:
        state = _Waiting(item.sock, item.address, bytearray(item.pending), now + self._timeout)
        state.out, state.stream, state.keep = memoryview(item.out), item.stream, item.keep
        state.answered = item.answered
        state.handshake = not item.answered and _is_tls(item.sock)
        try:
            item.sock.setblocking(False)
            self._selector.register(item.sock, selectors.EVENT_READ, state)
        except (OSError, ValueError):
            if item.stream is not None:
                item.stream.close()
            self._close(item.sock)  # already closed by the peer
            return
        waiting[item.sock] = state
        if state.handshake:
            self._handshake(waiting, state)
            return
        worker_rest = state.out or state.stream is not None or not state.keep
        if worker_rest and not self._flush(waiting, state):
            return
        if _head_ready(state.buf):  # a pipelined request already read: answer it now
            self._serve(waiting, state)

    def _event(self, waiting: "Dict[socket.socket, _Waiting]", state: "_Waiting") -> None:
        if state.writing:  # registered for writing: the rest of a response
            if self._flush(waiting, state):
                self._serve(waiting, state)
            return
        if state.handshake:
            self._handshake(waiting, state)
            return
        try:
            data = state.sock.recv(65536)
            # TLS: a record decrypted whole may hold more than recv returned, and the
            # selector will not report it (the socket has nothing more to read).
            pending = _tls_pending(state.sock)
            while pending and data:
                more = state.sock.recv(pending)
                data += more
                pending = _tls_pending(state.sock) if more else 0
        except _WOULD_BLOCK:
            return
        except OSError:
            data = b""  # reset by the peer: same as a close
        if not data:
            self._drop(waiting, state)
            return
        state.buf += data
        if _head_ready(state.buf):
            self._serve(waiting, state)

    def _handshake(self, waiting: "Dict[socket.socket, _Waiting]", state: "_Waiting") -> None:
        """Move a new TLS connection's handshake along without blocking (it must end
        within the head timeout, like a request head)."""
        try:
            state.sock.do_handshake()  # type: ignore[attr-defined]
        except ssl.SSLWantReadError:
            self._selector.modify(state.sock, selectors.EVENT_READ, state)
            return
        except ssl.SSLWantWriteError:
            self._selector.modify(state.sock, selectors.EVENT_WRITE, state)
            return
        except (OSError, ValueError):  # not TLS (plain HTTP on this port), bad hello, reset
            self._drop(waiting, state)
            return
        state.handshake = False
        self._selector.modify(state.sock, selectors.EVENT_READ, state)
        if _tls_pending(state.sock):  # the request came with the handshake's last flight
            self._event(waiting, state)

    def _serve(self, waiting: "Dict[socket.socket, _Waiting]", state: "_Waiting") -> None:
        """Answer the complete heads in the buffer from memory, in order; hand the first one
        that needs a worker to ``dispatch``."""
        while _head_ready(state.buf):
            state.answered = True
            lookup = self._lookup
            found = lookup(state.sock, state.buf, state.address) if lookup is not None else None
            if found is None:
                self._selector.unregister(state.sock)
                del waiting[state.sock]
                self._dispatch(state.sock, state.address, bytes(state.buf))
                return
            data, keep, used = found
            del state.buf[:used]
            state.out, state.keep = memoryview(data), keep
            if not self._flush(waiting, state):
                return  # the rest is sent when the socket is writable, or it was dropped

    def _flush(self, waiting: "Dict[socket.socket, _Waiting]", state: "_Waiting") -> bool:
        """Send what is left of the response (bytes, then a file: one ``sendfile`` of at
        most 1 MiB per call); True when it is all sent and the connection waits for its
        next request."""
        sent = 0
        try:
            if state.out:
                sent = state.sock.send(state.out)
                state.out = state.out[sent:]
            if not state.out and state.stream is not None:
                moved = state.stream.send(state.sock)
                if moved == 0:  # the file ended early: the framing is broken, close
                    self._drop(waiting, state)
                    return False
                sent += moved
                if state.stream.remaining == 0:
                    state.stream.close()
                    state.stream = None
        except _WOULD_BLOCK:
            pass
        except OSError:
            self._drop(waiting, state)  # reset by the peer
            return False
        now = time.monotonic()
        if state.out or state.stream is not None:
            if sent or not state.writing:  # progress (or the start) resets the deadline
                state.deadline = now + self._send_timeout
                state.since = now
                del waiting[state.sock]
                waiting[state.sock] = state  # the youngest again: evicted last
            if not state.writing:
                state.writing = True
                self._selector.modify(state.sock, selectors.EVENT_WRITE, state)
            return False
        if not state.keep:
            self._drop(waiting, state)
            return False
        if state.writing:
            state.writing = False
            self._selector.modify(state.sock, selectors.EVENT_READ, state)
        state.deadline = now + self._timeout
        state.since = now
        del waiting[state.sock]
        waiting[state.sock] = state
        return True

    def _drop(self, waiting: "Dict[socket.socket, _Waiting]", state: "_Waiting") -> None:
        self._selector.unregister(state.sock)
        del waiting[state.sock]
        if state.stream is not None:
            state.stream.close()
            state.stream = None
        self._close(state.sock)


class _Stream:
    """The part of an open file still to send on a connection (owns the file)."""

    __slots__ = ("chunk", "fobj", "offset", "remaining")

    def __init__(self, fobj: IO[bytes], offset: int, remaining: int) -> None:
        self.fobj = fobj
        self.offset = offset
        self.remaining = remaining
        self.chunk = b""  # read, not yet taken by a TLS socket (retried as it is)

    def send(self, sock: socket.socket) -> int:
        """Send up to 1 MiB without blocking; the bytes sent (0: the file ended early).
        Raises an error of ``_WOULD_BLOCK`` when the socket takes nothing now."""
        count = min(self.remaining, STREAM_TURN)
        if _SENDFILE is not None and not _is_tls(sock):
            sent = int(_SENDFILE(sock.fileno(), self.fobj.fileno(), self.offset, count))
        else:  # TLS (the kernel cannot encrypt) or no os.sendfile: read, then send
            if not self.chunk:
                self.fobj.seek(self.offset)
                self.chunk = self.fobj.read(min(count, 256 * 1024))
                if not self.chunk:
                    return 0
            # A TLS write that could not finish must be retried with the same bytes.
            sent = sock.send(self.chunk)
            self.chunk = self.chunk[sent:]
        self.offset += sent
        self.remaining -= sent
        return sent

    def close(self) -> None:
        self.fobj.close()


def _is_tls(sock: socket.socket) -> bool:
    return ssl is not None and isinstance(sock, ssl.SSLSocket)


def _tls_pending(sock: socket.socket) -> int:
    return sock.pending() if ssl is not None and isinstance(sock, ssl.SSLSocket) else 0


class _Incoming:
    """A connection handed to the waiter, with the rest of a response to send first."""

    __slots__ = ("address", "answered", "hold_until", "keep", "out", "pending", "sock", "stream")

    def __init__(
        self,
        sock: socket.socket,
        address: object,
        pending: bytes,
        *,
        out: bytes,
        stream: "Optional[_Stream]",
        keep: bool,
        answered: bool,
        hold_until: float,
    ) -> None:
        self.sock = sock
        self.address = address
        self.pending = pending
        self.out = out
        self.stream = stream
        self.keep = keep
        self.answered = answered
        self.hold_until = hold_until  # monotonic time before which nothing is sent


class _Waiting:
    __slots__ = (
        "address",
        "answered",
        "buf",
        "deadline",
        "handshake",
        "keep",
        "out",
        "since",
        "sock",
        "stream",
        "writing",
    )

    def __init__(self, sock: socket.socket, address: object, buf: bytearray, deadline: float):
        self.since = time.monotonic()  # when it last started waiting or made progress
        self.sock = sock
        self.address = address
        self.buf = buf
        self.deadline = deadline
        self.out = memoryview(b"")  # the unsent rest of a response's bytes
        self.stream: Optional[_Stream] = None  # then the rest of its file
        self.keep = True  # whether the connection stays open once ``out`` is sent
        self.writing = False  # registered for write readiness
        self.answered = False  # a request head of this connection was answered
        self.handshake = False  # a TLS handshake is under way


def _head_ready(buf: "Union[bytes, bytearray]") -> bool:
    """Whether the parser can decide on ``buf``: a complete head (after the empty lines
    RFC 9112 allows before it), or a line or total already past the parser's limits."""
    start = 0
    while start < len(buf) and buf[start] in (10, 13):
        start += 1
    if buf.find(b"\n\r\n", start) >= 0 or buf.find(b"\n\n", start) >= 0:
        return True
    end = buf.find(b"\n", start)
    if end >= 0 and not _HEAD_LINE.match(buf[start:end]):
        return True  # not a request line of HTTP/1.x: the parser answers 400 or 505 now
    if len(buf) > MAX_REQUEST_LINE + MAX_HEADER_BYTES + 16:
        return True
    return len(buf) - (buf.rfind(b"\n") + 1) > max(MAX_REQUEST_LINE, MAX_HEADER_LINE)


def _head_end(buf: "Union[bytes, bytearray]") -> int:
    """Where the first request head in ``buf`` ends (after its empty line), or -1."""
    crlf = buf.find(b"\n\r\n")
    lf = buf.find(b"\n\n")
    if lf >= 0 and (crlf < 0 or lf < crlf):
        return lf + 2
    return crlf + 3 if crlf >= 0 else -1


# The request headers an answer can depend on; the server reads no other (the user agent
# only goes to the access log). Two heads that agree on the request line and on these get
# the same answer, whatever else they carry.
_ANSWER_HEADERS = (
    "accept",
    "authorization",
    "connection",
    "content-length",
    "host",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "range",
    "transfer-encoding",
)
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


@functools.lru_cache(maxsize=1024)  # the waiter's lookup and keep_answer ask for the same head
def answer_key(head: bytes) -> Optional[Tuple[bytes, str]]:
    """(the key of a kept answer, the user agent) for a complete request head, or None
    when the head is anything but plain: such a head goes to a worker, which parses it
    fully (and rejects it if it must). Never more lenient than the worker's parser."""
    if len(head) > MAX_HEADER_BYTES or not head.endswith(b"\r\n\r\n"):
        return None
    lines = head[:-4].decode("latin-1").split("\r\n")
    line = lines[0]
    parts = line.split(" ")
    if (
        len(line) > MAX_REQUEST_LINE
        or len(parts) != 3
        or not _TOKEN.match(parts[0])
        or parts[2] not in ("HTTP/1.1", "HTTP/1.0")
        or len(lines) - 1 > MAX_HEADER_COUNT
    ):
        return None
    seen: Dict[str, str] = {}
    for header in lines[1:]:
        name, colon, value = header.partition(":")
        value = value.strip(" \t")
        if (
            not colon
            or len(header) + 2 > MAX_HEADER_LINE
            or not _TOKEN.match(name)
            or "\n" in header
            or _BAD_VALUE.search(value)
        ):
            return None
        key = name.lower()
        if key in seen:
            if key in ("host", "content-length", "transfer-encoding", "range"):
                return None
            seen[key] += ", " + value
        else:
            seen[key] = value
    if parts[2] == "HTTP/1.1" and "host" not in seen:
        return None
    agent = seen.get("user-agent", "-").replace('"', "'")[:MAX_AGENT]
    wanted = [line] + ["%s:%s" % (h, seen[h]) for h in _ANSWER_HEADERS if h in seen]
    return "\n".join(wanted).encode("latin-1"), agent


# -- read access control (--auth FILE) -------------------------------------------------

AUTH_SCHEME = "pbkdf2-sha256"
AUTH_ITERATIONS = 600000  # OWASP's 2023 figure for PBKDF2-HMAC-SHA256
AUTH_MIN_ITERATIONS = 100000
AUTH_REALM = 'Basic realm="morgan", charset="UTF-8"'
AUTH_FAIL_DELAY = 1.0  # seconds before a 401 for bad credentials, doubled per recent failure
AUTH_FAIL_DELAY_MAX = 16.0
AUTH_FAIL_WINDOW = 300.0  # failures from one address older than this are forgotten
_AUTH_USER = re.compile(r"^[A-Za-z0-9._@+-]{1,64}$")
_AUTH_VIEW = re.compile(r"^(simple|(env|indexes)/[A-Za-z0-9_+!~-][A-Za-z0-9._+!~-]*)$")


class AuthFileError(ValueError):
    """A malformed ``--auth`` file: the message names the file and line."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_password(password: str, iterations: int = AUTH_ITERATIONS) -> str:
    """``$pbkdf2-sha256$ITERATIONS$SALT$HASH`` (base64) for ``password``, with a new 16-byte
    random salt: the form ``--auth`` files hold."""
    salt = os.urandom(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)
    return "$%s$%d$%s$%s" % (AUTH_SCHEME, iterations, _b64(salt), _b64(digest))


class AuthUser:
    """One line of an ``--auth`` file: a user, the PBKDF2 parameters, the views allowed."""

    __slots__ = ("digest", "iterations", "name", "salt", "views")

    def __init__(
        self, name: str, iterations: int, salt: bytes, digest: bytes, views: Optional[Set[str]]
    ) -> None:
        self.name = name
        self.iterations = iterations
        self.salt = salt
        self.digest = digest
        self.views = views  # None: every view

    def line(self) -> str:
        """The line this user is written as."""
        secret = "$%s$%d$%s$%s" % (AUTH_SCHEME, self.iterations, _b64(self.salt), _b64(self.digest))
        views = ":" + ",".join(sorted(self.views)) if self.views is not None else ""
        return "%s:%s%s" % (self.name, secret, views)


def parse_auth_line(text: str, where: str) -> AuthUser:
    """``USER:$pbkdf2-sha256$ITER$SALT$HASH[:VIEW,...]`` -> :class:`AuthUser`; a view is
    ``simple`` (the union index and the human page), ``env/NAME`` or ``indexes/NAME`` (a
    named index with its environment views); none means all."""
    fields = text.split(":")
    if len(fields) not in (2, 3):
        raise AuthFileError("%s: expected USER:HASH or USER:HASH:VIEWS" % where)
    name, secret = fields[0], fields[1]
    if not _AUTH_USER.match(name):
        raise AuthFileError("%s: user name %r: use 1-64 of A-Z a-z 0-9 . _ @ + -" % (where, name))
    parts = secret.split("$")
    try:
        shape_ok = len(parts) == 5 and not parts[0] and parts[1] == AUTH_SCHEME
        iterations = int(parts[2]) if shape_ok else 0
        salt = base64.b64decode(parts[3], validate=True) if shape_ok else b""
        digest = base64.b64decode(parts[4], validate=True) if shape_ok else b""
    except (ValueError, binascii.Error):
        shape_ok = False
    if not shape_ok:
        raise AuthFileError(
            "%s: the hash of %r is not $%s$ITERATIONS$SALT$HASH: write it with"
            " 'morgan auth add'" % (where, name, AUTH_SCHEME)
        ) from None
    if not AUTH_MIN_ITERATIONS <= iterations <= 10**8 or len(salt) < 8 or len(digest) != 32:
        raise AuthFileError(
            "%s: the hash of %r is out of range (%d to 100000000 iterations, 8 bytes of salt"
            " or more): write it with 'morgan auth add'" % (where, name, AUTH_MIN_ITERATIONS)
        )
    views = None
    if len(fields) == 3:
        views = {v.strip().strip("/") for v in fields[2].split(",") if v.strip()}
        bad = sorted(v for v in views if not _AUTH_VIEW.match(v))
        if bad or not views:
            raise AuthFileError(
                "%s: view %r of %r: use simple, env/NAME or indexes/NAME"
                % (where, (bad or [""])[0], name)
            )
    return AuthUser(name, iterations, salt, digest, views)


def read_auth_file(path: str) -> Dict[str, AuthUser]:
    """The users of an ``--auth`` file (``#`` comments and blank lines skipped)."""
    users: Dict[str, AuthUser] = {}
    with open(path, encoding="utf-8") as f:
        for number, raw in enumerate(f, 1):
            text = raw.strip()
            if not text or text.startswith("#"):
                continue
            user = parse_auth_line(text, "%s:%d" % (path, number))
            if user.name in users:
                raise AuthFileError("%s:%d: user %r is listed twice" % (path, number, user.name))
            users[user.name] = user
    return users


class Auth:
    """The users of an ``--auth`` file, and what was learnt checking them.

    A password is checked with PBKDF2 (hundreds of milliseconds by design), so a header
    that passed is remembered, keyed by an HMAC of it under a key that exists only in this
    process: later requests with the same header cost one HMAC. An unknown user costs the
    same PBKDF2 as a known one, and digests are compared with ``hmac.compare_digest``.
    Failures are counted per client address: each makes the next 401 wait longer (1 s,
    doubled, at most 16 s), in the waiter, holding no worker."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.mtime_ns = os.stat(path).st_mtime_ns
        self.users = read_auth_file(path)
        self._key = os.urandom(32)
        self._passed: Dict[bytes, str] = {}
        self._failures: Dict[str, Tuple[int, float]] = {}
        self._lock = threading.Lock()
        self._dummy = hashlib.sha256(self._key).digest()[:16]

    def _cache_key(self, header: str) -> bytes:
        return hmac.new(self._key, header.encode("latin-1"), hashlib.sha256).digest()

    def remembered(self, header: Optional[str]) -> Optional[AuthUser]:
        """The user of a header that passed before (no PBKDF2), else None."""
        if not header:
            return None
        name = self._passed.get(self._cache_key(header))
        return self.users.get(name) if name is not None else None

    def check(self, header: Optional[str]) -> Optional[AuthUser]:
        """The user whose credentials ``header`` (``Authorization``) carries, or None."""
        found = self.remembered(header)
        if found is not None or not header:
            return found
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
        except (ValueError, binascii.Error):
            return None
        name, colon, password = decoded.partition(":")
        user = self.users.get(name) if colon else None
        salt = user.salt if user is not None else self._dummy
        iterations = user.iterations if user is not None else AUTH_ITERATIONS
        digest = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)
        expected = user.digest if user is not None else bytes(32)
        if not hmac.compare_digest(digest, expected) or user is None:
            return None
        with self._lock:
            if len(self._passed) >= 4096:
                self._passed = {}
            self._passed[self._cache_key(header)] = user.name
        return user

    def failed(self, host: str) -> float:
        """Count a failure from ``host``; the seconds its 401 waits."""
        now = time.monotonic()
        with self._lock:
            count, last = self._failures.get(host, (0, now))
            count = 1 if now - last > AUTH_FAIL_WINDOW else count + 1
            if len(self._failures) >= 65536:
                self._failures = {}
            self._failures[host] = (count, now)
        return float(min(AUTH_FAIL_DELAY * 2 ** min(count - 1, 8), AUTH_FAIL_DELAY_MAX))

    def passed(self, host: str) -> None:
        if host in self._failures:
            with self._lock:
                self._failures.pop(host, None)


def request_view(segments: Sequence[str]) -> str:
    """The view a request reads: ``env/NAME``, ``indexes/NAME`` (anything in that named
    index) or ``simple`` (the union index, the page)."""
    if len(segments) >= 2 and segments[0] in ("env", "indexes"):
        return segments[0] + "/" + segments[1]
    return "simple"


class Request:
    """A parsed request head."""

    __slots__ = ("headers", "keep_alive", "line", "method", "target", "version")

    def __init__(self, method: str, target: str, version: str, line: str) -> None:
        self.method = method
        self.target = target
        self.version = version
        self.line = line
        self.headers: Dict[str, str] = {}
        self.keep_alive = False


def log_escape(text: str) -> str:
    """``text`` with every character but printable ASCII written as ``\\xHH`` (the backslash
    too, so the log reads back unambiguously): a request can put no CR, ESC or other control
    into the log or onto the terminal that shows it."""
    if _LOG_UNSAFE.search(text) is None:
        return text
    return _LOG_UNSAFE.sub(lambda m: "\\x%02x" % ord(m.group()), text)


_USERINFO = re.compile(r"//[^/?#@ ]*@")


def log_fields(request: Request) -> Tuple[str, str]:
    """The request line and user agent as the access log shows them (quoted, bounded; a
    password in an absolute-form target is never written)."""
    line = _USERINFO.sub("//***@", request.line).replace('"', "%22")[:400]
    agent = request.headers.get("user-agent", "-").replace('"', "'")[:MAX_AGENT]
    return line, agent


class _SocketWriter:
    """``wfile`` of a worker: each write goes to the (non-blocking) socket at once; what the
    socket does not take is kept in ``pending``, in order, for the waiter to send: a worker
    never waits on a client that reads slowly."""

    __slots__ = ("_sock", "deferred", "pending")

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self.pending = bytearray()
        self.deferred = False  # everything goes to ``pending`` (a response held back)

    def write(self, data: bytes) -> int:
        if self.pending or self.deferred:
            self.pending += data
            return len(data)
        try:
            sent = self._sock.send(data)
        except _WOULD_BLOCK:
            sent = 0
        if sent < len(data):
            self.pending += memoryview(data)[sent:]
        return len(data)


class Handler(socketserver.BaseRequestHandler):
    """One request, parsed strictly from the head the waiter read, and its response; the
    connection is kept alive by default (``keep``)."""

    server: "MirrorServer"
    request: socket.socket

    linger = False  # set when an error response closes a connection with input unread
    http10 = False  # the request being answered is HTTP/1.0
    in_memory = False  # MemoryHandler: answer only from memory, else raise _NeedsWorkerError
    wfile: "Union[_SocketWriter, _Capture]"

    def __init__(
        self, request: socket.socket, client_address: object, server: "MirrorServer", head: bytes
    ) -> None:
        self.head = head  # the request head (and any pipelined bytes) the waiter read
        self.keep = False  # whether the connection goes back to the waiter afterwards
        self.leftover = b""  # bytes after this request's head: the next request's start
        self.consumed = 0  # how many bytes of ``head`` the request head took
        # The answer to keep for this exact head (see Answer), and the generation it is from.
        self.answer: Optional[Answer] = None
        self.generation: Optional[Generation] = None
        self._answer_parts: Optional[Tuple[bytes, bytes, bytes, bool]] = None
        self.stream: Optional[_Stream] = None  # a file body for the waiter to send
        self.hold = 0.0  # seconds the waiter holds the response back (a failed login)
        super().__init__(request, client_address, server)

    def setup(self) -> None:
        self.connection = self.request
        self.connection.setblocking(False)
        self.rfile = io.BytesIO(self.head)  # the head is parsed from what the waiter read
        # Written at once as far as the socket takes it; the rest, and a file body
        # (``stream``), are sent by the waiter.
        self.wfile = _SocketWriter(self.connection)

    def handle(self) -> None:
        request = self._read_request()
        self.consumed = self.rfile.tell()
        if request is not None and self._respond(request):
            self.keep = True
            self.leftover = self.rfile.read()

    # -- reading -------------------------------------------------------------------------

    def _read_request(self) -> Optional[Request]:
        line = b""
        for _ in range(4):  # RFC 9112 §2.2: ignore a few empty lines before a request
            line = self.rfile.readline(MAX_REQUEST_LINE + 1)
            if line not in (b"\r\n", b"\n"):
                break
        if not line:
            return None
        if not line.endswith(b"\n"):
            if len(line) > MAX_REQUEST_LINE:
                self._reject(414, "request line longer than %d bytes" % MAX_REQUEST_LINE, line)
            return None
        text = line.decode("latin-1").rstrip("\r\n")
        parts = text.split(" ")
        if len(parts) != 3 or not _TOKEN.match(parts[0]):
            self._reject(400, "malformed request line", line)
            return None
        version = _VERSION.match(parts[2])
        if version is None:
            self._reject(400, "malformed HTTP version", line)
            return None
        if version.group(1) != "1":
            self._reject(505, "only HTTP/1.0 and HTTP/1.1 are served", line)
            return None
        request = Request(parts[0], parts[1], parts[2], text)
        total = 0
        while True:
            raw = self.rfile.readline(MAX_HEADER_LINE + 1)
            if not raw:
                return None
            total += len(raw)
            if len(raw) > MAX_HEADER_LINE or total > MAX_HEADER_BYTES:
                self._reject(431, "request headers too large", line)
                return None
            if raw in (b"\r\n", b"\n"):
                break
            if len(request.headers) >= MAX_HEADER_COUNT:
                self._reject(431, "more than %d request headers" % MAX_HEADER_COUNT, line)
                return None
            header = raw.decode("latin-1").rstrip("\r\n")
            name, colon, value = header.partition(":")
            value = value.strip(" \t")
            if not colon or not _TOKEN.match(name) or re.search(r"[\x00-\x08\x0a-\x1f\x7f]", value):
                self._reject(400, "malformed header line", line)
                return None
            key = name.lower()
            if key in request.headers:
                if key in ("host", "content-length", "transfer-encoding", "range"):
                    self._reject(400, "duplicate %s header" % name, line)
                    return None
                request.headers[key] += ", " + value
            else:
                request.headers[key] = value
        if request.version == "HTTP/1.1" and "host" not in request.headers:
            self._reject(400, "an HTTP/1.1 request must carry a Host header (RFC 9112)", line)
            return None
        tokens = {t.strip().lower() for t in request.headers.get("connection", "").split(",")}
        if request.version == "HTTP/1.1":
            request.keep_alive = "close" not in tokens
        else:
            request.keep_alive = "keep-alive" in tokens
        return request

    def _reject(self, status: int, reason: str, line: bytes) -> None:
        request = Request("-", "-", "HTTP/1.1", line[:200].decode("latin-1").rstrip("\r\n"))
        self._send_error(request, HttpError(status, reason, close=True), time.monotonic())

    # -- answering -----------------------------------------------------------------------

    def _respond(self, request: Request) -> bool:
        """Answer one request; return whether the connection stays open."""
        started = time.monotonic()
        self.http10 = request.version == "HTTP/1.0"
        try:
            status, size = self._route(request)
        except HttpError as err:
            return self._send_error(request, err, started)
        except (ConnectionError, socket.timeout):
            return False
        except _NeedsWorkerError:
            raise
        except Exception:
            if self.in_memory:
                raise _NeedsWorkerError from None  # the worker meets it again and logs it once
            self.server.log_error(
                "internal error on %r:\n%s" % (request.line, traceback.format_exc())
            )
            return self._send_error(request, HttpError(500, "internal error", close=True), started)
        line, agent = log_fields(request)
        if self._answer_parts is not None:
            self.answer = Answer(
                *self._answer_parts, status=status, size=size, line=line, agent=agent
            )
        self.server.log_line(self.client_address, (line, agent), status, size, started)
        return request.keep_alive

    def _send_error(self, request: Request, err: HttpError, started: float) -> bool:
        if self.in_memory:
            raise _NeedsWorkerError  # errors (and their lingering close) are a worker's
        if err.log is not None:
            self.server.log_error(err.log)
        if err.delay > 0 and isinstance(self.wfile, _SocketWriter):
            self.wfile.deferred = True
            self.hold = err.delay
        body = ("%d %s: %s\n" % (err.status, _PHRASES[err.status], err.reason)).encode()
        keep = request.keep_alive and not err.close
        headers = [("Content-Type", "text/plain; charset=utf-8"), *err.headers]
        try:
            self._write_head(err.status, headers, len(body), keep)
            if request.method != "HEAD":
                self.wfile.write(body)
        except OSError:
            keep = False
        self.linger = not keep
        self.server.log_line(
            self.client_address, log_fields(request), err.status, len(body), started
        )
        return keep

    def pending(self) -> bytes:
        """What the socket did not take at once, for the waiter to send."""
        wfile = self.wfile
        return bytes(wfile.pending) if isinstance(wfile, _SocketWriter) else b""

    def finish(self) -> None:
        if self.linger and not self.pending() and self.stream is None:
            self._lingering_close()

    def _lingering_close(self) -> None:
        """Read and drop what the client is still sending before the socket is closed.

        Closing with unread input makes the kernel send a reset, which can destroy the error
        response (a 431 or 400) before the client reads it. Bounded: 1 s, 1 MiB.
        """
        sock = self.connection
        try:
            sock.shutdown(socket.SHUT_WR)
            sock.settimeout(1.0)
            deadline = time.monotonic() + 1.0
            drained = 0
            while drained < 1 << 20 and time.monotonic() < deadline:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                drained += len(chunk)
        except OSError:
            return  # reset or timed out: the socket is closed next either way

    def _write_head(
        self,
        status: int,
        headers: List[Tuple[str, str]],
        length: int,
        keep: bool,
        body: bytes = b"",
        *,
        cache: bool = False,
    ) -> None:
        """Send the status line and headers (and ``body``, when given, in the same write);
        ``cache``: the response depends only on the request head and the generation, so it
        is kept as this request's :class:`Answer`."""
        pre = "HTTP/1.1 %d %s\r\nServer: %s\r\nDate: " % (status, _PHRASES[status], SERVER_NAME)
        lines = [""]  # the Date value goes in front
        lines.extend("%s: %s" % pair for pair in headers)
        lines.append("Content-Length: %d" % length)
        if not keep:
            lines.append("Connection: close")
        elif self.http10:
            lines.append("Connection: keep-alive")  # HTTP/1.0 closes unless told otherwise
        post = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        head = pre.encode("latin-1")
        self.wfile.write(head + http_date_bytes() + post + body)
        if cache:
            self._answer_parts = (head, post, body, keep)

    def _route(self, request: Request) -> Tuple[int, int]:
        if request.method not in ("GET", "HEAD"):
            allow = [("Allow", ALLOWED_METHODS)]
            if request.method in KNOWN_METHODS:
                raise HttpError(405, "only GET and HEAD are served", allow, close=True)
            raise HttpError(
                501, "method %s is not implemented" % request.method[:20], allow, close=True
            )
        if "transfer-encoding" in request.headers or request.headers.get(
            "content-length", "0"
        ) not in ("", "0"):
            raise HttpError(400, "a GET or HEAD request must not carry a body", close=True)
        target = request.target
        if _TARGET_UNSAFE.search(target):
            raise HttpError(
                400, "request target contains a control or non-ASCII character", close=True
            )
        if not target.startswith("/"):
            target = self._origin_form(request)
        segments, slash, query = parse_target(target)
        try:
            params = urllib.parse.parse_qs(query, keep_blank_values=True, max_num_fields=16)
        except ValueError:
            raise HttpError(400, "more than 16 query parameters") from None
        auth = self.server.auth()
        if auth is not None:
            self._authorize(request, auth, request_view(segments))
        generation = self.server.generation()
        self.generation = generation
        if not segments:
            return self._home(request, generation, params.get("q", [""])[0])
        root = generation.path
        if segments[0] == "indexes" and len(segments) >= 2:
            # A named index: the same layout below indexes/<name>/ (docs/indexes.md).
            root = os.path.join(generation.path, "indexes", segments[1])
            if not _SEGMENT.match(segments[1]) or not generation.is_dir(root):
                raise HttpError(404, "no index %r in this mirror" % segments[1])
            segments = segments[2:]
            if not segments:
                raise HttpError(404, "not found; this index is at simple/ below it")
        if segments[0] == "simple":
            base, rest, top = os.path.join(root, "simple"), segments[1:], "simple"
        elif segments[0] == "env" and len(segments) >= 3 and segments[2] == "simple":
            base = os.path.join(root, "env", segments[1], "simple")
            rest, top = segments[3:], "simple"
            if not generation.is_dir(base):
                raise HttpError(404, "no environment %r in this index" % segments[1])
        else:
            raise HttpError(404, "not found; the index is at simple/")
        fmt = params.get("format", [None])[0]
        if not rest:
            if not slash:
                return self._redirect(request, top + "/", query)
            return self._page(request, generation, base, fmt)
        if len(rest) == 1 and rest[0] in ("index.html", "index.json") and not slash:
            return self._file(request, generation, os.path.join(base, rest[0]), page=True)
        name = rest[0]
        if not _PROJECT.match(name):
            raise HttpError(404, "%r is not a project name" % name)
        canonical = canonicalize(name)
        if len(rest) == 1:
            if canonical != name:
                return self._redirect(request, ("../" if slash else "") + canonical + "/", query)
            if not slash:
                return self._redirect(request, name + "/", query)
            project_dir = os.path.join(base, name)
            if not generation.is_dir(project_dir):
                raise HttpError(404, "no project %r in this index" % name, [("Vary", "Accept")])
            return self._page(request, generation, project_dir, fmt)
        if len(rest) == 2 and not slash and canonical == name:
            path = os.path.join(base, name, rest[1])
            return self._file(
                request, generation, path, page=rest[1] in ("index.html", "index.json")
            )
        raise HttpError(404, "not found")

    def _authorize(self, request: Request, auth: Auth, view: str) -> None:
        """401 without valid credentials (held back after a failure), 403 for a view the
        user may not read. In memory (the waiter) only a header that passed before counts:
        PBKDF2 is a worker's job."""
        header = request.headers.get("authorization")
        user = auth.remembered(header) if self.in_memory else auth.check(header)
        host = self.client_address[0] if isinstance(self.client_address, tuple) else "-"
        if user is None:
            if self.in_memory:
                raise _NeedsWorkerError
            reason = "wrong user name or password" if header else "this mirror needs a login"
            delay = auth.failed(str(host)) if header else 0.0
            raise HttpError(401, reason, [("WWW-Authenticate", AUTH_REALM)], delay=delay)
        if not self.in_memory:
            auth.passed(str(host))
        if user.views is not None and view not in user.views:
            allowed = ", ".join(sorted(user.views))
            raise HttpError(403, "user %s may read only %s" % (user.name, allowed))

    def _origin_form(self, request: Request) -> str:
        """An absolute-form target is accepted only for the host the request is sent to."""
        parsed = urllib.parse.urlsplit(request.target)
        host = request.headers.get("host", "")
        if (
            parsed.scheme not in ("http", "https")
            or not host
            or parsed.netloc.lower() != host.lower()
        ):
            raise HttpError(400, "absolute request target for another host", close=True)
        return (parsed.path or "/") + ("?" + parsed.query if parsed.query else "")

    def _redirect(self, request: Request, location: str, query: str) -> Tuple[int, int]:
        # A relative Location keeps the mirror working behind any URL prefix.
        if query:
            location += "?" + query
        body = b""
        headers = [("Location", location), ("Cache-Control", PAGE_CACHE)]
        self._write_head(301, headers, len(body), request.keep_alive, cache=True)
        return 301, 0

    def _page(
        self, request: Request, generation: Generation, directory: str, fmt: Optional[str]
    ) -> Tuple[int, int]:
        json_page = os.path.join(directory, "index.json")
        html_page = os.path.join(directory, "index.html")
        files = {JSON_TYPE: json_page, V1_HTML_TYPE: html_page, TEXT_HTML: html_page}
        has_html = generation.exists(html_page)
        offered = [JSON_TYPE] if generation.exists(json_page) else []
        offered += [V1_HTML_TYPE, TEXT_HTML] if has_html else []
        if not offered:
            raise HttpError(404, "no index page here")
        vary = [("Vary", "Accept")]
        if fmt is not None:
            chosen = FORMATS.get(fmt.lower())
            if chosen is None:
                raise HttpError(406, "unknown ?format=%s; use json or html" % fmt[:60], vary)
            if chosen not in offered:
                raise HttpError(406, "this page is not available as %s" % chosen, vary)
        else:
            chosen = select_type(request.headers.get("accept"), offered)
            if chosen is None:
                offers = ", ".join(offered)
                raise HttpError(406, "no acceptable representation; offered: " + offers, vary)
        return self._file(
            request,
            generation,
            files[chosen],
            page=True,
            content_type=CONTENT_TYPES[chosen],
            extra=vary,
            etag_suffix="-v1" if chosen == V1_HTML_TYPE else "",
        )

    def _file(
        self,
        request: Request,
        generation: Generation,
        path: str,
        *,
        page: bool,
        content_type: Optional[str] = None,
        extra: Optional[List[Tuple[str, str]]] = None,
        etag_suffix: str = "",
    ) -> Tuple[int, int]:
        cached = generation.cached(path)
        if cached is not None:
            return self._send_file(
                request,
                fobj=None,
                body=cached.body,
                size=len(cached.body),
                etag=cached.etag,
                last_modified=cached.last_modified,
                page=page,
                content_type=content_type,
                path=path,
                extra=extra,
                etag_suffix=etag_suffix,
            )
        if self.in_memory:
            raise _NeedsWorkerError  # not read before: the disk is a worker's
        fobj, st, etag, in_store = generation.open_file(path)
        try:
            body = None
            if st.st_size <= SMALL_BODY:
                body = fobj.read(st.st_size)
                if len(body) != st.st_size:
                    body = None  # changed under us: stream what is there (and close after)
                elif in_store:
                    generation.remember(path, body, etag, st.st_mtime)
            last_modified = email.utils.formatdate(st.st_mtime, usegmt=True)
            return self._send_file(
                request,
                fobj=fobj,
                body=body,
                size=st.st_size,
                etag=etag,
                last_modified=last_modified,
                page=page,
                content_type=content_type,
                path=path,
                extra=extra,
                etag_suffix=etag_suffix,
            )
        finally:
            if self.stream is None or self.stream.fobj is not fobj:
                fobj.close()  # the waiter closes a file it streams

    def _send_file(
        self,
        request: Request,
        *,
        fobj: Optional[IO[bytes]],
        body: Optional[bytes],
        size: int,
        etag: str,
        last_modified: str,
        page: bool,
        content_type: Optional[str],
        path: str,
        extra: Optional[List[Tuple[str, str]]],
        etag_suffix: str,
    ) -> Tuple[int, int]:
        """Answer with a file: from ``body`` when it is in memory, else streamed from ``fobj``."""
        if etag_suffix:
            etag = etag[:-1] + etag_suffix + '"'
        if content_type is None:
            content_type = _file_type(os.path.basename(path))
        headers = list(extra or [])
        headers += [("Content-Type", content_type), ("ETag", etag)]
        if not page:
            # A page's blob mtime is not monotonic across generations (a rollback serves an
            # older blob): pages are validated by ETag only and carry no Last-Modified.
            headers.append(("Last-Modified", last_modified))
        headers += [
            ("Cache-Control", PAGE_CACHE if page else FILE_CACHE),
            ("Accept-Ranges", "bytes"),
        ]
        # Only an answer from memory is kept: its bytes can no longer change.
        cache = fobj is None
        if _not_modified(request.headers, etag):
            # RFC 9110 §8.6: a 304's Content-Length, if sent, is that of the 200.
            self._write_head(304, headers, size, request.keep_alive, cache=cache)
            return 304, 0
        status, start, length = 200, 0, size
        header = request.headers.get("range")
        if_range = request.headers.get("if-range")
        if header is not None and (if_range is None or if_range.strip() == etag):
            span = parse_range(header, size)
            if span is not None:
                status, (start, length) = 206, span
                end = start + length - 1
                headers.append(("Content-Range", "bytes %d-%d/%d" % (start, end, size)))
        cache = cache and status == 200  # a range answer is a slice: not worth keeping
        if request.method == "HEAD" or length == 0:
            self._write_head(status, headers, length, request.keep_alive, cache=cache)
            return status, 0
        if body is not None:
            self._write_head(
                status,
                headers,
                length,
                request.keep_alive,
                body[start : start + length],
                cache=cache,
            )
            return status, length
        if fobj is None:  # unreachable: a body not in memory comes with its open file
            raise HttpError(500, "internal error: no file to stream", close=True)
        self._write_head(status, headers, length, request.keep_alive)
        # The waiter streams the body (sendfile, without blocking): a client that reads
        # slowly or never holds no worker, only its connection until the send timeout.
        self.stream = _Stream(fobj, start, length)
        return status, length

    def _home(self, request: Request, generation: Generation, q: str) -> Tuple[int, int]:
        if self.in_memory:
            raise _NeedsWorkerError  # the summary may read every page of the generation
        body = render_home(self.server.summary(generation), q).encode("utf-8")
        headers = [
            ("Content-Type", "text/html; charset=utf-8"),
            ("Cache-Control", "no-cache"),
        ]
        self._write_head(200, headers, len(body), request.keep_alive)
        if request.method != "HEAD":
            self.wfile.write(body)
        return 200, len(body)


class _NeedsWorkerError(Exception):
    """A :class:`MemoryHandler` met something it must not do in the waiter thread."""


class _Capture:
    """``wfile`` of a :class:`MemoryHandler`: the response, kept for the waiter to send."""

    __slots__ = ("data",)

    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes) -> int:
        self.data += data
        return len(data)


class MemoryHandler(Handler):
    """The :class:`Handler`, run by the waiter thread on a complete head whose answer was
    not kept yet: the same parser and routing, but it answers only from memory (a page or
    small object read before, a redirect, a 304), into a buffer the waiter sends without
    blocking. Reading a file, the human page, or any error raises :class:`_NeedsWorkerError`
    before a byte is produced or logged, and a worker answers the same head."""

    in_memory = True

    def setup(self) -> None:
        self.connection = self.request  # never read or written here
        self.rfile = io.BytesIO(self.head)
        self.wfile = self.captured = _Capture()


def _file_type(filename: str) -> str:
    if filename == "index.json":
        return JSON_TYPE
    if filename == "index.html":
        return CONTENT_TYPES[TEXT_HTML]
    # Wheels, sdists and .metadata are opaque bytes whose hash the client checks: a typed
    # response (application/gzip, text/plain) invites proxies to recompress or re-encode.
    return "application/octet-stream"


def _not_modified(headers: Dict[str, str], etag: str) -> bool:
    """Whether ``If-None-Match`` matches. ``If-Modified-Since`` is never honoured (RFC 9110
    lets a server ignore it): an mtime is not monotonic across generations (a rollback, a
    private wheel rebuilt under the same name), so only the content address validates."""
    inm = headers.get("if-none-match")
    return inm is not None and etag_matches(inm, etag)


class ProjectSummary:
    """What the human page shows about one project."""

    __slots__ = ("files", "name", "size", "versions")

    def __init__(self, name: str, versions: List[str], files: int, size: int) -> None:
        self.name = name
        self.versions = versions
        self.files = files
        self.size = size


class Summary:
    """A generation as the human page shows it (read from its JSON pages, cached)."""

    def __init__(self, generation: Generation) -> None:
        self.generation = os.path.basename(generation.path)
        self.projects = _read_projects(os.path.join(generation.path, "simple"))
        self.size = sum(p.size for p in self.projects)
        self.environments: List[Tuple[str, int]] = []
        env_dir = os.path.join(generation.path, "env")
        if os.path.isdir(env_dir):
            for name in sorted(os.listdir(env_dir)):
                simple = os.path.join(env_dir, name, "simple")
                if _SEGMENT.match(name) and os.path.isdir(simple):
                    self.environments.append((name, len(_read_list(simple))))
        self.indexes: List[Tuple[str, int]] = []  # named indexes (docs/indexes.md)
        index_dir = os.path.join(generation.path, "indexes")
        if os.path.isdir(index_dir):
            for name in sorted(os.listdir(index_dir)):
                simple = os.path.join(index_dir, name, "simple")
                if _SEGMENT.match(name) and os.path.isdir(simple):
                    self.indexes.append((name, len(_read_list(simple))))


def _read_json(path: str) -> Dict[str, object]:
    fobj, _ = open_regular(path, follow=True)  # a planted FIFO must not wedge the page
    with fobj:
        data = fobj.read(MAX_PAGE_JSON + 1)
    if len(data) > MAX_PAGE_JSON:
        raise ValueError("%s is larger than %d bytes" % (path, MAX_PAGE_JSON))
    loaded = json.loads(data.decode("utf-8"))
    if not isinstance(loaded, dict):
        raise TypeError("%s is not a JSON object" % path)
    return loaded


def _read_list(simple: str) -> List[str]:
    """Project names of an index (its JSON list page, else its directories)."""
    try:
        data = _read_json(os.path.join(simple, "index.json"))
    except FileNotFoundError:
        return sorted(n for n in os.listdir(simple) if os.path.isdir(os.path.join(simple, n)))
    projects = data.get("projects")
    names = []
    if isinstance(projects, list):
        for entry in projects:
            if isinstance(entry, dict) and isinstance(entry.get("name"), str):
                names.append(canonicalize(entry["name"]))
    return sorted(names)


def _read_projects(simple: str) -> List[ProjectSummary]:
    projects = []
    for name in _read_list(simple):
        if not _PROJECT.match(name):
            continue
        try:
            page = _read_json(os.path.join(simple, name, "index.json"))
        except FileNotFoundError:
            projects.append(ProjectSummary(name, [], 0, 0))
            continue
        files = page.get("files")
        files = files if isinstance(files, list) else []
        size = sum(
            f["size"] for f in files if isinstance(f, dict) and isinstance(f.get("size"), int)
        )
        versions = page.get("versions")
        versions = [v for v in versions if isinstance(v, str)] if isinstance(versions, list) else []
        projects.append(ProjectSummary(name, versions, len(files), size))
    return projects


def _human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return ("%d %s" % (value, unit)) if unit == "B" else ("%.1f %s" % (value, unit))
        value /= 1024
    return "%d B" % size  # unreachable: the loop returns at GiB


def render_home(summary: Summary, query: str) -> str:
    """The page at ``/``: projects (filtered by ``query``), versions, sizes, environments."""
    esc = html.escape
    needle = canonicalize(query.strip())
    shown = [p for p in summary.projects if needle in p.name] if needle else summary.projects
    rows = []
    for project in shown[:1000]:
        versions = ", ".join(project.versions[-5:])
        if len(project.versions) > 5:
            versions = "… " + versions
        rows.append(
            '<tr><td><a href="simple/%s/">%s</a></td><td>%s</td><td>%d</td><td>%s</td></tr>'
            % (
                esc(project.name),
                esc(project.name),
                esc(versions),
                project.files,
                _human_size(project.size),
            )
        )
    envs = "".join(
        '<li><a href="env/%s/simple/">%s</a> — %d projects</li>' % (esc(n), esc(n), count)
        for n, count in summary.environments
    )
    indexes = "".join(
        '<li><a href="indexes/%s/simple/">%s</a> — %d projects</li>' % (esc(n), esc(n), count)
        for n, count in summary.indexes
    )
    if indexes:
        envs += "</ul>\n<h2>Named indexes</h2>\n<ul>" + indexes
    found = (
        "%d of %d projects" % (len(shown), len(summary.projects))
        if needle
        else ("%d projects" % len(summary.projects))
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>Morgan mirror</title><style>body{font-family:sans-serif;margin:2em}"
        "table{border-collapse:collapse}td,th{padding:.2em .8em;text-align:left}"
        "tr:nth-child(even){background:#f3f3f3}</style></head><body>\n"
        "<h1>Morgan mirror</h1>\n"
        "<p>Generation %s: %d projects, %s. Install with "
        "<code>pip install --index-url &lt;this address&gt;simple/ NAME</code>.</p>\n"
        '<form method="get" action=""><label>Search projects '
        '<input type="search" name="q" value="%s"></label> '
        '<button type="submit">Search</button></form>\n'
        "<h2>Environments</h2>\n<ul>%s</ul>\n"
        "<h2>Projects</h2>\n<p>%s</p>\n"
        "<table><thead><tr><th>project</th><th>versions</th><th>files</th><th>size</th></tr>"
        "</thead><tbody>\n%s\n</tbody></table>\n</body></html>\n"
        % (
            esc(summary.generation),
            len(summary.projects),
            _human_size(summary.size),
            esc(query),
            envs or "<li>none</li>",
            found,
            "\n".join(rows),
        )
    )


def _recv_soon(sock: socket.socket, seconds: float) -> Optional[bytes]:
    """What the (non-blocking) socket has within ``seconds``, or None. ``poll``, not
    ``select``: select fails on descriptors past 1023, which a busy server has."""
    try:
        return sock.recv(65536)
    except _WOULD_BLOCK:
        pass
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        ready = bool(poller.poll(seconds * 1000))
    else:  # Windows: select has no descriptor-number limit there
        ready = bool(select.select([sock], [], [], seconds)[0])
    if not ready:
        return None
    try:
        return sock.recv(65536)
    except _WOULD_BLOCK:
        return None


class _ParentGoneError(Exception):
    """A forked server process outlived the process that started it."""


class MirrorServer(socketserver.TCPServer):
    """The listening socket, the :class:`Waiter` and at most ``max_connections`` workers.

    A worker thread is taken only to answer a request whose head is complete; between
    requests a connection waits in the waiter. Open connections are bounded by what the
    file-descriptor limit allows (:func:`open_connection_limit`); further ones wait in the
    listen queue.
    """

    allow_reuse_address = True
    request_queue_size = 4096  # the kernel caps it at net.core.somaxconn

    def __init__(
        self,
        root: str,
        host: str = "127.0.0.1",
        *,
        port: int = 8080,
        max_connections: int = 128,
        header_timeout: float = 20.0,
        send_timeout: float = 60.0,
        log: Optional[IO[str]] = None,
        max_open: Optional[int] = None,
        auth: Optional[Auth] = None,
        tls: "Optional[ssl.SSLContext]" = None,
        misses: Optional["MissRecord"] = None,
    ) -> None:
        self._auth = auth
        self._auth_checked = time.monotonic()
        self.tls = tls
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.misses = misses
        self.root = os.path.realpath(root)
        self.header_timeout = header_timeout
        self.send_timeout = send_timeout
        self.log = log
        limit = open_connection_limit(max_connections)
        self.max_open = limit if max_open is None else max(1, min(max_open, limit))
        self._open = threading.BoundedSemaphore(self.max_open)
        self._stopping = False
        self._log_lock = threading.Lock()
        self._summaries: Dict[str, Summary] = {}
        # The generation last resolved and the ``index`` link target it came from.
        self._current: Optional[Tuple[str, Generation]] = None
        self._summary_lock = threading.Lock()
        # Workers: started on demand up to max_connections, then kept; requests beyond wait
        # in the queue. _idle counts workers free to take a request, _backlog queued requests
        # no free worker was counted for.
        self._max_workers = max_connections
        self._work: "queue.SimpleQueue[Tuple[socket.socket, object, bytes]]" = queue.SimpleQueue()
        self._pool_lock = threading.Lock()
        self._workers = 0
        self._idle = 0
        self._backlog = 0
        # Started by serve_forever: a process forked after binding starts its own.
        self.waiter: Optional[Waiter] = None
        self.parent_pid: Optional[int] = None  # set in a forked server process
        super().__init__((host, port), Handler)  # type: ignore[arg-type]

    @property
    def url(self) -> str:
        address = self.server_address
        host, port = str(address[0]), int(address[1])
        scheme = "https" if self.tls is not None else "http"
        return "%s://%s:%d/" % (scheme, "[%s]" % host if ":" in host else host, port)

    def auth(self) -> Optional[Auth]:
        """The users of ``--auth`` (None: no login needed), read again when the file has
        changed (checked at most once a second). A reload drops every kept answer, so no
        answer given under the old users is given again; a file that no longer reads is
        logged and the previous users stay."""
        current = self._auth
        if current is None:
            return None
        now = time.monotonic()
        if now - self._auth_checked < 1.0:
            return current
        self._auth_checked = now
        try:
            changed = os.stat(current.path).st_mtime_ns != current.mtime_ns
            if changed:
                self._auth = Auth(current.path)
                self._current = None  # a new Generation: kept answers start afresh
        except (OSError, ValueError) as exc:
            current.mtime_ns = -1  # report once, try again after the next change
            self.log_error("cannot read %s (the previous users stay): %s" % (current.path, exc))
        return self._auth

    def generation(self) -> Generation:
        """Resolve ``<root>/index`` now; 503 when there is no index to serve yet."""
        link = os.path.join(self.root, "index")
        try:
            target = os.readlink(link)
        except FileNotFoundError:
            raise HttpError(503, "no index yet at %s: run morgan build" % link) from None
        except OSError:
            target = "index"  # a plain directory (a mirror copied without symlinks)
        current = self._current
        if current is not None and current[0] == target:
            return current[1]  # the switch replaces the link, so a new build has a new target
        path = os.path.realpath(os.path.join(self.root, target))
        if not path.startswith(self.root + os.sep) or not os.path.isdir(path):
            raise HttpError(503, "%s does not point to a generation inside the mirror" % link)
        generation = Generation(self.root, path)
        self._current = (target, generation)  # one tuple: threads see the old or the new pair
        return generation

    def summary(self, generation: Generation) -> Summary:
        with self._summary_lock:
            cached = self._summaries.get(generation.path)
            if cached is None:
                cached = Summary(generation)
                self._summaries = {generation.path: cached}  # only the current one is kept
            return cached

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        """Start the waiter (once), then accept connections until :meth:`shutdown`."""
        self._start_waiter()
        super().serve_forever(poll_interval)

    def service_actions(self) -> None:
        """Called by serve_forever at least every poll interval: a forked server process
        whose parent has gone (killed without a chance to stop it) stops too."""
        if self.parent_pid is not None and os.getppid() != self.parent_pid:
            raise _ParentGoneError

    def _start_waiter(self) -> Waiter:
        with self._pool_lock:
            if self.waiter is None:
                self.waiter = Waiter(
                    self.header_timeout,
                    self._dispatch,
                    self._close_connection,
                    self.log_error,
                    lookup=self._kept_answer,
                    send_timeout=self.send_timeout,
                )
            return self.waiter

    def _kept_answer(
        self, sock: socket.socket, buf: bytearray, client_address: object
    ) -> Optional[Tuple[bytes, bool, int]]:
        """The answer to the head at the start of ``buf`` if it can be given from memory in
        this (the waiter's) thread, as (response bytes, keep the connection, head length);
        logged. A kept :class:`Answer` first, else :class:`MemoryHandler`; None: a worker's."""
        started = time.monotonic()
        found = self._find_answer(buf)
        if found is None:
            return self._answer_in_memory(sock, buf, client_address)
        answer, end, agent = found
        data = answer.pre + http_date_bytes() + answer.post + answer.body
        fields = (answer.line, agent)
        self.log_line(client_address, fields, answer.status, answer.size, started)
        return data, answer.keep, end

    def _answer_in_memory(
        self, sock: socket.socket, buf: bytearray, client_address: object
    ) -> Optional[Tuple[bytes, bool, int]]:
        end = _head_end(buf)
        if end < 0 or end > ANSWER_KEY_BYTES:
            return None
        head = bytes(buf[:end])
        try:
            handler = MemoryHandler(sock, client_address, self, head)
        except Exception:  # _NeedsWorkerError, or anything the worker meets again and reports
            return None
        if not handler.captured.data:
            return None  # nothing to say (no request in the head after all): a worker's call
        if handler.answer is not None and handler.generation is not None:
            handler.generation.keep_answer(head[: handler.consumed], handler.answer)
        return bytes(handler.captured.data), handler.keep, handler.consumed

    def _find_answer(self, buf: "Union[bytes, bytearray]") -> Optional[Tuple[Answer, int, str]]:
        """The kept answer to the head at the start of ``buf``: (answer, head length, user
        agent for the log). First by the head's exact bytes (no parsing at all), else by
        :func:`answer_key` (clients that differ only in headers the answer ignores)."""
        end = _head_end(buf)
        if end < 0 or end > ANSWER_KEY_BYTES:
            return None
        self.auth()  # a changed --auth file drops the kept answers first
        try:
            generation = self.generation()
        except HttpError:
            return None  # a worker answers (503) and logs it
        head = bytes(buf[:end])
        answer = generation.answers.get(head)
        if answer is not None:
            return answer, end, answer.agent
        found = answer_key(head) if generation.answers_by_key else None
        if found is None:
            return None
        answer = generation.answers_by_key.get(found[0])
        return None if answer is None else (answer, end, found[1])

    def process_request(self, request: socket.socket, client_address: object) -> None:  # type: ignore[override]
        # At the cap, the connection that has waited longest without completing a request
        # head or moving a response along is closed to make room: a flood of slow
        # connections cannot lock out a new client. Only when the waiter holds none (every
        # open connection is in a worker's hands) does the new one wait for a slot here,
        # further ones in the listen queue.
        while not self._open.acquire(blocking=False):
            # A batch (1/32 of the cap): the next accepts find room without waiting for
            # the waiter thread each time, so a flood does not slow accepting down.
            self._start_waiter().evict(max(1, self.max_open // 32))
            if self._open.acquire(timeout=0.5):
                break
            if self._stopping:
                self.shutdown_request(request)
                return
        if request.family in (socket.AF_INET, socket.AF_INET6):
            # Fails only on a connection already reset; the waiter then sees it closed.
            with contextlib.suppress(OSError):
                request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.tls is not None:
            try:  # no I/O here: the waiter does the handshake without blocking
                request = self.tls.wrap_socket(
                    request, server_side=True, do_handshake_on_connect=False
                )
            except OSError:
                self._close_connection(request)
                return
        self._start_waiter().add(request, client_address, b"", answered=False)

    def _dispatch(self, sock: socket.socket, client_address: object, head: bytes) -> None:
        with self._pool_lock:
            if self._idle:
                self._idle -= 1
            elif self._workers < self._max_workers and self._start_worker():
                pass
            elif self._workers:
                self._backlog += 1  # a busy worker takes it when it is done
            else:
                self.log_error("cannot start a worker thread: closing %s" % (client_address,))
                self._close_connection(sock)
                return
            self._work.put((sock, client_address, head))

    def _start_worker(self) -> bool:
        try:
            threading.Thread(target=self._worker, name="morgan-worker", daemon=True).start()
        except RuntimeError:  # "can't start new thread": the process is at its limit
            return False
        self._workers += 1
        return True

    def _worker(self) -> None:
        while True:
            sock, client_address, head = self._work.get()
            self._answer(sock, client_address, head)
            with self._pool_lock:
                if self._backlog:
                    self._backlog -= 1  # the next get() takes a request no one was counted for
                else:
                    self._idle += 1

    def _answer(self, sock: socket.socket, client_address: object, head: bytes) -> None:
        while True:
            keep, leftover, out, stream, hold = False, b"", b"", None, 0.0
            try:
                handler = Handler(sock, client_address, self, head)
                keep, leftover = handler.keep, handler.leftover
                out, stream, hold = handler.pending(), handler.stream, handler.hold
                if handler.answer is not None and handler.generation is not None:
                    handler.generation.keep_answer(head[: handler.consumed], handler.answer)
            except Exception:
                self.handle_error(sock, client_address)
            if (out or stream is not None) and not self._stopping:
                # The rest of the response goes out from the waiter: this worker is free.
                self._start_waiter().add(
                    sock, client_address, leftover, out=out, stream=stream, keep=keep, hold=hold
                )
                return
            if stream is not None:
                stream.close()
            if not keep or self._stopping:
                self._close_connection(sock)
                return
            state, buf = self._next_head(sock, leftover)
            if state == "closed":
                self._close_connection(sock)
                return
            if state == "wait" or self._find_answer(buf) is not None:
                # Not complete yet, or kept: the waiter answers that faster than a worker.
                self._start_waiter().add(sock, client_address, buf)
                return
            head = buf

    def _next_head(self, sock: socket.socket, buf: bytes) -> Tuple[str, bytes]:
        """A keep-alive client usually sends its next request at once: if its whole head
        arrives within a millisecond, this worker answers it ("ready"), saving two thread
        hand-offs; otherwise "wait" with the bytes read so far, for the waiter (a slow client
        never holds a worker); "closed" when the client went away."""
        if _head_ready(buf):
            return "ready", buf
        try:
            data = _recv_soon(sock, 0.001)
        except OSError:
            return "closed", buf
        if data is None:
            return "wait", buf
        if not data:
            return "closed", buf
        buf += data
        return ("ready" if _head_ready(buf) else "wait"), buf

    def _close_connection(self, sock: socket.socket) -> None:
        self.shutdown_request(sock)
        self._open.release()

    def handle_error(self, request: object, client_address: object) -> None:
        self.log_error("connection from %s failed:\n%s" % (client_address, traceback.format_exc()))

    def stop(self) -> None:
        """Stop accepting, close the socket; connections in flight finish on their own."""
        self._stopping = True
        self.shutdown()
        self.server_close()
        if self.waiter is not None:
            self.waiter.stop()

    def log_line(
        self, client: object, fields: Tuple[str, str], status: int, size: int, started: float
    ) -> None:
        """Write one access-log line (``fields``: from :func:`log_fields`).

        One write of one whole line, flushed at once: several server processes share the
        log's file description, and a write of up to PIPE_BUF bytes to a pipe, or any write
        to a file, is not split by another process's write.
        """
        if self.misses is not None:
            self.misses.note(fields, status)
        if self.log is None:
            return
        host = client[0] if isinstance(client, tuple) else "-"
        text = '%s - - [%s] "%s" %d %d %.4f "%s"\n' % (
            host,
            log_time(),
            log_escape(fields[0]),
            status,
            size,
            time.monotonic() - started,
            log_escape(fields[1]),
        )
        with self._log_lock:
            self.log.write(text)
            self.log.flush()

    def log_error(self, message: str) -> None:
        stream = self.log if self.log is not None else sys.stderr
        with self._log_lock:
            stream.write("morgan-server: " + message.rstrip("\n") + "\n")
            stream.flush()


# -- the miss record ----------------------------------------------------------------------
#
# What clients asked for and the mirror lacks, for `morgan missing` / `morgan clients` on
# the connected side: one JSON line per 404 for a project or a file under a Simple index,
# and one per new User-Agent per day (which clients use the mirror at all). Append-only,
# never inside the mirror tree, and bounded: past MISS_RECORD_BYTES the file becomes
# FILE.1 (replacing the previous one) and a new FILE starts, so at most about twice that.

MISS_RECORD_BYTES = 8 * 1024 * 1024
MISS_AGENTS_PER_DAY = 4096  # distinct User-Agents noted per day and process
_MISS_PATH = re.compile(r"^(/indexes/[^/]+)?(?:/env/([^/]+))?/simple/([^/]+)/(?:([^/]+))?$")


def default_miss_record(root: str) -> str:
    """``~/.local/state/morgan/misses-<12 hex of the mirror's path>.jsonl`` (XDG_STATE_HOME
    or LOCALAPPDATA when set): outside the mirror, one file per mirror folder."""
    base = os.environ.get("XDG_STATE_HOME") or os.environ.get("LOCALAPPDATA")
    if not base:
        base = os.path.join(os.path.expanduser("~"), ".local", "state")
    digest = hashlib.sha256(os.path.realpath(root).encode("utf-8")).hexdigest()[:12]
    return os.path.join(base, "morgan", "misses-%s.jsonl" % digest)


def open_miss_record(root: str, path: Optional[str]) -> Tuple[Optional["MissRecord"], str]:
    """The record ``serve`` writes (``path``, the default for ``root``, or none for "off")
    and a warning line when there is none although one was asked for. A record that cannot
    be opened is a warning, not a reason not to serve."""
    if path == "off":
        return None, ""
    target = os.path.abspath(path or default_miss_record(root))
    if os.path.realpath(target).startswith(os.path.realpath(root) + os.sep):
        return None, (
            "morgan-server: warning: misses are not recorded inside the mirror (%s): "
            "pass --misses FILE outside it\n" % target
        )
    try:
        record = MissRecord(target)
    except OSError as exc:
        return None, "morgan-server: warning: cannot record misses at %s: %s\n" % (target, exc)
    return record, ""


class MissRecord:
    """The append-only, bounded record of misses and clients (see the section comment)."""

    def __init__(self, path: str, max_bytes: int = MISS_RECORD_BYTES) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._day = ""
        self._agents: Set[str] = set()
        self._failed = False
        os.makedirs(os.path.dirname(path), exist_ok=True)
        self._fd = self._open()

    def _open(self) -> int:
        return os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def note(self, fields: Tuple[str, str], status: int) -> None:
        """Called for every logged request: record it if it is a miss or a new client."""
        agent = fields[1]
        entry: Optional[Dict[str, object]] = None
        if status == 404:
            parts = fields[0].split(" ")
            target = parts[1].split("?", 1)[0] if len(parts) == 3 else ""
            match = _MISS_PATH.match(target)
            if match is not None and _PROJECT.match(match.group(3)):
                index = match.group(1)[1:] if match.group(1) else ""
                env = "env/%s" % match.group(2) if match.group(2) else ""
                entry = {
                    "kind": "file" if match.group(4) else "project",
                    "project": canonicalize(match.group(3)),
                    "view": "/".join(v for v in (index, env) if v),
                }
                if match.group(4):
                    entry["file"] = match.group(4)
        now = time.gmtime()
        day = time.strftime("%Y-%m-%d", now)
        lines: List[Dict[str, object]] = []
        with self._lock:
            if day != self._day:
                self._day, self._agents = day, set()
            if agent not in self._agents and len(self._agents) < MISS_AGENTS_PER_DAY:
                self._agents.add(agent)
                lines.append({"kind": "client"})
        if entry is not None:
            lines.append(entry)
        if lines:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", now)
            self._write(
                "".join(
                    json.dumps(dict(item, time=stamp, agent=agent), sort_keys=True) + "\n"
                    for item in lines
                )
            )

    def _write(self, text: str) -> None:
        data = text.encode("utf-8", "replace")
        with self._lock:
            try:
                if os.fstat(self._fd).st_size + len(data) > self.max_bytes:
                    self._rotate()
                os.write(self._fd, data)  # one write: lines of processes never interleave
            except OSError as exc:
                # A full disk must not stop the serving (the access log still has the
                # request): said once, then tried again with every later line.
                if not self._failed:
                    self._failed = True
                    sys.stderr.write("morgan-server: cannot record misses: %s\n" % exc)

    def _rotate(self) -> None:
        # Another server process may have rotated it already (our descriptor then points at
        # FILE.1 or at a file already replaced): then only reopen FILE.
        with contextlib.suppress(FileNotFoundError):
            if os.stat(self.path).st_ino == os.fstat(self._fd).st_ino:
                os.replace(self.path, self.path + ".1")
        os.close(self._fd)
        self._fd = self._open()


def open_connection_limit(max_connections: int) -> int:
    """How many connections may be open at once: 4096, less when the file-descriptor limit
    (raised to its hard maximum when possible) leaves less room: each connection may hold a
    file it streams besides its socket, next to the workers' files."""
    try:
        import resource  # Unix only
    except ImportError:
        return 4096
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 2 * 4096 + max_connections + 64
    if soft != resource.RLIM_INFINITY and soft < want:
        target = want if hard == resource.RLIM_INFINITY else min(hard, want)
        with contextlib.suppress(ValueError, OSError):  # not allowed: keep the soft limit
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft == resource.RLIM_INFINITY:
        return 4096
    return max(1, min(4096, (soft - max_connections - 64) // 2))


def build_parser(default_root: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="server.py", description="Serve a Morgan mirror (the generation <root>/index)."
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    parser.add_argument("--port", type=int, default=8080, help="port (default 8080; 0 picks one)")
    parser.add_argument("--root", default=default_root, help="mirror folder (default: %(default)s)")
    parser.add_argument(
        "--max-connections",
        type=int,
        default=128,
        help="requests answered at once (default 128); idle connections do not count",
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=DEFAULT_PROCESSES,
        help="server processes sharing the port (default %(default)s; POSIX only)",
    )
    parser.add_argument(
        "--max-open-connections",
        type=int,
        default=None,
        help="open connections per process before the longest-waiting one is closed for a"
        " new one (default: 4096, less if the file-descriptor limit is lower)",
    )
    parser.add_argument(
        "--auth",
        metavar="FILE",
        default=None,
        help="users who may read the mirror (written by 'morgan auth add'); without it,"
        " anyone who can connect may",
    )
    parser.add_argument("--tls-cert", metavar="FILE", default=None, help="serve HTTPS: PEM chain")
    parser.add_argument("--tls-key", metavar="FILE", default=None, help="its PEM private key")
    parser.add_argument(
        "--misses",
        default=None,
        metavar="FILE",
        help="where to record requests for what the mirror lacks, for 'morgan missing' "
        "(default: a file per mirror under ~/.local/state/morgan/; 'off': none)",
    )
    return parser


class SetupError(Exception):
    """A bad --auth or --tls-* file: one line, exit code 2."""


def load_auth(path: Optional[str]) -> Optional[Auth]:
    """``--auth FILE`` read, or a :class:`SetupError` naming the file and the fix."""
    if path is None:
        return None
    try:
        return Auth(path)
    except OSError as exc:
        raise SetupError("cannot read --auth %s: %s" % (path, exc.strerror or exc)) from None
    except (AuthFileError, UnicodeDecodeError) as exc:
        raise SetupError(str(exc)) from None


def tls_context(cert: Optional[str], key: Optional[str]) -> "Optional[ssl.SSLContext]":
    """A server TLS context from ``--tls-cert``/``--tls-key`` (both or neither), TLS 1.2+."""
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise SetupError("--tls-cert and --tls-key go together: give both PEM files")
    if ssl is None:
        raise SetupError("this Python has no ssl module: serve plain HTTP behind a TLS proxy")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise SetupError(
            "cannot load --tls-cert %s / --tls-key %s: %s" % (cert, key, exc)
        ) from None
    return context


def serve(
    root: str,
    host: str,
    port: int,
    max_connections: int = 128,
    *,
    log: Optional[IO[str]] = None,
    access_log: bool = True,
    ready: Optional[Callable[["MirrorServer"], None]] = None,
    processes: int = 1,
    max_open: Optional[int] = None,
    auth: Optional[Auth] = None,
    tls: "Optional[ssl.SSLContext]" = None,
    misses: Optional[str] = None,
) -> int:
    """Serve until interrupted; print the address first (then call ``ready``, once the
    socket listens). Without ``access_log`` only errors are logged. Returns the exit code.

    With ``processes`` > 1 (where ``os.fork`` exists, and only from the main thread), that
    many processes answer on the one listening socket: this one and children forked after
    it is bound, each with its own waiter, workers and caches. Ctrl-C stops them all, and so
    does SIGTERM to this process; a child whose parent is gone stops within a second.
    """
    stream = log if log is not None else sys.stderr
    if not os.path.lexists(os.path.join(root, "index")):
        stream.write("morgan-server: warning: %s has no index yet (503 until a build)\n" % root)
    record, warning = open_miss_record(root, misses)
    server = MirrorServer(
        root,
        host,
        port=port,
        max_connections=max_connections,
        log=stream if access_log else None,
        max_open=max_open,
        auth=auth,
        tls=tls,
        misses=record,
    )
    if processes > 1 and not can_fork():
        stream.write("morgan-server: warning: cannot fork here: serving in one process\n")
        processes = 1
    stream.flush()  # a child must not inherit (and write again) what is still buffered
    children = _fork_servers(server, processes - 1) if processes > 1 else []
    stream.write(
        "Serving %s at %s (simple index: %ssimple/)%s%s\n"
        % (
            server.root,
            server.url,
            server.url,
            " with %d processes" % processes if processes > 1 else "",
            "; recording misses at %s" % record.path if record is not None else "",
        )
    )
    stream.write(warning)
    stream.flush()
    if ready is not None:
        ready(server)
    previous = signal.signal(signal.SIGTERM, _interrupt) if children else None
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        stream.write("morgan-server: stopped\n")
    finally:
        server.server_close()
        if server.waiter is not None:
            server.waiter.stop()
        _stop_children(children)
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return 0


def can_fork() -> bool:
    """Whether :func:`serve` can run several processes here (POSIX, main thread)."""
    return hasattr(os, "fork") and threading.current_thread() is threading.main_thread()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM stops the children too, as Ctrl-C does


def _fork_servers(server: MirrorServer, count: int) -> List[int]:
    """Fork ``count`` processes that serve on ``server``'s socket; return their ids.

    Called before any thread is started (the waiter starts in serve_forever), so each child
    is a copy of a one-thread process. The listening socket becomes non-blocking: every
    process is woken by a new connection and the ones that lose the race to accept it must
    go back to waiting, not block in ``accept``.
    """
    server.socket.setblocking(False)
    parent = os.getpid()
    children = []
    for _ in range(count):
        pid = os.fork()
        if pid == 0:  # the child: serve until told to stop, never return into the caller
            code = 0
            try:
                server.parent_pid = parent
                server.serve_forever(poll_interval=0.5)
            except (KeyboardInterrupt, _ParentGoneError):
                pass
            except BaseException:  # report it, then leave like the parent would not
                server.log_error("server process failed:\n" + traceback.format_exc())
                code = 1
            finally:
                os._exit(code)
        children.append(pid)
    return children


def _stop_children(children: List[int]) -> None:
    for pid in children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    for pid in children:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python server.py [--host H] [--port P] [--root DIR] [--max-connections N]``."""
    here = os.path.dirname(os.path.abspath(__file__))
    args = build_parser(here).parse_args(argv)
    if not 1 <= args.max_connections <= 10000:
        print("server.py: error: --max-connections must be 1..10000", file=sys.stderr)
        return 2
    if not 1 <= args.processes <= 64:
        print("server.py: error: --processes must be 1..64", file=sys.stderr)
        return 2
    if args.max_open_connections is not None and not 1 <= args.max_open_connections <= 65536:
        print("server.py: error: --max-open-connections must be 1..65536", file=sys.stderr)
        return 2
    try:
        auth = load_auth(args.auth)
        tls = tls_context(args.tls_cert, args.tls_key)
    except SetupError as exc:
        print("server.py: error: %s" % exc, file=sys.stderr)
        return 2
    try:
        return serve(
            args.root,
            args.host,
            args.port,
            args.max_connections,
            processes=args.processes,
            max_open=args.max_open_connections,
            auth=auth,
            tls=tls,
            misses=args.misses,
        )
    except OSError as exc:
        print(
            "server.py: error: cannot listen on %s:%d: %s" % (args.host, args.port, exc),
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
