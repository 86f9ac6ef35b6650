"""What a build holds in memory after resolution: not the releases it did not pin, and
never the lock's bytes whole when it writes the lock out (the workspace's and the
mirror's copies are copied from the lock's blob a run at a time)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from morgan import build as build_mod
from morgan import cli, heap
from morgan import plan as plan_mod
from morgan.catalog import UpstreamCatalog
from morgan.resolve import Release
from store.digest import Digest, blake3_hex
from store.objects import Store
from tests.small_scenario import write_spec
from tests.upstream import FakeUpstream


def test_releases_resolution_did_not_pin_are_let_go_before_the_plan(
    upstream: FakeUpstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every release of every page read is held while resolution runs; once it is over,
    only the pinned ones are (the selections): the plan, the walk and the switch, where the
    build's memory peaks, do not carry every version of every project (~25 MB at 5 000
    projects). A page asked for again afterwards gives the same releases."""
    for v in ("1.0", "1.1", "1.2", "2.0"):
        upstream.add_release("app", v, requires_dist=["util>=1"], sdist=False)
    for v in ("1.0", "1.5", "3.0"):
        upstream.add_release("util", v, sdist=False)
    seen: dict[tuple[str, str], Release] = {}
    catalogs: list[UpstreamCatalog] = []
    real_releases = UpstreamCatalog.releases

    def releases(self: UpstreamCatalog, name: Any) -> Sequence[Release]:
        catalogs.append(self)
        out = real_releases(self, name)
        for rel in out:
            seen[(rel.name, str(rel.version))] = rel
        return out

    held: list[set[tuple[str, str]]] = []
    real_plan = plan_mod.compile_plan

    def compile_plan(*args: Any, **kwargs: Any) -> Any:
        # (held elsewhere than in ``seen``: the reference there and getrefcount's own)
        held.append({key for key in list(seen) if sys.getrefcount(seen[key]) > 2})
        return real_plan(*args, **kwargs)

    monkeypatch.setattr(UpstreamCatalog, "releases", releases)
    monkeypatch.setattr(build_mod, "compile_plan", compile_plan)
    ws = tmp_path / "ws"
    write_spec(ws, upstream.url, ["app<2", "util<2"])
    assert cli.main(["build", "-q", "-C", str(ws)]) == 0
    assert len(seen) == 7  # every release of both pages was made
    assert held == [{("app", "1.2"), ("util", "1.5")}]  # the pins, nothing else
    catalog = catalogs[0]
    again = [(r.name, str(r.version)) for r in real_releases(catalog, "app")]  # type: ignore[arg-type]
    assert again == [("app", v) for v in ("1.0", "1.1", "1.2", "2.0")]
    assert catalog.listed == {"app", "util"}


def test_the_lock_is_written_out_from_its_blob_a_run_at_a_time(
    upstream: FakeUpstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The workspace's mirror.lock and the mirror's copy are the lock's blob copied a run
    at a time (13 MB at 5 000 projects, at the build's high-water mark): the blob is never
    read whole, by a cold build nor by a build that finds its generation served; the copies
    are the blob's bytes."""
    upstream.add_release("app", "1.0", requires_dist=["util>=1"])
    upstream.add_release("util", "1.5")
    read_whole: list[Digest] = []
    real_read = Store.read_bytes
    real_runs = Store.read_runs

    def read_bytes(self: Store, digest: Digest) -> bytes:
        read_whole.append(digest)
        return real_read(self, digest)

    def read_runs(self: Store, digest: Digest, size: int = 1 << 20) -> Iterator[bytes]:
        return real_runs(self, digest, 100)  # many runs even for a small lock

    monkeypatch.setattr(Store, "read_bytes", read_bytes)
    monkeypatch.setattr(Store, "read_runs", read_runs)
    ws = tmp_path / "ws"
    write_spec(ws, upstream.url, ["app"])
    for _ in range(2):  # cold, then served already
        read_whole.clear()
        assert cli.main(["build", "-q", "-C", str(ws)]) == 0
        text = (ws / "mirror.lock").read_bytes()
        assert len(text) > 1000
        assert (ws / "mirror" / "mirror.lock").read_bytes() == text
        lock_hex = blake3_hex(text)
        assert (ws / "mirror" / "store" / "objects" / lock_hex[:2] / lock_hex).read_bytes() == text
        assert lock_hex not in {d.hex for d in read_whole}


def test_read_runs_gives_the_blob_in_runs_of_at_most_the_size(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    store.prepare()
    data = bytes(range(256)) * 40
    digest = store.put_bytes(data).digest
    runs = list(store.read_runs(digest, 1000))
    assert b"".join(runs) == data
    assert [len(r) for r in runs] == [1000] * 10 + [240]


def _rss_bytes() -> int:
    with Path("/proc/self/statm").open(encoding="ascii") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_trim_gives_the_free_pages_inside_the_heap_back() -> None:
    """Memory freed in the middle of glibc's heap stays resident (a later phase's growth
    stacks on it) until :func:`morgan.heap.trim` hands its pages back."""
    if not heap.trim():
        pytest.skip("not glibc: nothing to give back")
    # 64 MB in blocks of 96 KiB (below glibc's mmap threshold: in the heap), then one
    # block above them that stays: what is freed below it is not at the heap's top.
    blocks = [bytearray(96 * 1024) for _ in range(680)]
    top = bytearray(96 * 1024)
    blocks.clear()
    before = _rss_bytes()
    assert heap.trim()
    after = _rss_bytes()
    assert before - after > 40 * 2**20, (before, after)
    del top
