"""``morgan import``: verify every blob of a bundle into the store, then switch generations.

See :mod:`morgan.bundle` for the format. The bundle is read once, in order (tar stream
mode); each blob goes through :meth:`Store.put_stream`, which checks its size and sha256
before the object appears, then its blake3 name is compared; a delta's base objects must
already be in the store; only when everything is present is the generation materialized,
its GC root set, ``mirror.toml`` / ``mirror.lock`` / ``server.py`` replaced and ``index``
switched. Any failure raises :class:`BundleError` and leaves the served index unchanged.
"""

from __future__ import annotations

import dataclasses
import json
import tarfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import blake3

from morgan.bundle import (
    HEADER,
    SIDE_FILES,
    SIGNATURE,
    BundleError,
    next_member,
    open_bundle,
    read_raw_header,
    read_small,
)
from morgan.generations import current_generation, manifest_digest, next_number, publish
from morgan.signing import SignatureError, Signer, verify
from rules.lib.materialize import Mode, check_entry_path
from store import fsio
from store.digest import Digest
from store.errors import StoreError
from store.lock import StoreLock
from store.objects import Store

__all__ = ["ImportResult", "import_bundle"]


@dataclass(frozen=True, slots=True)
class ImportResult:
    generation: str
    number: int  # the generation folder's number
    changed: bool  # False: the mirror already served this generation
    blobs: int
    blob_bytes: int
    signer: Signer | None = None  # who signed, when checked against a trust file
    signed: bool = False  # the bundle carries a signature (checked only with a trust file)


def import_bundle(
    path: Path, mirror: Path, *, mode: Mode = "symlink", trust: Path | None = None
) -> ImportResult:
    """Verify every blob of the bundle at ``path`` into ``mirror``'s store, then switch.

    Raises :class:`BundleError` (one line) on any corrupt, truncated or foreign content and
    when the mirror lacks an object a delta bundle assumes; the served index is unchanged.
    With ``trust`` (an OpenSSH allowed_signers file) the bundle must carry a signature over
    its header by a key that file trusts: that is checked before anything is written, and
    :class:`~morgan.signing.SignatureError` refuses the bundle whole otherwise.
    """
    with open_bundle(path) as tar:
        header, raw = read_raw_header(tar, path)
        pending = next_member(tar, path)
        signer = signature = None
        if pending is not None and pending.name == SIGNATURE:
            signature = read_small(tar, pending, path)
            pending = next_member(tar, path)
            if trust is not None:
                signer = verify(raw, signature, trust, str(path))
        elif trust is not None:
            raise SignatureError(
                f"{path}: not signed, and --trust {trust} requires a signature by a key it "
                "lists — refused; export it with 'morgan export --sign KEY'"
            )
        mirror.mkdir(parents=True, exist_ok=True)
        store = Store(mirror / "store")
        with StoreLock(store.root).exclusive(timeout=0):
            result = _import_locked(
                tar, path, store=store, mirror=mirror, header=header, pending=pending, mode=mode
            )
    return dataclasses.replace(result, signer=signer, signed=signature is not None)


def _import_locked(
    tar: tarfile.TarFile,
    path: Path,
    *,
    store: Store,
    mirror: Path,
    header: dict[str, Any],
    pending: tarfile.TarInfo | None,
    mode: Mode,
) -> ImportResult:
    try:
        manifest = Digest.parse(header["generation"])
        objects = [Digest.parse(d) for d in header["objects"]]
        blobs = {
            Digest.parse(b["digest"]): (int(b["size"]), str(b["sha256"])) for b in header["blobs"]
        }
        files = {
            n: (str(header["files"][n]["blake3"]), int(header["files"][n]["size"]))
            for n in SIDE_FILES
        }
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"{path}: malformed {HEADER} ({exc}) — export it again") from None
    lacking = [d for d in objects if d not in blobs and not store.has(d)]
    if lacking:
        raise BundleError(
            f"{path}: a delta bundle, but this mirror lacks {len(lacking)} of the objects "
            f"it builds on (e.g. {lacking[0]}) — import the earlier bundle first, or "
            "export with --since this mirror's mirror.lock"
        )
    sides = _stream_members(tar, path, store=store, blobs=blobs, files=files, first=pending)
    missing = [d for d in objects if not store.has(d)]
    if missing or manifest not in set(objects):
        raise BundleError(f"{path}: the generation needs {missing[:1] or [manifest]}, absent")
    entries = _generation_entries(store, manifest, path)
    return _switch(store, mirror, manifest, entries=entries, sides=sides, mode=mode, blobs=blobs)


def _stream_members(
    tar: tarfile.TarFile,
    path: Path,
    *,
    store: Store,
    blobs: Mapping[Digest, tuple[int, str]],
    files: Mapping[str, tuple[str, int]],
    first: tarfile.TarInfo | None,
) -> dict[str, bytes]:
    """Store every listed blob, starting at ``member`` (the one after the header)."""
    sides: dict[str, bytes] = {}
    seen: set[Digest] = set()
    for member in _members(tar, path, first):
        name = member.name
        if name in files and name not in sides:
            data = read_small(tar, member, path)
            if (blake3.blake3(data).hexdigest(), len(data)) != files[name]:
                raise BundleError(
                    f"{path}: {name} does not match its digest — copy the bundle again"
                )
            sides[name] = data
            continue
        digest = _blob_name(name)
        if digest is None or digest not in blobs or digest in seen or not member.isfile():
            raise BundleError(f"{path}: unexpected member {name!r} — not a bundle morgan wrote")
        size, sha256 = blobs[digest]
        handle = tar.extractfile(member)
        if handle is None or member.size != size:
            raise BundleError(f"{path}: {name}: size {member.size}, header says {size}")
        try:
            blob = store.put_stream(_Checked(handle), expect_sha256=sha256, expect_size=size)
        except (StoreError, tarfile.TarError, EOFError) as exc:
            raise BundleError(
                f"{path}: blob {digest} is corrupt or truncated ({exc}) — nothing was "
                "imported; copy the bundle again"
            ) from None
        if blob.digest != digest:
            raise BundleError(f"{path}: blob {digest} has content {blob.digest} — corrupt bundle")
        seen.add(digest)
    absent = [str(d) for d in blobs if d not in seen] + [n for n in files if n not in sides]
    if absent:
        raise BundleError(
            f"{path}: truncated: {len(absent)} listed members missing (first: {absent[0]}) — "
            "nothing was imported; copy the bundle again"
        )
    return sides


def _members(
    tar: tarfile.TarFile, path: Path, first: tarfile.TarInfo | None
) -> Iterator[tarfile.TarInfo]:
    member = first
    while member is not None:
        yield member
        member = next_member(tar, path)


class _Checked:
    """A member's reader that turns a short read (a truncated tar) into an error."""

    def __init__(self, handle: IO[bytes]) -> None:
        self.handle = handle

    def read(self, size: int = -1) -> bytes:
        try:
            return self.handle.read(size)
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise EOFError(str(exc) or "unexpected end of data") from None


def _blob_name(name: str) -> Digest | None:
    prefix = "blobs/"
    if not name.startswith(prefix):
        return None
    try:
        return Digest("blake3", name[len(prefix) :])
    except ValueError:
        return None


def _generation_entries(store: Store, manifest: Digest, path: Path) -> dict[str, Digest]:
    try:
        data = json.loads(store.read_bytes(manifest))
        entries = {rel: Digest.parse(d) for rel, d in data["entries"].items()}
        for rel in entries:
            check_entry_path(rel)
    except (StoreError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise BundleError(f"{path}: the generation manifest is unusable ({exc})") from None
    absent = [d for d in entries.values() if not store.has(d)]
    if absent:
        raise BundleError(f"{path}: the generation lists {absent[0]}, which is not in the store")
    return entries


def _switch(
    store: Store,
    mirror: Path,
    manifest: Digest,
    *,
    entries: dict[str, Digest],
    sides: Mapping[str, bytes],
    mode: Mode,
    blobs: Mapping[Digest, tuple[int, str]],
) -> ImportResult:
    carried = sum(size for size, _ in blobs.values())
    current = current_generation(mirror)
    if current is not None and manifest_digest(mirror, current) == manifest:
        _write_sides(mirror, sides)
        return ImportResult(str(manifest), current, False, len(blobs), carried)
    n = next_number(mirror)
    try:
        publish(store, mirror, manifest, entries, mode=mode, sides=sides)
    except OSError as exc:
        raise BundleError(
            f"{mirror}: cannot write generation {n} ({exc.strerror or exc}) — free space or fix "
            "permissions and import again; the previous index is still served"
        ) from None
    return ImportResult(str(manifest), n, True, len(blobs), carried)


def _write_sides(mirror: Path, sides: Mapping[str, bytes]) -> None:
    for name, data in sides.items():
        fsio.replace_file(mirror / name, data)
