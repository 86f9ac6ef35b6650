"""Project records (``store/project-records``): a rebuild takes an unchanged project's part
of the plan from the last build's record instead of keying and walking its nodes. What a
user sees must not depend on them: the tree a cold build of the same spec serves, the same
``--explain`` and ``graph --build``, with the records whole, damaged, or out of date."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from morgan import cli, records
from morgan.records import RECORDS
from store import fsio
from tests.build_scenario import morgan
from tests.test_action_pack import build, cold, releases, served
from tests.test_build_incremental import spec
from tests.upstream import FakeUpstream

if TYPE_CHECKING:
    import pytest


def ran(explained: str) -> set[str]:
    """The ids of the nodes ``--explain`` says ran."""
    return set(re.findall(r"^\s*ran (\S+): ", explained, flags=re.MULTILINE))


def graph_statuses(ws: Path) -> dict[str, str]:
    proc = morgan(ws, "graph", "--build", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    return {n["id"]: n.get("status", "") for n in data["nodes"]}


def test_adding_a_requirement_walks_only_its_projects_and_serves_a_cold_builds_tree(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    releases(upstream)
    ws = tmp_path / "ws"
    spec(ws, upstream.url, ["top"])
    build(ws)
    assert (ws / "mirror" / "store" / RECORDS).is_file()

    spec(ws, upstream.url, ["top", "other"])
    out = build(ws, "--explain")
    # Only the new project's nodes ran (and what every tree has once: root pages, lock,
    # manifest, switch); top, mid and leaf came from their records.
    nodes = ran(out)
    assert any(n.startswith("file:other-1.0") for n in nodes), out
    assert not [n for n in nodes if re.search(r"(top|mid|leaf)", n)], out
    assert served(ws) == cold(upstream, tmp_path / "cold", ["top", "other"])
    # graph --build: every node of the plan of this lock ran or was reused.
    statuses = graph_statuses(ws)
    assert set(statuses.values()) <= {"ran", "reused"}, statuses
    assert statuses["render:union:top"] == "reused"
    assert statuses["render:union:other"] == "ran"

    # And back: removing it serves a cold build's tree too, again from the records.
    spec(ws, upstream.url, ["top"])
    out = build(ws, "--explain")
    assert not [n for n in ran(out) if re.search(r"(top|mid|leaf)", n)], out
    assert served(ws) == cold(upstream, tmp_path / "cold-2", ["top"])


def test_the_first_change_after_a_cold_build_takes_the_records_the_cold_build_wrote(
    upstream: FakeUpstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cold build reads each file from the upstream page (with its PEP 658 metadata hash),
    the change after it from the lock (which does not keep that hash): the same project is
    the same record either way, so the change walks only the new projects."""
    releases(upstream)
    ws = tmp_path / "ws"
    spec(ws, upstream.url, ["top"])
    assert cli.main(["build", "-q", "-C", str(ws)]) == 0
    taken: list[set[str]] = []
    usable = records.usable

    def spy(*args: object, **kwargs: object) -> dict[str, records.Recorded]:
        found = usable(*args, **kwargs)  # type: ignore[arg-type]
        taken.append(set(found))
        return found

    monkeypatch.setattr(records, "usable", spy)
    spec(ws, upstream.url, ["top", "other"])
    assert cli.main(["build", "-q", "-C", str(ws)]) == 0
    assert taken == [{"top", "mid", "leaf"}]
    assert served(ws) == cold(upstream, tmp_path / "cold", ["top", "other"])


def test_a_damaged_record_file_is_not_read_and_the_tree_is_right(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    releases(upstream)
    ws = tmp_path / "ws"
    spec(ws, upstream.url, ["top"])
    build(ws)
    records = ws / "mirror" / "store" / RECORDS
    data = bytearray(records.read_bytes())
    data[-20] ^= 1
    records.chmod(0o644)
    records.write_bytes(bytes(data))
    spec(ws, upstream.url, ["top", "other"])
    out = build(ws, "--explain")
    assert "ran render:union:top" not in out  # walked, and reused from the action cache
    assert served(ws) == cold(upstream, tmp_path / "cold", ["top", "other"])
    # The build wrote whole records again: the next one takes them.
    spec(ws, upstream.url, ["top", "other", "more"])
    out = build(ws, "--explain")
    assert not [n for n in ran(out) if re.search(r"(top|mid|leaf|other)", n)], out
    assert served(ws) == cold(upstream, tmp_path / "cold-2", ["top", "other", "more"])


def test_a_record_whose_blob_is_gone_or_whose_project_changed_is_not_taken(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    releases(upstream)
    ws = tmp_path / "ws"
    spec(ws, upstream.url, ["top", "other"])
    build(ws)
    # A blob of mid's record removed by hand: mid is walked and its file fetched again.
    wheel = (ws / "mirror" / "index" / "simple" / "mid" / "mid-1.0-py3-none-any.whl").resolve()
    wheel.chmod(0o644)
    wheel.unlink()
    spec(ws, upstream.url, ["top", "other", "more"])
    out = build(ws, "--explain")
    assert re.search(r"ran file:mid-1\.0-py3-none-any\.whl:\w+: output missing", out), out
    assert served(ws) == cold(upstream, tmp_path / "cold", ["top", "other", "more"])

    # leaf gets a new release and is upgraded: its record's key no longer matches.
    upstream.add_release("leaf", "2.0")
    proc = morgan(ws, "build", "--explain", "--upgrade", "leaf")
    assert proc.returncode == 0, proc.stderr
    assert "ran render:union:leaf" in proc.stderr
    assert "ran render:union:top" not in proc.stderr
    assert served(ws) == cold(upstream, tmp_path / "cold-2", ["top", "other", "more"])


def test_a_folder_object_removed_since_the_record_is_made_again(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    releases(upstream)
    ws = tmp_path / "ws"
    spec(ws, upstream.url, ["top"])
    build(ws)
    # The union's folder of `top` is a shared folder object the record names.
    folder = (ws / "mirror" / "index" / "simple" / "top").resolve()
    assert folder.parent.parent.name == "folders"
    folder.chmod(0o755)
    shutil.rmtree(folder)
    spec(ws, upstream.url, ["top", "other"])
    out = build(ws, "--explain")
    assert "ran render:union:top" not in out  # still taken from its record
    assert served(ws) == cold(upstream, tmp_path / "cold", ["top", "other"])
    assert folder.is_dir()


def test_the_records_file_written_in_runs_reads_back_line_for_line(tmp_path: Path) -> None:
    """The records file is written in runs of lines (never joined whole in memory): runs
    smaller than a line, or holding many, give the same file, and it reads back."""
    from morgan import records
    from store.objects import Store

    store = Store(tmp_path / "store")
    lines: list[bytes | memoryview] = [f'proj-{i} key{i} {{"n":[]}}'.encode() for i in range(50)]
    lines[7] = memoryview(b"xx " + bytes(lines[7]))[3:]  # a view, as a kept line is
    expected = {f"proj-{i}": f"key{i}" for i in range(50)}
    digests = set()
    for run_bytes in (1, 40, 1 << 20):
        head = records._MAGIC + records._hash_lines(lines) + b"\n"
        runs = list(records._runs(head, lines, run_bytes))
        assert (len(runs) > 2) == (run_bytes < 1000)
        fsio.atomic_write_runs(store.tmp_dir, store.root / RECORDS, runs, durable=False)
        data = (store.root / RECORDS).read_bytes()
        digests.add(data)
        saved = records.load(store)
        assert {name: saved.key(name) for name in expected} == expected
        assert saved.line("proj-7") == bytes(lines[7])
    assert len(digests) == 1


def test_a_record_keeps_each_blob_and_each_distinct_folder_once(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    """A project's folders in the union and in each environment's view list the same
    files: its record names each blob once and each distinct folder once (at 5 000
    projects, 148 000 entries of 31 700 blobs in 27 700 folders: 30 MB of records, most of
    it the same digests again), and a rebuild through it still serves a cold build's tree."""
    releases(upstream)
    ws = tmp_path / "ws"
    spec(ws, upstream.url, ["top"])
    build(ws)
    data = (ws / "mirror" / "store" / RECORDS).read_bytes()
    line = next(x for x in data.splitlines()[1:] if x.startswith(b"leaf "))
    rec = json.loads(line.split(b" ", 2)[2])
    # leaf's folder in the union and in two views, the same files: one distinct folder
    assert sorted(rec["e"]) == [
        "env/linux/simple/leaf",
        "env/old/simple/leaf",
        "simple/leaf",
    ]
    assert len(rec["c"]) == 1
    assert set(rec["e"].values()) == {0}
    assert len(rec["b"]) == len(set(rec["b"]))
    folders = json.dumps([rec["c"], rec["e"]])
    assert not [h for h in rec["b"] if h in folders]  # (indices into "b", no digests)
    spec(ws, upstream.url, ["top", "other"])
    out = build(ws, "--explain")
    assert not [n for n in ran(out) if "leaf" in n], out
    assert served(ws) == cold(upstream, tmp_path / "cold", ["top", "other"])
