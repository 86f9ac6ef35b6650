"""The performance harness of issue 7: our build, Morgan 0.15.0 and `pip download`, side by side.

    python bench/run.py [--projects 150] [--latency 0.03] [--bandwidth 50] [--no-large]
                        [--tools ours,morgan015,pip] [--quick] [--out bench/out]

One synthetic upstream (bench/graph.py) on the fake upstream with a per-request latency and a
shared bandwidth cap; one 4-environment spec; for each tool a cold build, a no-op rebuild and a
rebuild after adding one requirement, each timed with its requests, bytes and peak RSS; then
whether every environment can download its requirements from the result. Prints a Markdown
table (also written to bench/out/table.md, raw figures to bench/out/results.json).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

if __package__ in (None, ""):  # run as a script: make `bench`, `tests`, `morgan` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.floor import cold_floor
from bench.graph import EXTRA_REQUIREMENT, Graph, make_graph, publish
from bench.report import Figures, Phase, ToolFigures, render
from bench.tools import Morgan015, Ours, PipDownload, Target, Tool, installs
from tests.upstream import FakeUpstream, RecordedRequest

OUT = Path(__file__).resolve().parent / "out"
MB = 1 << 20

# The same four environments as the build acceptance scenario (tests/build_scenario.py).
TARGETS = (
    Target("legacy-linux", "3.9", "manylinux_2_17_x86_64"),
    Target("windows", "3.12", "win_amd64"),
    Target("mac", "3.13", "macosx_14_0_arm64"),
    Target("host", "3.11", "manylinux_2_28_x86_64"),
)
TOOLS = ("ours", "morgan015", "pip")


@dataclass(slots=True)
class Options:
    """What to run: the graph, the network, the tools and the environments."""

    projects: int = 150
    latency: float = 0.03
    bandwidth_mbps: float = 50.0
    large: bool = True
    tools: tuple[str, ...] = TOOLS
    targets: tuple[Target, ...] = TARGETS
    out: Path = field(default_factory=lambda: OUT)


def sent_bytes(up: FakeUpstream, requests: list[RecordedRequest]) -> int:
    """Body bytes the upstream sent for `requests` (each response is rebuilt to size it)."""
    total = 0
    for r in requests:
        if r.method != "GET":
            continue
        response = up.respond(r.method, r.path, r.headers)
        total += len(response.body) if response.body is not None else response.length
    return total


def _phase(up: FakeUpstream, tool: Tool, requirements: list[str]) -> Phase:
    up.clear_requests()
    run = tool.build(requirements)
    # The tool has exited: no request is in flight, the log is complete and still.
    log = list(up.requests)
    pages = sum(1 for r in log if urlsplit(r.path).path.startswith("/simple"))
    return Phase(
        ok=run.code == 0,
        wall=run.wall,
        requests=len(log),
        page_requests=pages,
        bytes_down=sent_bytes(up, log),
        rss_bytes=run.rss_bytes,
        output_tail=run.output[-2000:] if run.code else "",
    )


def measure_tool(
    up: FakeUpstream,
    tool: Tool,
    requirements: list[str],
    *,
    targets: Sequence[Target],
    work: Path,
    figures: Figures,
) -> None:
    """The three phases and the client checks of one tool, added to ``figures``."""
    print(f"bench: {tool.name}: cold build", file=sys.stderr)
    cold = _phase(up, tool, requirements)
    if isinstance(tool, PipDownload) and figures.needed_bytes is None:
        figures.needed_bytes = tool.result_bytes()
    print(f"bench: {tool.name}: no-op rebuild", file=sys.stderr)
    noop = _phase(up, tool, requirements)
    print(f"bench: {tool.name}: add {EXTRA_REQUIREMENT}", file=sys.stderr)
    every = [*requirements, EXTRA_REQUIREMENT]
    add = _phase(up, tool, every)
    print(f"bench: {tool.name}: client checks", file=sys.stderr)
    errors = installs(tool, targets, every, work)
    figures.add(tool.name, ToolFigures(cold, noop, add, tool.result_bytes(), errors))


def _make_tool(name: str, work: Path, url: str, opts: Options) -> Tool:
    targets = opts.targets
    if name == "ours":
        return Ours(work / "ours", url, targets)
    if name == "morgan015":
        venv = opts.out / "venv-morgan015"
        Morgan015.install(venv)
        return Morgan015(work / "morgan015", venv, url, targets)
    if name == "pip":
        return PipDownload(work / "pip", url, targets)
    raise ValueError(f"unknown tool {name!r}: use one of {', '.join(TOOLS)}")


def new_figures(opts: Options, graph: Graph) -> Figures:
    """An empty table for ``graph`` measured with ``opts``."""
    return Figures(
        projects=graph.projects,
        files=graph.files,
        latency=opts.latency,
        bandwidth_mbps=opts.bandwidth_mbps,
        environments=[t.name for t in opts.targets],
        add_allowance=new_project_allowance(graph),
    )


def new_project_allowance(graph: Graph) -> int:
    """Requests the add-one rebuild may send: the new projects' pages and all their files."""
    existing_before = _reachable(graph, list(graph.requirements))
    new = _reachable(graph, [EXTRA_REQUIREMENT]) - existing_before
    files = sum(
        2 * len(r.wheels) + 1  # each wheel, its .metadata, the sdist
        for r in graph.releases
        if r.name in new
    )
    return len(new) + files


def _reachable(graph: Graph, roots: list[str]) -> set[str]:
    deps: dict[str, set[str]] = {}
    for r in graph.releases:
        for d in r.requires_dist:
            deps.setdefault(r.name, set()).add(d.split(";")[0].split(">")[0].strip())
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(deps.get(name, ()))
    return seen


def run_bench(opts: Options) -> Figures:
    """Build the upstream, run every tool through its three phases, check the results."""
    opts.out.mkdir(parents=True, exist_ok=True)
    graph = make_graph(opts.projects, large=opts.large)
    requirements = list(graph.requirements)
    cache_key = f"upstream-{opts.projects}-{'large' if opts.large else 'small'}"
    figures = new_figures(opts, graph)
    with tempfile.TemporaryDirectory(prefix="bench-", dir=opts.out) as tmp_name:
        tmp = Path(tmp_name)
        up = FakeUpstream(opts.out / cache_key)
        with up.start():
            publish(up, graph, up.files_dir)
            up.latency = opts.latency
            up.bandwidth = opts.bandwidth_mbps * MB if opts.bandwidth_mbps else 0.0
            figures.floor = cold_floor(
                graph,
                [t.environment for t in opts.targets],
                up.files_dir,
                latency=up.latency,
                bandwidth=up.bandwidth,
            )
            for name in opts.tools:
                work = tmp / name
                tool = _make_tool(name, work, up.url, opts)
                measure_tool(
                    up, tool, requirements, targets=opts.targets, work=work, figures=figures
                )
                shutil.rmtree(work, ignore_errors=True)
    return figures


def bench_parser(doc: str | None, tools: tuple[str, ...], out: Path) -> argparse.ArgumentParser:
    """The options every bench over the fake upstream takes (also bench/others.py); the
    description is the first line of ``doc``."""
    p = argparse.ArgumentParser(description=doc.splitlines()[0] if doc else None)
    p.add_argument("--projects", type=int, default=150, help="upstream size (default 150)")
    p.add_argument("--latency", type=float, default=0.03, help="seconds per request (0.03)")
    p.add_argument(
        "--bandwidth", type=float, default=50.0, help="MB/s shared by all downloads (50; 0: no cap)"
    )
    p.add_argument("--no-large", action="store_true", help="leave out the 50/30/20 MB wheels")
    p.add_argument("--tools", default=",".join(tools), help=f"comma list of {', '.join(tools)}")
    p.add_argument(
        "--quick",
        action="store_true",
        help="tiny upstream, no latency, no large files; the windows environment only",
    )
    p.add_argument("--out", type=Path, default=out, help=f"work and result folder ({out})")
    return p


def options_from(args: argparse.Namespace) -> Options:
    """The Options of parsed :func:`bench_parser` arguments (``--quick`` applied)."""
    opts = Options(
        projects=args.projects,
        latency=args.latency,
        bandwidth_mbps=args.bandwidth,
        large=not args.no_large,
        tools=tuple(t for t in args.tools.split(",") if t),
        out=args.out,
    )
    if args.quick:
        opts.projects, opts.latency, opts.bandwidth_mbps, opts.large = 12, 0.0, 0.0, False
        opts.targets = (TARGETS[1],)
    return opts


def parse_args(argv: list[str] | None) -> Options:
    args = bench_parser(__doc__, TOOLS, OUT).parse_args(argv)
    opts = options_from(args)
    if args.quick:  # ours and pip only
        opts.tools = tuple(t for t in opts.tools if t != "morgan015")
    return opts


def main(argv: list[str] | None = None) -> int:
    """Run the bench; print the table; write table.md and results.json under --out."""
    opts = parse_args(argv)
    figures = run_bench(opts)
    table = render(figures)
    print(table, end="")
    (opts.out / "table.md").write_text(table, encoding="utf-8")
    (opts.out / "results.json").write_text(
        json.dumps(asdict(figures), indent=2, default=str), encoding="utf-8"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
