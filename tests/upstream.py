"""A fake upstream package index: a real HTTP/1.1 server on 127.0.0.1 for tests.

It serves what tests put in it (wheels and sdists built by tests/dists.py, or any file) as
PyPI does: `/simple/` and `/simple/<project>/` in PEP 691 JSON (api 1.1) or PEP 503 HTML by
content negotiation, the files under `/files/<filename>` (HEAD, single Range, keep-alive) and
PEP 658 `.metadata` next to them. It records every request and injects faults on request paths
that match a pattern, so tests can check what a client fetched and how it copes.

    with FakeUpstream(tmp_path).start() as up:
        up.add_release("demo", "1.0", requires_dist=["dep>=1"])
        ...  # point a client at up.url
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import html
import json
import os
import shutil
import socket
import struct
import threading
import time
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Self
from urllib.parse import parse_qs, urlsplit

from packaging.utils import (
    NormalizedName,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import Version

from tests import dists

JSON_V1 = "application/vnd.pypi.simple.v1+json"
HTML_V1 = "application/vnd.pypi.simple.v1+html"
TEXT_HTML = "text/html"
CONTENT_TYPES = {
    JSON_V1: JSON_V1,
    HTML_V1: HTML_V1,
    TEXT_HTML: "text/html; charset=utf-8",
}
# Defaults for files added without an upload time: distinct, increasing, reproducible.
_FIRST_UPLOAD = datetime(2020, 1, 1, tzinfo=UTC)
_CHUNK = 64 * 1024


@dataclass(slots=True)
class Fault:
    """What to do to requests whose path matches the pattern given to `set_fault`.

    Applied in this order: `delay` (seconds, before anything); `reset` without `truncate`
    (close the connection with a TCP RST before any response); `status` (answer with that
    status, a short body and `Retry-After` if set, instead of the normal response);
    `redirect_to` (answer 302 with that Location). Otherwise the normal response is sent,
    changed by: `wrong_body` (same length, first byte flipped), `extra_bytes` (that many more
    bytes, Content-Length counting them), `truncate` (headers claim the full length, only N
    body bytes are sent, then the connection closes — with an RST if `reset`),
    `drip_bytes_per_sec` (the body trickles at that rate).
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


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request as the server received it (path includes the query string)."""

    method: str
    path: str
    headers: dict[str, str]


@dataclass(slots=True)
class _File:
    filename: str
    path: Path
    version: Version
    size: int
    sha256: str
    yanked: bool | str
    requires_python: str | None
    upload_time: str
    metadata: bytes | None
    wrong_sha256: bool

    @property
    def listed_sha256(self) -> str:
        # A wrong hash on the page, for tests of hash verification.
        return (
            hashlib.sha256(b"wrong" + self.sha256.encode()).hexdigest()
            if self.wrong_sha256
            else self.sha256
        )

    @property
    def metadata_sha256(self) -> str | None:
        return None if self.metadata is None else hashlib.sha256(self.metadata).hexdigest()


@dataclass(slots=True)
class _Project:
    name: str
    files: list[_File] = field(default_factory=list)


@dataclass(slots=True)
class _Response:
    status: int
    headers: dict[str, str]
    body: bytes | None = None
    file: Path | None = None
    start: int = 0
    length: int = 0


def _wheel_metadata(path: Path) -> bytes:
    with zipfile.ZipFile(path) as zf:
        for name in zf.namelist():
            parts = name.split("/")
            if len(parts) == 2 and parts[0].endswith(".dist-info") and parts[1] == "METADATA":
                return zf.read(name)
    raise ValueError(f"{path.name}: no .dist-info/METADATA at the top level — not a wheel")


def _parse_accept(header: str) -> list[tuple[str, float]]:
    """`Accept` → [(media range, q)], in header order; a bad q counts as 0."""
    ranges: list[tuple[str, float]] = []
    for item in header.split(","):
        media, *params = (part.strip() for part in item.split(";"))
        if not media:
            continue
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        ranges.append((media.lower(), q))
    return ranges


def negotiate(accept: str | None) -> str | None:
    """The page type to send for an `Accept` header, or None (406). No header means `*/*`.

    Among the types the client accepts with q > 0 the highest q wins; a tie goes to the
    most specific match, then to JSON. A bare `*/*` gets text/html, as PyPI does.
    """
    ranges = _parse_accept(accept if accept is not None else "*/*")
    best: tuple[float, int, int, str] | None = None
    for preference, offer in enumerate((JSON_V1, HTML_V1, TEXT_HTML)):
        main = offer.split("/")[0]
        for media, q in ranges:
            if media == offer:
                specificity = 2
            elif media == f"{main}/*":
                specificity = 1
            elif media == "*/*":
                specificity = 0
            else:
                continue
            if q <= 0:
                continue
            # Wildcards alone should not pick JSON for a client that did not ask for it.
            rank = (q, specificity, -preference if specificity else preference, offer)
            if best is None or rank > best:
                best = rank
    return None if best is None else best[3]


class FakeUpstream:
    """A PyPI-like index over HTTP on 127.0.0.1, with a request log and fault injection."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.files_dir = root / "files"
        self.build_dir = root / "build"
        self.url = ""
        self.base_url = ""
        self.html_only = False
        self.json_only = False
        self.metadata_enabled = True
        self.absolute_urls = True
        self.legacy_dist_info_metadata = False
        self.latency = 0.0
        self.requests: list[RecordedRequest] = []
        self._projects: dict[NormalizedName, _Project] = {}
        self._by_filename: dict[str, _File] = {}
        self._faults: list[tuple[str, Fault, list[int | None]]] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> Self:
        """Bind a free port on 127.0.0.1 and serve from a background thread."""
        self.files_dir.mkdir(parents=True, exist_ok=True)
        self._stopping.clear()
        server = _Server(("127.0.0.1", 0), self)
        port = server.server_address[1]
        self.base_url = f"http://127.0.0.1:{port}"
        self.url = f"{self.base_url}/simple/"
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close every open connection."""
        self._stopping.set()
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.close_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> Self:
        return self if self._server is not None else self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- content -----------------------------------------------------------------------

    def add_dist(
        self,
        path: Path,
        *,
        yanked: bool | str = False,
        requires_python: str | None = None,
        upload_time: str | None = None,
        metadata: bool = True,
        wrong_sha256: bool = False,
    ) -> None:
        """Serve the wheel or sdist at `path` (copied under root/files/).

        The project and version come from the filename. Wheels get a PEP 658 `.metadata`
        (their METADATA) unless `metadata` is False; `wrong_sha256` lists a wrong hash on
        the pages while serving the right bytes. `upload_time` is PEP 700 text; by default
        each added file is one minute younger than the one before, from 2020-01-01.
        """
        if path.name.endswith(".whl"):
            name, version, _build, _tags = parse_wheel_filename(path.name)
        else:
            name, version = parse_sdist_filename(path.name)
        target = self.files_dir / path.name
        self.files_dir.mkdir(parents=True, exist_ok=True)
        if path.resolve() != target.resolve():
            shutil.copyfile(path, target)
        sha = hashlib.sha256()
        with target.open("rb") as f:
            while chunk := f.read(1 << 20):
                sha.update(chunk)
        core = _wheel_metadata(target) if metadata and path.name.endswith(".whl") else None
        with self._lock:
            if upload_time is None:
                moment = _FIRST_UPLOAD + timedelta(minutes=len(self._by_filename))
                upload_time = moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            entry = _File(
                filename=path.name,
                path=target,
                version=version,
                size=target.stat().st_size,
                sha256=sha.hexdigest(),
                yanked=yanked,
                requires_python=requires_python,
                upload_time=upload_time,
                metadata=core,
                wrong_sha256=wrong_sha256,
            )
            project = self._projects.setdefault(name, _Project(name=str(name)))
            project.files = [f for f in project.files if f.filename != path.name] + [entry]
            self._by_filename[path.name] = entry

    def add_release(
        self,
        name: str,
        version: str,
        *,
        wheels: Sequence[str] = ("py3-none-any",),
        sdist: bool = True,
        requires_dist: Sequence[str] = (),
        requires_python: str | None = None,
        provides_extra: Sequence[str] = (),
        build_requires: Sequence[str] | None = dists.DEFAULT_BUILD_REQUIRES,
        sdist_metadata: dists.SdistMetadata = "pkg-info",
        yanked: bool | str = False,
        upload_time: str | None = None,
    ) -> list[Path]:
        """Build a wheel per tag in `wheels` (and an sdist) with tests/dists.py and serve them.

        `requires_python` goes both into the metadata and onto the pages. Returns the paths
        of the served files, wheels first.
        """
        out = self.build_dir
        paths = [
            dists.build_wheel(
                out,
                name,
                version,
                tag=tag,
                requires_dist=requires_dist,
                requires_python=requires_python,
                provides_extra=provides_extra,
            )
            for tag in wheels
        ]
        if sdist:
            paths.append(
                dists.build_sdist(
                    out,
                    name,
                    version,
                    requires_dist=requires_dist,
                    requires_python=requires_python,
                    provides_extra=provides_extra,
                    build_requires=build_requires,
                    metadata=sdist_metadata,
                )
            )
        served = []
        for path in paths:
            self.add_dist(
                path, yanked=yanked, requires_python=requires_python, upload_time=upload_time
            )
            served.append(self.files_dir / path.name)
        return served

    def add_backend(self) -> list[Path]:
        """Serve morgan-test-backend (wheel and self-building sdist): it builds our sdists."""
        paths = [
            dists.build_backend_wheel(self.build_dir),
            dists.build_backend_sdist(self.build_dir),
        ]
        for path in paths:
            self.add_dist(path)
        return [self.files_dir / path.name for path in paths]

    # --- observation and faults --------------------------------------------------------

    def clear_requests(self) -> None:
        """Forget the requests recorded so far."""
        with self._lock:
            self.requests.clear()

    def page_requests(self) -> list[str]:
        """Paths of the index page requests (`/simple/...`), in arrival order."""
        with self._lock:
            return [r.path for r in self.requests if urlsplit(r.path).path.startswith("/simple/")]

    def file_requests(self) -> list[str]:
        """Paths of the file and .metadata requests (`/files/...`), in arrival order."""
        with self._lock:
            return [r.path for r in self.requests if urlsplit(r.path).path.startswith("/files/")]

    def set_fault(self, pattern: str, fault: Fault) -> None:
        """Apply `fault` to requests whose path (without query) matches the fnmatch `pattern`.

        Faults are tried in the order they were set; the first one that matches and has
        uses left applies.
        """
        with self._lock:
            self._faults.append((pattern, fault, [fault.times]))

    def clear_faults(self) -> None:
        """Remove every fault."""
        with self._lock:
            self._faults.clear()

    def file_url(self, filename: str) -> str:
        """The absolute URL the server serves `filename` at."""
        return f"{self.base_url}/files/{filename}"

    # --- request handling (called from handler threads) --------------------------------

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def _take_fault(self, path: str) -> Fault | None:
        with self._lock:
            for pattern, fault, left in self._faults:
                if not fnmatch.fnmatchcase(path, pattern):
                    continue
                if left[0] is None:
                    return fault
                if left[0] > 0:
                    left[0] -= 1
                    return fault
        return None

    def _project(self, name: str) -> _Project | None:
        with self._lock:
            return self._projects.get(canonicalize_name(name))

    def _link(self, entry: _File) -> str:
        if self.absolute_urls:
            return self.file_url(entry.filename)
        return f"../../files/{entry.filename}"

    def _index_json(self) -> bytes:
        with self._lock:
            names = sorted(p.name for p in self._projects.values())
        doc = {"meta": {"api-version": "1.1"}, "projects": [{"name": n} for n in names]}
        return json.dumps(doc, indent=1).encode("utf-8")

    def _index_html(self) -> bytes:
        with self._lock:
            names = sorted(self._projects)
        links = "".join(f'<a href="{n}/">{html.escape(n)}</a><br/>\n' for n in names)
        return _html_page("Simple index", links)

    def _detail_json(self, project: _Project) -> bytes:
        with self._lock:
            files = list(project.files)
        rows = []
        for f in files:
            core: dict[str, str] | bool = False
            if self.metadata_enabled and f.metadata_sha256 is not None:
                core = {"sha256": f.metadata_sha256}
            row: dict[str, object] = {
                "filename": f.filename,
                "url": self._link(f),
                "hashes": {"sha256": f.listed_sha256},
                "requires-python": f.requires_python,
                "yanked": f.yanked,
                "size": f.size,
                "upload-time": f.upload_time,
                "core-metadata": core,
            }
            if self.legacy_dist_info_metadata:
                row["data-dist-info-metadata"] = core
            rows.append(row)
        versions = sorted({f.version for f in files})
        doc = {
            "meta": {"api-version": "1.1"},
            "name": project.name,
            "versions": [str(v) for v in versions],
            "files": rows,
        }
        return json.dumps(doc, indent=1).encode("utf-8")

    def _detail_html(self, project: _Project) -> bytes:
        with self._lock:
            files = list(project.files)
        links = []
        for f in files:
            attrs = [f'href="{html.escape(self._link(f))}#sha256={f.listed_sha256}"']
            if f.requires_python is not None:
                attrs.append(f'data-requires-python="{html.escape(f.requires_python)}"')
            if f.yanked is not False:
                reason = "" if f.yanked is True else str(f.yanked)
                attrs.append(f'data-yanked="{html.escape(reason)}"')
            if self.metadata_enabled and f.metadata_sha256 is not None:
                value = f"sha256={f.metadata_sha256}"
                attrs.append(f'data-core-metadata="{value}"')
                attrs.append(f'data-dist-info-metadata="{value}"')
            links.append(f"<a {' '.join(attrs)}>{html.escape(f.filename)}</a><br/>\n")
        return _html_page(f"Links for {project.name}", "".join(links))

    def respond(self, method: str, raw_path: str, headers: dict[str, str]) -> _Response:
        """The normal (fault-free) response for a request."""
        split = urlsplit(raw_path)
        path = split.path
        if path == "/simple":
            return _redirect("/simple/")
        if path.startswith("/simple/"):
            kind = self._page_type(headers.get("accept"), parse_qs(split.query))
            if kind is None:
                return _text(HTTPStatus.NOT_ACCEPTABLE, "no acceptable page type\n")
            rest = path.removeprefix("/simple/")
            if rest == "":
                body = self._index_json() if kind == JSON_V1 else self._index_html()
                return _page(kind, body)
            name = rest.rstrip("/")
            if "/" in name:
                return _text(HTTPStatus.NOT_FOUND, "not found\n")
            project = self._project(name)
            if project is None:
                return _text(HTTPStatus.NOT_FOUND, f"no project named {name!r}\n")
            normalized = canonicalize_name(name)
            if name != normalized or not rest.endswith("/"):
                query = f"?{split.query}" if split.query else ""
                return _redirect(f"/simple/{normalized}/{query}")
            body = self._detail_json(project) if kind == JSON_V1 else self._detail_html(project)
            return _page(kind, body)
        if path.startswith("/files/"):
            return self._file(path.removeprefix("/files/"), headers.get("range"))
        return _text(HTTPStatus.NOT_FOUND, "not found\n")

    def _page_type(self, accept: str | None, query: dict[str, list[str]]) -> str | None:
        if self.html_only:
            return TEXT_HTML
        if self.json_only:
            return JSON_V1
        fmt = query.get("format")
        if fmt:
            return fmt[0] if fmt[0] in CONTENT_TYPES else None
        return negotiate(accept)

    def _file(self, filename: str, range_header: str | None) -> _Response:
        with self._lock:
            entry = self._by_filename.get(filename)
            meta_entry = (
                self._by_filename.get(filename.removesuffix(".metadata"))
                if filename.endswith(".metadata")
                else None
            )
        if meta_entry is not None and meta_entry.metadata is not None and self.metadata_enabled:
            body = meta_entry.metadata
            return _Response(
                HTTPStatus.OK,
                {"Content-Type": "application/octet-stream", "Content-Length": str(len(body))},
                body=body,
            )
        if entry is None:
            return _text(HTTPStatus.NOT_FOUND, f"no file named {filename!r}\n")
        headers = {
            "Content-Type": "application/octet-stream",
            "Accept-Ranges": "bytes",
            "ETag": f'"{entry.sha256}"',
        }
        start, length = 0, entry.size
        status = HTTPStatus.OK
        if range_header is not None:
            parsed = _parse_range(range_header, entry.size)
            if parsed is None:
                headers["Content-Range"] = f"bytes */{entry.size}"
                return _Response(
                    HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE,
                    {**headers, "Content-Length": "0"},
                    body=b"",
                )
            start, length = parsed
            status = HTTPStatus.PARTIAL_CONTENT
            headers["Content-Range"] = f"bytes {start}-{start + length - 1}/{entry.size}"
        headers["Content-Length"] = str(length)
        return _Response(status, headers, file=entry.path, start=start, length=length)


def _html_page(title: str, body: str) -> bytes:
    page = (
        "<!DOCTYPE html>\n<html>\n<head>\n"
        '<meta name="pypi:repository-version" content="1.1">\n'
        f"<title>{html.escape(title)}</title>\n</head>\n<body>\n"
        f"<h1>{html.escape(title)}</h1>\n{body}</body>\n</html>\n"
    )
    return page.encode("utf-8")


def _page(kind: str, body: bytes) -> _Response:
    headers = {
        "Content-Type": CONTENT_TYPES[kind],
        "Content-Length": str(len(body)),
        "Vary": "Accept",
        "Cache-Control": "max-age=600, public",
    }
    return _Response(HTTPStatus.OK, headers, body=body)


def _text(status: int, text: str) -> _Response:
    body = text.encode("utf-8")
    headers = {"Content-Type": "text/plain; charset=utf-8", "Content-Length": str(len(body))}
    return _Response(status, headers, body=body)


def _redirect(location: str, status: int = HTTPStatus.MOVED_PERMANENTLY) -> _Response:
    response = _text(status, f"see {location}\n")
    response.headers["Location"] = location
    return response


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
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
    end = min(end, size - 1)
    return start, end - start + 1


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256
    upstream: FakeUpstream

    def __init__(self, address: tuple[str, int], upstream: FakeUpstream) -> None:
        super().__init__(address, _Handler)
        self.upstream = upstream
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def track(self, conn: socket.socket, *, open_: bool) -> None:
        """Remember (or forget) a live connection, so that `stop` can unblock it."""
        with self._connections_lock:
            if open_:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def close_connections(self) -> None:
        """Unblock handler threads waiting on idle keep-alive connections."""
        with self._connections_lock:
            connections = list(self._connections)
        for conn in connections:
            # OSError: already closed by the client, nothing left to unblock.
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    # Idle keep-alive connections end after this long, so threads do not pile up.
    timeout = 30

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib name
        """Keep test output quiet: the request log is `FakeUpstream.requests`."""

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
        upstream = self.server.upstream
        headers = {k.lower(): v for k, v in self.headers.items()}
        upstream._record(RecordedRequest(method, self.path, headers))
        if upstream.latency:
            time.sleep(upstream.latency)
        fault = upstream._take_fault(urlsplit(self.path).path)
        if fault is not None and fault.delay:
            upstream._stopping.wait(fault.delay)
        if fault is not None and fault.reset and fault.truncate is None:
            self._reset()
            return
        if fault is not None and fault.status is not None:
            response = _text(fault.status, f"injected {fault.status}\n")
            if fault.retry_after is not None:
                response.headers["Retry-After"] = fault.retry_after
        elif fault is not None and fault.redirect_to is not None:
            response = _redirect(fault.redirect_to, HTTPStatus.FOUND)
        else:
            response = upstream.respond(method, self.path, headers)
        self._send(method, response, fault)

    def _send(self, method: str, response: _Response, fault: Fault | None) -> None:
        body_len = len(response.body) if response.body is not None else response.length
        extra = fault.extra_bytes if fault is not None else 0
        self.send_response(response.status)
        for key, value in response.headers.items():
            self.send_header(key, str(body_len + extra) if key == "Content-Length" else value)
        self.end_headers()
        if method == "HEAD":
            return
        limit = None if fault is None else fault.truncate
        sent = 0
        flip = fault is not None and fault.wrong_body
        rate = None if fault is None else fault.drip_bytes_per_sec
        for original in self._chunks(response, extra, small=rate is not None):
            chunk = original
            if flip and chunk:
                chunk = bytes([chunk[0] ^ 0xFF]) + chunk[1:]
                flip = False
            if limit is not None and sent + len(chunk) >= limit:
                self.wfile.write(chunk[: limit - sent])
                self.wfile.flush()
                self._cut(reset=fault is not None and fault.reset)
                return
            if rate is not None and self.server.upstream._stopping.is_set():
                self.close_connection = True
                return
            self.wfile.write(chunk)
            sent += len(chunk)
            if rate is not None:
                self.wfile.flush()
                self.server.upstream._stopping.wait(len(chunk) / rate)
        if limit is not None:
            # The body was shorter than the limit: still end the connection as promised.
            self.wfile.flush()
            self._cut(reset=fault is not None and fault.reset)

    def _chunks(self, response: _Response, extra: int, *, small: bool) -> list[bytes] | _FileChunks:
        size = 256 if small else _CHUNK
        if response.body is not None:
            body = response.body + b"\0" * extra
            return [body[i : i + size] for i in range(0, len(body), size)] or [b""]
        assert response.file is not None
        return _FileChunks(response.file, response.start, response.length, extra, size)

    def _cut(self, *, reset: bool) -> None:
        self.close_connection = True
        if reset:
            self._reset()

    def _reset(self) -> None:
        """Close the connection with a TCP RST (SO_LINGER 0) instead of a clean FIN."""
        self.close_connection = True
        self.wfile.flush()
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        # Close the descriptor now: socketserver would otherwise shut the socket down
        # cleanly (a FIN) before the last reference goes.
        os.close(self.connection.detach())


class _FileChunks:
    """Iterate over `length` bytes of a file from `start`, then `extra` zero bytes."""

    def __init__(self, path: Path, start: int, length: int, extra: int, size: int) -> None:
        self._path = path
        self._start = start
        self._length = length
        self._extra = extra
        self._size = size

    def __iter__(self) -> Iterator[bytes]:
        f: BinaryIO
        with self._path.open("rb") as f:
            f.seek(self._start)
            left = self._length
            while left > 0:
                chunk = f.read(min(self._size, left))
                if not chunk:
                    raise OSError(f"{self._path} shrank while being served")
                left -= len(chunk)
                yield chunk
        if self._extra:
            yield b"\0" * self._extra
