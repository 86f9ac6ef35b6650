"""How Morgan's costs grow with the mirror: the fake upstream at several sizes, one table.

    python bench/scale.py [--sizes 500,2000,5000] [--latency 0.03] [--quick] [--out bench/out]

For each size: a synthetic upstream (bench/graph.py's shape plus a few giant projects with
thousands of files and multi-megabyte pages, like numpy or boto3), six environments, a fixed
per-request latency and no bandwidth cap. Phases, each a separate ``morgan`` process measured
for wall time, peak RSS and upstream requests:

- cold build; no-op rebuild; add one requirement (two projects only it needs);
- upgrade 10 %: a new release of every tenth pure library in the closure, then
  ``build --upgrade``;
- ``verify``; ``gc --keep 1``;

then the store's size. The last column divides the largest size's figure by the smallest's
and by the size ratio: 1.0 is linear growth, below 1 is better than linear.

The latency floor printed for the cold build is what no client with the builder's
parallelism can beat on this upstream: ``max(depth, requests / connections) × latency``,
where depth is the number of sequential round trips the dependency graph forces (two per
level: a page, then a release's metadata), requests the cold build's own request count and
connections the builder's parallel connections, read from its defaults (``-j`` download
threads plus the threads that fetch pages and metadata: 16 + 16; the scale graph has no
file of 4 MB or more, which would get their own threads). Until the ninth round this
counted 16 connections (as if 8 + 8) while the builder had 24 and then 32: the floor was
too high, and the cold build looked closer to it than it was.
``--quick`` runs two tiny sizes
with no latency: the shape of the table, never its times (tests/test_bench_smoke.py).
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit

if __package__ in (None, ""):  # run as a script: make `bench`, `tests`, `morgan` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.graph import EXTRA_REQUIREMENT, Graph, Release, make_graph, publish
from bench.measure import measure
from bench.tools import ROOT, Target, tree_bytes
from morgan.build import BuildOptions
from morgan.executor import Executor
from tests.upstream import FakeUpstream

OUT = Path(__file__).resolve().parent / "out"
# Six targets that every native project of the graph has wheels for (its abi3 projects ship
# manylinux2014, win_amd64 and macOS arm64 only): the figures measure mirroring, not the
# sdist fallback, which the build tests cover.
TARGETS = (
    Target("legacy-linux", "3.9", "manylinux_2_17_x86_64"),
    Target("linux", "3.12", "manylinux_2_28_x86_64"),
    Target("linux-313", "3.13", "manylinux_2_34_x86_64"),
    Target("windows", "3.12", "win_amd64"),
    Target("windows-311", "3.11", "win_amd64"),
    Target("mac", "3.13", "macosx_14_0_arm64"),
)


def _connections() -> int:
    """The builder's parallel connections: its download threads (``-j``'s default) and
    the executor's threads for pages and metadata (each thread has its own session)."""
    small = int(inspect.signature(Executor).parameters["small_workers"].default)
    return BuildOptions().workers + small


CONNECTIONS = _connections()
# Real dependency graphs are 10-20 levels deep whatever their size: the scale graph keeps its
# chains this deep and grows their number with the size instead.
MAX_DEPTH = 15
PHASES = ("cold", "no-op", "add-one", "upgrade-10%", "verify", "gc")
NATIVE_TAGS = (
    "manylinux_2_17_x86_64.manylinux2014_x86_64",
    "musllinux_1_2_x86_64",
    "win_amd64",
    "win32",
    "macosx_11_0_arm64",
    "macosx_10_12_x86_64",
)


@dataclass(frozen=True, slots=True)
class PhaseFigures:
    ok: bool
    wall: float
    rss_mb: float
    requests: int
    page_requests: int
    tail: str = ""


@dataclass(slots=True)
class SizeFigures:
    size: int
    projects: int
    files: int
    depth: int
    phases: dict[str, PhaseFigures]
    store_mb: float = 0.0


def giants(size: int) -> list[Release]:
    """A few projects with thousands of files (pages of several MB), scaled with ``size``:
    one numpy-like (many releases × native wheels per Python and platform) and one
    boto3-like (a pure wheel and an sdist per release, over a thousand releases)."""
    releases: list[Release] = []
    n_native = max(3, size // 100)  # 50 releases at 5 000 projects: ~1 500 wheels
    for r in range(n_native):
        tags = tuple(
            f"{py}-{py}-{p}" for py in ("cp39", "cp311", "cp312", "cp313") for p in NATIVE_TAGS
        )
        releases.append(Release("giant-native", f"1.{r}", tags))
    n_pure = max(5, size // 4)  # 1 250 releases at 5 000 projects
    for r in range(n_pure):
        releases.append(Release("giant-pure", f"1.{r}.0", ("py3-none-any",), ("hub-0",)))
    return releases


def scale_graph(size: int) -> Graph:
    base = make_graph(size, large=False, max_depth=MAX_DEPTH)
    extra = giants(size)
    apps = [r for r in base.releases if r.name.startswith("app-")]
    first = apps[0]
    widened = replace(first, requires_dist=(*first.requires_dist, "giant-native", "giant-pure"))
    releases = tuple(widened if r is first else r for r in base.releases) + tuple(extra)
    return Graph(releases, base.requirements)


def depth_of(graph: Graph) -> int:
    """Levels of the dependency graph below the requirements (longest chain, in projects)."""
    deps: dict[str, set[str]] = {}
    for r in graph.releases:
        for d in r.requires_dist:
            name = d.split(";")[0].split(">")[0].split("=")[0].split("[")[0].strip()
            deps.setdefault(r.name, set()).add(name)
    memo: dict[str, int] = {}

    def level(name: str) -> int:
        if name not in memo:
            memo[name] = 0  # guards a cycle (there is none by construction)
            memo[name] = 1 + max((level(d) for d in deps.get(name, ())), default=0)
        return memo[name]

    return max(level(r) for r in graph.requirements)


def _write_spec(ws: Path, url: str, requirements: Sequence[str]) -> None:
    ws.mkdir(parents=True, exist_ok=True)
    reqs = "".join(f'  "{r}",\n' for r in requirements)
    text = f'requirements = [\n{reqs}]\n\n[upstream]\nindex-url = "{url}"\n'
    for t in TARGETS:
        text += f'\n[environments.{t.name}]\npython = "{t.python}"\nplatform = "{t.platform}"\n'
    (ws / "mirror.toml").write_text(text, encoding="utf-8")


def _phase(up: FakeUpstream, ws: Path, *args: str) -> PhaseFigures:
    up.clear_requests()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = measure([sys.executable, "-m", "morgan", *args, "-C", str(ws)], env=env)
    log = list(up.requests)
    pages = sum(1 for r in log if urlsplit(r.path).path.startswith("/simple"))
    tail = "" if run.code == 0 else run.output[-600:]
    return PhaseFigures(run.code == 0, run.wall, run.rss_bytes / (1 << 20), len(log), pages, tail)


def upgrade_releases(graph: Graph) -> list[Release]:
    """A new release of every tenth pure library (same dependencies, a higher version)."""
    libs = sorted({r.name for r in graph.releases if r.name.startswith("lib-")})
    newest = {r.name: r for r in graph.releases if r.name in libs}
    return [replace(newest[name], version="9.0", requires_python=None) for name in libs[::10]]


def measure_size(size: int, latency: float, out: Path, tmp: Path) -> SizeFigures:
    """Every phase at ``size`` projects, the workspace in ``tmp`` (left for the caller to
    remove once every size is measured: see :func:`main`)."""
    graph = scale_graph(size)
    print(f"scale: {size} projects: publishing {graph.files} files", file=sys.stderr)
    up = FakeUpstream(out / f"scale-upstream-{size}")
    figures = SizeFigures(size, graph.projects, graph.files, depth_of(graph), {})
    with up.start():
        publish(up, graph, up.files_dir)
        up.latency = latency
        ws = Path(tmp) / "ws"
        requirements = list(graph.requirements)
        _write_spec(ws, up.url, requirements)
        for name, args, before in (
            ("cold", ("build",), None),
            ("no-op", ("build",), None),
            ("add-one", ("build",), [*requirements, EXTRA_REQUIREMENT]),
            ("upgrade-10%", ("build", "--upgrade"), "upgrade"),
            ("verify", ("verify",), None),
            ("gc", ("gc", "--keep", "1"), None),
        ):
            if isinstance(before, list):
                _write_spec(ws, up.url, before)
            elif before == "upgrade":
                publish(up, Graph(tuple(upgrade_releases(graph)), ()), up.files_dir)
            print(f"scale: {size} projects: {name}", file=sys.stderr)
            figures.phases[name] = _phase(up, ws, *args)
        figures.store_mb = tree_bytes(ws) / (1 << 20)
    return figures


def floor(fig: SizeFigures, latency: float) -> float:
    cold = fig.phases["cold"]
    return max(2 * fig.depth, cold.requests / CONNECTIONS) * latency


def render(all_figures: list[SizeFigures], latency: float) -> str:
    sizes = [f.size for f in all_figures]
    head = "| | " + " | ".join(f"{s} projects" for s in sizes) + " | growth vs size |"
    lines = [
        (
            f"Scale bench: latency {latency * 1000:g} ms per request, no bandwidth cap, "
            f"{len(TARGETS)} environments ({', '.join(t.name for t in TARGETS)})."
        ),
        "",
        head,
        "|---" * (len(sizes) + 2) + "|",
    ]
    size_ratio = sizes[-1] / sizes[0] if len(sizes) > 1 else 1.0

    def row(label: str, values: list[float], fmt: str, growth: bool = True) -> None:
        cells = [format(v, fmt) for v in values]
        g = ""
        if growth and len(values) > 1 and values[0] > 0:
            g = f"{values[-1] / values[0] / size_ratio:.2f}"
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {g} |")

    row("files upstream", [f.files for f in all_figures], "d")
    row("dependency depth", [f.depth for f in all_figures], "d", growth=False)
    for phase in PHASES:
        row(f"{phase} (s)", [f.phases[phase].wall for f in all_figures], ".2f")
    row("cold latency floor (s)", [floor(f, latency) for f in all_figures], ".2f")
    for phase in ("cold", "no-op", "add-one", "upgrade-10%"):
        row(f"requests: {phase}", [f.phases[phase].requests for f in all_figures], "d")
    for phase in ("cold", "verify"):
        row(f"peak RSS {phase} (MB)", [f.phases[phase].rss_mb for f in all_figures], ".0f")
    row("store + mirror (MB)", [f.store_mb for f in all_figures], ".0f")
    failed = [
        f"{f.size}/{p}: {ph.tail.strip().splitlines()[-1] if ph.tail.strip() else 'failed'}"
        for f in all_figures
        for p, ph in f.phases.items()
        if not ph.ok
    ]
    lines += ["", "All phases succeeded." if not failed else "FAILED: " + "; ".join(failed), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--sizes", default="500,2000,5000", help="comma list of upstream sizes")
    p.add_argument("--latency", type=float, default=0.03, help="seconds per request (0.03)")
    p.add_argument("--quick", action="store_true", help="sizes 60,120 and no latency (a smoke run)")
    p.add_argument("--out", type=Path, default=OUT, help=f"work and result folder ({OUT})")
    args = p.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    latency = args.latency
    if args.quick:
        sizes, latency = [60, 120], 0.0
    args.out.mkdir(parents=True, exist_ok=True)
    # Each size's workspace is removed after the last size, not before the next one: on
    # ext4 without a journal (this project's bench machine) every file created within a
    # minute or so of a large removal scans past the inodes just freed, and a cold build
    # right after removing the previous size's ~60 000 files spent a fifth of its CPU there
    # (docs/performance.md, tenth round, "Cold build CPU at scale").
    with contextlib.ExitStack() as workspaces:
        all_figures = []
        for size in sizes:
            tmp = workspaces.enter_context(
                tempfile.TemporaryDirectory(prefix="scale-", dir=args.out)
            )
            all_figures.append(measure_size(size, latency, args.out, Path(tmp)))
    table = render(all_figures, latency)
    print(table, end="")
    (args.out / "scale.md").write_text(table, encoding="utf-8")
    data = [asdict(f) for f in all_figures]
    (args.out / "scale.json").write_text(json.dumps(data, indent=2), encoding="utf-8")
    return 0 if all(ph.ok for f in all_figures for ph in f.phases.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
