"""At the connection cap the server closes connections to make room; which ones it may close
decides whether a real client sees its connection cut (tests/test_server_load_smoke.py runs
the flood itself; here the rule, with real sockets, without timing races)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from morgan.server import EVICT_IDLE, EVICT_NEW, Waiter


class Closed:
    def __init__(self) -> None:
        self.socks: list[socket.socket] = []
        self.changed = threading.Condition()

    def __call__(self, sock: socket.socket) -> None:
        with self.changed:
            self.socks.append(sock)
            self.changed.notify_all()
        sock.close()

    def wait_for(self, count: int) -> None:
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.socks) >= count, timeout=10)


@pytest.fixture
def waiter() -> Iterator[tuple[Waiter, Closed]]:
    closed = Closed()
    w = Waiter(20.0, lambda sock, address, head: None, closed, lambda message: None)
    try:
        yield w, closed
    finally:
        w.stop()


def pair() -> tuple[socket.socket, socket.socket]:
    server, client = socket.socketpair()
    return server, client


def test_eviction_spares_new_and_busy_connections(waiter: tuple[Waiter, Closed]) -> None:
    w, closed = waiter
    old_idle, _c1 = pair()  # answered, then idle longer than EVICT_IDLE: closed
    old_headless, _c2 = pair()  # never sent a head, older than EVICT_NEW: closed
    w.add(old_idle, "old-idle", b"", answered=True)
    w.add(old_headless, "old-headless", b"", answered=False)
    time.sleep(max(EVICT_IDLE, EVICT_NEW) + 0.2)
    new_headless, _c3 = pair()  # just accepted: its head may be on the way
    just_answered, _c4 = pair()  # between two requests of a keep-alive client
    w.add(new_headless, "new-headless", b"", answered=False)
    w.add(just_answered, "just-answered", b"", answered=True)
    time.sleep(0.05)  # the waiter takes them
    w.evict(100)  # far more than there are
    closed.wait_for(2)
    time.sleep(0.3)  # nothing else follows
    assert set(closed.socks) == {old_idle, old_headless}
