"""Profile our cold and no-op builds on the bench upstream with pyinstrument.

    python bench/profile.py [--projects 150] [--latency 0.03] [--bandwidth 50]

Needs `pyinstrument` (`pip install pyinstrument`; not a project dependency). Writes
bench/out/profile-cold.txt and profile-noop.txt (call trees, wall-clock, all threads' time
as seen from the main thread) and prints their top lines.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `bench`, `tests`, `morgan` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.graph import make_graph, publish
from bench.run import MB, OUT, TARGETS
from bench.tools import ROOT, Ours
from tests.upstream import FakeUpstream


def main(argv: list[str] | None = None) -> int:
    """Profile a cold then a no-op `morgan build`; write the reports under bench/out."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--projects", type=int, default=150)
    p.add_argument("--latency", type=float, default=0.03)
    p.add_argument("--bandwidth", type=float, default=50.0)
    args = p.parse_args(argv)
    graph = make_graph(args.projects)
    OUT.mkdir(parents=True, exist_ok=True)
    up = FakeUpstream(OUT / f"upstream-{args.projects}-large")
    with up.start(), tempfile.TemporaryDirectory(prefix="profile-", dir=OUT) as tmp:
        publish(up, graph, up.files_dir)
        up.latency = args.latency
        up.bandwidth = args.bandwidth * MB
        ours = Ours(Path(tmp), up.url, TARGETS)
        ours.build(list(graph.requirements))  # writes the spec; this build is thrown away
        for phase in ("cold", "noop"):
            if phase == "cold":
                for leftover in ("mirror", "mirror.lock"):
                    subprocess.run(["rm", "-rf", str(ours.workspace / leftover)], check=True)
            report = OUT / f"profile-{phase}.txt"
            cmd = [sys.executable, "-m", "pyinstrument", "--show-all", "-o", str(report)]
            cmd += ["-m", "morgan", "build", "-C", str(ours.workspace)]
            up.clear_requests()
            subprocess.run(cmd, env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True)
            print(f"== {phase}: {len(up.requests)} requests; {report}")
            print("\n".join(report.read_text(encoding="utf-8").splitlines()[:60]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
