"""bench/server_load.py in small form against ``python morgan/server.py``: the load and the
abuse must cost no client an error. Figures (latency, RSS) are for the bench, not asserted.

The server runs with fewer workers (``--max-connections``) than there are connections, so
these fail if idle keep-alive or slowloris connections hold a worker between requests.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.server_load import (
    BigFile,
    Server,
    downloads,
    flood,
    keep_alive_load,
    make_mirror,
    server,
    slow_readers,
    slowloris,
)


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, BigFile]:
    return make_mirror(tmp_path_factory.mktemp("load"), 8 * 1024 * 1024)


@pytest.fixture
def served(mirror: tuple[Path, BigFile], tmp_path: Path) -> Iterator[Server]:
    with server(mirror[0], 4, tmp_path / "server.log") as srv:
        yield srv


def test_fifty_keep_alive_connections_on_four_workers_all_answered(served: Server) -> None:
    stats = asyncio.run(keep_alive_load(served.port, 50, 3.0, 10.0))
    assert stats.causes == {}
    assert stats.answered_during_load == 50
    assert stats.errors == 0
    assert stats.requests >= 50
    assert served.errors_logged() == 0


def test_slowloris_does_not_starve_normal_clients(served: Server) -> None:
    stats, slow = asyncio.run(slowloris(served.port, 20, 2, duration=3.0, drip=0.5, timeout=5.0))
    assert stats.causes == {}
    assert stats.answered_during_load == 2
    assert stats.errors == 0
    assert stats.requests >= 2
    assert slow.opened == 20
    assert slow.answered == 0  # no response to a head that never completed
    assert served.errors_logged() == 0


def test_concurrent_big_downloads_complete_with_the_right_bytes(
    served: Server, mirror: tuple[Path, BigFile]
) -> None:
    big = mirror[1]
    result = downloads(served.port, big, 8)
    assert result.wrong == []
    assert result.completed == 8
    assert result.sha256 == big.sha256


def test_clients_that_never_read_hold_no_worker(
    served: Server, mirror: tuple[Path, BigFile]
) -> None:
    """40 clients request the 8 MB file and never read it, 40 slowloris connections drip,
    and the server has 4 workers: two normal clients still get every page and every 10 MB
    download in full (the waiter streams files without blocking; before, each stuck client
    held a worker for the 60 s send timeout). The stuck clients are not cut meanwhile."""
    stats, slow, closed = asyncio.run(
        slow_readers(
            served.port,
            mirror[1],
            never_read=40,
            slow_conns=40,
            normal=2,
            duration=4.0,
            drip=0.5,
            timeout=10.0,
        )
    )
    assert stats.causes == {}
    assert stats.errors == 0
    assert stats.answered_during_load == 2
    assert stats.requests >= 4  # at least one page and one download each
    assert closed == 0
    assert slow.answered == 0
    assert served.errors_logged() == 0


def test_past_the_open_connection_cap_the_oldest_are_evicted(
    mirror: tuple[Path, BigFile], tmp_path: Path
) -> None:
    """150 slowloris connections against a cap of 50 open connections: the longest-waiting
    are closed to make room, so two normal clients are answered every time (before, they
    waited in the listen queue until the 20 s head timeout freed a slot)."""
    extra = ["--max-open-connections", "50"]
    with server(mirror[0], 4, tmp_path / "server.log", extra) as srv:
        stats, slow = asyncio.run(flood(srv.port, 150, 2, duration=4.0, drip=0.5, timeout=10.0))
        assert stats.causes == {}
        assert stats.errors == 0
        assert stats.answered_during_load == 2
        assert stats.requests >= 2
        assert slow.cut >= 100  # the flood reconnects as it is evicted
        assert slow.answered == 0
        assert srv.errors_logged() == 0


@pytest.mark.parametrize(
    ("raw", "status"),
    [(b"GET /simple/\r\n", b"400"), (b"GET /simple/ HTTP/2.0\r\n", b"505"), (b"x\r\n", b"400")],
    ids=["http-0.9", "http-2", "garbage"],
)
def test_bad_request_line_is_answered_without_waiting_for_headers(
    served: Server, raw: bytes, status: bytes
) -> None:
    """The waiter hands a head to a worker once the parser can decide, not only once the
    blank line arrives: a bad request line is refused at once, not cut 20 s later."""
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as sock:
        sock.sendall(raw)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    assert received.split(b" ", 2)[1] == status
