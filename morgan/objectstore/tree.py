"""A generation tree as the objects a bucket holds: keys, bytes, types, publish phases.

Layout under the bucket prefix (every link relative, so any endpoint or prefix works):

- ``files/<blake3>/<filename>``: each distribution file once, content-addressed and
  immutable; its PEP 658 ``.metadata`` beside it (``…/<filename>.metadata``);
- ``simple/…``, ``env/<name>/simple/…`` and the named indexes' ``indexes/<name>/…``
  (the same layout below each): every page as ``<dir>/index.html``,
  ``<dir>/index.json`` and the bare key ``<dir>/`` (HTML), with file links rewritten to
  point at ``files/`` relatively;
- ``index.html``: the human page (static: its search box cannot filter).

The tree is read from the folder itself (links or copies), not from build internals, so a
mirror made by ``morgan import`` publishes the same way as a built one.
"""

from __future__ import annotations

import html
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from urllib.parse import quote, unquote

from blake3 import blake3

from morgan.errors import MorganError
from store.folders import is_folder_object

HTML_TYPE = "text/html; charset=utf-8"
JSON_TYPE = "application/vnd.pypi.simple.v1+json"
PAGE_CACHE = "public, max-age=60"
FILE_CACHE = "public, max-age=31536000, immutable"
_HEX = re.compile(r"^[0-9a-f]{64}$")
_HREF = re.compile(r'href="([^"#]*)(#[^"]*)?"')
# Exact types by file name ending; never a Content-Encoding (clients hash what they get).
_FILE_TYPES = (
    (".whl.metadata", "text/plain; charset=utf-8"),
    (".whl", "application/zip"),
    (".zip", "application/zip"),
    (".tar.gz", "application/gzip"),
    (".tgz", "application/gzip"),
    (".tar.bz2", "application/x-bzip2"),
    (".tar.xz", "application/x-xz"),
    (".tar", "application/x-tar"),
)


class Phase(IntEnum):
    """Upload order: a page is written only after everything it links to."""

    FILE = 0
    PAGE = 1
    ROOT = 2  # simple/ and env/<name>/simple/: they link project pages
    HOME = 3  # the human page links the roots


@dataclass(frozen=True, slots=True)
class TreeObject:
    """One object to publish: its key (relative to the prefix) and where its bytes are."""

    key: str
    blake3: str  # hex of the bytes the object holds
    size: int
    content_type: str
    cache_control: str
    phase: Phase
    path: Path | None = None  # a file's bytes are read from here when uploading
    body: bytes | None = None  # a page's (rewritten) bytes

    def read(self) -> bytes:
        if self.body is not None:
            return self.body
        if self.path is None:
            raise ValueError(f"{self.key}: neither bytes nor a path")
        return self.path.read_bytes()


@dataclass(frozen=True, slots=True)
class Tree:
    """Every object of one generation, and the digest that names the generation."""

    digest: str  # blake3 hex of the sorted "key<TAB>blake3" lines
    objects: tuple[TreeObject, ...]


class TreeError(MorganError):
    """The mirror folder has no generation to publish, or a damaged one."""


def file_type(filename: str) -> str:
    """The Content-Type of a distribution file or ``.metadata``."""
    lower = filename.lower()
    for ending, kind in _FILE_TYPES:
        if lower.endswith(ending):
            return kind
    return "application/octet-stream"


def generation_dir(mirror: Path) -> Path:
    """The generation ``mirror/index`` points to; TreeError when there is none."""
    index = mirror / "index"
    if not index.is_dir():
        raise TreeError(
            f"{mirror}: no current generation (no {index}): run 'morgan build' or"
            " 'morgan import' first"
        )
    return index.resolve()


def _blob_digest(path: Path) -> tuple[str, int]:
    """blake3 hex and size of a tree entry: from the store link's name, else by hashing."""
    if path.is_symlink():
        name = path.readlink().name
        if _HEX.match(name):
            return name, path.stat().st_size
    h = blake3()
    size = 0
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def _walk(root: Path) -> Iterator[tuple[str, Path]]:
    """Every file of the tree; a link to a folder is entered only when it leads to a folder
    object of the store (``store/folders/<2 hex>/<hex>``: a project's shared folder)."""
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if _enter(Path(dirpath, d)))
        for name in sorted(filenames):
            full = Path(dirpath, name)
            yield full.relative_to(root).as_posix(), full


def _enter(folder: Path) -> bool:
    if not folder.is_symlink():
        return True
    return is_folder_object(os.path.realpath(folder))


def read_tree(
    generation: Path,
    human_page: bytes | None = None,
    *,
    under_prefix: bool = False,
    bare_keys: bool = True,
) -> Tree:
    """The objects of the generation at ``generation`` (a folder with ``simple/``).

    ``under_prefix``: the bucket prefix is not empty, so the human page also gets the bare
    key ``<prefix>/`` (an empty key does not exist). ``bare_keys=False`` leaves out every
    key that ends in ``/``: stores that keep objects as files (rclone's ``serve s3``) cannot
    hold ``<dir>/`` beside ``<dir>/index.html``; nginx then maps folders to ``index.html``.
    """
    if not (generation / "simple").is_dir():
        raise TreeError(f"{generation}: not a generation (no simple/ folder)")
    pages: dict[str, list[tuple[str, Path]]] = {}  # folder -> its index.* pages
    files: dict[str, dict[str, tuple[str, int, Path]]] = {}  # folder -> filename -> blob
    for rel, path in _walk(generation):
        if not (rel.startswith(("simple/", "env/", "indexes/"))):
            continue  # manifest.json and other build bookkeeping
        folder, _, name = rel.rpartition("/")
        if name in ("index.html", "index.json"):
            pages.setdefault(folder, []).append((name, path))
        else:
            hexd, size = _blob_digest(path)
            files.setdefault(folder, {})[name] = (hexd, size, path)
    objects: dict[str, TreeObject] = {}
    for entries in files.values():
        for name, (hexd, size, path) in entries.items():
            if name.endswith(".metadata") and name[: -len(".metadata")] in entries:
                owner = entries[name[: -len(".metadata")]][0]
            else:
                owner = hexd
            key = f"files/{owner}/{name}"
            objects[key] = TreeObject(
                key, hexd, size, file_type(name), FILE_CACHE, Phase.FILE, path=path
            )
    for folder, found in pages.items():
        depth = folder.count("/") + 1
        links = {
            name: "../" * depth + f"files/{hexd}/{name}"
            for name, (hexd, _, _) in files.get(folder, {}).items()
            if not name.endswith(".metadata")
        }
        is_root = folder == "simple" or folder.endswith("/simple")
        phase = Phase.ROOT if is_root else Phase.PAGE
        for name, path in found:
            body = _rewrite(path, name, links)
            kind = JSON_TYPE if name == "index.json" else HTML_TYPE
            bare = bare_keys and name == "index.html"
            keys = [f"{folder}/{name}"] + ([f"{folder}/"] if bare else [])
            for key in keys:
                objects[key] = _page(key, body, kind, phase)
    if human_page is not None:
        for key in ("index.html", "") if under_prefix and bare_keys else ("index.html",):
            objects[key] = _page(key, human_page, HTML_TYPE, Phase.HOME)
    listing = "".join(f"{k}\t{objects[k].blake3}\n" for k in sorted(objects))
    return Tree(blake3(listing.encode()).hexdigest(), tuple(objects[k] for k in sorted(objects)))


def _page(key: str, body: bytes, kind: str, phase: Phase) -> TreeObject:
    return TreeObject(key, blake3(body).hexdigest(), len(body), kind, PAGE_CACHE, phase, body=body)


def _rewrite(path: Path, name: str, links: dict[str, str]) -> bytes:
    """A page with each link to a sibling file pointed at that file's ``files/`` key."""
    data = path.read_bytes()
    if not links:
        return data
    if name == "index.json":
        page = json.loads(data)
        for entry in page.get("files", []):
            target = links.get(unquote(entry.get("url", "")))
            if target is not None:
                entry["url"] = quote(target, safe="/+!")
        text = json.dumps(page, sort_keys=True, ensure_ascii=False, indent=None) + "\n"
        return text.encode("utf-8")

    def sub(m: re.Match[str]) -> str:
        target = links.get(unquote(html.unescape(m.group(1))))
        if target is None:
            return m.group(0)
        return f'href="{html.escape(quote(target, safe="/+!"))}{m.group(2) or ""}"'

    return _HREF.sub(sub, data.decode("utf-8")).encode("utf-8")
