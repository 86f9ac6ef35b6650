"""Node traces (``store/traces``): what ``morgan build --explain`` compares a node's key with.

A node that runs writes one action entry (its output) and appends one trace line; the
traces survive a torn line (a power cut, a crash), a store an older Morgan wrote (traces
among the action entries), and gc keeps each node's last trace while its entry is kept.
"""

from __future__ import annotations

import json
from pathlib import Path

from morgan.executor import Executor, _legacy_id_key
from store.actions import ActionCache, is_trace
from store.objects import Store
from store.traces import TraceLog, id_key, trace_files
from tests.build_scenario import morgan
from tests.test_build_explain import ran_lines
from tests.test_build_incremental import small, spec
from tests.test_executor import Text, node
from tests.upstream import FakeUpstream


def _make(store: Store, text: str) -> Text:
    return Text(text, (store.put_bytes(text.encode()).digest,))


def test_a_node_that_runs_writes_one_action_entry_and_explains_itself_next_time(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path / "store")
    with Executor(store) as ex:
        ex.run(node("page:a", value="a"), lambda: _make(store, "a"))
    cache = ActionCache(store, pack=False)
    records = [cache.get(k) for k in cache]
    assert len(records) == 1
    assert not any(r is None or is_trace(r) for r in records)
    with Executor(store) as ex:  # a new process reads the trace the last one appended
        ex.run(node("page:a", value="b"), lambda: _make(store, "b"))
    assert [(r.id, r.reason) for r in ex.ran] == [("page:a", "parameter value changed")]


def test_the_last_line_of_a_node_wins_and_a_torn_line_is_no_trace(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    log = TraceLog(store)
    log.put("render:a", {"key": "1" * 64, "n": 1})
    log.put("render:a", {"key": "2" * 64, "n": 2})
    log.put("render:b", {"key": "3" * 64, "n": 3})
    assert TraceLog(store).get("render:a") == {"key": "2" * 64, "n": 2}
    # A power cut tears the last line written to a file (here: b's) and leaves zeros.
    path = store.root / "traces" / id_key("render:b")[:2]
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 10] + b"\0" * 300)
    fresh = TraceLog(store)
    assert fresh.get("render:b") is None  # b explains itself as new: nothing else changes
    if id_key("render:a")[:2] != id_key("render:b")[:2]:
        assert fresh.get("render:a") == {"key": "2" * 64, "n": 2}
    fresh.put("render:b", {"key": "4" * 64, "n": 4})  # and the next run appends after it
    assert TraceLog(store).get("render:b") == {"key": "4" * 64, "n": 4}


def test_a_file_of_mostly_stale_lines_is_rewritten_when_read(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    for n in range(100):
        TraceLog(store).put("render:a", {"key": f"{n:064x}"})
    [path] = trace_files(store)
    assert path.read_bytes().count(b"\n") == 100
    assert TraceLog(store).get("render:a") == {"key": f"{99:064x}"}
    assert path.read_bytes().count(b"\n") == 1
    assert TraceLog(store).get("render:a") == {"key": f"{99:064x}"}


def test_a_store_an_older_morgan_wrote_still_explains(tmp_path: Path) -> None:
    # Before the trace log, a node's trace was an action entry under a key made of its id.
    store = Store(tmp_path / "store")
    with Executor(store) as ex:
        ex.run(node("page:a", value="a"), lambda: _make(store, "a"))
    old = node("page:a", value="a")
    legacy = {
        "trace": True,
        "key": old.key,
        "kind": old.kind,
        "version": old.version,
        "params": dict(old.params),
        "inputs": {},
    }
    for path in trace_files(store):
        path.unlink()
    ActionCache(store).put(_legacy_id_key("page:a"), legacy, durable=False)
    with Executor(store) as ex:
        ex.run(node("page:a", value="b"), lambda: _make(store, "b"))
    assert [r.reason for r in ex.ran] == ["parameter value changed"]


def test_a_build_after_a_torn_trace_file_explains_and_gc_drops_the_torn_line(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    small(upstream)
    ws = tmp_path / "ws"
    spec(ws, upstream.url, ["top"])
    assert morgan(ws, "build").returncode == 0
    store = Store(ws / "mirror" / "store")
    # No trace among the action entries: one entry per node that ran.
    cache = ActionCache(store, pack=False)
    assert not [k for k in cache if is_trace(cache.get(k) or {})]
    # A crash tore the line of render:union:leaf (and whatever followed in its file).
    torn = store.root / "traces" / id_key("render:union:leaf")[:2]
    lines = torn.read_bytes().splitlines(keepends=True)
    key = id_key("render:union:leaf").encode()
    mine = next(i for i, line in enumerate(lines) if line.startswith(key))
    torn.write_bytes(b"".join(lines[:mine]) + lines[mine][:80] + b"\0" * 64)
    verify = morgan(ws, "verify")
    assert verify.returncode == 0, verify.stderr

    toml = ws / "mirror.toml"
    toml.write_text(toml.read_text() + "\n[policy]\nsdists = false\n")
    proc = morgan(ws, "build", "--explain")
    assert proc.returncode == 0, proc.stderr
    lines_ran = ran_lines(proc.stderr)
    # Every page lost its sdist: each render says so, from its trace; the one whose trace
    # the crash tore runs all the same and says it has none.
    assert "ran render:union:leaf: new" in lines_ran
    for view in ("env-linux", "env-old", "union"):
        for name in ("mid", "top"):
            assert f"ran render:{view}:{name}: parameter files changed" in lines_ran
    assert "ran render:env-linux:leaf: parameter files changed" in lines_ran

    # gc rewrites the traces: only whole lines, each naming an action entry it keeps.
    proc = morgan(ws, "gc", "--keep", "1")
    assert proc.returncode == 0, proc.stderr
    cache = ActionCache(store, pack=False)
    keys = set(cache)
    for path in trace_files(store):
        lines = path.read_bytes().split(b"\n")
        assert lines[0] == b""  # each line is written after a newline
        for line in lines[1:]:
            assert json.loads(line[65:])["key"] in keys
