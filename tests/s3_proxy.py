"""A fault-injecting HTTP proxy in front of the test S3 server (real HTTP both ways).

It forwards every request to the S3 endpoint and can, for object uploads (PUTs outside
``.morgan/``): answer ``503 SlowDown`` as S3 does when throttling, or hold uploads after
the first N until released (so a test can kill a publish in the middle of a phase).
"""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

SLOWDOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message></Error>"
)
HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "te", "upgrade"}


class FaultProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = urlsplit(upstream).netloc
        self.slowdown = 0  # answer this many object PUTs with 503 SlowDown (-1: all)
        self.hold_after: int | None = None  # hold object PUTs after this many
        self.object_puts = 0
        self.slowed = 0
        self.holding = threading.Event()  # set once a PUT is held
        self.release = threading.Event()
        self._lock = threading.Lock()

    def decide(self, method: str, path: str) -> str:
        """'forward', 'slowdown' or 'hold' for one request."""
        if method != "PUT" or "/.morgan/" in path:
            return "forward"
        with self._lock:
            if self.slowdown == -1 or self.slowed < self.slowdown:
                self.slowed += 1
                return "slowdown"
            self.object_puts += 1
            if self.hold_after is not None and self.object_puts > self.hold_after:
                return "hold"
        return "forward"


def _handler(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            return

        def _any(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            action = proxy.decide(self.command, self.path)
            if action == "hold":
                proxy.holding.set()
                proxy.release.wait(120)
                action = "slowdown"  # a held upload never reaches the bucket
            if action == "slowdown":
                self.send_response(503)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(SLOWDOWN)))
                self.end_headers()
                self.wfile.write(SLOWDOWN)
                return
            conn = http.client.HTTPConnection(proxy.upstream, timeout=60)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
            conn.request(self.command, self.path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            self.send_response(resp.status, resp.reason)
            for k, v in resp.getheaders():
                if k.lower() not in HOP and k.lower() != "content-length":
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
            conn.close()

        def handle(self) -> None:
            # A client killed mid-request (the kill test) is not an error of the proxy.
            try:
                super().handle()
            except (BrokenPipeError, ConnectionResetError):
                return

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _any  # noqa: N815

    return Handler


@contextmanager
def fault_proxy(upstream: str) -> Iterator[tuple[FaultProxy, str]]:
    proxy = FaultProxy(upstream)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(proxy))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield proxy, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        proxy.release.set()
        server.shutdown()
        server.server_close()
