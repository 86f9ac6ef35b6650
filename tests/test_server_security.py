"""server.py against hostile input: traversal in every encoding, planted symlinks, oversized
and malformed requests, slowloris. Each gets a 4xx or is cut off; nothing from outside the
tree is ever sent; the server keeps serving."""

from __future__ import annotations

import http.client
import io
import os
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from morgan.server import MirrorServer
from tests.index_tree import IndexTree, build_tree
from tests.server_fixtures import port_of, raw_exchange, request, running_server, status_of

SECRET = b"TOP-SECRET-do-not-serve"


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> IndexTree:
    base = tmp_path_factory.mktemp("security")
    (base / "secret.txt").write_bytes(SECRET)
    outside = base / "outside"
    (outside / "simple").mkdir(parents=True)
    (outside / "index.html").write_bytes(SECRET)
    (outside / "simple" / "index.html").write_bytes(SECRET)
    tree = build_tree(base / "mirror", environments={"linux": ["alpha"]})
    (tree.root / "private.txt").write_bytes(SECRET)
    simple = tree.generation(1) / "simple"
    alpha = simple / "alpha"
    (alpha / "abs.whl").symlink_to(base / "secret.txt")
    (alpha / "rel.whl").symlink_to("../../../../../secret.txt")
    (alpha / "root.whl").symlink_to("../../../../private.txt")
    (alpha / "dir.whl").symlink_to("../../../../store/objects")
    (simple / "evil").symlink_to(outside)
    (tree.generation(1) / "env" / "leak").symlink_to(outside)
    chain = tree.objects() / "zz"
    chain.mkdir()
    (chain / ("0" * 64)).symlink_to(base / "secret.txt")
    (alpha / "chain.whl").symlink_to(f"../../../../store/objects/zz/{'0' * 64}")
    (alpha / "copy.whl").write_bytes(b"a regular file inside the generation")
    # Not regular files: FIFOs (in the generation, and in the store behind a link), a link
    # to a directory of the store, a directory in the generation, a page that is a FIFO.
    os.mkfifo(alpha / "fifo.whl")
    fifo_blob = tree.objects() / "ff" / ("f" * 64)
    fifo_blob.parent.mkdir(exist_ok=True)  # a real blob may start with ff too
    os.mkfifo(fifo_blob)
    (alpha / "fifolink.whl").symlink_to(f"../../../../store/objects/ff/{'f' * 64}")
    (alpha / "storedir.whl").symlink_to("../../../../store/objects/ff")
    (alpha / "realdir.whl").mkdir()
    (simple / "fifopage").mkdir()
    os.mkfifo(simple / "fifopage" / "index.html")
    os.mkfifo(simple / "fifopage" / "index.json")
    return tree


@pytest.fixture(scope="module")
def served(tree: IndexTree) -> Iterator[tuple[MirrorServer, io.StringIO]]:
    with running_server(tree.root, header_timeout=2.0) as pair:
        yield pair


@pytest.fixture
def server(served: tuple[MirrorServer, io.StringIO]) -> MirrorServer:
    return served[0]


@pytest.mark.parametrize(
    "path",
    [
        "/simple/alpha/abs.whl",
        "/simple/alpha/rel.whl",
        "/simple/alpha/root.whl",
        "/simple/alpha/dir.whl",
        "/simple/alpha/chain.whl",
        "/simple/evil/",
        "/simple/evil/index.html",
        "/env/leak/simple/",
        "/env/leak/simple/index.html",
    ],
)
def test_planted_symlinks_are_not_followed(server: MirrorServer, path: str) -> None:
    resp = request(server, path, {"Accept": "text/html"})
    assert resp.status == 404
    assert SECRET not in resp.body


NOT_REGULAR = [
    "/simple/alpha/fifo.whl",
    "/simple/alpha/fifolink.whl",
    "/simple/alpha/storedir.whl",
    "/simple/alpha/realdir.whl",
    "/simple/fifopage/",
    "/simple/fifopage/index.json",
]


@pytest.mark.parametrize("path", NOT_REGULAR)
def test_only_regular_files_are_opened(server: MirrorServer, path: str) -> None:
    """A FIFO (which would block an open without O_NONBLOCK), a directory or a link to one
    is the documented 404, at once; the server goes on serving."""
    resp = request(server, path, {"Accept": "text/html"})
    assert resp.status == 404
    assert resp.body == b"404 Not Found: not found\n"
    assert request(server, "/simple/alpha/copy.whl").status == 200


def _open_descriptors() -> dict[int, str]:
    """This process's descriptors and what each names (a path, ``socket:[…]``, ``pipe:[…]``)."""
    out = {}
    for entry in Path("/proc/self/fd").iterdir():
        try:
            out[int(entry.name)] = str(entry.readlink())
        except OSError:  # closed between the listing and the readlink (another thread)
            continue
    return out


def _inside(root: Path) -> list[str]:
    """Open descriptors naming something under the test's folder (the served tree)."""
    return sorted(t for t in _open_descriptors().values() if t.startswith(str(root.parent)))


def _settles(condition: Callable[[], bool]) -> bool:
    """Whether ``condition`` holds within 10 s.

    Descriptors are counted for the whole test process: the server closes the file it has
    just sent and its side of connections earlier tests opened on its own schedule (after
    the client has the last byte), so a count taken once can be off by one without any
    leak. A leak of one descriptor per request never settles: 1 000 requests leave
    hundreds open.
    """
    deadline = time.monotonic() + 10.0
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc (Linux)")
def test_refused_files_leak_no_descriptor(server: MirrorServer, tree: IndexTree) -> None:
    """1 000 requests for things that are not regular files leave the count unchanged (a
    directory used to leak one descriptor per request until real pages answered 404)."""
    conn = http.client.HTTPConnection("127.0.0.1", port_of(server), timeout=10)
    try:
        conn.request("GET", "/simple/alpha/copy.whl")
        assert conn.getresponse().read() == b"a regular file inside the generation"
        assert _settles(lambda: _inside(tree.root) == [])  # copy.whl closed once sent
        before = len(_open_descriptors())
        for i in range(1000):
            conn.request("GET", NOT_REGULAR[i % len(NOT_REGULAR)], headers={"Accept": "text/html"})
            resp = conn.getresponse()
            resp.read()
            assert resp.status == 404
        # Nothing under the served folder stays open (directories, FIFOs, their links), and
        # no other descriptor was left behind either.
        assert _settles(lambda: _inside(tree.root) == []), _inside(tree.root)
        assert _settles(lambda: len(_open_descriptors()) <= before), _open_descriptors()
    finally:
        conn.close()


def test_open_failure_other_than_missing_is_500_and_logged(
    served: tuple[MirrorServer, io.StringIO],
) -> None:
    """With no descriptor left (EMFILE), a file that exists is a 500 logged with the cause,
    never a 404 ("not found" would tell a client the mirror lacks the file)."""
    resource = pytest.importorskip("resource")
    server, log = served
    conn = http.client.HTTPConnection("127.0.0.1", port_of(server), timeout=10)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        conn.request("GET", "/simple/nothing/")  # the connection is open and kept
        assert conn.getresponse().read().startswith(b"404")
        lowest_free = os.dup(0)
        os.close(lowest_free)
        resource.setrlimit(resource.RLIMIT_NOFILE, (lowest_free, hard))  # no new descriptor
        try:
            # Not a store object, so never kept in memory: it is opened for each request.
            conn.request("GET", "/simple/alpha/copy.whl")
            resp = conn.getresponse()
            body = resp.read()
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        assert resp.status == 500
        assert body == b"500 Internal Server Error: internal error: cannot open a file\n"
        assert "cannot open " in log.getvalue()
        assert "Too many open files" in log.getvalue()
    finally:
        conn.close()
    assert request(server, "/simple/alpha/copy.whl").status == 200


def test_regular_file_inside_the_generation_is_served(server: MirrorServer) -> None:
    resp = request(server, "/simple/alpha/copy.whl")
    assert resp.status == 200
    assert resp.body == b"a regular file inside the generation"


def _get(target: str, extra: str = "") -> bytes:
    return f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}\r\n".encode("latin-1")


HOSTILE: list[tuple[str, bytes]] = [
    ("dotdot", _get("/../secret.txt")),
    ("dotdot-deep", _get("/simple/../../../secret.txt")),
    ("dotdot-in-project", _get("/simple/alpha/../../../../../secret.txt")),
    ("encoded-dotdot", _get("/simple/%2e%2e/%2e%2e/%2e%2e/secret.txt")),
    ("encoded-dotdot-upper", _get("/simple/%2E%2E/%2E%2E/private.txt")),
    ("encoded-slash", _get("/simple/alpha%2f..%2f..%2f..%2f..%2fsecret.txt")),
    ("encoded-slash-upper", _get("/simple/alpha/..%2F..%2F..%2Fprivate.txt")),
    ("double-encoded", _get("/simple/%252e%252e/%252e%252e/private.txt")),
    ("backslash", _get("/simple/alpha/..\\..\\..\\..\\private.txt")),
    ("encoded-backslash", _get("/simple/alpha/..%5c..%5c..%5c..%5cprivate.txt")),
    ("nul", _get("/simple/alpha/alpha-1.0-py3-none-any.whl%00.txt")),
    ("raw-nul", b"GET /simple/alpha/\x00 HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("overlong-utf8-dot", _get("/simple/%c0%ae%c0%ae/%c0%ae%c0%ae/private.txt")),
    ("non-ascii", b"GET /simple/\xff\xfe/ HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("double-slash", _get("//etc/passwd")),
    ("empty-segment", _get("/simple//alpha/")),
    ("dot-segment", _get("/simple/./alpha/")),
    ("trailing-dot", _get("/simple/alpha/.")),
    ("hidden-file", _get("/simple/alpha/.metadata")),
    ("store-direct", _get("/store/objects/")),
    ("generations-direct", _get("/generations/1/simple/")),
    ("index-link-direct", _get("/index/simple/")),
    ("mirror-file", _get("/private.txt")),
    ("env-dotdot", _get("/env/../simple/")),
    ("env-encoded-dotdot", _get("/env/%2e%2e/%2e%2e/simple/")),
    ("absolute-uri-other-host", _get("http://evil.example/private.txt")),
    ("absolute-uri-file", _get("file:///etc/passwd")),
    ("asterisk", _get("*")),
    ("fragment", _get("/simple/#/../../private.txt")),
    ("long-path", _get("/simple/" + "a" * 5000 + "/")),
    ("long-segment", _get("/simple/" + "a" * 300 + "/")),
    ("long-request-line", _get("/" + "a" * 9000)),
    ("huge-header", _get("/simple/", "X-Big: " + "b" * 10000 + "\r\n")),
    ("many-headers", _get("/simple/", "".join(f"X-H{i}: v\r\n" for i in range(100)))),
    ("headers-too-large", _get("/simple/", "".join(f"X-H{i}: {'v' * 7000}\r\n" for i in range(6)))),
    ("obs-fold", _get("/simple/", "X-A: a\r\n folded\r\n")),
    ("bad-header-name", _get("/simple/", "Bad Header: x\r\n")),
    ("header-without-colon", _get("/simple/", "NoColon\r\n")),
    ("duplicate-host", _get("/simple/", "Host: other\r\n")),
    ("chunked-body", _get("/simple/", "Transfer-Encoding: chunked\r\n") + b"0\r\n\r\n"),
    ("content-length-body", _get("/simple/", "Content-Length: 5\r\n") + b"hello"),
    ("post", b"POST /simple/ HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi"),
    ("delete", b"DELETE /simple/alpha/ HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("options", b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("double-space", b"GET  /simple/ HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("bad-version", b"GET /simple/ HTTP/x.y\r\nHost: x\r\n\r\n"),
    ("no-version", b"GET /simple/\r\n\r\n"),
    ("space-in-path", b"GET /simple/al pha/ HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("percent-garbage", _get("/simple/%zz/")),
    ("percent-truncated", _get("/simple/alpha%2")),
    ("many-query-fields", _get("/simple/?" + "&".join(f"a{i}=1" for i in range(40)))),
    # Control and non-ASCII characters in the target: refused, never reflected (a redirect
    # would carry them into Location) nor written raw to the log.
    ("cr-in-query-redirect", _get("/simple?a\rSet-Cookie:pwn=1")),
    ("cr-in-query-page", _get("/simple/?a\rSet-Cookie:pwn=1")),
    ("cr-in-path", _get("/simple/al\rpha/")),
    ("nul-in-query", _get("/simple/?q=\x00")),
    ("vt-in-query", _get("/simple?\x0b")),
    ("ff-in-query", _get("/simple?\x0c")),
    ("esc-in-query", _get("/?q=\x1b[2J")),
    ("tab-in-target", _get("/simple/\talpha/")),
    ("del-in-query", _get("/simple/?\x7f")),
    ("c1-csi-in-query", _get("/?q=\x9b31m")),
    ("latin1-in-query", _get("/simple/?q=\xe9")),
    ("cr-in-absolute-uri", _get("http://127.0.0.1/simple?\rX:1")),
    ("http11-without-host", b"GET /simple/ HTTP/1.1\r\n\r\n"),
    ("http11-without-host-file", b"GET /simple/alpha/copy.whl HTTP/1.1\r\nAccept: */*\r\n\r\n"),
    ("planted-fifo", _get("/simple/alpha/fifo.whl")),
    ("planted-fifo-in-store", _get("/simple/alpha/fifolink.whl")),
    ("link-to-store-directory", _get("/simple/alpha/storedir.whl")),
    ("directory-as-file", _get("/simple/alpha/realdir.whl")),
    ("fifo-page", _get("/simple/fifopage/")),
]


@pytest.mark.parametrize("raw", [h[1] for h in HOSTILE], ids=[h[0] for h in HOSTILE])
def test_hostile_request_gets_4xx_and_no_secret(server: MirrorServer, raw: bytes) -> None:
    answer = raw_exchange(port_of(server), raw)
    status = status_of(answer)
    assert status is None or 400 <= status < 500, answer[:200]
    assert SECRET not in answer
    assert b"HTTP/1.1 200" not in answer


CONTROLS = [h for h in HOSTILE if "query" in h[0] or "target" in h[0] or "cr-in" in h[0]]


@pytest.mark.parametrize("raw", [h[1] for h in CONTROLS], ids=[h[0] for h in CONTROLS])
def test_control_characters_in_the_target_are_400_and_not_reflected(
    server: MirrorServer, raw: bytes
) -> None:
    answer = raw_exchange(port_of(server), raw)
    assert status_of(answer) == 400
    assert b"Location" not in answer
    assert b"pwn" not in answer


def test_http11_without_host_is_400_and_http10_is_served(server: MirrorServer) -> None:
    answer = raw_exchange(port_of(server), b"GET /simple/ HTTP/1.1\r\nAccept: */*\r\n\r\n")
    assert status_of(answer) == 400
    assert b"Host" in answer.split(b"\r\n\r\n", 1)[1]
    assert status_of(raw_exchange(port_of(server), b"GET /simple/ HTTP/1.0\r\n\r\n")) == 200


def test_log_holds_no_control_character(served: tuple[MirrorServer, io.StringIO]) -> None:
    """Whatever a client sends, every access-log line is printable ASCII (controls escaped
    as \\xHH): no log or terminal injection."""
    server, log = served
    port = port_of(server)
    for _, raw in CONTROLS:
        raw_exchange(port, raw)
    agent = "evil\x9b31m\x85\\\xe9"  # C0 controls in a header are a 400 already
    raw_exchange(port, _get("/simple/", f"User-Agent: {agent}\r\nConnection: close\r\n"))
    lines = log.getvalue().splitlines()
    assert any(line.endswith('"evil\\x9b31m\\x85\\x5c\\xe9"') for line in lines)
    for line in lines:
        if not line.startswith("morgan-server: "):
            assert all(" " <= ch <= "~" for ch in line), repr(line)


def test_server_keeps_serving_after_the_corpus(server: MirrorServer) -> None:
    assert len(HOSTILE) >= 70
    for _, raw in HOSTILE:
        raw_exchange(port_of(server), raw)
    assert request(server, "/simple/alpha/", {"Accept": "text/html"}).status == 200


@pytest.mark.parametrize(
    ("raw", "status", "allow"),
    [
        (b"DELETE /simple/ HTTP/1.1\r\nHost: x\r\n\r\n", 405, True),
        (b"BREW /simple/ HTTP/1.1\r\nHost: x\r\n\r\n", 501, True),
        (b"GET /simple/ HTTP/2.0\r\nHost: x\r\n\r\n", 505, False),
        (_get("/" + "a" * 5000), 414, False),
        (_get("/simple/", "X-Big: " + "b" * 10000 + "\r\n"), 431, False),
    ],
)
def test_exact_status_for_refused_requests(
    server: MirrorServer, raw: bytes, status: int, allow: bool
) -> None:
    answer = raw_exchange(port_of(server), raw)
    assert status_of(answer) == status
    assert (b"\r\nAllow: GET, HEAD\r\n" in answer) is allow


@pytest.mark.parametrize(
    "raw",
    [
        _get("/simple/", "".join(f"X-H{i}: {'v' * 7000}\r\n" for i in range(6))),
        _get("/simple/", "X-Big: " + "b" * 200_000 + "\r\n"),
    ],
    ids=["headers-too-large", "huge-header"],
)
def test_refused_request_is_closed_cleanly_not_reset(server: MirrorServer, raw: bytes) -> None:
    """The server drains what it did not read before closing: closing with unread input makes
    the kernel send a reset, which makes the client's send or shutdown fail and can destroy
    the error response before the client reads it (RFC 9112 section 9.6)."""
    with socket.create_connection(("127.0.0.1", port_of(server)), timeout=10) as sock:
        sock.sendall(raw)
        received = b""
        while chunk := sock.recv(65536):  # the 431, then the server's FIN
            received += chunk
        assert status_of(received) == 431
        sock.shutdown(socket.SHUT_WR)  # after a reset: OSError ENOTCONN (the flake seen)


def test_absolute_uri_for_this_host_is_served(server: MirrorServer) -> None:
    host = f"127.0.0.1:{port_of(server)}"
    raw = f"GET http://{host}/simple/ HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    assert status_of(raw_exchange(port_of(server), raw.encode())) == 200


def test_slowloris_is_cut_off(server: MirrorServer) -> None:
    """A client that trickles its request head is disconnected; others are still served."""
    with socket.create_connection(("127.0.0.1", port_of(server)), timeout=10) as sock:
        sock.sendall(b"GET /simple/ HTTP/1.1\r\nHost: x\r\n")
        cut = False
        for _ in range(100):  # at most ~20 s of dripping; the header timeout is 2 s
            try:
                sock.sendall(b"X-Slow: a\r\n")
                sock.settimeout(0.2)
                data = sock.recv(1024)
            except TimeoutError:
                continue
            except (ConnectionResetError, BrokenPipeError):
                cut = True
                break
            assert data == b""  # no response, just the close
            cut = True
            break
        assert cut
    assert request(server, "/simple/", {"Accept": "text/html"}).status == 200


def test_idle_keep_alive_connection_is_closed(server: MirrorServer) -> None:
    with socket.create_connection(("127.0.0.1", port_of(server)), timeout=10) as sock:
        sock.sendall(b"GET /simple/ HTTP/1.1\r\nHost: x\r\n\r\n")
        received = b""
        while True:  # the response, then EOF once the idle timeout passes
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
        assert received.startswith(b"HTTP/1.1 200 OK\r\n")


def test_connection_cap_queues_instead_of_failing(tmp_path: Path) -> None:
    """With every slot held by idle clients, a new client waits and is then served."""
    tree = build_tree(tmp_path / "mirror")
    with running_server(tree.root, max_connections=2, header_timeout=1.0) as (server, _):
        idle = [socket.create_connection(("127.0.0.1", port_of(server))) for _ in range(2)]
        try:
            assert request(server, "/simple/", {"Accept": "text/html"}).status == 200
            for sock in idle:  # the slots were freed by cutting the idle clients
                sock.settimeout(10)
                assert sock.recv(1) == b""
        finally:
            for sock in idle:
                sock.close()


def test_unreadable_root_target_outside_mirror_is_503(tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    (outside / "simple").mkdir(parents=True)
    (outside / "simple" / "index.html").write_bytes(SECRET)
    root = tmp_path / "mirror"
    root.mkdir()
    (root / "index").symlink_to(outside)
    with running_server(root) as (server, _):
        resp = request(server, "/simple/")
        assert resp.status == 503
        assert SECRET not in resp.body
