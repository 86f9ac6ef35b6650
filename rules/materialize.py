"""A tree manifest (relative path -> blob digest) made real as a generation directory.

Entries become relative symlinks into ``store/objects`` (or copies / hard links for
filesystems and OSes without symlinks). The tree is built under a temporary name next to
its final place and renamed into place only when complete, so no reader ever sees half a
generation.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath
from typing import Literal

from rules.errors import RuleError
from store.digest import Digest
from store.objects import Store

Mode = Literal["symlink", "copy", "hardlink"]

_THREADS = 4
_SAFE_PART = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._+!~-]*$")


def check_entry_path(rel: str) -> PurePosixPath:
    """Refuse any manifest path that could leave the generation (``..``, absolute, odd chars)."""
    path = PurePosixPath(rel)
    if path.is_absolute() or not path.parts or not all(_SAFE_PART.match(p) for p in path.parts):
        raise RuleError(f"refusing unsafe path {rel!r} in a generation manifest")
    return path


def materialize(
    store: Store, entries: Mapping[str, Digest], final: Path, *, mode: Mode = "symlink"
) -> None:
    """Create directory ``final`` holding ``entries``; atomic: all or nothing."""
    tmp = final.with_name(f".tmp-{final.name}-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    # Entries grouped by folder: each folder is made once, and folders are filled by a few
    # threads (link and copy calls release the GIL; a busy journal then costs less).
    folders: dict[tuple[str, ...], list[tuple[str, Digest]]] = {}
    for rel in sorted(entries):
        parts = check_entry_path(rel).parts
        folders.setdefault(parts[:-1], []).append((parts[-1], entries[rel]))
    # Links are relative to the FINAL location (tmp sits at the same depth): from a folder
    # N levels inside the generation, the objects folder is N levels up, then this path.
    objects = os.path.relpath(store.objects_dir, final)

    def fill(folder: tuple[str, ...]) -> None:
        where = tmp.joinpath(*folder)
        where.mkdir(parents=True, exist_ok=True)
        up = "../" * len(folder)
        for name, digest in folders[folder]:
            target = where / name
            if mode == "symlink":
                target.symlink_to(f"{up}{objects}/{digest.hex[:2]}/{digest.hex}")
            elif mode == "hardlink":
                os.link(store.path(digest), target)
            else:
                shutil.copyfile(store.path(digest), target)
                target.chmod(0o444)

    try:
        with ThreadPoolExecutor(max_workers=_THREADS) as pool:
            list(pool.map(fill, folders))
        tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def switch_index(mirror: Path, generation: Path) -> None:
    """Point ``mirror/index`` at ``generation`` atomically (a new symlink renamed over it)."""
    link = mirror / "index"
    tmp = mirror / f".index.tmp-{os.getpid()}"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    tmp.symlink_to(os.path.relpath(generation, mirror))
    tmp.replace(link)
    fd = os.open(mirror, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
