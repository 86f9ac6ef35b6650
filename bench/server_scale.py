"""Serving at scale: a root index of 50 000 projects and a project page of 10 000 files.

    python bench/server_scale.py [--projects 50000] [--files 10000] [--seconds 3]
                                 [--connections 1,16] [--out bench/out]

One mirror tree (tests/index_tree.py) whose root index lists ``--projects`` projects and
whose project ``huge`` has ``--files`` wheels (its JSON page is several MB). Our
``server.py`` and nginx (docs/nginx.conf, one worker) serve the same folder. For each page,
with pip's ``Accept`` header (JSON):

- time to first byte of the first request after start (the page is read from disk), and the
  median of 20 later requests, each on a new connection;
- requests/s and MB/s under `wrk` (else bench/load.py's Python client) at each connection
  count;

then each server's peak resident memory (VmHWM of the serving processes). server.py keeps
small store objects in memory up to a fixed budget and never a body over 1 MB, so these
pages are always streamed from disk: its memory must not grow with the page sizes.
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `bench`, `tests`, `morgan` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.load import run_load
from tests.index_tree import build_tree, make_wheel, render_root
from tests.server_fixtures import PIP_ACCEPT
from tests.server_process import free_port, stop, wait_for_port
from tests.test_server_nginx import write_config

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
MB = 1 << 20
PAGES = {"root index": "/simple/", "project page": "/simple/huge/"}


@dataclass
class Running:
    name: str
    url: str
    pids: list[int]


def make_mirror(base: Path, projects: int, files: int) -> Path:
    dists = [make_wheel("small", "1.0")]
    dists += [make_wheel("huge", f"1.{i}.0") for i in range(files)]
    tree = build_tree(base / "mirror", dists)
    simple = tree.generation(1) / "simple"
    names = ["small", "huge", *(f"project-{i:06d}" for i in range(projects - 2))]
    page_html, page_json = render_root(names)
    for name, data in (("index.html", page_html), ("index.json", page_json)):
        (simple / name).unlink()
        tree.place(simple / name, data)
    shutil.copy(ROOT / "morgan" / "server.py", tree.root / "server.py")
    return tree.root


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def peak_rss_mb(pids: list[int]) -> float:
    """The largest VmHWM among ``pids`` and their children, in MB."""
    peak = 0
    for pid in {*pids, *(c for p in pids for c in _children(p))}:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                peak = max(peak, int(line.split()[1]))
    return peak / 1024


@contextmanager
def serve(name: str, mirror: Path, work: Path) -> Iterator[Running]:
    port = free_port()
    log = work / f"{name}.log"
    if name == "ours":
        cmd = [sys.executable, str(mirror / "server.py"), "--port", str(port)]
    else:
        prefix = work / "nginx"
        prefix.mkdir(exist_ok=True)
        conf = write_config(prefix, mirror, port)
        cmd = [shutil.which("nginx") or "/usr/sbin/nginx", "-p", str(prefix), "-c", str(conf)]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    with log.open("wb") as sink:
        proc = subprocess.Popen(cmd, stdout=sink, stderr=subprocess.STDOUT, cwd=work, env=env)
    try:
        wait_for_port(port, proc, log)
        yield Running(name, f"http://127.0.0.1:{port}", [proc.pid])
    finally:
        stop(proc)


def ttfb(url: str, path: str) -> tuple[float, int]:
    """Seconds from sending the request to the response head, and the body's size."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        conn.connect()
        start = time.perf_counter()
        conn.request("GET", path, headers={"Accept": PIP_ACCEPT})
        resp = conn.getresponse()
        first = time.perf_counter() - start
        body = resp.read()
        if resp.status != 200:
            raise RuntimeError(f"{url}{path}: HTTP {resp.status}")
        return first, len(body)
    finally:
        conn.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--projects", type=int, default=50_000, help="root index size (50000)")
    p.add_argument("--files", type=int, default=10_000, help="files of the large page (10000)")
    p.add_argument("--seconds", type=int, default=3, help="each load measurement (3)")
    p.add_argument("--connections", default="1,16", help="comma list (1,16)")
    p.add_argument("--out", type=Path, default=OUT, help="result folder (bench/out)")
    args = p.parse_args(argv)
    connections = [int(n) for n in args.connections.split(",") if n]
    args.out = args.out.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    rows: list[str] = []
    rss: dict[str, float] = {}
    sizes: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="bench-server-scale-", dir=args.out) as tmp:
        work = Path(tmp)
        print(f"bench: writing {args.projects} projects, {args.files} files", file=sys.stderr)
        mirror = make_mirror(work, args.projects, args.files)
        figures: dict[tuple[str, str], list[str]] = {}
        for name in ("ours", "nginx"):
            with serve(name, mirror, work) as running:
                for label, path in PAGES.items():
                    first, size = ttfb(running.url, path)
                    sizes[label] = size
                    later = statistics.median(ttfb(running.url, path)[0] for _ in range(20))
                    cells = [f"{first * 1000:.1f}", f"{later * 1000:.1f}"]
                    for n in connections:
                        print(f"bench: {name}: {label}, {n} connections", file=sys.stderr)
                        headers = {"Accept": PIP_ACCEPT}
                        load = run_load(
                            running.url + path,
                            connections=n,
                            seconds=args.seconds,
                            headers=headers,
                        )
                        err = f" ({load.errors} errors)" if load.errors else ""
                        cells.append(f"{load.requests_per_s:,.0f} / {load.mb_per_s:,.0f}{err}")
                    figures[(label, name)] = cells
                rss[name] = peak_rss_mb(running.pids)
    head = ["page", "server", "TTFB first (ms)", "TTFB median (ms)"]
    head += [f"req/s / MB/s, {n} conn" for n in connections]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label in PAGES:
        for name in ("ours", "nginx"):
            cells = figures[(label, name)]
            page = f"{label} ({sizes[label] / MB:.1f} MB JSON)"
            rows.append(f"| {page} | {name} | " + " | ".join(cells) + " |")
    load_avg = os.getloadavg()[0]
    rows += [
        "",
        (
            f"Peak RSS: ours {rss['ours']:.0f} MB, nginx (largest process) "
            f"{rss['nginx']:.0f} MB. Load average at the end: {load_avg:.1f}."
        ),
        "",
    ]
    table = "\n".join(rows)
    print(table, end="")
    (args.out / "server_scale.md").write_text(table, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
