"""The plan: (spec, selected files) compiled into an ``nx.DiGraph`` of rule nodes.

Resolution (dynamic: pages and metadata reveal what to read next) ends in the selected
releases of every environment. Everything after that has static dependencies, so it is
compiled ahead into a graph that :func:`morgan.walk.walk` runs::

    fetch:<file> ──> wheel-metadata:<file>            (wheels only)
         │                 │
         └──────┬──────────┘
                v
    render:<view>:<project>     (per view and project; the two project pages)
    index:<view>                (per view; the root pages)
    lock                        (mirror.lock, from every file's digests)
                │
                v
    manifest ──> generation     (the tree manifest; root, tree, side files, switch)

Every entry of a generation's tree — file, ``.metadata``, page, ``mirror.lock``,
``manifest.json`` — is the output of exactly one node (``produces``); the generation node
makes the links and switches. A new rule kind is one function here that returns a
:class:`~morgan.walk.Step`, and one line in :func:`compile_plan` adding it with its edges.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from morgan.catalog import META_RULE_VERSION, PROVENANCE_RULE_VERSION, file_node
from morgan.errors import BuildError
from morgan.executor import Record
from morgan.walk import Step
from rules.errors import MetadataError
from rules.lib.metadata import wheel_metadata_bytes
from rules.lib.render import (
    render_index_html,
    render_index_json,
    render_project_html,
    render_project_json,
)
from rules.model import MirrorFile, NormalizedName, UpstreamFile
from store.digest import Digest, blake3_hex, canonical_json
from store.manifests import write_manifest
from store.objects import Store

if TYPE_CHECKING:
    import networkx as nx

RENDER_RULE_VERSION = 2
INDEX_RULE_VERSION = 1
LOCK_RULE_VERSION = 1
MANIFEST_RULE_VERSION = 1
GENERATION_RULE_VERSION = 1


@dataclass(frozen=True, slots=True)
class View:
    """One index tree of a generation: the union (``prefix`` "") or an environment's."""

    id: str  # "union" | "env-<name>": names the render and index nodes
    prefix: str  # "" | "env/<name>/"
    projects: Mapping[str, Sequence[str]]  # project -> its filenames in this view
    statuses: Mapping[str, tuple[str, str]] = field(default_factory=dict)  # PEP 792


# What the build supplies: the lock text from the files, the switch to a manifest, and
# whether a manifest is served already (the switch's record then).
LockMaker = Callable[[Mapping[str, MirrorFile]], str]
Publisher = Callable[[Digest, Mapping[str, Digest]], Record]
Served = Callable[[Digest], Record | None]

ZERO_BLOB = "blake3:" + "0" * 64


def mirror_file(
    f: UpstreamFile, fetched: Record, meta: Record | None, prov: Record | None = None
) -> MirrorFile:
    """What the mirror serves about ``f``, from its fetch (wheel-metadata, provenance)
    records."""
    return MirrorFile(
        filename=f.filename,
        sha256=fetched["sha256"],
        blake3=Digest.parse(fetched["blob"]).hex,
        size=fetched["size"],
        upload_time=f.upload_time,
        requires_python=f.requires_python,
        yanked=f.yanked,
        yanked_reason=f.yanked_reason,
        metadata_sha256=meta["sha256"] if meta else None,
        metadata_blake3=Digest.parse(meta["blob"]).hex if meta else None,
        provenance_sha256=prov["sha256"] if prov else None,
        provenance_blake3=Digest.parse(prov["blob"]).hex if prov else None,
    )


@dataclass(frozen=True, slots=True)
class FileNodes:
    """One selected file and the ids of the nodes whose outputs describe it."""

    file: UpstreamFile
    fetch: str
    metadata: str | None  # wheel-metadata (wheels only)
    provenance: str | None  # PEP 740 provenance (when upstream offers one)

    @property
    def ids(self) -> list[str]:
        return [i for i in (self.fetch, self.metadata, self.provenance) if i is not None]

    def mirror_file(self, records: Mapping[str, Record]) -> MirrorFile:
        return mirror_file(
            self.file,
            records[self.fetch],
            records[self.metadata] if self.metadata else None,
            records[self.provenance] if self.provenance else None,
        )


def _upstream_attrs(f: UpstreamFile) -> list[object]:
    # What a page says about a file besides its bytes: part of a render node's parameters.
    return [f.filename, f.upload_time, f.requires_python, f.yanked, f.yanked_reason]


# -- one function per rule kind -------------------------------------------------------------


class Fetcher(Protocol):
    """What the fetch nodes run (the upstream catalog; never called by ``graph --build``)."""

    def fetch_record(self, f: UpstreamFile) -> Record: ...

    def provenance_record(self, f: UpstreamFile, sha256: str) -> Record: ...


def fetch_step(catalog: Fetcher, f: UpstreamFile, paths: Sequence[str]) -> Step:
    node = file_node(f)
    return Step(
        id=node.id,
        kind="fetch",
        version=node.version,
        params=node.params,
        run=lambda _inputs: catalog.fetch_record(f),
        entries=lambda rec: {p: Digest.parse(rec["blob"]) for p in paths},
        produces=tuple(paths),
    )


def wheel_metadata_step(store: Store, f: UpstreamFile, fetch_id: str, paths: Sequence[str]) -> Step:
    def run(inputs: Mapping[str, Record]) -> Record:
        with store.open(Digest.parse(inputs[fetch_id]["blob"])) as fh:
            try:
                data = wheel_metadata_bytes(fh, f.filename)
            except MetadataError as exc:
                raise BuildError(f"{f.filename}: {exc}") from None
        blob = store.put_bytes(data)
        return {"blobs": [str(blob.digest)], "blob": str(blob.digest), "sha256": blob.sha256}

    return Step(
        id=f"wheel-metadata:{f.filename}",
        kind="wheel-metadata",
        version=META_RULE_VERSION,
        params={"filename": f.filename},
        run=run,
        entries=lambda rec: {p: Digest.parse(rec["blob"]) for p in paths},
        produces=tuple(paths),
    )


def provenance_step(catalog: Fetcher, f: UpstreamFile, fetch_id: str, paths: Sequence[str]) -> Step:
    return Step(
        id=f"provenance:{f.filename}",
        kind="provenance",
        version=PROVENANCE_RULE_VERSION,
        params={"filename": f.filename, "url": f.provenance_url or ""},
        run=lambda inputs: catalog.provenance_record(f, inputs[fetch_id]["sha256"]),
        entries=lambda rec: {p: Digest.parse(rec["blob"]) for p in paths},
        produces=tuple(paths),
    )


def render_step(
    store: Store,
    view: View,
    name: str,
    files: Sequence[FileNodes],
) -> Step:
    base = f"{view.prefix}simple/{name}/"
    status = view.statuses.get(name, ("active", ""))
    marks = {"status": status[0], "status_reason": status[1]}

    def run(inputs: Mapping[str, Record]) -> Record:
        mirrored = [n.mirror_file(inputs) for n in files]
        html = store.put_bytes(render_project_html(NormalizedName(name), mirrored, **marks))
        js = store.put_bytes(render_project_json(NormalizedName(name), mirrored, **marks))
        return {
            "blobs": [str(html.digest), str(js.digest)],
            "html": str(html.digest),
            "json": str(js.digest),
        }

    attrs = canonical_json([_upstream_attrs(n.file) for n in files])
    params: dict[str, object] = {"project": name, "files": blake3_hex(attrs)}
    if status[0] != "active":
        params["status"] = list(status)
    return Step(
        id=f"render:{view.id}:{name}",
        kind="render",
        version=RENDER_RULE_VERSION,
        params=params,
        run=run,
        entries=lambda rec: {
            base + "index.html": Digest.parse(rec["html"]),
            base + "index.json": Digest.parse(rec["json"]),
        },
        produces=(base + "index.html", base + "index.json"),
    )


def index_step(store: Store, view: View) -> Step:
    names = [NormalizedName(n) for n in sorted(view.projects)]
    base = f"{view.prefix}simple/"

    def run(_inputs: Mapping[str, Record]) -> Record:
        html = store.put_bytes(render_index_html(names))
        js = store.put_bytes(render_index_json(names))
        return {
            "blobs": [str(html.digest), str(js.digest)],
            "html": str(html.digest),
            "json": str(js.digest),
        }

    return Step(
        id=f"index:{view.id}",
        kind="index",
        version=INDEX_RULE_VERSION,
        params={"projects": blake3_hex(canonical_json(list(names)))},
        run=run,
        entries=lambda rec: {
            base + "index.html": Digest.parse(rec["html"]),
            base + "index.json": Digest.parse(rec["json"]),
        },
        produces=(base + "index.html", base + "index.json"),
    )


def lock_step(
    store: Store,
    wanted: Mapping[str, FileNodes],
    make: LockMaker,
    skeleton: str,
) -> Step:
    def run(inputs: Mapping[str, Record]) -> Record:
        blob = store.put_bytes(make(mirror_files(wanted, inputs)).encode("utf-8"))
        return {"blobs": [str(blob.digest)], "blob": str(blob.digest)}

    return Step(
        id="lock",
        kind="lock",
        version=LOCK_RULE_VERSION,
        # The lock with every fetched digest blanked: with the files' digests (its inputs)
        # it determines the text.
        params={"skeleton": skeleton},
        run=run,
        entries=lambda rec: {"mirror.lock": Digest.parse(rec["blob"])},
        produces=("mirror.lock",),
    )


def mirror_files(
    wanted: Mapping[str, FileNodes], records: Mapping[str, Record]
) -> dict[str, MirrorFile]:
    """filename -> what the mirror serves about it, from its nodes' records."""
    return {fn: nodes.mirror_file(records) for fn, nodes in wanted.items()}


def skeleton_files(wanted: Mapping[str, UpstreamFile]) -> dict[str, MirrorFile]:
    """The files as far as upstream describes them (digests blanked), for the lock's key."""
    blank: Record = {"sha256": "", "blob": ZERO_BLOB, "size": 0}
    return {fn: mirror_file(f, blank, None) for fn, f in wanted.items()}


def file_ids(wanted: Mapping[str, UpstreamFile]) -> dict[str, FileNodes]:
    """filename -> the file and the ids of its nodes."""
    return {
        fn: FileNodes(
            f,
            file_node(f).id,
            f"wheel-metadata:{fn}" if fn.endswith(".whl") else None,
            f"provenance:{fn}" if f.provenance_url else None,
        )
        for fn, f in sorted(wanted.items())
    }


def manifest_step(store: Store, steps: Mapping[str, Step]) -> Step:
    def run(inputs: Mapping[str, Record]) -> Record:
        entries: dict[str, Digest] = {}
        for node_id in sorted(inputs):
            entries.update(steps[node_id].entries(inputs[node_id]))
        blob = write_manifest(
            store,
            entries.values(),
            extra={"version": 1, "entries": {k: str(v) for k, v in sorted(entries.items())}},
        )
        return {"blobs": [str(blob.digest)], "blob": str(blob.digest)}

    return Step(
        id="manifest",
        kind="manifest",
        version=MANIFEST_RULE_VERSION,
        params={},
        run=run,
        entries=lambda rec: {"manifest.json": Digest.parse(rec["blob"])},
        produces=("manifest.json",),
    )


def generation_step(store: Store, publish: Publisher, served: Served) -> Step:
    def run(inputs: Mapping[str, Record]) -> Record:
        manifest = Digest.parse(inputs["manifest"]["blob"])
        data = json.loads(store.read_bytes(manifest))
        entries = {rel: Digest.parse(d) for rel, d in data["entries"].items()}
        return publish(manifest, entries)

    return Step(
        id="generation",
        kind="generation",
        version=GENERATION_RULE_VERSION,
        params={},
        run=run,
        cacheable=False,  # the switch is an effect: it runs unless the manifest is served
        current=lambda inputs: served(Digest.parse(inputs["manifest"]["blob"])),
    )


# -- the plan -------------------------------------------------------------------------------


def compile_plan(
    catalog: Fetcher,
    store: Store,
    views: Sequence[View],
    wanted: Mapping[str, UpstreamFile],  # filename -> file, every selected file
    *,
    make_lock: LockMaker,
    lock_skeleton: str,
    publish: Publisher,
    served: Served,
) -> nx.DiGraph:
    """The plan graph: nodes carry their :class:`Step` (``step``) and ``kind``."""
    import networkx as nx

    g: nx.DiGraph = nx.DiGraph()
    steps: dict[str, Step] = {}

    def add(step: Step, *after: str) -> str:
        steps[step.id] = step
        g.add_node(step.id, step=step, kind=step.kind)
        g.add_edges_from((p, step.id) for p in after)
        return step.id

    paths: dict[str, list[str]] = {}
    for view in views:
        for name, filenames in sorted(view.projects.items()):
            for fn in filenames:
                paths.setdefault(fn, []).append(f"{view.prefix}simple/{name}/{fn}")
    ids = file_ids(wanted)
    for fn, nodes in ids.items():
        add(fetch_step(catalog, nodes.file, paths[fn]))
        if nodes.metadata is not None:
            meta_paths = [p + ".metadata" for p in paths[fn]]
            add(wheel_metadata_step(store, nodes.file, nodes.fetch, meta_paths), nodes.fetch)
        if nodes.provenance is not None:
            prov_paths = [p + ".provenance" for p in paths[fn]]
            add(provenance_step(catalog, nodes.file, nodes.fetch, prov_paths), nodes.fetch)
    for view in views:
        for name, filenames in sorted(view.projects.items()):
            files = [ids[fn] for fn in sorted(filenames)]
            add(render_step(store, view, name, files), *_file_nodes(files))
        add(index_step(store, view))
    add(lock_step(store, ids, make_lock, lock_skeleton), *_file_nodes(list(ids.values())))
    producers = [n for n in steps if steps[n].produces]
    add(manifest_step(store, steps), *producers)
    add(generation_step(store, publish, served), "manifest")
    return g


def _file_nodes(files: Sequence[FileNodes]) -> list[str]:
    return [i for n in files for i in n.ids]
