"""Project records: what a project's part of the plan gave, kept for the next build.

A rebuild after a small change (one requirement added) compiles, keys and walks a plan of
~47 000 nodes at 5 000 projects to find that all but a few dozen are as they were. A
*project record* (``store/project-records``) holds, per project, what its subgraph gave in
the last build that made it: the ids and action keys of its nodes (each file's fetch,
wheel-metadata and provenance node, its render node in every view), the tree entries they
produced (by folder, with the name of each folder's shared folder object) and what the lock
says about each of its files. It is keyed by everything that
determines that subgraph: the project's files as upstream (or the lock) describes them, the
views that list them, its PEP 792 status and the rule versions. A project whose key and
blobs are unchanged is left out of the plan: its entries go to the manifest and the tree,
its files to the lock, straight from the record (the lock and manifest nodes are keyed by
the digest of what they took from records, and by their other inputs as before).

The record is a cache: one file with the blake3 of its body in its header (a torn or edited
file is not read, and every project is planned as before); a record whose blobs are not all
in the store is not used (its project is planned and walked: gc may have removed them). It
is not fsynced, and a build that stops before writing it leaves the previous one, still true:
a record is valid for any build, since it is keyed by content, not by generation.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from operator import attrgetter
from typing import TYPE_CHECKING, Any

from blake3 import blake3

from morgan import __version__
from morgan.walk import Notes
from rules import fetch, provenance, render, wheel_metadata
from rules import lock as lock_rule
from rules import manifest as manifest_rule
from rules.files import FileNodes, mirror_files
from rules.model import MirrorFile, UpstreamFile
from rules.rule import Inputs, Output, Step
from store import fsio
from store.digest import ALGORITHM, Digest, blake3_hex
from store.folders import folder_name
from store.objects import Store

if TYPE_CHECKING:
    import networkx as nx

    from morgan.plan import View

RECORDS = "project-records"  # under the store's root
_MAGIC = b"morgan-project-records 4 "
_RUN_BYTES = 1 << 20  # the records file is written in runs of lines of about this size
# What a record's key depends on besides the project's own data: this format, Morgan's
# version and the versions of the rules whose nodes a record stands for. A record holds
# tree paths as the rules laid them out: a change of that layout changes this format.
_FINGERPRINT = (
    1,
    __version__,
    fetch.RULE.version,
    wheel_metadata.RULE.version,
    provenance.RULE.version,
    render.RULE.version,
)
# The UpstreamFile fields a record's key covers: all but whether upstream serves a PEP 658
# ``.metadata`` and its hash. Resolution reads those; no node a record stands for does (a
# wheel-metadata node extracts the wheel's own), and the lock does not keep them: the same
# file read from the page (a cold build, --upgrade) and from the lock (a change of
# requirements) keys the same record.
_UNREAD = frozenset({"core_metadata", "core_metadata_sha256"})
_KEYED = attrgetter(*(f.name for f in fields(UpstreamFile) if f.name not in _UNREAD))
# The MirrorFile fields a record keeps (the others are the upstream file's own).
_OUT_FIELDS = (
    "sha256",
    "blake3",
    "size",
    "metadata_sha256",
    "metadata_blake3",
    "provenance_sha256",
    "provenance_blake3",
)


@dataclass(frozen=True, slots=True)
class Recorded:
    """One project's record, as read back: enough to leave its subgraph out of the plan."""

    key: str
    # (node id, action key, output digest) of each node of its subgraph
    nodes: tuple[tuple[str, str, str], ...]
    folders: dict[str, dict[str, Digest]]  # the tree entries its nodes produced, by folder
    objects: dict[str, str]  # folder -> the name of its folder object (store/folders.py)
    files: dict[str, MirrorFile]  # what the lock says of each of its files
    blobs: tuple[Digest, ...]  # the blobs of its entries, each once


@dataclass(frozen=True, slots=True)
class Projects:
    """The plan's projects: each one's files and views, and its record key (None: a
    project whose part of the plan cannot be told apart from another's; never recorded)."""

    files: dict[str, tuple[str, ...]]  # project -> its filenames (every view)
    views: dict[str, tuple[str, ...]]  # project -> the views (``str(ViewId)``) listing it
    keys: dict[str, str | None]


def projects_of(
    views: Sequence[View],
    wanted: Mapping[str, UpstreamFile],
    statuses: Mapping[str, tuple[str, str]],
) -> Projects:
    """Group the plan's files and render nodes by project and key each project."""
    owner: dict[str, str] = {}
    shared: set[str] = set()  # a filename listed under two projects: neither is recorded
    listed: dict[str, list[tuple[str, tuple[str, ...]]]] = {}
    for view in views:
        vid = str(view.id)
        for name, filenames in view.projects.items():
            listed.setdefault(name, []).append((vid, tuple(filenames)))
            for fn in filenames:
                first = owner.setdefault(fn, name)
                if first != name:
                    shared.update((first, name))
    files: dict[str, tuple[str, ...]] = {}
    keys: dict[str, str | None] = {}
    for name, where in listed.items():
        fns = tuple(sorted({fn for _v, names in where for fn in names}))
        files[name] = fns
        if name in shared or any(fn not in wanted for fn in fns):
            keys[name] = None
            continue
        status = statuses.get(name, render.ACTIVE)
        ups = [_KEYED(wanted[fn]) for fn in fns]
        keys[name] = blake3_hex(repr((_FINGERPRINT, name, status, where, ups)).encode("utf-8"))
    return Projects(files, {n: tuple(v for v, _ in w) for n, w in listed.items()}, keys)


def node_ids(projects: Projects, wanted: Mapping[str, UpstreamFile], name: str) -> list[str]:
    """The ids of ``name``'s nodes in the plan: its files' nodes, its render nodes."""
    ids = [i for fn in projects.files[name] for i in FileNodes.of(wanted[fn]).ids]
    ids.extend(f"render:{vid}:{name}" for vid in projects.views[name])
    return ids


class Saved:
    """The last build's records as read: the file's bytes and, per project, its record key
    and where its line is (lines are cut out when used: no copy of the 30 MB file per line
    held through the build)."""

    def __init__(self, data: bytes = b"", index: dict[str, tuple[str, int, int]] | None = None):
        self._data = data
        self._index = index or {}

    def __bool__(self) -> bool:
        return bool(self._index)

    def key(self, name: str) -> str | None:
        found = self._index.get(name)
        return found[0] if found is not None else None

    def line(self, name: str) -> bytes:
        _key, start, end = self._index[name]
        return self._data[start:end]

    def view(self, name: str) -> memoryview:
        """:meth:`line` without copying it out of the file's bytes."""
        _key, start, end = self._index[name]
        return memoryview(self._data)[start:end]


def load(store: Store) -> Saved:
    """The last build's records; none when there are none or the file is damaged."""
    try:
        data = (store.root / RECORDS).read_bytes()
    except OSError:
        return Saved()
    start = data.find(b"\n") + 1
    head = data[: start - 1]
    if (
        not start
        or not head.startswith(_MAGIC)
        or head[len(_MAGIC) :].decode("ascii", "replace")
        != blake3(memoryview(data)[start:]).hexdigest()
    ):
        return Saved()
    index: dict[str, tuple[str, int, int]] = {}
    size = len(data)
    while start < size:
        end = data.find(b"\n", start)
        end = size if end < 0 else end
        first = data.find(b" ", start, end)
        second = data.find(b" ", first + 1, end)
        if start < first < second:
            try:
                name = data[start:first].decode("utf-8")
                index[name] = (data[first + 1 : second].decode("ascii"), start, end)
            except UnicodeDecodeError:
                return Saved()
        start = end + 1
    return Saved(data, index)


def usable(
    saved: Saved,
    projects: Projects,
    wanted: Mapping[str, UpstreamFile],
    has_blob: Callable[[Digest], bool],
) -> dict[str, Recorded]:
    """The records that stand for their project's part of this plan: same key, every blob
    present, the same nodes."""
    out: dict[str, Recorded] = {}
    seen: dict[str, Digest] = {}  # hex -> its Digest: a file's blob is in several views
    for name, key in projects.keys.items():
        if key is None or saved.key(name) != key:
            continue
        rec = _parse(saved.line(name), wanted, seen)
        if rec is None or rec.key != key:
            continue
        if sorted(i for i, _k, _d in rec.nodes) != sorted(node_ids(projects, wanted, name)):
            continue
        if not all(has_blob(d) for d in rec.blobs):
            continue
        out[name] = rec
    return out


def _parse(
    line: bytes, wanted: Mapping[str, UpstreamFile], seen: dict[str, Digest]
) -> Recorded | None:
    _name, _, rest = line.partition(b" ")
    raw_key, _, body = rest.partition(b" ")
    try:
        key = raw_key.decode("ascii")
        data = json.loads(body)
        # (a record is read only when its file's digest holds: as this version wrote it)
        nodes = tuple(map(tuple, data["n"]))
        if any(len(n) != 3 for n in nodes):  # (id, action key, output digest)
            return None
        # A project's entries name few blobs, in few distinct folders (each file in every
        # view that lists it: 148 000 entries, 31 700 blobs and ~8 000 distinct folders in
        # 27 700 at 5 000 projects): the record lists each blob once ("b"), each distinct
        # folder once as {name: blob's index} with its folder object's name ("c"), and each
        # folder's index there ("e"). Each blob is made a Digest once; folders with the
        # same entries share one dict (read only, as every folder given here).
        blobs: list[Digest] = []
        for hex_ in data["b"]:
            found = seen.get(hex_)
            if found is None:
                found = seen[hex_] = Digest(ALGORITHM, hex_)
            blobs.append(found)
        distinct = [
            ({leaf: blobs[i] for leaf, i in names.items()}, str(o)) for names, o in data["c"]
        ]
        folders = {folder: distinct[i][0] for folder, i in data["e"].items()}
        objects = {folder: distinct[i][1] for folder, i in data["e"].items()}
        files = {fn: _mirror_file(wanted[fn], out) for fn, out in data["f"].items()}
    except (KeyError, TypeError, ValueError, AttributeError, IndexError):
        return None  # (UnicodeError: a ValueError)
    return Recorded(key, nodes, folders, objects, files, tuple(blobs))


def _mirror_file(f: UpstreamFile, out: Sequence[Any]) -> MirrorFile:
    # (_OUT_FIELDS, in their order: a ValueError when the record holds another number)
    sha256, blake3_, size, meta_sha256, meta_blake3, prov_sha256, prov_blake3 = out
    return MirrorFile(
        f.filename,
        sha256,
        blake3_,
        size,
        f.upload_time,
        f.requires_python,
        f.yanked,
        f.yanked_reason,
        meta_sha256,
        meta_blake3,
        prov_sha256,
        prov_blake3,
    )


def save(
    store: Store,
    *,
    projects: Projects,
    recorded: Mapping[str, Recorded],
    wanted: Mapping[str, UpstreamFile],
    plan: nx.DiGraph,
    outputs: Mapping[str, Output],
    notes: Notes,
    files: Mapping[str, MirrorFile],
) -> None:
    """Write every project's record: a record taken stays as it was; a project walked gets
    its nodes' keys and output digests (``notes``), entries and files from the walk."""
    # A taken record's line is copied from the file as it is (read again here rather than
    # held through the build: 30 MB at 5 000 projects); one that no longer reads the same
    # is left out (its project is walked next time).
    before = load(store) if recorded else Saved()
    lines: list[bytes | memoryview] = []
    for name in sorted(projects.keys):
        key = projects.keys[name]
        if key is None:
            continue
        if name in recorded:
            if before.key(name) == key == recorded[name].key:
                lines.append(before.view(name))
            continue
        walked = _walked(node_ids(projects, wanted, name), plan, outputs, notes)
        if walked is None or not all(fn in files for fn in projects.files[name]):
            continue  # (a node finished outside the walk's keying: not recorded)
        nodes, entries = walked
        made = {fn: [getattr(files[fn], a) for a in _OUT_FIELDS] for fn in projects.files[name]}
        rec = {**_folders_record(entries), "f": made, "n": nodes}
        text = json.dumps(rec, sort_keys=True, separators=(",", ":"))
        lines.append(f"{name} {key} {text}".encode())
    # The file (30 MB at 5 000 projects) is never whole in memory besides the last one:
    # the lines kept are views of that, the body is hashed line by line, then written out
    # in runs of about 1 MiB.
    head = _MAGIC + _hash_lines(lines) + b"\n"
    runs = _runs(head, lines, _RUN_BYTES)
    fsio.atomic_write_runs(store.tmp_dir, store.root / RECORDS, runs, durable=False)


def _folders_record(entries: Mapping[str, Mapping[str, str]]) -> dict[str, Any]:
    """A project's tree entries (folder -> {name: blob hex}) as its record keeps them
    (:func:`_parse`): its blobs once each ("b"), its distinct folders once each as
    {name: blob's index in "b"} with the name of their folder object ("c"), and each
    folder's index in "c" ("e")."""
    blobs: dict[str, int] = {}
    distinct: dict[tuple[tuple[str, str], ...], int] = {}
    made: list[list[Any]] = []
    where: dict[str, int] = {}
    for folder in sorted(entries):
        names = tuple(sorted(entries[folder].items()))
        at = distinct.get(names)
        if at is None:
            at = distinct[names] = len(made)
            made.append(
                [
                    {leaf: blobs.setdefault(hex_, len(blobs)) for leaf, hex_ in names},
                    folder_name({leaf: Digest(ALGORITHM, hex_) for leaf, hex_ in names}),
                ]
            )
        where[folder] = at
    return {"b": list(blobs), "c": made, "e": where}


def _hash_lines(lines: Sequence[bytes | memoryview]) -> bytes:
    """The blake3 (hex, ASCII) of the records file's body: each line and a newline (the
    runs joined once more: two copies of 30 MB cost less than 20 000 small hash calls)."""
    hasher = blake3()
    for run in _runs(b"", lines, _RUN_BYTES):
        hasher.update(run)
    return hasher.hexdigest().encode("ascii")


def _runs(head: bytes, lines: Sequence[bytes | memoryview], run_bytes: int) -> Iterator[bytes]:
    """``head`` then each of ``lines`` and a newline, joined in runs of about
    ``run_bytes``."""
    run: list[bytes | memoryview] = [head]
    size = 0
    for line in lines:
        run.append(line)
        run.append(b"\n")
        size += len(line) + 1
        if size >= run_bytes:
            yield b"".join(run)
            run, size = [], 0
    yield b"".join(run)


def _walked(
    ids: Sequence[str],
    plan: nx.DiGraph,
    outputs: Mapping[str, Output],
    notes: Notes,
) -> tuple[list[list[str]], dict[str, dict[str, str]]] | None:
    """The (id, key, output digest) of each of ``ids`` and the entries they produced in
    this walk; None when one of them has no key or output from it."""
    nodes = []
    entries: dict[str, dict[str, str]] = {}  # folder -> {name: blob hex}
    for node_id in ids:
        out = outputs.get(node_id)
        if out is None or node_id not in plan:
            return None
        step: Step[Any] = plan.nodes[node_id]["step"]
        k = notes.keys.get(node_id)
        if k is None and plan.in_degree(node_id) == 0 and not step.spent:
            k = step.node({}).key  # a file resolution fetched: the walk took it as it was
        d = notes.digests.get(node_id)
        if k is None or d is None:
            return None
        nodes.append([node_id, k, d])
        for path, blob in step.entries(out).items():
            folder, _, leaf = path.rpartition("/")
            entries.setdefault(folder, {})[leaf] = blob.hex
    return nodes, entries


class ProjectRecords:
    """One build's use of the records: which projects it takes from them (``taken``), the
    keys its walk makes (``keys``), and the records it leaves for the next build."""

    def __init__(
        self,
        store: Store,
        views: Sequence[View],
        wanted: Mapping[str, UpstreamFile],
        statuses: Mapping[str, tuple[str, str]],
        has_blob: Callable[[Digest], bool],
    ) -> None:
        self.store = store
        self.wanted = wanted
        self.projects = projects_of(views, wanted, statuses)
        self.taken = usable(load(store), self.projects, wanted, has_blob)
        # The lock reads every file's nodes, the manifest every producer: those of the
        # projects taken from records are their predecessors outside the plan.
        taken = [n for rec in self.taken.values() for n in rec.nodes]
        self.notes = Notes(
            outside={
                lock_rule.ID: {i: d for i, _k, d in taken if not i.startswith("render:")},
                manifest_rule.ID: {i: d for i, _k, d in taken},
            }
        )

    def folders(self) -> dict[str, dict[str, Digest]]:
        """The tree folders the taken records fill: folder -> {name: blob}."""
        return {f: names for rec in self.taken.values() for f, names in rec.folders.items()}

    def objects(self) -> dict[str, str]:
        """The folder objects of those folders: folder -> object name."""
        return {f: o for rec in self.taken.values() for f, o in rec.objects.items()}

    def nodes(self) -> Iterator[tuple[str, str, str]]:
        """(id, action key, output digest) of every node the taken records stand for."""
        for rec in self.taken.values():
            yield from rec.nodes

    def files(self, outputs: Inputs) -> dict[str, MirrorFile]:
        """What the mirror serves about every selected file: from the records taken, and
        from the walk's outputs for the others."""
        out = {fn: f for rec in self.taken.values() for fn, f in rec.files.items()}
        walked = {fn: FileNodes.of(f) for fn, f in self.wanted.items() if fn not in out}
        out.update(mirror_files(walked, outputs))
        return out

    def save(
        self, plan: nx.DiGraph, outputs: Mapping[str, Output], files: Mapping[str, MirrorFile]
    ) -> None:
        save(
            self.store,
            projects=self.projects,
            recorded=self.taken,
            wanted=self.wanted,
            plan=plan,
            outputs=outputs,
            notes=self.notes,
            files=files,
        )

    def ids(self) -> Iterator[str]:
        """The ids of every node the taken records stand for."""
        for rec in self.taken.values():
            for node_id, _k, _d in rec.nodes:
                yield node_id
