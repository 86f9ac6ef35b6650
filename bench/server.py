"""Serving speed: our server.py, Morgan 0.15.0's server, `python -m http.server` and nginx.

    python bench/server.py [--seconds 3] [--connections 1,16,128]
                           [--servers ours,ours-p2,morgan015,pypiserver,http.server,nginx]
                           [--morgan015-venv bench/out/venv-morgan015]
                           [--pypiserver-venv bench/out/venv-pypiserver] [--file-mb 100]
                           [--out bench/out]

One tree (tests/index_tree.py) with a small project (a wheel and an sdist), a large project
(520 wheels: its JSON page is ~190 KB) and a 100 MB file; every server serves the same bytes:

- ours: ``server.py`` copied into the mirror root, as ``morgan build`` does; ours-p2: the
  same with ``--processes 2``;
- Morgan 0.15.0: its ``morgan.server`` (``http.server.ThreadingHTTPServer``) on the layout it
  serves, ``<index>/<project>/<file>`` with a ``<file>.hash`` and ``<file>.metadata`` next to
  each file (links to the same blobs); it renders pages per request from a directory scan;
- pypiserver 2.4.2 (``pypiserver[cache]`` and waitress in its own venv) on a flat folder of
  links to the same blobs: it answers HTML pages only, so its page figures are HTML pages;
- ``python -m http.server`` on the generation folder: no negotiation, so it is asked for
  ``index.json`` by name;
- nginx with docs/nginx.conf (one worker process, access log on, as in the nginx tests).

Pages are requested with pip's ``Accept`` header (JSON wins). Each server runs alone; the load
is `wrk` (else bench/load.py's Python client). Prints a Markdown table of requests/second
(MB/s for the file) and writes it to <out>/server.md, raw figures to <out>/server.json.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `bench`, `tests`, `morgan` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.load import Load, run_load
from bench.tools import Morgan015
from tests.clients import pip_env
from tests.index_tree import Dist, IndexTree, build_tree, make_sdist, make_wheel, sha256_hex
from tests.server_fixtures import PIP_ACCEPT
from tests.server_process import free_port, stop, wait_for_port
from tests.test_server_nginx import write_config

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
MB = 1 << 20
LARGE_FILES = 520
FILE_MB = 100
SERVERS = ("ours", "ours-p2", "morgan015", "pypiserver", "http.server", "nginx")
PYPISERVER = "pypiserver[cache]==2.4.2"
JSON_ONLY = "application/vnd.pypi.simple.v1+json"
SMALL_MANY = "small page, a new User-Agent per request"
SMALL_QUERY = "small page, a new query string per request"
PAGE_TIERS = ("small page", SMALL_MANY, SMALL_QUERY, "large JSON page")
_VARY = {SMALL_MANY: "agent", SMALL_QUERY: "query"}
# Morgan 0.15.0 reads a whole file into memory per request: 128 concurrent 100 MB downloads
# would hold ~13 GB. Its process gets this address-space cap so it fails instead.
MORGAN015_MEMORY = 6 << 30


@dataclass(frozen=True, slots=True)
class Fixture:
    mirror: Path  # our mirror folder (server.py, index, generations, store)
    morgan015_index: Path  # the same files in 0.15.0's layout
    flat: Path  # the same files in one folder, for pypiserver
    big: Dist
    big_sha256: str


@dataclass(frozen=True, slots=True)
class Served:
    """A running server and the path of each tier on it."""

    url: str
    paths: tuple[str, str, str]
    accept: str = PIP_ACCEPT  # the header pages are requested with
    html: bool = False  # its pages are HTML (pypiserver), else PEP 691 JSON


@dataclass(slots=True)
class Cell:
    server: str
    tier: str
    connections: int
    load: Load | None
    note: str = ""


def tiers(file_mb: int) -> tuple[str, ...]:
    """What is measured: the pages (the small one also as from many different clients, each
    request with its own User-Agent, and with a query string of its own, so that no answer
    is ever asked for twice) and the file."""
    return (*PAGE_TIERS, f"{file_mb} MB file")


# Which of a server's paths each tier asks for.
_TIER_PATH = {"small page": 0, SMALL_MANY: 0, SMALL_QUERY: 0, "large JSON page": 1}


def make_fixture(base: Path, file_mb: int = FILE_MB) -> Fixture:
    """Write the tree (and its 0.15.0 twin) under ``base``; the file has ``file_mb`` MB."""
    payload = random.Random(0).randbytes(file_mb * MB)  # noqa: S311 - filler bytes, not a secret
    meta = b"Metadata-Version: 2.1\nName: big\nVersion: 1.0\n"
    big = Dist("big", "1.0", "big-1.0-py3-none-any.whl", payload, meta)
    dists = [make_wheel("small", "1.0"), make_sdist("small", "1.0"), big]
    dists += [make_wheel("large", f"1.{i}.0") for i in range(LARGE_FILES)]
    tree: IndexTree = build_tree(base / "mirror", dists)
    shutil.copy(ROOT / "morgan" / "server.py", tree.root / "server.py")
    index = base / "morgan015"
    flat = base / "flat"
    flat.mkdir()
    simple = tree.generation(1) / "simple"
    for dist in dists:
        (flat / dist.filename).symlink_to((simple / dist.project / dist.filename).resolve())
        folder = index / dist.project
        folder.mkdir(parents=True, exist_ok=True)
        (folder / dist.filename).symlink_to((simple / dist.project / dist.filename).resolve())
        (folder / f"{dist.filename}.hash").write_text(f"sha256={dist.sha256}")
        if dist.metadata is not None:
            blob = (simple / dist.project / f"{dist.filename}.metadata").resolve()
            (folder / f"{dist.filename}.metadata").symlink_to(blob)
    return Fixture(tree.root, index, flat, big, sha256_hex(payload))


@contextmanager
def _process(cmd: list[str], log: Path, port: int, *, memory: int | None = None) -> Iterator[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}

    def limit() -> None:
        if memory is not None:
            resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

    with log.open("wb") as sink:
        proc = subprocess.Popen(
            # preexec_fn only sets an rlimit (no locks taken) in the child before exec.
            cmd,
            stdout=sink,
            stderr=subprocess.STDOUT,
            cwd=log.parent,
            env=env,
            preexec_fn=limit,  # noqa: PLW1509
        )
    try:
        wait_for_port(port, proc, log)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)


def install_pypiserver(venv: Path) -> Path:
    """Install pypiserver (with its cache extra and waitress) into ``venv`` once, with an
    isolated pip; return its ``pypi-server`` script."""
    script = venv / "bin" / "pypi-server"
    if script.exists():
        return script
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    cmd = [str(venv / "bin" / "python"), "-m", "pip", "--isolated", "-q", "install"]
    cmd += ["--no-cache-dir", "--index-url", "https://pypi.org/simple/", PYPISERVER, "waitress"]
    subprocess.run(cmd, env=pip_env(venv.parent), check=True)
    return script


@dataclass(frozen=True, slots=True)
class Venvs:
    morgan015: Path
    pypiserver: Path


@contextmanager
def serve(name: str, fx: Fixture, work: Path, venvs: Venvs) -> Iterator[Served]:
    """Start server ``name`` on a free loopback port; yield its URL and tier paths."""
    port = free_port()
    log = work / f"{name}.log"
    big = f"{fx.big.project}/{fx.big.filename}"
    ours_paths = ("/simple/small/", "/simple/large/", f"/simple/{big}")
    if name in ("ours", "ours-p2"):
        cmd = [sys.executable, str(fx.mirror / "server.py"), "--port", str(port)]
        cmd += ["--max-connections", "256"]
        if name == "ours-p2":
            cmd += ["--processes", "2"]
        with _process(cmd, log, port) as url:
            yield Served(url, ours_paths)
    elif name == "pypiserver":
        cmd = [str(install_pypiserver(venvs.pypiserver)), "run", "-p", str(port)]
        cmd += ["-i", "127.0.0.1", "-a", ".", "-P", ".", "--disable-fallback", str(fx.flat)]
        with _process(cmd, log, port) as url:
            pages = ("/simple/small/", "/simple/large/")
            yield Served(url, (*pages, f"/packages/{fx.big.filename}"), html=True)
    elif name == "morgan015":
        python = Morgan015.install(venvs.morgan015).parent / "python"
        cmd = [str(python), "-m", "morgan.server", "-i", str(fx.morgan015_index)]
        cmd += ["-H", "127.0.0.1", "-p", str(port)]
        with _process(cmd, log, port, memory=MORGAN015_MEMORY) as url:
            # 0.15.0 ranks a range without q= below q=0.1, so pip's own header gets HTML from
            # it: ask for JSON alone to measure the same representation.
            yield Served(url, ("/small/", "/large/", f"/{big}"), JSON_ONLY)
    elif name == "http.server":
        cmd = [sys.executable, "-m", "http.server", "--bind", "127.0.0.1"]
        cmd += ["--directory", str(fx.mirror / "index"), str(port)]
        with _process(cmd, log, port) as url:
            pages = ("/simple/small/index.json", "/simple/large/index.json")
            yield Served(url, (*pages, f"/simple/{big}"))
    elif name == "nginx":
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        prefix = work / "nginx"
        prefix.mkdir(exist_ok=True)
        conf = write_config(prefix, fx.mirror, port)
        with _process([binary, "-p", str(prefix), "-c", str(conf)], log, port) as url:
            yield Served(url, ours_paths)
    else:
        raise ValueError(f"unknown server {name!r}: use one of {', '.join(SERVERS)}")


def check(served: Served, fx: Fixture) -> None:
    """Every tier answers 200 with the right bytes before it is measured."""
    host, port = served.url.rsplit(":", 1)
    conn = http.client.HTTPConnection(host.removeprefix("http://"), int(port), timeout=60)
    try:
        for path, files in zip(served.paths[:2], (2, LARGE_FILES), strict=True):
            conn.request("GET", path, headers={"Accept": served.accept})
            resp = conn.getresponse()
            body = resp.read()
            assert resp.status == 200, (served.url, path, resp.status)
            found = body.count(b"<a ") if served.html else len(json.loads(body)["files"])
            assert found == files, (served.url, path, found)
            if resp.will_close:
                conn.close()
        conn.request("GET", served.paths[2])
        resp = conn.getresponse()
        digest = hashlib.sha256()
        while chunk := resp.read(MB):
            digest.update(chunk)
        assert resp.status == 200, (served.url, served.paths[2], resp.status)
        assert digest.hexdigest() == fx.big_sha256, (served.url, "the file differs")
    finally:
        conn.close()


def measure(
    servers: tuple[str, ...],
    connections: tuple[int, ...],
    seconds: float,
    work: Path,
    venvs: Venvs,
    *,
    file_mb: int = FILE_MB,
) -> list[Cell]:
    """Start every server (idle ones cost nothing), check them, then measure each cell on
    every server back to back, so a change in the machine's background load hits all alike."""
    fx = make_fixture(work, file_mb)
    cells: list[Cell] = []
    with ExitStack() as stack:
        running = {name: stack.enter_context(serve(name, fx, work, venvs)) for name in servers}
        for served in running.values():
            check(served, fx)
        for tier in tiers(file_mb):
            index = _TIER_PATH.get(tier, 2)
            for n in connections:
                for name, served in running.items():
                    print(f"bench: {tier}, {n} connections: {name}", file=sys.stderr)
                    headers = {"Accept": served.accept} if index < 2 else {}
                    url = served.url + served.paths[index]
                    load = run_load(
                        url,
                        connections=n,
                        seconds=seconds,
                        headers=headers,
                        vary=_VARY.get(tier),
                    )
                    cells.append(Cell(name, tier, n, load))
    return cells


def _figure(cell: Cell | None, tier: str) -> str:
    if cell is None or cell.load is None:
        return "—"
    load = cell.load
    text = f"{load.mb_per_s:,.0f} MB/s" if tier not in PAGE_TIERS else f"{load.requests_per_s:,.0f}"
    if load.errors:
        text += f" ({load.errors} errors)"
    return text


def _ratio(a: Cell | None, b: Cell | None, tier: str) -> str:
    if a is None or b is None or a.load is None or b.load is None:
        return "—"
    x, y = (
        (a.load.mb_per_s, b.load.mb_per_s)
        if tier not in PAGE_TIERS
        else (a.load.requests_per_s, b.load.requests_per_s)
    )
    if y == 0:
        return "∞" if x else "—"
    return f"{x / y:.2f}×" if x / y < 10 else f"{x / y:.0f}×"


def render(
    cells: list[Cell],
    servers: tuple[str, ...],
    connections: tuple[int, ...],
    file_mb: int = FILE_MB,
) -> str:
    """The Markdown table: requests/s per server (MB/s for the file), ours vs 0.15.0 and nginx."""
    find = {(c.server, c.tier, c.connections): c for c in cells}
    names = {
        "ours": "ours (server.py)",
        "ours-p2": "ours, 2 processes",
        "morgan015": "Morgan 0.15.0",
    }
    head = ["what", "conns", *(names.get(s, s) for s in servers), "ours / 0.15.0", "ours / nginx"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for tier in tiers(file_mb):
        for n in connections:
            row = [tier, str(n)]
            row += [_figure(find.get((s, tier, n)), tier) for s in servers]
            ours = find.get(("ours", tier, n))
            row.append(_ratio(ours, find.get(("morgan015", tier, n)), tier))
            row.append(_ratio(ours, find.get(("nginx", tier, n)), tier))
            lines.append("| " + " | ".join(row) + " |")
    tools = sorted({c.load.tool for c in cells if c.load is not None})
    return "\n".join(lines) + f"\n\nLoad generator: {', '.join(tools)}.\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--seconds", type=int, default=3, help="each measurement (default 3)")
    p.add_argument("--connections", default="1,16,128", help="comma list (default 1,16,128)")
    p.add_argument("--servers", default=",".join(SERVERS), help=f"comma list of {SERVERS}")
    p.add_argument(
        "--morgan015-venv",
        type=Path,
        default=OUT / "venv-morgan015",
        help="venv holding morgan==0.15.0 (installed there when missing)",
    )
    p.add_argument(
        "--pypiserver-venv",
        type=Path,
        default=OUT / "venv-pypiserver",
        help="venv holding pypiserver (installed there when missing)",
    )
    p.add_argument("--file-mb", type=int, default=FILE_MB, help="size of the file (100 MB)")
    p.add_argument("--out", type=Path, default=OUT, help="result folder (bench/out)")
    args = p.parse_args(argv)
    servers = tuple(s for s in args.servers.split(",") if s)
    connections = tuple(int(n) for n in args.connections.split(",") if n)
    args.out = args.out.resolve()  # servers run in their own folders: paths must be absolute
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-server-", dir=args.out) as tmp:
        venvs = Venvs(args.morgan015_venv, args.pypiserver_venv)
        cells = measure(servers, connections, args.seconds, Path(tmp), venvs, file_mb=args.file_mb)
    table = render(cells, servers, connections, args.file_mb)
    print(table, end="")
    (args.out / "server.md").write_text(table, encoding="utf-8")
    (args.out / "server.json").write_text(
        json.dumps([asdict(c) for c in cells], indent=2), encoding="utf-8"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
