"""The upstream client against a local server that injects faults step by step."""

from __future__ import annotations

import base64
import contextlib
import gzip
import socket
import ssl
import struct
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import trustme

from rules.errors import UpstreamError
from rules.lib.http import PAGE_ACCEPT, HttpClient, PageResponse

JSON = "application/vnd.pypi.simple.v1+json"
CREDENTIALS_HINT = " (check the credentials for this host in ~/.netrc or the index URL)"


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    declared_length: int | None = None  # a Content-Length other than len(body): truncation
    chunked: bool = False  # no Content-Length at all
    delay: float = 0.0  # wait before answering (read timeouts)
    stall: float = 0.0  # wait after the body, before closing (a slow drip that stops)


@dataclass(frozen=True)
class Reset:
    """Abort the connection with a TCP reset, after sending ``partial`` bytes of a reply."""

    partial: bytes = b""


Step = Reply | Reset


class Upstream:
    """A scripted server: each path answers its steps in order, the last one forever."""

    def __init__(self) -> None:
        self.scripts: dict[str, list[Step]] = {}
        self.log: list[tuple[str, dict[str, str]]] = []
        self.lock = threading.Lock()
        self.port = 0

    def url(self, path: str, auth: str = "") -> str:
        return f"http://{auth}127.0.0.1:{self.port}{path}"

    def script(self, path: str, *steps: Step) -> None:
        self.scripts[path] = list(steps)

    def next_step(self, path: str) -> Step:
        with self.lock:
            steps = self.scripts.get(path, [Reply(404, b"not here")])
            return steps.pop(0) if len(steps) > 1 else steps[0]

    def paths(self) -> list[str]:
        return [path for path, _ in self.log]


def make_handler(upstream: Upstream) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            with upstream.lock:
                upstream.log.append((self.path, dict(self.headers.items())))
            step = upstream.next_step(self.path)
            if isinstance(step, Reset):
                if step.partial:
                    self.wfile.write(step.partial)
                    self.wfile.flush()
                    # Let the client take in what was sent: after a reset, Linux drops
                    # data still unread in the receive buffer.
                    time.sleep(0.05)
                # SO_LINGER 0: close() sends RST instead of FIN.
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                self.connection.close()
                self.close_connection = True
                return
            time.sleep(step.delay)
            self.send_response(step.status)
            for key, value in step.headers.items():
                self.send_header(key, value)
            if step.chunked:
                self.send_header("Connection", "close")
                self.close_connection = True
            else:
                length = step.declared_length
                self.send_header(
                    "Content-Length", str(len(step.body) if length is None else length)
                )
            self.end_headers()
            self.wfile.write(step.body)
            self.wfile.flush()
            time.sleep(step.stall)
            if step.declared_length is not None:
                self.close_connection = True

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    return Handler


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    state = Upstream()
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(state))
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


def client(sleeps: Sleeps, **kwargs: object) -> HttpClient:
    options: dict[str, object] = {"retries": 4, "backoff": 0.5, "timeout": 5.0}
    options.update(kwargs)
    return HttpClient(sleep=sleeps, jitter=lambda: 0.5, clock=lambda: 1_000_000.0, **options)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def no_netrc(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # The developer's own ~/.netrc must not leak into these tests.
    empty = tmp_path / "empty-netrc"
    empty.write_text("")
    monkeypatch.setenv("NETRC", str(empty))


# --- pages -------------------------------------------------------------------------------


def test_page_is_fetched_with_the_simple_api_accept_header(
    upstream: Upstream, sleeps: Sleeps
) -> None:
    upstream.script("/simple/demo/", Reply(200, b"{}", {"Content-Type": JSON, "ETag": '"v1"'}))
    http = client(sleeps)
    page = http.get_page(upstream.url("/simple/demo/"))
    assert page == PageResponse(200, b"{}", JSON, upstream.url("/simple/demo/"), '"v1"')
    headers = upstream.log[0][1]
    assert headers["Accept"] == PAGE_ACCEPT
    assert headers["User-Agent"].startswith("morgan/")
    assert (http.requests_sent, http.bytes_received, sleeps) == (1, 2, [])


def test_redirects_are_followed_and_the_final_url_returned(
    upstream: Upstream, sleeps: Sleeps
) -> None:
    upstream.script("/simple/Demo", Reply(301, headers={"Location": "/simple/demo/"}))
    upstream.script("/simple/demo/", Reply(200, b"<html>", {"Content-Type": "text/html"}))
    page = client(sleeps).get_page(upstream.url("/simple/Demo"))
    assert (page.status, page.url, page.body) == (200, upstream.url("/simple/demo/"), b"<html>")


def test_conditional_get_gives_304(upstream: Upstream, sleeps: Sleeps) -> None:
    upstream.script("/simple/demo/", Reply(304, headers={"ETag": '"v1"'}))
    page = client(sleeps).get_page(upstream.url("/simple/demo/"), etag='"v1"')
    assert (page.status, page.body, page.etag) == (304, b"", '"v1"')
    assert upstream.log[0][1]["If-None-Match"] == '"v1"'


def test_the_environments_proxy_carries_every_request_and_no_proxy_hosts_go_direct(
    upstream: Upstream, sleeps: Sleeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The scripted server is the proxy: it sees the absolute URL of a host that does not
    # resolve, so an answer proves the request went through it.
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", upstream.url(""))
    monkeypatch.setenv("NO_PROXY", "direct.invalid")
    for name in ("a", "b"):
        upstream.script(f"http://index.invalid/simple/{name}/", Reply(200, name.encode()))
    http = client(sleeps, retries=0)
    pages = [http.get_page(f"http://index.invalid/simple/{n}/").body for n in "aba"]
    assert pages == [b"a", b"b", b"a"]  # the settings read once serve every request
    assert upstream.paths() == [f"http://index.invalid/simple/{n}/" for n in "aba"]
    with pytest.raises(UpstreamError):  # NO_PROXY: looked up directly, and it does not exist
        http.get_page("http://direct.invalid/simple/a/")
    assert len(upstream.paths()) == 3


@pytest.mark.parametrize("status", [404, 410])
def test_missing_project_is_status_404_without_retry(
    upstream: Upstream, sleeps: Sleeps, status: int
) -> None:
    upstream.script("/simple/nope/", Reply(status, b"gone"))
    http = client(sleeps)
    page = http.get_page(upstream.url("/simple/nope/"))
    assert (page.status, page.body, http.requests_sent, sleeps) == (404, b"", 1, [])


@pytest.mark.parametrize("status", [500, 502, 503, 504, 429])
def test_transient_statuses_are_retried(upstream: Upstream, sleeps: Sleeps, status: int) -> None:
    upstream.script("/simple/demo/", Reply(status), Reply(200, b"ok", {"Content-Type": JSON}))
    http = client(sleeps)
    assert http.get_page(upstream.url("/simple/demo/")).body == b"ok"
    # backoff 0.5 s with "equal jitter" at 0.5: 0.25 + 0.25 * 0.5
    assert (http.requests_sent, sleeps) == (2, [0.375])


def test_backoff_doubles_and_gives_up_after_the_last_attempt(
    upstream: Upstream, sleeps: Sleeps
) -> None:
    upstream.script("/simple/demo/", Reply(503))
    http = client(sleeps, retries=4)
    with pytest.raises(UpstreamError) as exc:
        http.get_page(upstream.url("/simple/demo/"))
    assert str(exc.value) == (
        f"GET {upstream.url('/simple/demo/')}: HTTP 503 Service Unavailable after 5 attempts"
    )
    assert sleeps == [0.375, 0.75, 1.5, 3.0]
    assert http.requests_sent == 5


def test_real_jitter_stays_between_half_and_whole_backoff(upstream: Upstream) -> None:
    upstream.script("/simple/demo/", Reply(502))
    sleeps = Sleeps()
    http = HttpClient(retries=3, backoff=2.0, sleep=sleeps)
    with pytest.raises(UpstreamError):
        http.get_page(upstream.url("/simple/demo/"))
    assert len(sleeps) == 3
    for delay, base in zip(sleeps, [2.0, 4.0, 8.0], strict=True):
        assert base / 2 <= delay <= base


def test_gzipped_page_is_decoded(upstream: Upstream, sleeps: Sleeps) -> None:
    body = b'{"files": []}'
    upstream.script("/simple/demo/", Reply(200, gzip.compress(body), {"Content-Encoding": "gzip"}))
    assert client(sleeps).get_page(upstream.url("/simple/demo/")).body == body


@pytest.mark.parametrize(
    ("retry_after", "expected"),
    [
        ("7", 7.0),
        ("0", 0.0),
        ("3600", 60.0),
        (formatdate(1_000_012.0, usegmt=True), 12.0),
        (formatdate(999_000.0, usegmt=True), 0.0),
        ("soon", 0.375),
    ],
    ids=["seconds", "zero", "capped", "http-date", "date-in-past", "unparseable"],
)
def test_retry_after_is_honoured(
    upstream: Upstream, sleeps: Sleeps, retry_after: str, expected: float
) -> None:
    upstream.script(
        "/simple/demo/", Reply(429, headers={"Retry-After": retry_after}), Reply(200, b"ok")
    )
    assert client(sleeps).get_page(upstream.url("/simple/demo/")).body == b"ok"
    assert sleeps == [expected]


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (400, "HTTP 400 Bad Request"),
        (401, f"HTTP 401 Unauthorized{CREDENTIALS_HINT}"),
        (403, f"HTTP 403 Forbidden{CREDENTIALS_HINT}"),
    ],
)
def test_other_client_errors_fail_at_once(
    upstream: Upstream, sleeps: Sleeps, status: int, message: str
) -> None:
    upstream.script("/simple/demo/", Reply(status))
    http = client(sleeps)
    with pytest.raises(UpstreamError) as exc:
        http.get_page(upstream.url("/simple/demo/"))
    assert str(exc.value) == f"GET {upstream.url('/simple/demo/')}: {message}"
    assert (http.requests_sent, sleeps) == (1, [])


def test_redirect_loop_is_a_clear_error(upstream: Upstream, sleeps: Sleeps) -> None:
    upstream.script("/a/", Reply(302, headers={"Location": "/b/"}))
    upstream.script("/b/", Reply(302, headers={"Location": "/a/"}))
    with pytest.raises(UpstreamError) as exc:
        client(sleeps).get_page(upstream.url("/a/"))
    assert str(exc.value) == f"GET {upstream.url('/a/')}: redirect loop (more than 10 redirects)"
    assert sleeps == []


def test_a_page_asked_for_early_is_sent_once_and_given_to_its_first_get(
    upstream: Upstream, sleeps: Sleeps
) -> None:
    upstream.script("/simple/a/", Reply(200, b"{}", {"Content-Type": JSON, "ETag": '"a1"'}))
    upstream.script("/simple/b/", Reply(200, b"{ }", {"Content-Type": JSON}))
    http = client(sleeps)
    http.get_pages_early([upstream.url("/simple/a/"), upstream.url("/simple/b/")])
    for _ in range(500):  # both sent by the early threads before anyone asks
        if len(upstream.log) == 2:
            break
        time.sleep(0.01)
    assert sorted(upstream.paths()) == ["/simple/a/", "/simple/b/"]
    assert http.get_page(upstream.url("/simple/a/")) == PageResponse(
        200, b"{}", JSON, upstream.url("/simple/a/"), '"a1"'
    )
    assert http.get_page(upstream.url("/simple/b/")).body == b"{ }"
    assert len(upstream.log) == 2  # taken, not asked again
    # Taken once: a second get (or a conditional one) asks upstream as before.
    assert http.get_page(upstream.url("/simple/a/")).body == b"{}"
    assert http.get_page(upstream.url("/simple/b/"), etag='"x"').body == b"{ }"
    assert (len(upstream.log), http.requests_sent) == (4, 4)


def test_a_page_asked_for_early_fails_as_its_get_would(sleeps: Sleeps) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    http = client(sleeps, retries=2)
    url = f"http://127.0.0.1:{port}/simple/demo/"
    http.get_pages_early([url])
    with pytest.raises(UpstreamError) as exc:
        http.get_page(url)
    assert str(exc.value) == f"GET {url}: connection refused after 3 attempts"
    assert (http.requests_sent, sorted(sleeps)) == (3, [0.375, 0.75])


def test_a_get_before_the_early_threads_reach_its_page_sends_it_itself(
    upstream: Upstream, sleeps: Sleeps
) -> None:
    import rules.lib.http as http_module

    upstream.script("/simple/slow/", Reply(200, b"{}", {"Content-Type": JSON}, delay=3.0))
    upstream.script("/simple/next/", Reply(200, b"[]", {"Content-Type": JSON}))
    http = client(sleeps)
    # One early thread, busy with a slow page: the second page waits in its queue.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(http_module, "EARLY_THREADS", 1)
        http.get_pages_early([upstream.url("/simple/slow/"), upstream.url("/simple/next/")])
    started = time.monotonic()
    assert http.get_page(upstream.url("/simple/next/")).body == b"[]"
    assert time.monotonic() - started < 2.0  # not queued behind the slow page
    assert http.get_page(upstream.url("/simple/slow/")).body == b"{}"
    time.sleep(0.1)  # the early thread, done with the slow page, finds the other taken
    assert sorted(upstream.paths()) == ["/simple/next/", "/simple/slow/"]


def test_a_small_file_asked_for_early_is_sent_once_for_any_of_its_urls(
    upstream: Upstream, sleeps: Sleeps
) -> None:
    # The .metadata of a release's wheels, equal by their advertised hash: asked for once,
    # early, and taken by the first get_bytes of any of them with the same limit; `then`
    # sees what came.
    upstream.script("/files/a.whl.metadata", Reply(200, b"Name: a"))
    upstream.script("/files/b.metadata", Reply(200, b"Name: b"), Reply(200, b"Name: b"))
    http = client(sleeps)
    seen: list[tuple[str, bytes]] = []
    same = [upstream.url("/files/a.whl.metadata"), upstream.url("/files/a-win.whl.metadata")]
    http.get_bytes_early(
        [same, [upstream.url("/files/b.metadata")]],
        max_bytes=100,
        then=lambda url, data: seen.append((url, data)),
    )
    for _ in range(500):
        if len(seen) == 2:
            break
        time.sleep(0.01)
    assert sorted(seen) == [(same[0], b"Name: a"), (upstream.url("/files/b.metadata"), b"Name: b")]
    assert http.get_bytes(same[1], max_bytes=100) == b"Name: a"
    assert sorted(upstream.paths()) == ["/files/a.whl.metadata", "/files/b.metadata"]
    # Asked for with another limit: sent again (the early answer was read with its own).
    with pytest.raises(UpstreamError, match="exceeds 5 bytes"):
        http.get_bytes(upstream.url("/files/b.metadata"), max_bytes=5)
    assert len(upstream.log) == 3


def test_a_page_asked_for_already_is_not_asked_for_early_again(
    upstream: Upstream, sleeps: Sleeps
) -> None:
    # While the early crawl runs (here: one early thread, busy with a slow page), a page
    # the engine took or asked for itself is not asked for again when the crawl reaches
    # it through another root (bench/run.py's hubs, named by every root).
    import rules.lib.http as http_module

    upstream.script("/simple/slow/", Reply(200, b"{}", {"Content-Type": JSON}, delay=1.0))
    upstream.script("/simple/hub/", Reply(200, b"[]", {"Content-Type": JSON}))
    http = client(sleeps)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(http_module, "EARLY_THREADS", 1)
        http.get_pages_early([upstream.url("/simple/slow/")])
        assert http.get_page(upstream.url("/simple/hub/")).body == b"[]"
        http.get_pages_early([upstream.url("/simple/hub/")])
    assert http.get_page(upstream.url("/simple/slow/")).body == b"{}"
    time.sleep(0.2)
    assert sorted(upstream.paths()) == ["/simple/hub/", "/simple/slow/"]


def test_connection_refused_is_retried_then_reported(sleeps: Sleeps) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    http = client(sleeps, retries=2)
    with pytest.raises(UpstreamError) as exc:
        http.get_page(f"http://127.0.0.1:{port}/simple/")
    assert str(exc.value) == (
        f"GET http://127.0.0.1:{port}/simple/: connection refused after 3 attempts"
    )
    assert (http.requests_sent, sleeps) == (3, [0.375, 0.75])


def test_reset_before_the_answer_is_retried(upstream: Upstream, sleeps: Sleeps) -> None:
    upstream.script("/simple/demo/", Reset(), Reply(200, b"ok"))
    http = client(sleeps)
    assert http.get_page(upstream.url("/simple/demo/")).body == b"ok"
    assert (http.requests_sent, len(sleeps)) == (2, 1)


@pytest.mark.parametrize(
    "fault",
    [
        Reply(200, b"0123456789", declared_length=100),
        Reset(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789"),
    ],
    ids=["truncated", "reset-mid-body"],
)
def test_broken_page_body_is_retried(upstream: Upstream, sleeps: Sleeps, fault: Step) -> None:
    upstream.script("/simple/demo/", fault, Reply(200, b"whole page"))
    http = client(sleeps)
    assert http.get_page(upstream.url("/simple/demo/")).body == b"whole page"
    assert (http.requests_sent, len(sleeps)) == (2, 1)


def test_truncated_body_every_time_names_the_cause(upstream: Upstream, sleeps: Sleeps) -> None:
    upstream.script("/simple/demo/", Reply(200, b"0123456789", declared_length=100))
    with pytest.raises(UpstreamError) as exc:
        client(sleeps, retries=1).get_page(upstream.url("/simple/demo/"))
    assert str(exc.value) == (
        f"GET {upstream.url('/simple/demo/')}: body broken: "
        "body truncated (connection closed early) after 2 attempts"
    )


def test_read_timeout(upstream: Upstream, sleeps: Sleeps) -> None:
    upstream.script("/slow/", Reply(200, b"late", delay=1.0))
    with pytest.raises(UpstreamError) as exc:
        client(sleeps, retries=0, timeout=0.2).get_page(upstream.url("/slow/"))
    assert str(exc.value) == f"GET {upstream.url('/slow/')}: read timeout after 1 attempt"


def test_stream_that_stalls_mid_body_times_out(upstream: Upstream, sleeps: Sleeps) -> None:
    upstream.script("/f.whl", Reply(200, b"01234", declared_length=100, stall=1.0))
    with client(sleeps, timeout=0.2).stream(upstream.url("/f.whl")) as download:
        assert download.read(5) == b"01234"
        with pytest.raises(UpstreamError) as exc:
            download.read(95)
    assert str(exc.value) == (
        f"GET {upstream.url('/f.whl')}: connection broken while reading the body: read timeout"
    )


# --- credentials -------------------------------------------------------------------------


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_url_credentials_are_sent_remembered_and_never_shown(
    upstream: Upstream, sleeps: Sleeps
) -> None:
    upstream.script("/simple/demo/", Reply(200, b"page"))
    upstream.script("/files/demo-1.0.tar.gz.metadata", Reply(500))
    http = client(sleeps, retries=0)
    page = http.get_page(upstream.url("/simple/demo/", auth="me:s%40cret@"))
    assert page.url == upstream.url("/simple/demo/")
    with pytest.raises(UpstreamError) as exc:
        http.get_bytes(upstream.url("/files/demo-1.0.tar.gz.metadata"), max_bytes=100)
    assert "cret" not in str(exc.value)
    assert [h.get("Authorization") for _, h in upstream.log] == [basic("me", "s@cret")] * 2


def test_credentials_are_not_sent_to_another_host_after_a_redirect(
    upstream: Upstream, sleeps: Sleeps
) -> None:
    upstream.script("/a/", Reply(302, headers={"Location": upstream.url("/b/")}))
    upstream.script("/b/", Reply(200, b"page"))
    http = client(sleeps)
    page = http.get_page(f"http://me:pw@localhost:{upstream.port}/a/")
    assert (page.status, page.url) == (200, upstream.url("/b/"))
    assert [(path, h.get("Authorization")) for path, h in upstream.log] == [
        ("/a/", basic("me", "pw")),
        ("/b/", None),
    ]


def test_credentials_argument_by_host(upstream: Upstream, sleeps: Sleeps) -> None:
    upstream.script("/simple/demo/", Reply(200, b"page"))
    http = client(sleeps, credentials={f"127.0.0.1:{upstream.port}": ("u", "p")})
    http.get_page(upstream.url("/simple/demo/"))
    assert upstream.log[0][1]["Authorization"] == basic("u", "p")


def test_netrc_credentials_are_used(
    upstream: Upstream, sleeps: Sleeps, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login alice password wonderland\n")
    monkeypatch.setenv("NETRC", str(netrc))
    upstream.script("/simple/demo/", Reply(200, b"page"))
    client(sleeps).get_page(upstream.url("/simple/demo/"))
    assert upstream.log[0][1]["Authorization"] == basic("alice", "wonderland")


def test_no_credentials_no_authorization_header(upstream: Upstream, sleeps: Sleeps) -> None:
    upstream.script("/simple/demo/", Reply(200, b"page"))
    client(sleeps).get_page(upstream.url("/simple/demo/"))
    assert "Authorization" not in upstream.log[0][1]


def test_a_cookie_the_index_sets_is_sent_back(upstream: Upstream, sleeps: Sleeps) -> None:
    upstream.script("/simple/a/", Reply(200, b"a", {"Set-Cookie": "session=s1; Path=/"}))
    upstream.script("/simple/b/", Reply(200, b"b"))
    http = client(sleeps)
    assert [http.get_page(upstream.url(f"/simple/{n}/")).body for n in "ab"] == [b"a", b"b"]
    assert [h.get("Cookie") for _, h in upstream.log] == [None, "session=s1"]


@contextlib.contextmanager
def tls_upstream(state: Upstream, ca: trustme.CA) -> Iterator[str]:
    """``state`` served over TLS on loopback with a certificate ``ca`` issued; yields the
    base URL (no trailing slash)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(state))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_an_index_with_a_private_ca_is_trusted_through_requests_ca_bundle(
    sleeps: Sleeps, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    trustme.CA().cert_pem.write_to_path(str(tmp_path / "other.pem"))  # trusts nothing here
    state = Upstream()
    state.script("/simple/demo/", Reply(200, b"page"))
    with tls_upstream(state, ca) as base:
        url = f"{base}/simple/demo/"
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "ca.pem"))
        assert client(sleeps).get_page(url).body == b"page"
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "other.pem"))
        with pytest.raises(UpstreamError, match="TLS error"):
            client(sleeps, retries=0).get_page(url)
    assert state.paths() == ["/simple/demo/"]


# --- files -------------------------------------------------------------------------------


def test_get_bytes_bounds_the_body(upstream: Upstream, sleeps: Sleeps) -> None:
    upstream.script("/m", Reply(200, b"x" * 11))
    upstream.script("/chunked", Reply(200, b"y" * 11, chunked=True))
    http = client(sleeps)
    assert http.get_bytes(upstream.url("/m"), max_bytes=11) == b"x" * 11
    with pytest.raises(UpstreamError) as exc:
        http.get_bytes(upstream.url("/m"), max_bytes=10)
    assert str(exc.value) == f"GET {upstream.url('/m')}: response of 11 bytes exceeds 10 bytes"
    with pytest.raises(UpstreamError) as exc:
        http.get_bytes(upstream.url("/chunked"), max_bytes=10)
    assert str(exc.value) == f"GET {upstream.url('/chunked')}: response exceeds 10 bytes"


def test_get_bytes_404_is_an_error(upstream: Upstream, sleeps: Sleeps) -> None:
    with pytest.raises(UpstreamError) as exc:
        client(sleeps).get_bytes(upstream.url("/missing.metadata"), max_bytes=10)
    assert str(exc.value) == f"GET {upstream.url('/missing.metadata')}: HTTP 404 Not Found"


def test_stream_reads_in_chunks_and_counts_bytes(upstream: Upstream, sleeps: Sleeps) -> None:
    payload = bytes(range(256)) * 1000
    upstream.script("/f.whl", Reply(503), Reply(200, payload))
    http = client(sleeps)
    with http.stream(upstream.url("/f.whl")) as download:
        assert download.size == len(payload)
        chunks = iter(lambda: download.read(4096), b"")
        assert b"".join(chunks) == payload
    assert (http.requests_sent, http.bytes_received) == (2, len(payload))
    assert upstream.log[-1][1]["Accept-Encoding"] == "identity"


def test_a_fast_tls_body_is_read_in_large_pieces_after_its_first_mib(
    sleeps: Sleeps, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Over TLS a read of what has arrived gives one record (16 KiB at most), and each such
    # read takes the GIL back and is hashed and written by the caller on its own: a fast
    # body is read in large pieces once its first MiB has come (Download.read).
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    payload = bytes(range(256)) * (32 * 1024)  # 8 MiB
    state = Upstream()
    state.script("/f.whl", Reply(200, payload))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "ca.pem"))
    chunks: list[bytes] = []
    with tls_upstream(state, ca) as base, client(sleeps).stream(f"{base}/f.whl") as download:
        while chunk := download.read(1 << 20):
            chunks.append(chunk)
    assert b"".join(chunks) == payload
    first_mib = next(i for i in range(len(chunks)) if sum(map(len, chunks[: i + 1])) >= 1 << 20)
    assert max(len(c) for c in chunks[: first_mib + 1]) <= 16 * 1024  # record by record
    assert min(len(c) for c in chunks[first_mib + 1 : -1]) > 64 * 1024  # then many at once
    assert len(chunks) < 128  # record by record: 512


def test_stream_broken_mid_body_raises(upstream: Upstream, sleeps: Sleeps) -> None:
    upstream.script("/f.whl", Reset(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n01234"))
    received = b""
    with client(sleeps).stream(upstream.url("/f.whl")) as download:
        received += download.read(5)
        with pytest.raises(UpstreamError) as exc:
            download.read(995)
    assert received == b"01234"
    assert str(exc.value) == (
        f"GET {upstream.url('/f.whl')}: connection broken while reading the body: connection reset"
    )


def test_stream_truncated_body_raises(upstream: Upstream, sleeps: Sleeps) -> None:
    upstream.script("/t.whl", Reply(200, b"0123456789", declared_length=100))
    with client(sleeps).stream(upstream.url("/t.whl")) as download:
        assert download.read(10) == b"0123456789"
        with pytest.raises(UpstreamError) as exc:
            download.read(90)
    assert str(exc.value) == (
        f"GET {upstream.url('/t.whl')}: connection broken while reading the body: "
        "body truncated (connection closed early)"
    )


def test_stream_error_status(upstream: Upstream, sleeps: Sleeps) -> None:
    with pytest.raises(UpstreamError) as exc, client(sleeps).stream(upstream.url("/gone.whl")):
        pass
    assert str(exc.value) == f"GET {upstream.url('/gone.whl')}: HTTP 404 Not Found"


def test_threads_share_the_counters(upstream: Upstream, sleeps: Sleeps) -> None:
    upstream.script("/p", Reply(200, b"abc"))
    http = client(sleeps)
    with ThreadPoolExecutor(8) as pool:
        bodies = list(pool.map(lambda _: http.get_page(upstream.url("/p")).body, range(40)))
    assert bodies == [b"abc"] * 40
    assert (http.requests_sent, http.bytes_received) == (40, 120)
