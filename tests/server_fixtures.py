"""Shared helpers for the server tests: an in-process server on 127.0.0.1 and raw HTTP."""

from __future__ import annotations

import http.client
import io
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from morgan.server import MirrorServer

PIP_ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, "
    "text/html; q=0.01"
)
UV_ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, "
    "text/html;q=0.01"
)
POETRY_ACCEPT = "application/vnd.pypi.simple.v1+json, */*;q=0.1"
# PDM finds packages through unearth, whose collector sends pip's header.
PDM_ACCEPT = PIP_ACCEPT

JSON = "application/vnd.pypi.simple.v1+json"
V1_HTML = "application/vnd.pypi.simple.v1+html"
HTML = "text/html; charset=utf-8"


@dataclass
class Response:
    status: int
    headers: dict[str, str]  # lower-cased names
    body: bytes


@contextmanager
def running_server(root: Path, **options: float) -> Iterator[tuple[MirrorServer, io.StringIO]]:
    """A :class:`MirrorServer` on a free loopback port, serving in a thread; its log."""
    log = io.StringIO()
    server = MirrorServer(
        str(root),
        "127.0.0.1",
        port=0,
        log=log,
        max_connections=int(options.get("max_connections", 32)),
        header_timeout=options.get("header_timeout", 10.0),
        send_timeout=options.get("send_timeout", 10.0),
    )
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server, log
    finally:
        server.stop()
        thread.join(timeout=10)


def port_of(server: MirrorServer) -> int:
    return int(server.server_address[1])


def request(
    server: MirrorServer, path: str, headers: dict[str, str] | None = None, method: str = "GET"
) -> Response:
    """One request on a fresh connection with http.client (no redirects followed)."""
    conn = http.client.HTTPConnection("127.0.0.1", port_of(server), timeout=10)
    try:
        conn.request(method, path, headers=headers or {})
        resp = conn.getresponse()
        body = resp.read()
        return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, body)
    finally:
        conn.close()


def raw_exchange(port: int, data: bytes, timeout: float = 10.0) -> bytes:
    """Send raw bytes, read until the server closes or goes quiet; return what came back."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server may answer and close before a hostile request is fully sent
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def status_of(raw: bytes) -> int | None:
    """The status code of the first response in ``raw``, None when nothing came back."""
    if not raw:
        return None
    first = raw.split(b"\r\n", 1)[0].split(b" ")
    return int(first[1])
