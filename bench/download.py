"""Downloads at link speed: Morgan's cold build of large files against one `curl` stream.

    python bench/download.py [--total-mb 1024] [--largest-mb 150] [--latency 0.0] [--out bench/out]

One project per large wheel (sizes from 10 MB up to ``--largest-mb``, about ``--total-mb`` in
all) on the fake upstream with no bandwidth cap; a one-environment spec requiring them all.
In the same run, on the same link:

- ``curl``: one stream of the largest file to /dev/null, its average MB/s (what the link and
  the upstream give a single well-written client);
- ``curl ×N``: every file at once, one curl per file (what parallel streams can reach);
- the same into files, each fsynced: the least any client that keeps the files durably
  pays on this disk (Morgan's store fsyncs every blob before a record names it);
- ``morgan build`` (cold): wall time, and the effective MB/s = the files' bytes / wall time,
  so resolution, hashing, writing and linking all count against it.

The figure of merit is ours ÷ one curl stream (issue target: ≥ 70 %). The fake upstream is a
Python server: at these speeds it can be the limit for both sides, which is why the
comparison is made in the same run rather than against a number from elsewhere.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `bench`, `tests`, `morgan` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.measure import measure
from bench.tools import ROOT
from tests import dists
from tests.upstream import FakeUpstream

OUT = Path(__file__).resolve().parent / "out"
MB = 1 << 20
TAG = "py3-none-any"


def sizes_mb(total: int, largest: int) -> list[int]:
    """File sizes in MB, largest first, halving down to 10 MB and repeating until ``total``."""
    ladder = []
    size = largest
    while size >= 10:
        ladder.append(size)
        size //= 2
    out: list[int] = []
    while sum(out) < total:
        out.append(ladder[len(out) % len(ladder)])
    return out


def _curl(urls: list[str], dest: Path | None = None) -> float:
    """Seconds for curl to fetch every URL in ``urls`` at once (one process per URL), to
    /dev/null, or with ``dest`` into files there, each fsynced before the clock stops (what
    a store that keeps what it downloaded pays at least)."""
    start = time.perf_counter()
    outs = [os.devnull if dest is None else str(dest / f"{i}.whl") for i in range(len(urls))]
    procs = [
        subprocess.Popen(["curl", "-sS", "-o", out, "--fail", url])
        for out, url in zip(outs, urls, strict=True)
    ]
    for proc in procs:
        if proc.wait() != 0:
            raise RuntimeError(f"curl failed on one of {urls}")
    if dest is not None:
        for out in outs:
            fd = os.open(out, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    took = time.perf_counter() - start
    if dest is not None:
        for out in outs:
            Path(out).unlink()
    return took


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--total-mb", type=int, default=1024, help="bytes of files in all (1024)")
    p.add_argument("--largest-mb", type=int, default=150, help="the largest file (150)")
    p.add_argument("--latency", type=float, default=0.0, help="seconds per request (0)")
    p.add_argument("--jobs", type=int, default=16, help="morgan build --jobs (16, its default)")
    p.add_argument("--out", type=Path, default=OUT, help=f"work and result folder ({OUT})")
    args = p.parse_args(argv)
    if shutil.which("curl") is None:
        print("bench/download.py needs curl (apt-get install curl)", file=sys.stderr)
        return 2
    sizes = sizes_mb(args.total_mb, args.largest_mb)
    args.out.mkdir(parents=True, exist_ok=True)
    cache = args.out / f"download-upstream-{args.total_mb}-{args.largest_mb}"
    up = FakeUpstream(cache)
    with tempfile.TemporaryDirectory(prefix="download-", dir=args.out) as tmp, up.start():
        up.files_dir.mkdir(parents=True, exist_ok=True)
        names = []
        total = 0
        for i, size in enumerate(sizes):
            name = f"big-{i:02d}"
            stem = f"big_{i:02d}-1.0-{TAG}.whl"
            path = up.files_dir / stem
            if not path.exists():
                path = dists.build_wheel(up.files_dir, name, "1.0", tag=TAG, payload_size=size * MB)
            up.add_dist(path)
            names.append(name)
            total += path.stat().st_size
        up.latency = args.latency
        urls = [up.file_url(f"big_{i:02d}-1.0-{TAG}.whl") for i in range(len(sizes))]
        largest = max(range(len(sizes)), key=lambda i: sizes[i])
        largest_bytes = (up.files_dir / f"big_{largest:02d}-1.0-{TAG}.whl").stat().st_size

        one = _curl([urls[largest]])
        many = _curl(urls)
        many_disk = _curl(urls, Path(tmp))
        ws = Path(tmp) / "ws"
        ws.mkdir()
        reqs = ", ".join(f'"{n}"' for n in names)
        (ws / "mirror.toml").write_text(
            f'requirements = [{reqs}]\n\n[upstream]\nindex-url = "{up.url}"\n\n'
            '[environments.linux]\npython = "3.12"\nplatform = "manylinux_2_28_x86_64"\n',
            encoding="utf-8",
        )
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        command = [sys.executable, "-m", "morgan", "build", "-C", str(ws), "-j", str(args.jobs)]
        run = measure(command, env=env)
        if run.code != 0:
            print(run.output[-2000:], file=sys.stderr)
            return 1
    load = os.getloadavg()[0]
    one_rate = largest_bytes / MB / one
    many_rate = total / MB / many
    ours_rate = total / MB / run.wall
    lines = [
        (
            f"Downloads: {len(sizes)} files, {total / MB:.0f} MB (largest "
            f"{largest_bytes / MB:.0f} MB), latency {args.latency * 1000:g} ms, "
            f"no bandwidth cap; load average {load:.1f}."
        ),
        "",
        "| | seconds | MB/s | vs one curl stream |",
        "|---|---|---|---|",
        f"| curl, one stream (largest file) | {one:.2f} | {one_rate:.0f} | 100 % |",
        (
            f"| curl, one per file at once | {many:.2f} | {many_rate:.0f} | "
            f"{many_rate / one_rate * 100:.0f} % |"
        ),
        (
            f"| curl, one per file at once, into files, fsynced | {many_disk:.2f} | "
            f"{total / MB / many_disk:.0f} | {total / MB / many_disk / one_rate * 100:.0f} % |"
        ),
        (
            f"| morgan build, cold (-j {args.jobs}) | {run.wall:.2f} | {ours_rate:.0f} | "
            f"{ours_rate / one_rate * 100:.0f} % |"
        ),
        "",
        f"morgan peak RSS: {run.rss_bytes / MB:.0f} MB",
        "",
    ]
    table = "\n".join(lines)
    print(table, end="")
    (args.out / "download.md").write_text(table, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
