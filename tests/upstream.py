"""A fake upstream package index: a real HTTP/1.1 server on 127.0.0.1 for tests.

It serves what tests put in it (wheels and sdists built by tests/dists.py, or any file) as
PyPI does: `/simple/` and `/simple/<project>/` in PEP 691 JSON (api 1.1) or PEP 503 HTML by
content negotiation (tests/upstream_pages.py), the files under `/files/<filename>` (HEAD,
single Range, keep-alive) and PEP 658 `.metadata` next to them. It records every request and
injects faults on request paths that match a pattern (tests/upstream_http.py), so tests can
check what a client fetched and how it copes.

    with FakeUpstream(tmp_path).start() as up:
        up.add_release("demo", "1.0", requires_dist=["dep>=1"])
        up.add_backend()  # so that pip can build the sdists
        ...  # point a client at up.url
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import shutil
import threading
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from pathlib import Path
from types import TracebackType
from typing import Self
from urllib.parse import parse_qs, urlsplit

from packaging.utils import (
    NormalizedName,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)

from tests import dists
from tests.attestations import provenance_object
from tests.upstream_http import (
    Fault,
    RecordedRequest,
    Response,
    Server,
    file_response,
    redirect_response,
    text_response,
)
from tests.upstream_pages import (
    CONTENT_TYPES,
    JSON_V1,
    TEXT_HTML,
    ServedFile,
    detail_html,
    detail_json,
    index_html,
    index_json,
    negotiate,
)

__all__ = ["JSON_V1", "FakeUpstream", "Fault", "RecordedRequest", "ServedFile", "negotiate"]

# Defaults for files added without an upload time: distinct, increasing, reproducible.
_FIRST_UPLOAD = datetime(2020, 1, 1, tzinfo=UTC)


# The keyword arguments of FakeUpstream.add_release that add_projects accepts.
_RELEASE_KEYS = (
    "wheels",
    "sdist",
    "requires_dist",
    "requires_python",
    "provides_extra",
    "build_requires",
    "sdist_metadata",
    "yanked",
    "upload_time",
)


@dataclass(slots=True)
class _Project:
    name: NormalizedName
    files: list[ServedFile] = field(default_factory=list)


def _wheel_metadata(path: Path) -> bytes:
    with zipfile.ZipFile(path) as zf:
        for name in zf.namelist():
            parts = name.split("/")
            if len(parts) == 2 and parts[0].endswith(".dist-info") and parts[1] == "METADATA":
                return zf.read(name)
    raise ValueError(f"{path.name}: no .dist-info/METADATA at the top level — not a wheel")


def _page(kind: str, body: bytes) -> Response:
    headers = {
        "Content-Type": CONTENT_TYPES[kind],
        "Content-Length": str(len(body)),
        "Vary": "Accept",
        "Cache-Control": "max-age=600, public",
    }
    return Response(HTTPStatus.OK, headers, body=body)


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
        self.ranges = True  # False: a Range header is ignored, the whole file is sent (200)
        # filename -> another file of the same size whose bytes answer its range requests
        # (a server that sends other bytes for a range than for the whole file)
        self.ranges_from: dict[str, Path] = {}
        self.absolute_urls = True
        self.legacy_dist_info_metadata = False
        self.latency = 0.0
        self.bandwidth = 0.0  # bytes/s over all connections (0: unlimited); see Link
        self.basic_auth: tuple[str, str] | None = None  # (user, password) every request needs
        self.requests: list[RecordedRequest] = []
        self.statuses: dict[str, tuple[str, str]] = {}  # PEP 792, by normalized name
        # PEP 740: filename -> provenance object, served at /integrity/<filename>/provenance
        self.provenances: dict[str, bytes] = {}
        self._projects: dict[NormalizedName, _Project] = {}
        self._by_filename: dict[str, ServedFile] = {}
        self._faults: list[tuple[str, Fault, list[int | None]]] = []
        self._lock = threading.Lock()
        self.stopping = threading.Event()
        self._server: Server | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> Self:
        """Bind a free port on 127.0.0.1 and serve from a background thread."""
        self.files_dir.mkdir(parents=True, exist_ok=True)
        self.stopping.clear()
        server = Server(("127.0.0.1", 0), self)
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
        self.stopping.set()
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
            entry = ServedFile(
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
            project = self._projects.setdefault(name, _Project(name=name))
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

    def add_projects(self, projects: Mapping[str, Mapping[str, Mapping[str, object]]]) -> None:
        """Serve a project graph declared as data (a dict, or `tomllib.loads` of a TOML file).

            {"demo": {"1.0": {"requires_dist": ["dep>=1"], "wheels": ["py3-none-any"]}},
             "dep": {"1.2": {}}}

        Each release's table holds `add_release` keyword arguments (an empty table: one
        py3-none-any wheel and an sdist). An unknown key raises ValueError naming it.
        """
        allowed = set(_RELEASE_KEYS)
        for name, releases in projects.items():
            for version, options in releases.items():
                unknown = sorted(set(options) - allowed)
                if unknown:
                    raise ValueError(
                        f"{name} {version}: unknown release key {unknown[0]!r} — "
                        f"use one of {', '.join(sorted(allowed))}"
                    )
                self.add_release(name, version, **options)  # type: ignore[arg-type]

    def add_backend(self) -> list[Path]:
        """Serve morgan-test-backend (wheel and self-building sdist): it builds our sdists."""
        paths = [
            dists.build_backend_wheel(self.build_dir),
            dists.build_backend_sdist(self.build_dir),
        ]
        for path in paths:
            self.add_dist(path)
        return [self.files_dir / path.name for path in paths]

    def remove(self, name: str, version: str | None = None, filename: str | None = None) -> None:
        """Delete from the index, as an author can on PyPI: one file (`filename`), one
        release (`version`) or the whole project (neither). Its URLs then answer 404."""
        normalized = canonicalize_name(name)
        with self._lock:
            project = self._projects[normalized]
            gone = [
                f
                for f in project.files
                if (filename is None or f.filename == filename)
                and (version is None or str(f.version) == version)
            ]
            if not gone:
                raise ValueError(f"{name} {version or ''} {filename or ''}: nothing to remove")
            project.files = [f for f in project.files if f not in gone]
            for f in gone:
                del self._by_filename[f.filename]
            if filename is None and version is None:
                del self._projects[normalized]

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

    def attest(self, filename: str, provenance: bytes | None = None) -> None:
        """Serve a provenance for ``filename`` (by default a well-formed one for its sha256,
        tests/attestations.py) and point the pages at it."""
        if provenance is None:
            provenance = provenance_object(filename, self._by_filename[filename].sha256)
        with self._lock:
            self.provenances[filename] = provenance

    def file_url(self, filename: str) -> str:
        """The absolute URL the server serves `filename` at."""
        return f"{self.base_url}/files/{filename}"

    # --- the Site protocol: called from the server's handler threads -------------------

    def record(self, request: RecordedRequest) -> None:
        """Append a request to the log."""
        with self._lock:
            self.requests.append(request)

    def take_fault(self, path: str) -> Fault | None:
        """The first fault set whose pattern matches `path` and has uses left (one used)."""
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

    def respond(self, method: str, raw_path: str, headers: dict[str, str]) -> Response:
        """The normal (fault-free) response to a request."""
        if self.basic_auth is not None:
            token = base64.b64encode(":".join(self.basic_auth).encode()).decode()
            if headers.get("authorization") != f"Basic {token}":
                response = text_response(HTTPStatus.UNAUTHORIZED, "credentials required\n")
                response.headers["WWW-Authenticate"] = 'Basic realm="fake"'
                return response
        split = urlsplit(raw_path)
        path = split.path
        if path == "/simple":
            return redirect_response("/simple/")
        if path.startswith("/files/"):
            wanted = headers.get("range") if self.ranges else None
            return self._file(path.removeprefix("/files/"), wanted)
        if path.startswith("/integrity/") and path.endswith("/provenance"):
            with self._lock:
                body = self.provenances.get(path.split("/")[2])
            if body is None:
                return text_response(HTTPStatus.NOT_FOUND, "no provenance\n")
            headers = {"Content-Type": "application/json", "Content-Length": str(len(body))}
            return Response(HTTPStatus.OK, headers, body=body)
        if not path.startswith("/simple/"):
            return text_response(HTTPStatus.NOT_FOUND, "not found\n")
        kind = self._page_type(headers.get("accept"), parse_qs(split.query))
        if kind is None:
            return text_response(HTTPStatus.NOT_ACCEPTABLE, "no acceptable page type\n")
        rest = path.removeprefix("/simple/")
        if rest == "":
            with self._lock:
                names = sorted(self._projects)
            return _page(kind, index_json(names) if kind == JSON_V1 else index_html(names))
        name = rest.removesuffix("/")
        if "/" in name:
            return text_response(HTTPStatus.NOT_FOUND, "not found\n")
        normalized = canonicalize_name(name)
        with self._lock:
            project = self._projects.get(normalized)
            files = [] if project is None else list(project.files)
        if project is None:
            return text_response(HTTPStatus.NOT_FOUND, f"no project named {name!r}\n")
        if name != normalized or not rest.endswith("/"):
            query = f"?{split.query}" if split.query else ""
            return redirect_response(f"/simple/{normalized}/{query}")
        with self._lock:
            attested = {
                fn: f"{self.base_url}/integrity/{fn}/provenance" for fn in self.provenances
            } or None
        if kind == JSON_V1:
            body = detail_json(
                normalized,
                files,
                self._link,
                provenance=attested,
                metadata=self.metadata_enabled,
                legacy_dist_info_metadata=self.legacy_dist_info_metadata,
                status=self.statuses.get(normalized),
            )
        else:
            body = detail_html(
                normalized,
                files,
                self._link,
                provenance=attested,
                metadata=self.metadata_enabled,
                status=self.statuses.get(normalized),
            )
        return _page(kind, body)

    def _link(self, entry: ServedFile) -> str:
        if self.absolute_urls:
            return self.file_url(entry.filename)
        return f"../../files/{entry.filename}"

    def _page_type(self, accept: str | None, query: dict[str, list[str]]) -> str | None:
        if self.html_only:
            return TEXT_HTML
        if self.json_only:
            return JSON_V1
        fmt = query.get("format")
        if fmt:
            return fmt[0] if fmt[0] in CONTENT_TYPES else None
        return negotiate(accept)

    def _file(self, filename: str, range_header: str | None) -> Response:
        with self._lock:
            entry = self._by_filename.get(filename)
            described = self._by_filename.get(filename.removesuffix(".metadata"))
        if entry is not None:
            path = entry.path
            if range_header is not None:
                path = self.ranges_from.get(filename, path)
            return file_response(path, entry.size, entry.sha256, range_header)
        if (
            filename.endswith(".metadata")
            and described is not None
            and described.metadata is not None
            and self.metadata_enabled
        ):
            body = described.metadata
            headers = {"Content-Type": "application/octet-stream", "Content-Length": str(len(body))}
            return Response(HTTPStatus.OK, headers, body=body)
        return text_response(HTTPStatus.NOT_FOUND, f"no file named {filename!r}\n")
