"""Timings of `morgan graph` and `morgan verify` on a synthetic mirror of N projects.

Usage: ``python bench/graph_bench.py [N]`` (default 500) from the repository root. Builds
the mirror from a fake upstream on 127.0.0.1 (project i requires a few projects below it,
some through markers), then prints the time of each command. Not a test: figures only.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from morgan.cli import main
from morgan.graph import graph_json, load_graph, render_text, why
from morgan.graph_html import render_html
from morgan.lock import load as load_lock
from tests.build_scenario import morgan
from tests.upstream import FakeUpstream


def populate(up: FakeUpstream, n: int) -> None:
    """A tree (p_i needs p_2i+1 and p_2i+2) with cross edges (diamonds) and a marker edge."""
    for i in range(n):
        kids = {j for j in (2 * i + 1, 2 * i + 2, i * 7 % n) if i < j < n}
        deps = [f"p{j}>=1" for j in sorted(kids)]
        if i % 5 == 0 and i + 3 < n:
            deps.append(f"p{i + 3}; sys_platform == 'win32'")
        up.add_release(f"p{i}", "1.0", requires_dist=deps, sdist=False)


def timed(label: str, fn: object) -> float:
    started = time.perf_counter()
    result = fn()  # type: ignore[operator]
    elapsed = time.perf_counter() - started
    print(f"{label}: {elapsed:.3f} s", flush=True)
    del result
    return elapsed


def main_bench(n: int) -> None:
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp:
        root = Path(tmp)
        with FakeUpstream(root / "up").start() as up:
            populate(up, n)
            ws = root / "ws"
            ws.mkdir()
            # A few top-level requirements, as real specs have; the tree reaches all N.
            reqs = ", ".join(f'"p{i}"' for i in range(min(n, 10)))
            (ws / "mirror.toml").write_text(
                f'requirements = [{reqs}]\n[upstream]\nindex-url = "{up.url}"\n'
                '[environments.linux]\npython = "3.12"\nplatform = "manylinux_2_28_x86_64"\n'
                '[environments.windows]\npython = "3.12"\nplatform = "win_amd64"\n'
            )
            proc = morgan(ws, "build", "-q")
            assert proc.returncode == 0, proc.stderr
        lock = load_lock(ws / "mirror.lock")
        assert lock is not None
        print(f"{len(lock.releases)} projects, 2 environments")

        def load() -> object:
            again = load_lock(ws / "mirror.lock")
            assert again is not None
            return load_graph(again)

        graph = timed("graph: load lock + build graphs", load)
        g = load_graph(lock)
        envs = g.env_names()
        timed(f"graph --why p{n - 1} (in process)", lambda: why(g, f"p{n - 1}"))
        timed("graph --format text (in process)", lambda: render_text(g, envs))
        timed("graph --format json (in process)", lambda: graph_json(g, envs))
        timed("graph --format html (in process)", lambda: render_html(g, envs))
        del graph
        out = root / "g.html"
        timed(
            "morgan graph --format html (CLI, whole process)",
            lambda: main(["graph", "-C", str(ws), "--format", "html", "-o", str(out)]),
        )
        timed("morgan verify (CLI, whole process)", lambda: morgan(ws, "verify"))
        timed("morgan verify (in process)", lambda: main(["verify", "-C", str(ws), "-q"]))
        if os.environ.get("BENCH_PROFILE"):
            import cProfile

            cProfile.run(f"main(['verify', '-C', {str(ws)!r}, '-q'])", sort="cumulative")


if __name__ == "__main__":
    main_bench(int(sys.argv[1]) if len(sys.argv) > 1 else 500)
