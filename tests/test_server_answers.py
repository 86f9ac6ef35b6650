"""Answers kept by request head and sent by the waiter thread itself: byte for byte what a
worker sends, in order on a pipelined connection, never held up by a client that does not
read, and never outliving the generation they came from."""

from __future__ import annotations

import os
import socket
import time
from collections import Counter
from pathlib import Path

import pytest

from morgan import server as server_module
from tests.index_tree import Dist, build_tree, make_wheel
from tests.server_fixtures import PIP_ACCEPT, port_of, running_server

PAGE = (
    b"GET /simple/alpha/ HTTP/1.1\r\nHost: mirror\r\nAccept: " + PIP_ACCEPT.encode() + b"\r\n\r\n"
)
REDIRECT = b"GET /simple/Alpha HTTP/1.1\r\nHost: mirror\r\n\r\n"
MISSING = b"GET /simple/nothing/ HTTP/1.1\r\nHost: mirror\r\n\r\n"


def _big_wheel(size: int) -> Dist:
    """A wheel small enough to be held in memory (under 1 MiB) but far bigger than what a
    socket buffers when the client does not read."""
    wheel = make_wheel("big", "1.0")
    return Dist(wheel.project, wheel.version, wheel.filename, os.urandom(size), wheel.metadata)


def _read_response(sock: socket.socket, pending: bytearray) -> tuple[bytes, bytes]:
    """One response from ``sock`` (``pending``: bytes already read): (head, body)."""
    while b"\r\n\r\n" not in pending:
        chunk = sock.recv(65536)
        assert chunk, "connection closed before a response head"
        pending += chunk
    end = pending.index(b"\r\n\r\n") + 4
    head = bytes(pending[:end])
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    while len(pending) < end + length:
        chunk = sock.recv(1 << 20)
        assert chunk, "connection closed inside a response body"
        pending += chunk
    body = bytes(pending[end : end + length])
    del pending[: end + length]
    return head, body


def _exchange(port: int, data: bytes, count: int) -> list[tuple[bytes, bytes]]:
    """Send ``data`` on one connection, read ``count`` responses."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        pending = bytearray()
        return [_read_response(sock, pending) for _ in range(count)]


def _without_date(head: bytes) -> bytes:
    return b"\r\n".join(line for line in head.split(b"\r\n") if not line.startswith(b"Date: "))


def test_kept_answers_equal_the_worker_answer_and_are_logged(tmp_path: Path) -> None:
    tree = build_tree(tmp_path / "mirror")
    with running_server(tree.root) as (server, log):
        # 1st: read from disk; 2nd: from memory by a worker, kept; 3rd and 4th: kept answers.
        answers = [_exchange(port_of(server), PAGE + REDIRECT, 2) for _ in range(4)]
        for page, redirect in answers:
            assert _without_date(page[0]) == _without_date(answers[0][0][0])
            assert page[1] == answers[0][0][1]
            assert _without_date(redirect[0]) == _without_date(answers[0][1][0])
        assert answers[0][0][0].startswith(b"HTTP/1.1 200 OK\r\n")
        assert b'"name":"alpha"' in answers[0][0][1]
        assert answers[0][1][0].startswith(b"HTTP/1.1 301 Moved Permanently\r\n")
        assert b"\r\nLocation: alpha/\r\n" in answers[0][1][0]
    # A worker logs after it sends: lines of different threads may come in either order.
    logged = Counter(
        (line.split('"')[1], *line.split('"')[2].split()[:2])
        for line in log.getvalue().splitlines()
    )
    size = str(len(answers[0][0][1]))
    assert logged == {
        ("GET /simple/alpha/ HTTP/1.1", "200", size): 4,
        ("GET /simple/Alpha HTTP/1.1", "301", "0"): 4,
    }


def test_pipelined_requests_mixing_kept_and_worker_answers_keep_their_order(
    tmp_path: Path,
) -> None:
    tree = build_tree(tmp_path / "mirror")
    with running_server(tree.root) as (server, _):
        port = port_of(server)
        _exchange(port, PAGE + PAGE + REDIRECT + REDIRECT, 4)  # now both are kept
        sequence = [PAGE, MISSING, REDIRECT, PAGE, MISSING, PAGE]
        got = _exchange(port, b"".join(sequence), len(sequence))
    statuses = [head.split(b" ")[1] for head, _ in got]
    assert statuses == [b"200", b"404", b"301", b"200", b"404", b"200"]
    assert got[0][1] == got[3][1] == got[5][1]
    assert b'"name":"alpha"' in got[0][1]


def test_a_client_that_does_not_read_holds_up_no_one(tmp_path: Path) -> None:
    """20 pipelined 900 KB answers do not fit in the socket buffers: the waiter sends what
    fits, answers other clients meanwhile, and sends the rest once the client reads."""
    big = _big_wheel(900_000)
    tree = build_tree(tmp_path / "mirror", [make_wheel("alpha", "1.0"), big])
    get_big = b"GET /simple/big/%s HTTP/1.1\r\nHost: mirror\r\n\r\n" % big.filename.encode()
    with running_server(tree.root, max_connections=1) as (server, _):
        port = port_of(server)
        _exchange(port, get_big * 2 + PAGE * 2, 4)  # both kept from now on
        with socket.create_connection(("127.0.0.1", port), timeout=10) as stalled:
            stalled.sendall(get_big * 20)
            others = [_exchange(port, PAGE, 1)[0] for _ in range(3)]
            pending = bytearray()
            bodies = [_read_response(stalled, pending)[1] for _ in range(20)]
    assert [head.split(b"\r\n")[0] for head, _ in others] == [b"HTTP/1.1 200 OK"] * 3
    assert all(body == big.data for body in bodies)


def test_kept_answers_end_with_their_generation(tmp_path: Path) -> None:
    tree = build_tree(tmp_path / "mirror")
    with running_server(tree.root) as (server, _):
        port = port_of(server)
        before = _exchange(port, PAGE * 3, 3)
        assert all(b'"alpha-2.0-py3-none-any.whl"' in body for _, body in before)
        tree.add_generation(2, [make_wheel("alpha", "5.0")])
        after = _exchange(port, PAGE * 3, 3)
    assert all(head.startswith(b"HTTP/1.1 200 OK\r\n") for head, _ in after)
    assert all(b'"alpha-5.0-py3-none-any.whl"' in body for _, body in after)
    assert all(b'"alpha-2.0-py3-none-any.whl"' not in body for _, body in after)


def test_a_client_that_never_reads_is_cut_after_the_send_timeout(tmp_path: Path) -> None:
    big = _big_wheel(900_000)
    tree = build_tree(tmp_path / "mirror", [big])
    get_big = b"GET /simple/big/%s HTTP/1.1\r\nHost: mirror\r\n\r\n" % big.filename.encode()
    with running_server(tree.root, send_timeout=0.5) as (server, _):
        port = port_of(server)
        _exchange(port, get_big * 2, 2)  # kept from now on
        with socket.create_connection(("127.0.0.1", port), timeout=10) as stalled:
            stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
            stalled.sendall(get_big * 20)
            time.sleep(3)  # far past 0.5 s without progress
            received = 0
            try:
                while chunk := stalled.recv(1 << 20):
                    received += len(chunk)
            except ConnectionResetError:
                pass  # cut with unsent data: a reset is as good as a close
        # The connection ended (recv returned or reset) long before all 18 MB were sent.
        assert received < 20 * len(big.data)
        assert _exchange(port, get_big, 1)[0][1] == big.data  # the server goes on


def test_a_kept_answer_that_closes_the_connection_closes_it(tmp_path: Path) -> None:
    tree = build_tree(tmp_path / "mirror")
    http10 = PAGE.replace(b"HTTP/1.1", b"HTTP/1.0", 1)
    with running_server(tree.root) as (server, _):
        port = port_of(server)
        answers = [raw_exchange_open(port, http10 + PAGE) for _ in range(3)]
    page = (tree.generation(1) / "simple" / "alpha" / "index.json").read_bytes()
    for raw in answers:  # one response, then the end: the pipelined PAGE is not answered
        assert raw.count(b"HTTP/1.1 200 OK\r\n") == 1
        assert b"\r\nConnection: close\r\n" in raw
        assert raw.split(b"\r\n\r\n", 1)[1] == page


def raw_exchange_open(port: int, data: bytes) -> bytes:
    """Send ``data`` without closing our side; read until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def _page_head(agent: str, *extra: str, accept: str = PIP_ACCEPT) -> bytes:
    lines = ["GET /simple/alpha/ HTTP/1.1", "Host: mirror", f"Accept: {accept}"]
    lines += [f"User-Agent: {agent}", *extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def test_clients_differing_only_in_ignored_headers_share_a_kept_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = build_tree(tmp_path / "mirror")
    with running_server(tree.root) as (server, log):
        port = port_of(server)
        dispatched: list[object] = []  # one per request a worker parsed and answered

        class Counting(server_module.Handler):
            def setup(self) -> None:
                dispatched.append(self)
                super().setup()

        monkeypatch.setattr(server_module, "Handler", Counting)
        first = _exchange(port, _page_head("pip/26.3 {linux}"), 1)[0]
        _exchange(port, _page_head("pip/26.3 {linux}"), 1)  # from memory: now kept ...
        deadline = time.monotonic() + 10  # ... once the worker, done sending, has kept it
        while not server.generation().answers_by_key and time.monotonic() < deadline:
            time.sleep(0.01)
        before = len(dispatched)
        # Another client (user agent, an extra header): the same answer, from the waiter.
        other = _exchange(port, _page_head("uv/0.9", "X-Trace: 7"), 1)[0]
        assert len(dispatched) == before
        assert (_without_date(other[0]), other[1]) == (_without_date(first[0]), first[1])
        # A header the answer depends on (Accept) differs: a worker answers, with HTML.
        html = _exchange(port, _page_head("uv/0.9", accept="text/html"), 1)[0]
        assert len(dispatched) == before + 1
        assert b"\r\nContent-Type: text/html" in html[0]
        # A head the worker would refuse is never answered from memory.
        bad = _exchange(port, _page_head("pip/26.3 \x01{linux}"), 1)[0]
        assert bad[0].startswith(b"HTTP/1.1 400 ")
        assert len(dispatched) == before + 2
    agents = [line.rsplit('"', 2)[-2] for line in log.getvalue().splitlines() if '" 200 ' in line]
    assert sorted(agents) == sorted(["pip/26.3 {linux}"] * 2 + ["uv/0.9"] * 2)


def test_a_first_request_whose_answer_is_in_memory_is_answered_by_the_waiter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = build_tree(tmp_path / "mirror")
    workers: list[object] = []  # one per request a worker thread parsed and answered

    class Counting(server_module.Handler):
        def setup(self) -> None:
            workers.append(self)
            super().setup()

    monkeypatch.setattr(server_module, "Handler", Counting)
    head = "GET {} HTTP/1.1\r\nHost: mirror\r\nAccept: " + PIP_ACCEPT + "\r\n\r\n"
    with running_server(tree.root) as (server, log):
        port = port_of(server)
        first = _exchange(port, head.format("/simple/alpha/").encode(), 1)[0]
        assert len(workers) == 1  # read from disk: a worker
        # Another head for the same page (a query it ignores): never kept, but the page is
        # in memory now, so the waiter answers it with the worker's bytes.
        again = _exchange(port, head.format("/simple/alpha/?from=cache").encode(), 1)[0]
        assert len(workers) == 1
        assert (_without_date(again[0]), again[1]) == (_without_date(first[0]), first[1])
        # Not read before, or an error: workers.
        beta = _exchange(port, head.format("/simple/beta/").encode(), 1)[0]
        missing = _exchange(port, head.format("/simple/nothing/").encode(), 1)[0]
        assert len(workers) == 3
        assert beta[0].startswith(b"HTTP/1.1 200 ")
        assert b'"name":"beta"' in beta[1]
        assert missing[0].startswith(b"HTTP/1.1 404 ")
    statuses = sorted(line.split('"')[2].split()[0] for line in log.getvalue().splitlines())
    assert statuses == ["200", "200", "200", "404"]
