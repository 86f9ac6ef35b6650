"""The store under real processes: concurrent writers, a SIGKILLed writer, 1 GiB in bounded RSS."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from store.digest import Digest
from store.gc import collect, live_from_roots
from store.objects import Store
from store.roots import roots

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}

# Content i is 3 MiB (several store chunks) of a pattern derived from i; the writer reads it
# in 64 KiB pieces so that concurrent writers interleave within one object.
WRITER = textwrap.dedent(
    """
    import io, json, sys, time
    from pathlib import Path
    from store.objects import Store

    def content(i):
        return bytes((i * 7 + j) % 251 for j in range(251)) * (3 * 1024 * 1024 // 251)

    class Pieces(io.RawIOBase):
        def __init__(self, data):
            self.f = io.BytesIO(data)
        def read(self, size=-1):
            return self.f.read(65536)

    store = Store(Path(sys.argv[1]))
    go = Path(sys.argv[2])
    while not go.exists():  # start together
        time.sleep(0.005)
    out = {}
    for i in [int(x) for x in sys.argv[3:]]:
        out[i] = str(store.put_stream(Pieces(content(i))).digest)
    print(json.dumps(out))
    """
)


def _content(i: int) -> bytes:
    return bytes((i * 7 + j) % 251 for j in range(251)) * (3 * 1024 * 1024 // 251)


def test_concurrent_writers_same_and_different_content(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    go = tmp_path / "go"
    shared = [0, 1, 2, 3]
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                WRITER,
                str(store.root),
                str(go),
                *map(str, shared),
                str(10 + n),
            ],
            stdout=subprocess.PIPE,
            text=True,
            env=ENV,
        )
        for n in range(6)
    ]
    go.touch()
    results = []
    for proc in procs:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0
        results.append({int(k): v for k, v in json.loads(out).items()})

    expected = {i: str(Digest.of(_content(i))) for i in [*shared, *range(10, 16)]}
    for n, result in enumerate(results):
        assert result == {i: expected[i] for i in [*shared, 10 + n]}
    assert sorted(str(d) for d in store) == sorted(expected.values())
    for digest in store:
        store.verify(digest)
    assert list(store.tmp_dir.iterdir()) == []


KILLED_WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from store.objects import Store

    class Slow:
        calls = 0
        def read(self, size=-1):
            self.calls += 1
            if self.calls == 5:  # four pieces read: once written, tell the test, then hang
                # (a large stream is written by a second thread: wait for its writes)
                tmp = Path(sys.argv[1]) / "tmp"
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline and not any(
                    p.stat().st_size == 4 * 65536 for p in tmp.iterdir()
                ):
                    time.sleep(0.01)
                print("streaming", flush=True)
                sys.stdin.read()
            return b"k" * 65536

    Store(Path(sys.argv[1])).put_stream(Slow())
    """
)


def test_a_writer_killed_mid_stream_leaves_no_object_and_gc_removes_its_temp(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path / "store")
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(store.root)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == "streaming\n"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    assert list(store) == []
    assert not (store.root / "objects").exists() or not any((store.root / "objects").iterdir())
    (temp,) = store.tmp_dir.iterdir()
    assert temp.name.startswith(f"{proc.pid}-")
    assert temp.stat().st_size == 4 * 65536

    young = collect(store, [], dry_run=False)  # default grace: a live writer's file is kept
    assert young.deleted_temp == ()
    assert temp.exists()

    report = collect(store, [], dry_run=False, grace_seconds=0)
    assert report.deleted_temp == (f"tmp/{temp.name}",)
    assert report.temp_bytes == 4 * 65536
    assert list(store.tmp_dir.iterdir()) == []


# Peak memory is read from VmHWM, the high-water mark of this process's own address space.
# Not ru_maxrss: Linux carries the parent's peak RSS across fork/exec into the child's
# ru_maxrss, so under a 150 MB pytest worker it reported 150 MB for a 30 MB writer.
BIG_WRITER = textwrap.dedent(
    """
    import json, sys
    import blake3
    from pathlib import Path
    from store.objects import Store

    TOTAL = 1 << 30
    PIECE = 1 << 20

    class Generated:
        # 1 GiB produced on the fly, never held: each MiB differs (its index is stamped in).
        def __init__(self):
            self.sent = 0
            self.base = bytes(range(256)) * (PIECE // 256)
            self.expected = blake3.blake3()
        def read(self, size=-1):
            if self.sent >= TOTAL:
                return b""
            n = min(PIECE, size if size > 0 else PIECE, TOTAL - self.sent)
            chunk = (self.sent // PIECE).to_bytes(8, "big") + self.base[8:n]
            self.sent += n
            self.expected.update(chunk)
            return chunk

    def peak_kib():
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        raise RuntimeError("no VmHWM in /proc/self/status")

    source = Generated()
    store = Store(Path(sys.argv[1]))
    before = peak_kib()  # interpreter, imports and the source's own buffers
    blob = store.put_stream(source, expect_size=TOTAL)
    print(json.dumps({
        "digest": blob.digest.hex,
        "expected": source.expected.hexdigest(),
        "size": blob.size,
        "on_disk": store.size(blob.digest),
        "peak_before_kib": before,
        "peak_after_kib": peak_kib(),
    }))
    store.remove(blob.digest)  # do not leave 1 GiB behind in pytest's kept tmp dirs
    """
)


@pytest.mark.slow
def test_one_gib_stream_is_stored_in_bounded_memory(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", BIG_WRITER, str(tmp_path / "store")],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["digest"] == result["expected"]
    assert result["size"] == result["on_disk"] == 1 << 30
    # put_stream holds a few chunks at a time (about 3 MiB measured); anything that grew with
    # the stream would add hundreds of MiB here.
    growth = result["peak_after_kib"] - result["peak_before_kib"]
    assert growth < 16 * 1024, f"storing 1 GiB raised peak RSS by {growth} KiB"
    assert result["peak_after_kib"] < 100 * 1024, f"peak RSS {result['peak_after_kib']} KiB"


# A "build": under the shared lock, store fresh blobs, a manifest listing them, then point its
# root at the manifest (dropping what its previous generation held). A "gc": under the
# exclusive lock, collect everything no root reaches. Run side by side, many rounds.
BUILDER = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from store.objects import Store
    from store.manifests import write_manifest
    from store.roots import set_root

    store = Store(Path(sys.argv[1]))
    name, rounds = sys.argv[2], int(sys.argv[3])
    for r in range(rounds):
        with store.lock().shared():
            blobs = [store.put_bytes(os.urandom(2048)).digest for _ in range(5)]
            blobs.append(store.put_bytes(b"common to every build").digest)
            set_root(store, name, write_manifest(store, blobs).digest)
    print("done", flush=True)
    """
)

COLLECTOR = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from store.objects import Store
    from store.gc import collect, live_from_roots

    store = Store(Path(sys.argv[1]))
    stop = Path(sys.argv[2])
    freed = rounds = 0
    while True:
        last = stop.exists()  # one more full round after the builds are done
        with store.lock().exclusive():
            freed += len(collect(store, live_from_roots(store), dry_run=False).deleted_objects)
        rounds += 1
        if last:
            break
    print(freed, rounds, flush=True)
    """
)


def test_builds_and_gc_side_by_side_never_lose_a_rooted_blob(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    builders = [
        subprocess.Popen(
            [sys.executable, "-c", BUILDER, str(store.root), f"build-{n}", "40"],
            stdout=subprocess.PIPE,
            text=True,
            env=ENV,
        )
        for n in range(3)
    ]
    stop = tmp_path / "stop"
    gc = subprocess.Popen(
        [sys.executable, "-c", COLLECTOR, str(store.root), str(stop)],
        stdout=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    for proc in builders:
        assert proc.communicate(timeout=120)[0] == "done\n"
        assert proc.returncode == 0
    stop.touch()
    out, _ = gc.communicate(timeout=120)
    assert gc.returncode == 0
    freed, rounds = map(int, out.split())
    assert rounds >= 1
    assert freed == 3 * 39 * 6  # every superseded generation: its manifest and 5 fresh blobs

    assert sorted(roots(store)) == ["build-0", "build-1", "build-2"]
    live = live_from_roots(store)  # raises if a root's manifest is gone
    assert len(live) == 3 * 7 - 2  # 3 manifests + 3x5 fresh blobs + 1 common blob
    assert set(store) == live  # all garbage went, nothing live did
    for digest in live:
        store.verify(digest)  # raises if a rooted blob was lost or damaged
