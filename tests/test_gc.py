"""`morgan gc`: drops old generations, frees exactly what no kept generation reaches, and
never loses a blob while builds run at the same time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from morgan.generations import retention as plan
from morgan.generations import switch
from morgan.human import size
from morgan.lock import load as load_lock
from store.actions import ActionCache, is_trace, record_digests
from store.digest import Digest
from store.gc import live_from_roots
from store.lock import StoreLock
from store.objects import Store
from store.roots import remove_root, set_root
from tests.build_scenario import ROOT, morgan
from tests.small_scenario import REQUIREMENTS, populate, write_spec
from tests.upstream import FakeUpstream


@pytest.fixture(scope="module")
def upstream_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with FakeUpstream(tmp_path_factory.mktemp("gc-upstream")).start() as up:
        populate(up)
        yield up.url


def blobs_of(lock_path: Path, project: str) -> set[Digest]:
    lock = load_lock(lock_path)
    assert lock is not None
    out = set()
    for r in lock.releases:
        if r.name == project:
            for f in r.files:
                out.add(Digest("blake3", f.blake3))
                if f.metadata_blake3:
                    out.add(Digest("blake3", f.metadata_blake3))
    assert out
    return out


def gc_json(workspace: Path, *args: str) -> dict[str, Any]:
    proc = morgan(workspace, "gc", "--json", *args)
    assert proc.returncode == 0, proc.stderr
    data: dict[str, Any] = json.loads(proc.stdout)
    return data


@pytest.mark.slow
def test_gc_frees_what_only_dropped_generations_used(upstream_url: str, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    write_spec(ws, upstream_url)
    assert morgan(ws, "build").returncode == 0
    dropme = blobs_of(ws / "mirror.lock", "dropme")
    other = blobs_of(ws / "mirror.lock", "other")
    write_spec(ws, upstream_url, [r for r in REQUIREMENTS if r != "dropme"])
    assert morgan(ws, "build").returncode == 0
    write_spec(ws, upstream_url, [r for r in REQUIREMENTS if r not in {"dropme", "other"}])
    assert morgan(ws, "build").returncode == 0
    mirror = ws / "mirror"
    store = Store(mirror / "store")
    before = {d: store.size(d) for d in store}

    dry = gc_json(ws, "--dry-run")
    assert dry["generations"] == {
        "current": 3,
        "kept": [2, 3],
        "dropped": [1],
        "stale": [],
        "bytes": 0,
    }
    assert {d: store.size(d) for d in store} == before  # a dry run touches nothing
    assert (mirror / "generations" / "1").is_dir()

    real = gc_json(ws)
    assert real == {**dry, "dry-run": False}  # the dry run said exactly what would go
    deleted = {Digest.parse(d) for d in real["objects"]["deleted"]}
    assert dropme <= deleted
    assert not deleted & other  # generation 2 still lists `other`
    assert all(not store.has(d) for d in dropme)
    assert all(store.has(d) for d in other)
    assert real["objects"]["bytes"] == sum(before[d] for d in deleted)
    assert real["bytes-freed"] == (
        real["objects"]["bytes"] + real["actions"]["bytes"] + real["temp"]["bytes"]
    )
    assert real["objects"]["kept"] == len(before) - len(deleted)
    assert not (mirror / "generations" / "1").exists()
    assert sorted(p.name for p in (store.root / "roots").iterdir()) == [
        "generation-2",
        "generation-3",
    ]
    # The kept generations still serve: every link resolves, pages agree, envs install.
    proc = morgan(ws, "verify")
    assert proc.returncode == 0, proc.stderr
    assert "generations 2, 3, 2 environments: OK" in proc.stderr
    again = gc_json(ws)
    assert again["objects"]["deleted"] == []
    assert again["bytes-freed"] == 0


def test_gc_prints_what_it_freed(upstream_url: str, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    write_spec(ws, upstream_url)
    assert morgan(ws, "build").returncode == 0
    write_spec(ws, upstream_url, ["util"])
    assert morgan(ws, "build").returncode == 0
    store = Store(ws / "mirror" / "store")
    sizes = {d: store.size(d) for d in store}
    proc = morgan(ws, "gc", "--keep", "1")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert lines[0] == "generations kept: 2 (current: 2)"
    assert lines[1] == "deleted generation 1"
    deleted = [line.split()[1] for line in lines[2:-1]]
    freed = sum(sizes[Digest("blake3", p.rsplit("/", 1)[1])] for p in deleted)
    assert f"deleted {len(deleted)} objects ({size(freed)}), " in lines[-1]
    assert "objects/" in lines[2]
    assert any(line.endswith("simple/app/app-1.0-py3-none-any.whl") for line in lines)


def test_keep_never_drops_the_generation_index_points_to(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    store = Store(mirror / "store")
    for n in (1, 2, 3):
        (mirror / "generations" / str(n)).mkdir(parents=True)
        set_root(store, f"generation-{n}", Digest("blake3", "0" * 64))  # as a build does
    (mirror / "generations" / ".tmp-4-123").mkdir()
    (mirror / "generations" / ".gc-0-99").mkdir()  # condemned by a gc that was killed
    switch(mirror, 2)  # 3 was never switched to
    assert plan(mirror, 1).kept == (2,)
    assert plan(mirror, 1).dropped == (1, 3)
    assert plan(mirror, 2).kept == (1, 2)
    assert plan(mirror, 2).dropped == (3,)
    assert plan(mirror, 2).stale_dirs == (".gc-0-99", ".tmp-4-123")
    # A generation whose root an older gc removed before it was killed is not kept unless
    # it is whole (this one has no manifest): it is dropped, its deletion finished.
    remove_root(store, "generation-1")
    assert plan(mirror, 2).kept == (2,)
    assert plan(mirror, 2).dropped == (1, 3)


def test_gc_refuses_clearly_while_a_build_holds_the_store(
    upstream_url: str, tmp_path: Path
) -> None:
    ws = tmp_path / "ws"
    write_spec(ws, upstream_url, ["util"])
    assert morgan(ws, "build").returncode == 0
    store_root = ws / "mirror" / "store"
    with StoreLock(store_root).exclusive():
        proc = morgan(ws, "gc")
    assert proc.returncode == 1
    assert proc.stderr == (
        f"morgan: error: store: store {store_root} is locked by pid {os.getpid()} (exclusive);"
        " could not take the exclusive lock within 0 s: wait for that process to finish,"
        " or stop it if it hangs\n"
    )


@pytest.mark.slow
def test_gc_and_builds_running_at_once_never_lose_a_blob(upstream_url: str, tmp_path: Path) -> None:
    mirror = tmp_path / "shared-mirror"
    full, small = tmp_path / "full", tmp_path / "small"
    write_spec(full, upstream_url)
    write_spec(small, upstream_url, ["app", "native"])
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def start(*args: str) -> subprocess.Popen[str]:
        cmd = [sys.executable, "-m", "morgan", *args, "--wait", "120"]
        return subprocess.Popen(
            cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    first = morgan(full, "build", "--out", str(mirror))
    assert first.returncode == 0, first.stderr
    procs = []
    for _ in range(3):
        procs.append(start("build", "-C", str(full), "--out", str(mirror)))
        procs.append(start("gc", "-C", str(mirror), "--keep", "1", "--grace", "0"))
        procs.append(start("build", "-C", str(small), "--out", str(mirror)))
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    final = morgan(mirror, "gc", "--keep", "1")
    assert final.returncode == 0, final.stderr
    proc = morgan(mirror, "verify")
    assert proc.returncode == 0, proc.stderr


@pytest.mark.slow
def test_gc_keep_1_leaves_no_action_entry_that_no_kept_generation_reaches(
    upstream_url: str, tmp_path: Path
) -> None:
    ws = tmp_path / "ws"
    write_spec(ws, upstream_url)
    assert morgan(ws, "build").returncode == 0
    write_spec(ws, upstream_url, ["util"])
    assert morgan(ws, "build").returncode == 0
    assert gc_json(ws, "--keep", "1")["actions"]["deleted"]
    store = Store(ws / "mirror" / "store")
    live = live_from_roots(store)
    cache = ActionCache(store)
    records = {key: cache.get(key) for key in cache}
    outputs = {key for key, r in records.items() if r is not None and not is_trace(r)}
    assert outputs
    for key, record in records.items():
        assert record is not None, key
        if is_trace(record):
            assert record["key"] in outputs, record  # the trace of an entry that is kept
        else:
            named = record_digests(record)
            assert named, record
            assert named <= live, record  # every blob it names is in a kept generation
    # The full spec again: what gc removed is fetched again, and --explain does not claim
    # an input changed (the file's sha256 is the same): the store has no memory of it.
    write_spec(ws, upstream_url)
    proc = morgan(ws, "build", "--explain")
    assert proc.returncode == 0, proc.stderr
    dropme = [line for line in proc.stderr.splitlines() if line.startswith("ran file:dropme")]
    assert dropme
    assert all(line.endswith(": new") for line in dropme), dropme
    assert "changed" not in "\n".join(
        line for line in proc.stderr.splitlines() if line.startswith("ran file:")
    )


def test_verify_advice_for_a_generation_without_root_is_a_command_that_fixes_it(
    upstream_url: str, tmp_path: Path
) -> None:
    # What a gc of an older Morgan left when killed between removing a root and deleting
    # the folder: a whole generation, not current, with no GC root.
    ws = tmp_path / "ws"
    write_spec(ws, upstream_url)
    assert morgan(ws, "build").returncode == 0
    write_spec(ws, upstream_url, ["util"])
    assert morgan(ws, "build").returncode == 0
    store = Store(ws / "mirror" / "store")
    remove_root(store, "generation-1")
    proc = morgan(ws, "verify")
    assert proc.returncode == 1
    advice = (
        "generation: generation 1: has no GC root (a gc was interrupted while deleting it): run "
        "'morgan gc' — it gives a whole generation it keeps its root back and finishes "
        "deleting the rest"
    )
    assert advice in proc.stderr.splitlines()
    # A no-op build changes nothing here; the advised command does.
    proc = morgan(ws, "gc")  # --keep 2: generation 1 is kept, and whole: its root comes back
    assert proc.returncode == 0, proc.stderr
    assert "restored the GC root of generation 1" in proc.stderr
    assert morgan(ws, "verify").returncode == 0
    remove_root(store, "generation-1")
    proc = morgan(ws, "gc", "--keep", "1")  # not kept: its deletion is finished
    assert proc.returncode == 0, proc.stderr
    assert not (ws / "mirror" / "generations" / "1").exists()
    proc = morgan(ws, "verify")
    assert proc.returncode == 0, proc.stderr
