"""HTTP load for bench/server.py: `wrk` when installed, else a small threaded Python client.

Both keep connections alive (HTTP/1.1) when the server allows it and reconnect when it closes
them (HTTP/1.0 servers), read every body in full, and count a response as an error when its
status is not 2xx/3xx or the connection failed. The Python fallback shares one interpreter
(and its GIL) between all connections, so its figures are a floor, not the server's limit:
install wrk (`apt-get install wrk`) for real numbers.
"""

from __future__ import annotations

import http.client
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

_UNITS = {"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40}


@dataclass(frozen=True, slots=True)
class Load:
    """What one load run measured."""

    requests: int
    seconds: float
    bytes_read: int
    errors: int  # non-2xx/3xx responses, failed connects and writes, timeouts
    tool: str
    # wrk counts a read error for every response that ends when the server closes the
    # connection (HTTP/1.0 without Content-Length, as Morgan 0.15.0 answers): not a failure.
    read_errors: int = 0

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def mb_per_s(self) -> float:
        return self.bytes_read / self.seconds / (1 << 20) if self.seconds else 0.0


# wrk's request hooks: each request gets a User-Agent, or a query string, no other had.
_VARY_LUA = {
    "agent": """
local n = 0
request = function()
  n = n + 1
  wrk.headers["User-Agent"] = "client-" .. tostring(n) .. "-" .. tostring(math.random(1e9))
  return wrk.format(nil, nil)
end
""",
    "query": """
local n = 0
request = function()
  n = n + 1
  return wrk.format(nil, wrk.path .. "?n=" .. tostring(n) .. "-" .. tostring(math.random(1e9)))
end
""",
}


def run_load(
    url: str,
    *,
    connections: int,
    seconds: float,
    headers: Mapping[str, str] | None = None,
    vary: str | None = None,
) -> Load:
    """GET ``url`` over ``connections`` concurrent connections for ``seconds``; ``vary``:
    "agent" gives each request a User-Agent of its own (many different clients), "query" a
    query string of its own (no two request lines alike)."""
    if vary not in (None, *_VARY_LUA):
        raise ValueError(f"vary={vary!r}: use None, 'agent' or 'query'")
    wrk = shutil.which("wrk")
    if wrk is not None:
        return _wrk(wrk, url, connections, seconds, headers or {}, vary=vary)
    return _python_load(url, connections, seconds, headers or {}, vary=vary)


def _wrk(
    wrk: str,
    url: str,
    connections: int,
    seconds: float,
    headers: Mapping[str, str],
    *,
    vary: str | None,
) -> Load:
    cmd = [
        wrk,
        f"-t{min(2, connections)}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "60s",
    ]
    for name, value in headers.items():
        cmd += ["-H", f"{name}: {value}"]
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        if vary is not None:
            script.write(_VARY_LUA[vary])
            script.flush()
            cmd += ["-s", script.name]
        out = subprocess.run(
            [*cmd, url], capture_output=True, text=True, check=True, timeout=seconds + 120
        ).stdout
    done = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m), ([\d.]+)([KMGT]?B) read", out)
    if done is None:
        raise RuntimeError(f"cannot read wrk's output:\n{out}")
    scale = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[done.group(3)]
    errors = read_errors = 0
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    if socket_errors:
        connect, read_errors, write, timeout = (int(n) for n in socket_errors.groups())
        errors += connect + write + timeout
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non_2xx:
        errors += int(non_2xx.group(1))
    return Load(
        requests=int(done.group(1)),
        seconds=float(done.group(2)) * scale,
        bytes_read=int(float(done.group(4)) * _UNITS[done.group(5)]),
        errors=errors,
        tool="wrk",
        read_errors=read_errors,
    )


def _python_load(
    url: str,
    connections: int,
    seconds: float,
    headers: Mapping[str, str],
    *,
    vary: str | None,
) -> Load:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    lock = threading.Lock()
    totals = {"requests": 0, "bytes": 0, "errors": 0}
    start = time.monotonic()
    deadline = start + seconds

    def worker() -> None:
        done = read = errors = 0
        conn: http.client.HTTPConnection | None = None
        while time.monotonic() < deadline:
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(host, port, timeout=60)
                sent, path = dict(headers), target
                if vary == "agent":
                    sent["User-Agent"] = f"client-{threading.get_ident()}-{done}"
                elif vary == "query":
                    path = f"{target}?n={threading.get_ident()}-{done}"
                conn.request("GET", path, headers=sent)
                resp = conn.getresponse()
                while chunk := resp.read(1 << 20):
                    read += len(chunk)
                done += 1
                if resp.status >= 400:
                    errors += 1
                if resp.will_close:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException):
                errors += 1
                if conn is not None:
                    conn.close()
                conn = None
        if conn is not None:
            conn.close()
        with lock:
            totals["requests"] += done
            totals["bytes"] += read
            totals["errors"] += errors

    threads = [threading.Thread(target=worker) for _ in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - start
    return Load(totals["requests"], elapsed, totals["bytes"], totals["errors"], "python")
