"""GC roots: a name (one per kept generation, or a running build) -> a manifest digest.

A root is the file ``roots/<name>`` holding ``"blake3:<hex>\\n"``; a plain file rather
than a symlink so roots work on filesystems without symlinks and survive being copied.
Everything reachable from a root's manifest (see :func:`store.gc.manifest_digests`) is
live. A root file that cannot be read as a digest is an error, never ignored: ignoring it
would let gc delete what it protects.
"""

from __future__ import annotations

import re
from pathlib import Path

from store import fsio
from store.digest import Digest
from store.errors import StoreError
from store.objects import Store

_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")


def _root_path(store: Store, name: str) -> Path:
    if not _NAME.fullmatch(name):
        raise ValueError(
            f"bad root name {name!r}: use 1-128 letters, digits, '.', '_' or '-',"
            " not starting with '.' or '-'"
        )
    return store.root / "roots" / name


def set_root(store: Store, name: str, digest: Digest) -> None:
    """Point root ``name`` at ``digest`` atomically (creating or replacing it).

    The manifest blob should already be in the store: commit objects, then the manifest,
    then the root.
    """
    path = _root_path(store, name)
    fsio.atomic_write(store.tmp_dir, path, f"{digest}\n".encode("ascii"), mode=0o644)


def remove_root(store: Store, name: str) -> bool:
    """Delete root ``name``; return whether it existed."""
    path = _root_path(store, name)
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise fsio.write_error(exc, path) from exc
    fsio.fsync_dir(path.parent)
    return True


def roots(store: Store) -> dict[str, Digest]:
    """Every root, by name (sorted). Raises :class:`StoreError` naming a malformed root file."""
    directory = store.root / "roots"
    try:
        entries = sorted(directory.iterdir())
    except FileNotFoundError:
        return {}
    found: dict[str, Digest] = {}
    for path in entries:
        if not _NAME.fullmatch(path.name):
            continue  # not a root: e.g. an editor's backup or a stray dotfile
        try:
            text = path.read_text(encoding="ascii").strip()
            found[path.name] = Digest.parse(text)
        except (UnicodeDecodeError, ValueError, IsADirectoryError) as exc:
            raise StoreError(
                f"GC root {path} is not a digest ({exc}): restore it or remove it;"
                " nothing is collected while a root is unreadable"
            ) from None
    return found
