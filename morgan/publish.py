"""From selected files to a served generation: fetch, render, materialize, switch.

The stages overlap: a file's wheel METADATA is extracted as soon as the file is in, and a
project's pages (in each view) render as soon as that project's last file is in, while
other files are still downloading. What is left after the last byte arrives is the
manifest and the links.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from morgan.catalog import UpstreamCatalog
from morgan.errors import BuildError
from morgan.executor import Executor, Node, Record
from morgan.location import current_generation
from rules.errors import RuleError
from rules.lib.materialize import Mode, TreeWriter, materialize, switch_index
from rules.lib.render import (
    render_index_html,
    render_index_json,
    render_project_html,
    render_project_json,
)
from rules.model import MirrorFile, NormalizedName, UpstreamFile
from store import fsio
from store.digest import Digest, blake3_hex, canonical_json
from store.manifests import write_manifest
from store.objects import Store
from store.roots import set_root

RENDER_RULE_VERSION = 1

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class View:
    """One index tree of a generation: the union (``prefix`` "") or an environment's."""

    id: str  # "union" | "env-<name>": names the render nodes
    prefix: str  # "" | "env/<name>/"
    projects: Mapping[str, Sequence[str]]  # project -> its filenames in this view
    statuses: Mapping[str, tuple[str, str]] = field(default_factory=dict)  # PEP 792


# -- files ----------------------------------------------------------------------------------


def start_files(
    catalog: UpstreamCatalog, wanted: Mapping[str, tuple[str, UpstreamFile]]
) -> dict[str, Future[MirrorFile]]:
    """Start fetching every file of ``wanted`` (filename → (project, file)), each wheel's
    METADATA extracted as soon as the wheel is in; filename → its MirrorFile when done."""
    return {
        name: _mirror_file(catalog, f, catalog.fetch_async(f, parents=[f"project:{project}"]))
        for name, (project, f) in sorted(wanted.items())
    }


def wait_files(futures: Mapping[str, Future[MirrorFile]]) -> dict[str, MirrorFile]:
    """Every file, or one BuildError naming the first failure and how many more failed."""
    errors: list[str] = []
    out: dict[str, MirrorFile] = {}
    for name, fut in futures.items():
        try:
            out[name] = fut.result()
        except (BuildError, RuleError) as exc:
            errors.append(str(exc))
    if errors:
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise BuildError(errors[0] + more)
    return out


def _mirror_file(
    catalog: UpstreamCatalog, f: UpstreamFile, fetching: Future[Record]
) -> Future[MirrorFile]:
    def fetched(rec: Record) -> Future[MirrorFile]:
        nothing: Future[Record] = _done({})  # an empty record: no such companion blob
        wheel = f.filename.endswith(".whl")
        meta = catalog.wheel_metadata_async(f, rec["blob"]) if wheel else nothing
        prov = catalog.provenance_async(f, rec["sha256"]) if f.provenance_url else nothing
        both = _all([meta, prov])
        return _then(both, lambda r: _done(_as_mirror_file(f, rec, r[0] or None, r[1] or None)))

    return _then(fetching, fetched)


def _as_mirror_file(
    f: UpstreamFile, rec: Record, meta: Record | None, prov: Record | None = None
) -> MirrorFile:
    return MirrorFile(
        filename=f.filename,
        sha256=rec["sha256"],
        blake3=Digest.parse(rec["blob"]).hex,
        size=rec["size"],
        upload_time=f.upload_time,
        requires_python=f.requires_python,
        yanked=f.yanked,
        yanked_reason=f.yanked_reason,
        metadata_sha256=meta["sha256"] if meta else None,
        metadata_blake3=Digest.parse(meta["blob"]).hex if meta else None,
        provenance_sha256=prov["sha256"] if prov else None,
        provenance_blake3=Digest.parse(prov["blob"]).hex if prov else None,
    )


# -- futures plumbing -----------------------------------------------------------------------
# Callbacks run in the worker thread that completed a future; an exception escaping one is
# only logged by concurrent.futures, so each step catches and forwards it.


def _done(value: T) -> Future[T]:
    fut: Future[T] = Future()
    fut.set_result(value)
    return fut


def _forward(src: Future[T], dst: Future[T]) -> None:
    exc = src.exception()
    if exc is not None:
        dst.set_exception(exc)
    else:
        dst.set_result(src.result())


def _then(first: Future[T], step: Callable[[T], Future[R]]) -> Future[R]:
    """The future of ``step(first's result)``; an error in either ends in it."""
    out: Future[R] = Future()

    def go(done: Future[T]) -> None:
        try:
            exc = done.exception()
            if exc is not None:
                out.set_exception(exc)
                return
            step(done.result()).add_done_callback(lambda nxt: _forward(nxt, out))
        except BaseException as exc:  # noqa: BLE001 - forwarded to whoever waits on out
            out.set_exception(exc)

    first.add_done_callback(go)
    return out


def _all(futures: Sequence[Future[T]]) -> Future[list[T]]:
    """The list of results once every future is done; the first error otherwise."""
    out: Future[list[T]] = Future()
    left = [len(futures)]
    mutex = threading.Lock()

    def one(_: object) -> None:
        with mutex:
            left[0] -= 1
            if left[0] > 0:
                return
        errors = [e for e in (f.exception() for f in futures) if e is not None]
        if errors:
            out.set_exception(errors[0])
        else:
            out.set_result([f.result() for f in futures])

    if not futures:
        out.set_result([])
    for fut in futures:
        fut.add_done_callback(one)
    return out


# -- pages ----------------------------------------------------------------------------------


def start_renders(
    ex: Executor, store: Store, views: Sequence[View], files: Mapping[str, Future[MirrorFile]]
) -> dict[tuple[str, str], Future[Record]]:
    """(view id, project) → its rendered pages, each started once its files are in."""
    out: dict[tuple[str, str], Future[Record]] = {}
    for view in views:
        for name, filenames in view.projects.items():
            ready = _all([files[fn] for fn in sorted(filenames)])
            status = view.statuses.get(name, ("active", ""))
            out[(view.id, name)] = _then(ready, _renderer(ex, store, view.id, name, status))
    return out


def _renderer(
    ex: Executor, store: Store, view: str, name: str, status: tuple[str, str]
) -> Callable[[list[MirrorFile]], Future[Record]]:
    return lambda files: _render(ex, store, view, name, files, status=status)


def _render(
    ex: Executor,
    store: Store,
    view: str,
    name: str,
    files: Sequence[MirrorFile],
    *,
    status: tuple[str, str],
) -> Future[Record]:
    payload = canonical_json([f.to_json() for f in files])
    params: dict[str, object] = {"project": name}
    if status[0] != "active":
        params["status"] = list(status)
    node = Node(
        id=f"render:{view}:{name}",
        kind="render",
        version=RENDER_RULE_VERSION,
        params=params,
        inputs={"files": blake3_hex(payload)},
    )
    marks = {"status": status[0], "status_reason": status[1]}

    def run() -> Record:
        html = store.put_bytes(render_project_html(NormalizedName(name), files, **marks))
        js = store.put_bytes(render_project_json(NormalizedName(name), files, **marks))
        return {
            "blobs": [str(html.digest), str(js.digest)],
            "html": str(html.digest),
            "json": str(js.digest),
        }

    return ex.submit(node, run)


def _view_entries(
    store: Store,
    view: View,
    files: Mapping[str, MirrorFile],
    pages: Mapping[tuple[str, str], Future[Record]],
) -> dict[str, Digest]:
    entries: dict[str, Digest] = {}
    names = sorted(view.projects)
    prefix = view.prefix
    entries[f"{prefix}simple/index.html"] = store.put_bytes(
        render_index_html([NormalizedName(n) for n in names])
    ).digest
    entries[f"{prefix}simple/index.json"] = store.put_bytes(
        render_index_json([NormalizedName(n) for n in names])
    ).digest
    for name in names:
        rec = pages[(view.id, name)].result()
        base = f"{prefix}simple/{name}/"
        entries[base + "index.html"] = Digest.parse(rec["html"])
        entries[base + "index.json"] = Digest.parse(rec["json"])
        for fn in sorted(view.projects[name]):
            f = files[fn]
            entries[base + fn] = Digest("blake3", f.blake3)
            if f.metadata_blake3:
                entries[base + fn + ".metadata"] = Digest("blake3", f.metadata_blake3)
            if f.provenance_blake3:
                entries[base + fn + ".provenance"] = Digest("blake3", f.provenance_blake3)
    return entries


# -- the generation -------------------------------------------------------------------------


def start_tree(
    mirror: Path,
    store: Store,
    views: Sequence[View],
    files: Mapping[str, Future[MirrorFile]],
    pages: Mapping[tuple[str, str], Future[Record]],
    *,
    mode: Mode,
) -> TreeWriter:
    """Begin the next generation's tree: each file's entries (in every view that lists it)
    are linked as soon as the file is in, each project's pages as soon as they render.
    :func:`render_and_switch` completes it, or throws it away if nothing changed."""
    generations = mirror / "generations"
    generations.mkdir(parents=True, exist_ok=True)
    writer = TreeWriter(
        store, generations / f".tmp-{_next_number(generations)}-{os.getpid()}", mode=mode
    )
    where: dict[str, list[str]] = {}
    for view in views:
        for name, filenames in view.projects.items():
            for fn in filenames:
                where.setdefault(fn, []).append(f"{view.prefix}simple/{name}/")
    for fn, fut in files.items():
        fut.add_done_callback(_link_file(writer, where[fn]))
    for (view_id, name), rendering in pages.items():
        prefix = next(v.prefix for v in views if v.id == view_id)
        rendering.add_done_callback(_link_pages(writer, f"{prefix}simple/{name}/"))
    return writer


def _link_file(writer: TreeWriter, bases: list[str]) -> Callable[[Future[MirrorFile]], None]:
    def link(done: Future[MirrorFile]) -> None:
        if done.exception() is not None:
            return  # the build fails on it, and the tree is thrown away
        f = done.result()
        for base in bases:
            writer.add(base + f.filename, Digest("blake3", f.blake3))
            if f.metadata_blake3:
                writer.add(base + f.filename + ".metadata", Digest("blake3", f.metadata_blake3))
            if f.provenance_blake3:
                writer.add(base + f.filename + ".provenance", Digest("blake3", f.provenance_blake3))

    return link


def _link_pages(writer: TreeWriter, base: str) -> Callable[[Future[Record]], None]:
    def link(done: Future[Record]) -> None:
        if done.exception() is None:
            writer.add(base + "index.html", Digest.parse(done.result()["html"]))
            writer.add(base + "index.json", Digest.parse(done.result()["json"]))

    return link


def _next_number(generations: Path) -> int:
    numbers = [int(p.name) for p in generations.iterdir() if p.name.isdigit()]
    return max(numbers, default=0) + 1


def render_and_switch(
    mirror: Path,
    *,
    store: Store,
    views: Sequence[View],
    files: Mapping[str, MirrorFile],
    pages: Mapping[tuple[str, str], Future[Record]],
    mode: Mode,
    tree: TreeWriter | None = None,
) -> tuple[int, str, bool]:
    """Make the generation of ``views`` and switch the index to it: (number, manifest
    digest, whether a new generation was made — an unchanged tree makes none). ``tree``:
    the generation begun by :func:`start_tree`, completed here or thrown away (on an error
    too)."""
    try:
        return _switch(mirror, store, _all_entries(store, views, files, pages), mode, tree)
    except BaseException:
        if tree is not None:
            tree.discard()
        raise


def _all_entries(
    store: Store,
    views: Sequence[View],
    files: Mapping[str, MirrorFile],
    pages: Mapping[tuple[str, str], Future[Record]],
) -> dict[str, Digest]:
    entries: dict[str, Digest] = {}
    for view in views:
        entries.update(_view_entries(store, view, files, pages))
    return entries


def _switch(
    mirror: Path,
    store: Store,
    entries: dict[str, Digest],
    mode: Mode,
    tree: TreeWriter | None,
) -> tuple[int, str, bool]:
    manifest_blob = write_manifest(
        store,
        entries.values(),
        extra={
            "version": 1,
            "entries": {k: str(v) for k, v in sorted(entries.items())},
        },
    )
    digest = str(manifest_blob.digest)
    generations = mirror / "generations"
    generations.mkdir(exist_ok=True)
    current = current_generation(mirror)
    if current is not None and _generation_digest(generations / str(current)) == digest:
        if tree is not None:
            tree.discard()
        return current, digest, False
    n = _next_number(generations)
    entries["manifest.json"] = manifest_blob.digest
    # The root first: a generation directory never exists without the root that keeps its
    # blobs (a failed materialization leaves a root that the next build's n replaces).
    set_root(store, f"generation-{n}", manifest_blob.digest)
    if tree is not None:
        tree.commit(generations / str(n), entries)
    else:
        materialize(store, entries, generations / str(n), mode=mode)
    _install_server(mirror)
    switch_index(mirror, generations / str(n))
    return n, digest, True


def _generation_digest(gen: Path) -> str | None:
    try:
        return "blake3:" + blake3_hex((gen / "manifest.json").read_bytes())
    except OSError:
        return None


def _install_server(mirror: Path) -> None:
    src = Path(__file__).with_name("server.py")
    if src.exists():
        fsio.replace_file(mirror / "server.py", src.read_bytes())
