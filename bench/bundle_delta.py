"""How big is a delta bundle next to a full one? Prints the figures (not a test).

A mirror of N projects with one wheel of SIZE bytes each (plus sdists) is built from the
fake upstream; then K projects get a new release and the mirror is rebuilt with
``--upgrade``. The full bundle of the new generation is compared with the deltas
``--since`` the first bundle and ``--since`` the first mirror.lock.

    python bench/bundle_delta.py [N] [K] [SIZE]
"""

from __future__ import annotations

import contextlib
import io
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from morgan.cli import main
from tests import dists
from tests.upstream import FakeUpstream


def _morgan(ws: Path, *args: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = main([*args, "-C", str(ws)])
    if code != 0:
        raise SystemExit(f"morgan {' '.join(args)} failed with {code}")
    return out.getvalue().strip()


def _publish(up: FakeUpstream, root: Path, name: str, version: str, size: int) -> None:
    out = root / "dists"
    up.add_dist(dists.build_wheel(out, name, version, payload_size=size))
    up.add_dist(dists.build_sdist(out, name, version))


def main_bench(n: int, k: int, size: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        ws = root / "ws"
        ws.mkdir()
        with FakeUpstream(root / "upstream").start() as up:
            up.add_backend()
            names = [f"proj{i:03d}" for i in range(n)]
            for name in names:
                _publish(up, root, name, "1.0", size)
            reqs = ", ".join(f'"{name}"' for name in names)
            (ws / "mirror.toml").write_text(
                f'requirements = [{reqs}]\n[upstream]\nindex-url = "{up.url}"\n'
                '[environments.linux]\npython = "3.12"\nplatform = "manylinux_2_28_x86_64"\n'
            )
            _morgan(ws, "build")
            shutil.copyfile(ws / "mirror.lock", root / "old.lock")
            _morgan(ws, "export", "-o", str(root / "full1.tar"))
            for name in names[:k]:
                _publish(up, root, name, "2.0", size)
            _morgan(ws, "build", "--upgrade")
        started = time.perf_counter()
        print(_morgan(ws, "export", "-o", str(root / "full2.tar")))
        print(_morgan(ws, "export", "-o", str(root / "d1.tar"), "--since", str(root / "full1.tar")))
        print(_morgan(ws, "export", "-o", str(root / "d2.tar"), "--since", str(root / "old.lock")))
        exported = time.perf_counter() - started
        full = (root / "full2.tar").stat().st_size
        for label, path in (("since bundle", root / "d1.tar"), ("since lock", root / "d2.tar")):
            delta = path.stat().st_size
            print(f"{label}: {delta} bytes = {100 * delta / full:.1f}% of the full {full} bytes")
        off = root / "offline"
        started = time.perf_counter()
        _morgan(off, "import", str(root / "full1.tar"))
        _morgan(off, "import", str(root / "d1.tar"))
        print(
            f"3 exports {exported:.2f}s; full + delta import {time.perf_counter() - started:.2f}s"
        )


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]]
    main_bench(*(args + [40, 3, 1 << 20][len(args) :]))
