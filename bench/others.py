"""Other tools on the bench's fake upstream, side by side with ours: devpi as a caching proxy.

    python bench/others.py [--projects 150] [--latency 0.03] [--bandwidth 50] [--no-large]
                           [--tools ours,pip,devpi] [--quick] [--out bench/out/others]

What people do with devpi for an air gap: run devpi-server with a mirror index in front of
the upstream, `pip download` each environment's requirements through it (the cache fills),
then carry devpi's server folder across and run it there with `--offline-mode`. Measured like
`bench/run.py` (same synthetic upstream, latency, bandwidth cap and four environments): the
cold fill, a no-op re-run, an add-one re-run, each with the upstream requests and bytes; the
result is devpi's server folder; the client check runs `pip download` for each environment
against devpi-server `--offline-mode` on that folder. devpi-server and devpi-client are
installed once into `--out`/devpi-venv from PyPI with an isolated pip. Its own RSS is
reported separately (the table's RSS is the clients').

bandersnatch is not measured: it needs the upstream's XML-RPC changelog or the JSON API,
which the fake upstream does not have (and mirrors whole projects, not a resolved set).
pypiserver only serves a folder filled by another tool (`pip download`), so its figures are
those of `pip download`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `bench`, `tests`, `morgan` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.graph import make_graph, publish
from bench.report import Figures, render
from bench.run import (
    MB,
    OUT,
    Options,
    _make_tool,
    bench_parser,
    measure_tool,
    new_figures,
    options_from,
)
from bench.tools import PipDownload, Target, Tool, tree_bytes
from tests.clients import pip_env
from tests.server_process import free_port, stop
from tests.upstream import FakeUpstream

DEVPI = ("devpi-server==6.20.3", "devpi-client==7.3.0")
PASSWORD = "bench"  # noqa: S105 (root of a throwaway server bound to 127.0.0.1)


def install_devpi(venv: Path) -> Path:
    """Install devpi-server and devpi-client into ``venv`` once (isolated pip); its bin/."""
    bin_dir = venv / "bin"
    if (bin_dir / "devpi-server").exists() and (bin_dir / "devpi").exists():
        return bin_dir
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    cmd = [str(bin_dir / "python"), "-m", "pip", "--isolated", "-q", "install"]
    cmd += ["--index-url", "https://pypi.org/simple/", *DEVPI]
    subprocess.run(cmd, env=pip_env(venv.parent), check=True)
    return bin_dir


class DevpiServer:
    """A devpi-server process on a free loopback port; its peak RSS read before it stops."""

    def __init__(self, bin_dir: Path, serverdir: Path, log: Path, *, offline: bool) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        cmd = [str(bin_dir / "devpi-server"), "--serverdir", str(serverdir)]
        cmd += ["--host", "127.0.0.1", "--port", str(self.port)]
        cmd += ["--offline-mode"] if offline else []
        with log.open("ab") as sink:
            self.proc = subprocess.Popen(cmd, stdout=sink, stderr=subprocess.STDOUT)
        self.peak_rss = 0
        deadline = time.monotonic() + 60
        while not self._answers():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"devpi-server did not start: {log.read_text()[-2000:]}")
            time.sleep(0.2)

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "+api", timeout=2) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def stop(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            status = Path(f"/proc/{self.proc.pid}/status").read_text()
            hwm = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
            self.peak_rss = max(self.peak_rss, int(hwm.split()[1]) * 1024)
        stop(self.proc, grace=20)


class DevpiPipDownload(PipDownload):
    """devpi-server mirroring the upstream; `pip download` per environment through it."""

    name = "devpi + pip download"

    def __init__(self, work: Path, bin_dir: Path, upstream_url: str, targets: Sequence[Target]):
        super().__init__(work, upstream_url, targets)
        self.bin = bin_dir
        self.serverdir = work / "devpi-server"
        self.log = work / "devpi.log"
        work.mkdir(parents=True, exist_ok=True)
        env = pip_env(work)
        init = [str(bin_dir / "devpi-init"), "--serverdir", str(self.serverdir), "--no-root-pypi"]
        self._quiet([*init, "--root-passwd", PASSWORD], env)
        self.server = DevpiServer(bin_dir, self.serverdir, self.log, offline=False)
        client = [str(bin_dir / "devpi"), "--clientdir", str(work / "devpi-client")]
        self._quiet([*client, "use", self.server.url], env)
        self._quiet([*client, "login", "root", "--password", PASSWORD], env)
        self._quiet(
            [*client, "index", "-c", "root/up", "type=mirror", f"mirror_url={upstream_url}"], env
        )
        self.upstream_url = f"{self.server.url}root/up/+simple/"  # what pip download asks
        self.server_rss = 0

    def _quiet(self, cmd: list[str], env: dict[str, str]) -> None:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd[:3])}… failed: {proc.stdout}{proc.stderr}")

    def result_bytes(self) -> int:
        return tree_bytes(self.serverdir)

    @contextlib.contextmanager
    def index_args(self) -> Iterator[list[str]]:
        """The air-gapped side: devpi-server --offline-mode on the filled server folder."""
        self.server.stop()
        self.server_rss = self.server.peak_rss
        offline = DevpiServer(self.bin, self.serverdir, self.log, offline=True)
        try:
            yield ["--index-url", f"{offline.url}root/up/+simple/"]
        finally:
            offline.stop()
            self.server_rss = max(self.server_rss, offline.peak_rss)

    def close(self) -> None:
        if self.server.proc.poll() is None:
            self.server.stop()
            self.server_rss = max(self.server_rss, self.server.peak_rss)


def run_others(opts: Options, out: Path) -> tuple[Figures, dict[str, int]]:
    """Every tool of ``opts.tools`` ("ours", "pip", "devpi") through the three phases."""
    out.mkdir(parents=True, exist_ok=True)
    graph = make_graph(opts.projects, large=opts.large)
    requirements = list(graph.requirements)
    figures = new_figures(opts, graph)
    extra: dict[str, int] = {}
    cache = OUT / f"upstream-{opts.projects}-{'large' if opts.large else 'small'}"
    with tempfile.TemporaryDirectory(prefix="others-", dir=out) as tmp_name:
        tmp = Path(tmp_name)
        up = FakeUpstream(cache)
        with up.start():
            publish(up, graph, up.files_dir)
            up.latency = opts.latency
            up.bandwidth = opts.bandwidth_mbps * MB if opts.bandwidth_mbps else 0.0
            for name in opts.tools:
                work = tmp / name
                tool: Tool
                if name == "devpi":
                    tool = DevpiPipDownload(
                        work, install_devpi(OUT / "devpi-venv"), up.url, opts.targets
                    )
                else:
                    tool = _make_tool(name, work, up.url, opts)
                try:
                    measure_tool(
                        up, tool, requirements, targets=opts.targets, work=work, figures=figures
                    )
                finally:
                    if isinstance(tool, DevpiPipDownload):
                        tool.close()
                        extra["devpi-server peak RSS"] = tool.server_rss
                        extra["devpi wheelhouse bytes"] = tree_bytes(tool.wheelhouse)
                shutil.rmtree(work, ignore_errors=True)
    return figures, extra


def main(argv: list[str] | None = None) -> int:
    """Run; print the table (also to --out/table.md, raw figures to --out/results.json)."""
    tools = ("ours", "pip", "devpi")
    args = bench_parser(__doc__, tools, OUT / "others").parse_args(argv)
    opts = options_from(args)
    figures, extra = run_others(opts, args.out)
    table = render(figures)
    table += "".join(f"- {k}: {v / MB:.1f} MB\n" for k, v in extra.items())
    print(table, end="")
    (args.out / "table.md").write_text(table, encoding="utf-8")
    data = {**asdict(figures), "extra": extra}
    (args.out / "results.json").write_text(
        json.dumps(data, indent=2, default=str), encoding="utf-8"
    )
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
