"""Run a command and measure it: wall time, peak RSS of its process tree, exit status.

Each command runs under a fresh helper interpreter whose `getrusage(RUSAGE_CHILDREN)` covers
only that command and every descendant it waited for, so the peak RSS is the largest
resident set any process of the tree reached (the helper's own memory is not counted).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

# Runs in the helper process: argv[1] is the result file, argv[2:] the command.
_HELPER = """
import json, resource, subprocess, sys, time
start = time.perf_counter()
with open(sys.argv[1] + ".log", "wb") as log:
    code = subprocess.call(sys.argv[2:], stdout=log, stderr=subprocess.STDOUT)
wall = time.perf_counter() - start
rss_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
with open(sys.argv[1], "w") as out:
    json.dump({"code": code, "wall": wall, "rss_kib": rss_kib}, out)
"""


@dataclass(frozen=True, slots=True)
class Run:
    """What one measured command did."""

    code: int
    wall: float  # seconds
    rss_bytes: int
    output: str  # stdout and stderr, interleaved


def measure(
    cmd: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> Run:
    """Run `cmd` to completion under the measuring helper and return what it did."""
    with tempfile.TemporaryDirectory(prefix="bench-measure-") as tmp:
        result = Path(tmp) / "result.json"
        subprocess.run(
            [sys.executable, "-c", _HELPER, str(result), *cmd],
            env=dict(env) if env is not None else dict(os.environ),
            cwd=cwd,
            check=True,
        )
        data = json.loads(result.read_text(encoding="utf-8"))
        output = Path(f"{result}.log").read_text(encoding="utf-8", errors="replace")
    return Run(int(data["code"]), float(data["wall"]), int(data["rss_kib"]) * 1024, output)
