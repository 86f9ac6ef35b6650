"""server.py under load and abuse: ``python -m bench.server_load`` prints the figures.

Builds a mirror tree (tests/index_tree.py) plus one 500 MB sparse file listed as a file of
project ``bigdata``, starts ``python morgan/server.py --root <tree> --port 0`` once per
``--max-connections`` value asked for, and runs:

a) ``--conns`` keep-alive connections for ``--duration`` s, each requesting pages and
   ``.metadata`` in a loop: requests, errors, p50/p99 latency; then (scenario ``w``) the
   same load from ``wrk`` when installed (it reports only completed requests: a connection
   never answered shows up as a timeout in its "Socket errors" line, if at all);
b) slowloris: ``--slow`` connections trickling one header byte every ``--drip`` s (and
   reconnecting when cut) while ``--normal`` clients keep fetching (a new connection every
   10 requests, as successive pip runs would): the normal clients' errors and latency, how
   many slow connections the server cut and after how long;
c) ``--downloads`` clients fetching the big file at once: completions with the exact byte
   count, the sha256 of one, throughput;
r) slow readers: ``--never-read`` clients that request the big file and never read a byte,
   plus ``--slow`` slowloris connections, while ``--normal`` clients each fetch a page and
   the 10 MB file in turn (a new connection each time): every normal request must be
   answered, p99 under 1 s for the whole run (``--slow-duration`` s);
e) eviction past the cap: ``--flood`` slowloris connections (more than the server's 4096
   open connections) while ``--normal`` clients fetch pages: every normal request answered,
   the slowest within 2 s.

For each, the server's RSS and thread count are sampled from ``/proc/<pid>/status`` every
0.5 s (start, peak, end). A request counts as an error when it fails, answers other than
200, returns a short body or takes longer than ``--timeout`` s (pip's default is 15 s).
Clients are Python (asyncio for a and b, threads with ``recv_into`` for c) on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import hashlib
import json
import multiprocessing
import os
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from blake3 import blake3

from tests.index_tree import IndexTree, build_tree
from tests.server_process import stop

ROOT = Path(__file__).resolve().parent.parent
SERVER_PY = ROOT / "morgan" / "server.py"
BIG_NAME = "bigdata-1.0.tar.gz"
MID_NAME = "bigdata-0.9.tar.gz"  # the 10 MB file a normal client downloads in r)
MID_SIZE = 10 * 1024 * 1024
PIP_ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, "
    "text/html; q=0.01"
)
PAGES = (
    "/simple/",
    "/simple/alpha/",
    "/simple/beta/",
    "/simple/gamma-lib/",
    "/env/linux/simple/alpha/",
    "/simple/alpha/alpha-2.0-py3-none-any.whl.metadata",
    "/simple/beta/beta-1.0-py3-none-any.whl",
)
CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class BigFile:
    """The large file of the mirror: where it is served and what a client must receive."""

    path: str  # URL path
    size: int
    sha256: str


def make_mirror(base: Path, big_size: int) -> tuple[Path, BigFile]:
    """A mirror at ``base/mirror`` with a sparse ``big_size`` file of project ``bigdata``
    (and a 10 MB one, :data:`MID_NAME`)."""
    tree = build_tree(base / "mirror", environments={"linux": ["alpha", "beta"]})
    project = tree.generation(1) / "simple" / "bigdata"
    project.mkdir()
    mid = _zero_file(tree, project, MID_NAME, MID_SIZE)
    big = _zero_file(tree, project, BIG_NAME, big_size)
    files = [(f.path.rsplit("/", 1)[1], f) for f in (mid, big)]
    entries = [
        {
            "filename": name,
            "url": name,
            "hashes": {"sha256": f.sha256},
            "requires-python": None,
            "yanked": False,
            "size": f.size,
            "core-metadata": False,
        }
        for name, f in files
    ]
    page = {
        "meta": {"api-version": "1.1"},
        "name": "bigdata",
        "versions": ["0.9", "1.0"],
        "files": entries,
    }
    (project / "index.json").write_text(json.dumps(page) + "\n")
    links = "".join(f'<a href="{name}#sha256={f.sha256}">{name}</a>\n' for name, f in files)
    (project / "index.html").write_text(f"<!DOCTYPE html>\n<html><body>{links}</body></html>\n")
    return tree.root, big


def mid_file(big: BigFile) -> BigFile:
    """The 10 MB file of :func:`make_mirror`'s mirror."""
    return BigFile(big.path.rsplit("/", 1)[0] + "/" + MID_NAME, MID_SIZE, _zero_sha256(MID_SIZE))


def _zero_sha256(size: int) -> str:
    zeros = bytes(CHUNK)
    sha = hashlib.sha256()
    left = size
    while left:
        sha.update(zeros[: min(left, CHUNK)])
        left -= min(left, CHUNK)
    return sha.hexdigest()


def _zero_file(tree: IndexTree, project: Path, name: str, size: int) -> BigFile:
    """A sparse file of ``size`` zeros stored as a blob, linked as ``project/name``."""
    # The file is all zeros: hash it from one zero chunk instead of reading it back.
    big_size = size
    zeros = bytes(CHUNK)
    sha, b3 = hashlib.sha256(), blake3()
    left = big_size
    while left:
        piece = zeros[: min(left, CHUNK)]
        sha.update(piece)
        b3.update(piece)
        left -= len(piece)
    digest = str(b3.hexdigest())
    blob = tree.objects() / digest[:2] / digest
    blob.parent.mkdir(parents=True, exist_ok=True)
    with blob.open("wb") as f:
        f.truncate(big_size)  # sparse: created instantly, reads back as zeros
    blob.chmod(0o444)
    (project / name).symlink_to(os.path.relpath(blob, project))
    return BigFile(f"/simple/bigdata/{name}", big_size, sha.hexdigest())


@dataclass
class Server:
    """A running ``python morgan/server.py``."""

    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    def errors_logged(self) -> int:
        """Lines where the server reports a failure of its own (not access-log lines)."""
        text = self.log.read_text(errors="replace")
        return len(re.findall(r"^morgan-server: (?!warning)", text, re.MULTILINE))


@contextmanager
def server(
    root: Path, max_connections: int, log: Path, extra: Sequence[str] = ()
) -> Iterator[Server]:
    """Start the mirror's server on a free loopback port; stop it afterwards."""
    command = [sys.executable, str(SERVER_PY), "--root", str(root), "--port", "0"]
    command += ["--max-connections", str(max_connections), *extra]
    with log.open("wb") as sink:
        proc = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
    try:
        port = None
        for _ in range(200):
            match = re.search(r"Serving .* at http://127\.0\.0\.1:(\d+)/", log.read_text())
            if match:
                port = int(match.group(1))
                break
            if proc.poll() is not None:
                break
            time.sleep(0.05)
        if port is None:
            raise RuntimeError(f"server did not start: {log.read_text()}")
        yield Server(proc, port, log)
    finally:
        stop(proc)


@dataclass
class Memory:
    """RSS (MB) and thread counts of one process, sampled every ``interval`` s."""

    pid: int
    interval: float = 0.5
    rss: list[float] = field(default_factory=list)
    threads: list[int] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def sample(self) -> None:
        with Path(f"/proc/{self.pid}/status").open(encoding="ascii") as f:
            status = dict(line.split(":", 1) for line in f if ":" in line)
        self.rss.append(int(status["VmRSS"].split()[0]) / 1024)
        self.threads.append(int(status["Threads"]))

    def __enter__(self) -> Memory:
        self.sample()

        def loop() -> None:
            while not self._stop.wait(self.interval):
                self.sample()

        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.sample()

    def summary(self) -> str:
        return (
            f"RSS MB start {self.rss[0]:.1f} peak {max(self.rss):.1f} end {self.rss[-1]:.1f}; "
            f"threads start {self.threads[0]} peak {max(self.threads)} end {self.threads[-1]}"
        )


@dataclass
class Stats:
    """Outcome of a group of clients."""

    requests: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)
    causes: dict[str, int] = field(default_factory=dict)
    # Clients answered at least once while the load was still on: a client served only
    # after the others stopped was starved, even when no request of it timed out.
    answered_during_load: int = 0

    def fail(self, cause: str) -> None:
        self.errors += 1
        self.causes[cause] = self.causes.get(cause, 0) + 1

    def summary(self) -> str:
        text = f"requests {self.requests} errors {self.errors}"
        text += f" clients answered during the load {self.answered_during_load}"
        if self.latencies:
            ordered = sorted(self.latencies)
            p50 = statistics.median(ordered) * 1000
            p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000
            text += f" latency ms p50 {p50:.1f} p99 {p99:.1f} max {ordered[-1] * 1000:.1f}"
        if self.causes:
            text += " causes " + ", ".join(f"{k}: {v}" for k, v in sorted(self.causes.items()))
        return text


async def _get(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str) -> int:
    """One keep-alive GET; returns the status after reading the whole body."""
    writer.write(
        f"GET {path} HTTP/1.1\r\nHost: mirror\r\nAccept: {PIP_ACCEPT}\r\n\r\n".encode("ascii")
    )
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    match = re.search(rb"\r\ncontent-length: *(\d+)", head, re.IGNORECASE)
    if match is None:
        raise ValueError("response without Content-Length")
    await reader.readexactly(int(match.group(1)))
    return status


async def _client(
    port: int,
    stop: float,
    stats: Stats,
    *,
    timeout: float,
    per_connection: int,
    offset: int,
    paths: Sequence[str] = PAGES,
) -> None:
    """Fetch ``paths`` in turn until ``stop``; reconnect after ``per_connection`` or after
    an error."""
    n = offset
    answered = False
    while time.monotonic() < stop:
        writer = None
        try:
            started = time.monotonic()
            connect = asyncio.open_connection("127.0.0.1", port)
            reader, writer = await asyncio.wait_for(connect, timeout)
            for _ in range(per_connection):
                if time.monotonic() >= stop:
                    break
                status = await asyncio.wait_for(
                    _get(reader, writer, paths[n % len(paths)]), timeout
                )
                n += 1
                stats.requests += 1
                if status != 200:
                    stats.fail(f"status {status}")
                    break
                # The first request's latency includes the connection: what a client waits.
                now = time.monotonic()
                stats.latencies.append(now - started)
                started = now
                if not answered and now < stop:
                    answered = True
                    stats.answered_during_load += 1
        except TimeoutError:
            stats.requests += 1
            stats.fail(f"no answer within {timeout:g} s")
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            stats.requests += 1
            stats.fail(type(exc).__name__)
        finally:
            if writer is not None:
                writer.close()


async def keep_alive_load(port: int, conns: int, duration: float, timeout: float) -> Stats:
    """(a) ``conns`` keep-alive connections fetching pages for ``duration`` s."""
    stats = Stats()
    stop = time.monotonic() + duration
    await asyncio.gather(
        *(
            _client(port, stop, stats, timeout=timeout, per_connection=1 << 30, offset=i)
            for i in range(conns)
        )
    )
    return stats


@dataclass
class Slow:
    """What happened to the slowloris connections."""

    opened: int = 0
    cut: int = 0
    cut_after: list[float] = field(default_factory=list)
    answered: int = 0  # the server sent a response to a head never completed: a bug


async def _slow_client(port: int, stop: float, drip: float, slow: Slow) -> None:
    while time.monotonic() < stop:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(drip)
            continue
        slow.opened += 1
        opened = time.monotonic()
        try:
            writer.write(b"GET /simple/ HTTP/1.1\r\nHost: mirror\r\nX-Slow: ")
            await writer.drain()
            while time.monotonic() < stop:
                try:
                    data = await asyncio.wait_for(reader.read(1024), drip)
                except TimeoutError:
                    writer.write(b"a")
                    await writer.drain()
                    continue
                if data:
                    slow.answered += 1
                else:
                    slow.cut += 1
                    slow.cut_after.append(time.monotonic() - opened)
                break
        except OSError:
            slow.cut += 1
            slow.cut_after.append(time.monotonic() - opened)
        finally:
            writer.close()


async def slowloris(
    port: int, slow_conns: int, normal: int, *, duration: float, drip: float, timeout: float
) -> tuple[Stats, Slow]:
    """(b) ``slow_conns`` trickling connections, then ``normal`` clients fetching pages."""
    slow = Slow()
    stats = Stats()
    stop = time.monotonic() + duration
    attackers = [
        asyncio.ensure_future(_slow_client(port, stop, drip, slow)) for _ in range(slow_conns)
    ]
    await asyncio.sleep(1.0)  # the attack is under way when the normal clients arrive
    await asyncio.gather(
        *(
            _client(port, stop, stats, timeout=timeout, per_connection=10, offset=i)
            for i in range(normal)
        )
    )
    await asyncio.gather(*attackers)
    return stats, slow


def never_readers(port: int, big: BigFile, count: int) -> list[socket.socket]:
    """``count`` connections that each request ``big`` and never read a byte (a receive
    window of a few KB, so the data really stays with the server)."""
    socks = []
    for _ in range(count):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(10)
        sock.connect(("127.0.0.1", port))
        sock.sendall(f"GET {big.path} HTTP/1.1\r\nHost: mirror\r\n\r\n".encode("ascii"))
        socks.append(sock)
    return socks


async def _page_and_download(
    port: int, stop: float, mid: BigFile, stats: Stats, timeout: float
) -> None:
    """Until ``stop``: a new connection, the bigdata page, the 10 MB file; each request's
    latency (the first including the connection) goes to ``stats``."""
    await _client(
        port,
        stop,
        stats,
        timeout=timeout,
        per_connection=2,
        offset=0,
        paths=("/simple/bigdata/", mid.path),
    )


def normal_clients(
    port: int, normal: int, duration: float, timeout: float, mid: BigFile | None
) -> Stats:
    """``normal`` clients for ``duration`` s, run in a process of their own (see
    :func:`_in_own_process`): with ``mid``, each fetches a page and that file in turn on a new
    connection; without, pages on connections of 10 requests."""

    async def run() -> Stats:
        stats = Stats()
        stop = time.monotonic() + duration
        if mid is not None:
            clients = [_page_and_download(port, stop, mid, stats, timeout) for _ in range(normal)]
        else:
            clients = [
                _client(port, stop, stats, timeout=timeout, per_connection=10, offset=i)
                for i in range(normal)
            ]
        await asyncio.gather(*clients)
        return stats

    return asyncio.run(run())


async def _in_own_process(
    port: int, normal: int, duration: float, timeout: float, mid: BigFile | None
) -> Stats:
    """:func:`normal_clients` in a new process: thousands of attacking connections keep one
    event loop busy, and a client that shares it would measure that loop, not the server."""
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
        future = pool.submit(normal_clients, port, normal, duration, timeout, mid)
        return await asyncio.wrap_future(future)


async def slow_readers(
    port: int,
    big: BigFile,
    *,
    never_read: int,
    slow_conns: int,
    normal: int,
    duration: float,
    drip: float,
    timeout: float,
) -> tuple[Stats, Slow, int]:
    """(r) ``never_read`` clients stuck on ``big`` and ``slow_conns`` slowloris connections,
    then ``normal`` clients (in their own process) fetching a page and the 10 MB file in
    turn for ``duration`` s. Returns the normal clients' stats, the slowloris outcome and
    how many never-reading connections the server had closed by the end."""
    slow = Slow()
    stop = time.monotonic() + duration + 2.0
    stuck = await asyncio.to_thread(never_readers, port, big, never_read)
    try:
        attackers = [
            asyncio.ensure_future(_slow_client(port, stop, drip, slow)) for _ in range(slow_conns)
        ]
        await asyncio.sleep(1.0)  # the attack is under way when the normal clients arrive
        stats = await _in_own_process(port, normal, duration, timeout, mid_file(big))
        await asyncio.gather(*attackers)
        closed = sum(1 for sock in stuck if _closed_by_server(sock))
    finally:
        for sock in stuck:
            sock.close()
    return stats, slow, closed


async def flood(
    port: int, slow_conns: int, normal: int, *, duration: float, drip: float, timeout: float
) -> tuple[Stats, Slow]:
    """(e) ``slow_conns`` slowloris connections (reconnecting when cut), then ``normal``
    clients in their own process fetching pages for ``duration`` s."""
    slow = Slow()
    stop = time.monotonic() + duration + 3.0
    attackers = [
        asyncio.ensure_future(_slow_client(port, stop, drip, slow)) for _ in range(slow_conns)
    ]
    await asyncio.sleep(2.0)  # the flood is past the cap when the normal clients arrive
    stats = await _in_own_process(port, normal, duration, timeout, None)
    await asyncio.gather(*attackers)
    return stats, slow


def _closed_by_server(sock: socket.socket) -> bool:
    """Whether the server closed ``sock``: its TCP state (Linux ``TCP_INFO``, first byte) is
    no longer ESTABLISHED. Reading to find out would drain what the server still sends."""
    established = 1
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)
    except OSError:
        return True
    return info[0] != established


def raise_fd_limit(wanted: int) -> int:
    """Raise this process's soft descriptor limit toward ``wanted`` (the hard limit caps
    it); return the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(hard, wanted)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


@dataclass
class Downloads:
    completed: int = 0
    wrong: list[str] = field(default_factory=list)
    sha256: str = ""
    seconds: float = 0.0


def _download(
    port: int, big: BigFile, digest: bool, result: Downloads, lock: threading.Lock
) -> None:
    sha = hashlib.sha256() if digest else None
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
            sock.sendall(f"GET {big.path} HTTP/1.1\r\nHost: mirror\r\n\r\n".encode("ascii"))
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = sock.recv(65536)
                if not chunk:
                    raise ConnectionError("closed before the response head")
                head += chunk
            head, _, body = head.partition(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200 "):
                raise ConnectionError(head.split(b"\r\n")[0].decode("latin-1"))
            received = len(body)
            if sha is not None:
                sha.update(body)
            buf = bytearray(CHUNK)
            view = memoryview(buf)
            while received < big.size:
                n = sock.recv_into(view, min(CHUNK, big.size - received))
                if n == 0:
                    break
                received += n
                if sha is not None:
                    sha.update(view[:n])
        with lock:
            if received != big.size:
                result.wrong.append(f"received {received} of {big.size} bytes")
            else:
                result.completed += 1
            if sha is not None:
                result.sha256 = sha.hexdigest()
    except OSError as exc:
        with lock:
            result.wrong.append(f"{type(exc).__name__}: {exc}")


def downloads(port: int, big: BigFile, clients: int) -> Downloads:
    """(c) ``clients`` threads downloading ``big`` at once, discarding the bytes."""
    result = Downloads()
    lock = threading.Lock()
    started = time.monotonic()
    threads = [
        threading.Thread(target=_download, args=(port, big, i == 0, result, lock))
        for i in range(clients)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result.seconds = time.monotonic() - started
    return result


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.server_load", description=__doc__)
    parser.add_argument("--max-connections", default="128,600", help="server caps to compare")
    parser.add_argument(
        "--scenarios", default="awbc", help="which of a, w (a with wrk), b, c to run"
    )
    parser.add_argument("--conns", type=int, default=500)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--slow", type=int, default=200)
    parser.add_argument("--normal", type=int, default=16)
    parser.add_argument("--slow-duration", type=float, default=45.0)
    parser.add_argument("--drip", type=float, default=3.0)
    parser.add_argument("--downloads", type=int, default=50)
    parser.add_argument("--big-mb", type=int, default=500)
    parser.add_argument("--timeout", type=float, default=15.0)
    parser.add_argument(
        "--never-read", type=int, default=500, help="r: clients stuck on the big file"
    )
    parser.add_argument("--flood", type=int, default=5000, help="e: slowloris connections")
    return parser.parse_args(argv)


def wrk_load(port: int, conns: int, duration: float, timeout: float) -> str | None:
    """(a) again with ``wrk`` (one thread, one JSON page) when it is installed: its summary."""
    wrk = shutil.which("wrk")
    if wrk is None:
        return None
    command = [wrk, "-t1", f"-c{conns}", f"-d{duration:g}s", f"--timeout={timeout:g}s"]
    command += ["--latency", "-H", "Accept: application/vnd.pypi.simple.v1+json"]
    out = subprocess.run(
        [*command, f"http://127.0.0.1:{port}/simple/alpha/"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    wanted = ("requests in", "Requests/sec", "50%", "99%", "Socket errors", "Non-2xx")
    lines = [" ".join(line.split()) for line in out.splitlines() if any(w in line for w in wanted)]
    return "; ".join(lines)


def run_scenario(scenario: str, port: int, big: BigFile, args: argparse.Namespace) -> None:
    """Run one of a, b, c against the server on ``port`` and print its figures."""
    if scenario == "a":
        stats = asyncio.run(keep_alive_load(port, args.conns, args.duration, args.timeout))
        rate = stats.requests / args.duration
        print(
            f"a) {args.conns} keep-alive x {args.duration:g} s: {stats.summary()}; {rate:.0f} req/s"
        )
    elif scenario == "w":
        summary = wrk_load(port, args.conns, args.duration, args.timeout)
        print(f"a/wrk) {args.conns} connections x {args.duration:g} s: {summary or 'no wrk'}")
    elif scenario == "b":
        stats, slow = asyncio.run(
            slowloris(
                port,
                args.slow,
                args.normal,
                duration=args.slow_duration,
                drip=args.drip,
                timeout=args.timeout,
            )
        )
        print(f"b) {args.normal} normal clients: {stats.summary()}")
        cut = sorted(slow.cut_after)
        after = f" after s min {cut[0]:.1f} median {statistics.median(cut):.1f}" if cut else ""
        print(
            f"b) {args.slow} slowloris: opened {slow.opened} cut {slow.cut}{after}; "
            f"answered {slow.answered}"
        )
    elif scenario == "c":
        done = downloads(port, big, args.downloads)
        mbps = done.completed * big.size / done.seconds / 1e6
        print(
            f"c) {args.downloads} downloads of {big.size} bytes: completed {done.completed} "
            f"wrong {len(done.wrong)} {done.wrong[:3]}; sha256 ok {done.sha256 == big.sha256}; "
            f"{done.seconds:.1f} s, {mbps:.0f} MB/s"
        )
    elif scenario == "r":
        stats, slow, closed = asyncio.run(
            slow_readers(
                port,
                big,
                never_read=args.never_read,
                slow_conns=args.slow,
                normal=args.normal,
                duration=args.slow_duration,
                drip=args.drip,
                timeout=args.timeout,
            )
        )
        print(f"r) {args.normal} normal clients (page + 10 MB file): {stats.summary()}")
        print(
            f"r) {args.never_read} never-reading clients: {closed} closed by the server; "
            f"{args.slow} slowloris: opened {slow.opened} cut {slow.cut}; answered {slow.answered}"
        )
    elif scenario == "e":
        raise_fd_limit(args.flood + 1024)
        stats, slow = asyncio.run(
            flood(
                port,
                args.flood,
                args.normal,
                duration=args.slow_duration,
                drip=args.drip,
                timeout=args.timeout,
            )
        )
        print(f"e) {args.normal} normal clients: {stats.summary()}")
        print(
            f"e) {args.flood} slowloris: opened {slow.opened} cut {slow.cut}; "
            f"answered {slow.answered}"
        )
    else:
        raise SystemExit(f"unknown scenario {scenario!r}: use a, w, b, c, r or e")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    caps = [int(c) for c in args.max_connections.split(",")]
    with tempfile.TemporaryDirectory(prefix="morgan-load-") as tmp:
        base = Path(tmp)
        root, big = make_mirror(base, args.big_mb * 1024 * 1024)
        print(f"mirror {root}; big file {big.path} {big.size} bytes sha256 {big.sha256}")
        for cap in caps:
            for scenario in args.scenarios:
                log = base / f"server-{cap}-{scenario}.log"
                with server(root, cap, log) as srv:
                    print(f"\n== --max-connections {cap}, scenario {scenario}", flush=True)
                    with Memory(srv.proc.pid) as mem:
                        run_scenario(scenario, srv.port, big, args)
                    logged = srv.errors_logged()
                    print(f"   server {mem.summary()}; errors it logged {logged}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
