"""Folder objects: a folder of links to blobs, stored once by content, shared by generations.

A generation is a tree of relative links into ``objects/``. Most of its folders are leaves
(a project's page, its ``.metadata`` and its files, in the union and in each environment
view) and most of them are the same from one generation to the next: a new requirement
changes a few projects, not the thousands beside them. So a leaf folder is made once, under
``folders/<2 hex>/<blake3 of its entries>/``, and each generation holds one link to it
instead of a folder with a link per file. A generation then costs one link per leaf folder
and only the new folders' links, not one link per file.

A folder object is named by the blake3 of the canonical JSON of its entries (name -> blob
digest), made under a temporary name and renamed into place whole, never changed after.
Its links read ``../../../objects/<2 hex>/<hex>``. What keeps it alive is a generation
whose manifest has those entries in one folder: :func:`live_folders` computes the names from
the manifests, and :func:`collect_folders` removes the others (``morgan gc``).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path

from store import fsio
from store.digest import Digest, blake3_hex, canonical_json
from store.objects import Store

FOLDERS = "folders"
VERSION = 1
_HEX = re.compile(r"[0-9a-f]{64}")
_TMP = ".tmp-"
_serial = itertools.count()
READ_ONLY = 0o555


def folder_name(entries: Mapping[str, Digest]) -> str:
    """The name (64 hex digits) of the folder object holding ``entries`` (name -> blob)."""
    body = {"folder": VERSION, "entries": {k: str(v) for k, v in entries.items()}}
    return blake3_hex(canonical_json(body))


def folder_path(store: Store, name: str) -> Path:
    return store.root / FOLDERS / name[:2] / name


def make_folder(store: Store, entries: Mapping[str, Digest]) -> str:
    """The folder object of ``entries``, made if missing; its name."""
    name = folder_name(entries)
    final = folder_path(store, name)
    if final.is_dir():
        return name
    tmp = final.parent / f"{_TMP}{os.getpid()}-{next(_serial)}"
    try:
        fsio.in_fanout(tmp.mkdir, final.parent)
        for entry, digest in entries.items():
            (tmp / entry).symlink_to(f"../../../objects/{digest.hex[:2]}/{digest.hex}")
        tmp.chmod(READ_ONLY)  # shared by generations: never changed in place
        try:
            tmp.rename(final)
        except OSError:
            if not final.is_dir():  # not made meanwhile by another writer: a real error
                raise
            _remove(tmp)
    except OSError as exc:
        _remove(tmp)
        raise fsio.write_error(exc, final) from exc
    return name


def is_folder_object(real: str, folders: str | None = None) -> bool:
    """Whether the resolved path ``real`` is a folder object: ``<folders>/<2 hex>/<64 hex>``,
    under the folder ``folders`` when given (a store's), else any folder named ``folders``
    (a generation read without its store, as publishing does)."""
    parent, _, name = real.rpartition(os.sep)
    top, _, fan = parent.rpartition(os.sep)
    if not (_HEX.fullmatch(name) and fan == name[:2]):
        return False
    if folders is None:
        return top.rpartition(os.sep)[2] == FOLDERS
    return top == os.path.abspath(folders)  # noqa: PTH100 - plain strings: called per link


def leaf_folders(entries: Iterable[str]) -> dict[str, dict[str, str]]:
    """Tree paths grouped by folder, for the folders that hold only files (no sub-folder)
    and are not the tree's top: folder -> {name: path}. These are what folder objects hold."""
    by_folder: dict[str, dict[str, str]] = {}
    parents: set[str] = set()
    for rel in entries:
        folder, _, name = rel.rpartition("/")
        by_folder.setdefault(folder, {})[name] = rel
        while folder:
            folder = folder.rpartition("/")[0]
            parents.add(folder)
    return {f: names for f, names in by_folder.items() if f and f not in parents}


def live_folders(manifests: Iterable[Mapping[str, Digest]]) -> set[str]:
    """The folder objects that generations with these manifests' entries can link to."""
    live: set[str] = set()
    for entries in manifests:
        for names in leaf_folders(entries).values():
            live.add(folder_name({n: entries[rel] for n, rel in names.items()}))
    return live


def listed_folders(store: Store) -> frozenset[str]:
    """The names of the folder objects in the store (one listing per fan-out folder, no
    ``stat`` per folder; leftover temporary folders are not among them)."""
    names = fsio.fanout_names(store.root / FOLDERS)
    return frozenset(n for n in names if not n.startswith(_TMP))


def stored_folders(store: Store) -> list[Path]:
    """Every folder object and leftover temporary folder in the store."""
    root = store.root / FOLDERS
    found: list[Path] = []
    with contextlib.suppress(FileNotFoundError):
        for fan in sorted(os.scandir(root), key=lambda e: e.name):
            if fan.is_dir(follow_symlinks=False):
                found.extend(
                    Path(e.path) for e in sorted(os.scandir(fan.path), key=lambda e: e.name)
                )
    return found


def collect_folders(store: Store, live: set[str], *, dry_run: bool) -> list[str]:
    """Remove the folder objects not in ``live`` and leftovers of killed writers (the caller
    holds the store's exclusive lock); the names removed."""
    doomed = [p for p in stored_folders(store) if not (_HEX.fullmatch(p.name) and p.name in live)]
    if not dry_run:
        for path in doomed:
            try:
                path.chmod(0o755)  # read-only once made: entries cannot go otherwise
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise fsio.write_error(exc, path) from exc
            fsio.remove_tree(path)
    return [p.name for p in doomed]


def _remove(tmp: Path) -> None:
    with contextlib.suppress(OSError):
        tmp.chmod(0o755)
    shutil.rmtree(tmp, ignore_errors=True)
