"""Air-gap bundles: one tar carrying a generation across, with only the blobs the other side lacks.

Layout (a plain, uncompressed ustar, deterministic: sorted, mtime 0, uid/gid 0, mode 0444;
blobs are already compressed archives, so gzip would cost time for little):

1. ``morgan-bundle.json`` — the header, first, so a reader knows everything before any
   blob: the generation's manifest digest, the digest of every object that generation
   needs (``objects``), and for each blob carried (``blobs``) its digest, size and sha256;
   the blake3 and size of each of ``mirror.toml``, ``mirror.lock``, ``server.py``.
2. those three files, then ``blobs/<blake3 hex>`` for each carried blob, in header order.

A delta (``--since``) leaves out what the other side already holds: every object of the
generation an old bundle carried (its header lists them), or every file and ``.metadata``
blob named by an old ``mirror.lock``. Pages and manifests are small and always carried
when in doubt.

Import streams each blob into the store with :meth:`Store.put_stream`, which checks size
and sha256 before the object appears, then compares blake3; it checks that every object
the generation needs is present; only then does it materialize the generation, set its GC
root, replace the copied files and switch ``index``. Any failure rejects the whole bundle:
the served index does not change (blobs already stored are unreferenced and ``morgan gc``
collects them). Member names are never used as paths: nothing is extracted.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import blake3

from morgan.errors import MorganError
from morgan.lock import Lock
from rules.materialize import Mode, check_entry_path, materialize, switch_index
from store.digest import Digest
from store.errors import StoreError
from store.lock import StoreLock
from store.manifests import manifest_digests
from store.objects import CHUNK_SIZE, Store
from store.roots import set_root

__all__ = [
    "BUNDLE_FORMAT",
    "BundleError",
    "ExportResult",
    "ImportResult",
    "export_bundle",
    "import_bundle",
    "objects_in_bundle",
    "objects_in_lock",
]

BUNDLE_FORMAT = "morgan-bundle-1"
HEADER = "morgan-bundle.json"
SIDE_FILES = ("mirror.toml", "mirror.lock", "server.py")
_MAX_SMALL = 256 << 20  # header and side files are read into memory: bound them


class BundleError(MorganError):
    """A bundle that cannot be written or imported; nothing visible has changed."""

    exit_code = 1


@dataclass(frozen=True, slots=True)
class ExportResult:
    generation: str  # the manifest digest
    blobs: int
    blob_bytes: int
    total_objects: int
    total_bytes: int
    bundle_bytes: int


@dataclass(frozen=True, slots=True)
class ImportResult:
    generation: str
    number: int  # the generation folder's number
    changed: bool  # False: the mirror already served this generation
    blobs: int
    blob_bytes: int


# -- export ---------------------------------------------------------------------------------


def objects_in_lock(lock: Lock) -> frozenset[Digest]:
    """Every file and ``.metadata`` blob an old ``mirror.lock`` names."""
    found: set[Digest] = set()
    for release in lock.releases:
        for f in release.files:
            found.add(Digest("blake3", f.blake3))
            if f.metadata_blake3:
                found.add(Digest("blake3", f.metadata_blake3))
    return frozenset(found)


def objects_in_bundle(path: Path) -> frozenset[Digest]:
    """Every object the generation of an old bundle needs (all present after its import)."""
    with _open_tar(path) as tar:
        header = _read_header(tar, path)
    return frozenset(Digest.parse(d) for d in header["objects"])


def current_generation(mirror: Path) -> tuple[Path, Digest]:
    """The folder ``mirror/index`` points at and the digest of its manifest."""
    index = mirror / "index"
    try:
        gen = index.resolve(strict=True)
        data = (gen / "manifest.json").read_bytes()
    except OSError:
        raise BundleError(
            f"{mirror}: no current generation (index/manifest.json) — run 'morgan build' first"
        ) from None
    return gen, Digest("blake3", blake3.blake3(data).hexdigest())


def export_bundle(
    mirror: Path, output: Path, *, since: frozenset[Digest] = frozenset()
) -> ExportResult:
    """Write the current generation of ``mirror`` to ``output``, leaving out ``since``.

    The mirror's own copies of ``mirror.toml`` and ``mirror.lock`` (those that built the
    generation) travel with it. The tar is written beside ``output`` and renamed into place.
    """
    store = Store(mirror / "store")
    with StoreLock(store.root).shared(timeout=0):
        _gen, manifest = current_generation(mirror)
        objects = sorted(manifest_digests(store, manifest))
        carried = [d for d in objects if d not in since or d == manifest]
        sides = {name: _read_side(mirror / name) for name in SIDE_FILES}
        blobs = [_describe(store, d) for d in carried]
        header = {
            "format": BUNDLE_FORMAT,
            "generation": str(manifest),
            "objects": [str(d) for d in objects],
            "blobs": blobs,
            "files": {
                name: {"blake3": blake3.blake3(data).hexdigest(), "size": len(data)}
                for name, data in sides.items()
            },
        }
        tmp = output.with_name(f".{output.name}.tmp-{os.getpid()}")
        try:
            with tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as tar:
                _add_bytes(tar, HEADER, json.dumps(header, indent=1, sort_keys=True).encode())
                for name, data in sides.items():
                    _add_bytes(tar, name, data)
                for d in carried:
                    with store.open(d) as handle:
                        tar.addfile(_member(f"blobs/{d.hex}", store.size(d)), handle)
            tmp.replace(output)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise BundleError(
                f"{output}: cannot write the bundle ({exc.strerror or exc}) — check the folder "
                "exists, is writable and has space"
            ) from None
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    return ExportResult(
        generation=str(manifest),
        blobs=len(carried),
        blob_bytes=sum(b["size"] for b in blobs),
        total_objects=len(objects),
        total_bytes=sum(store.size(d) for d in objects),
        bundle_bytes=output.stat().st_size,
    )


def _read_side(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise BundleError(f"{path}: missing from the mirror — run 'morgan build' first") from None


def _describe(store: Store, digest: Digest) -> dict[str, Any]:
    sha = hashlib.sha256()
    size = 0
    with store.open(digest) as handle:
        while chunk := handle.read(CHUNK_SIZE):
            sha.update(chunk)
            size += len(chunk)
    return {"digest": str(digest), "size": size, "sha256": sha.hexdigest()}


def _member(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o444
    info.mtime = 0
    info.uname = info.gname = ""
    return info


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    tar.addfile(_member(name, len(data)), io.BytesIO(data))


# -- import ---------------------------------------------------------------------------------


def _open_tar(path: Path) -> tarfile.TarFile:
    try:
        # Stream mode: members are read in order, once; nothing is seeked or extracted.
        return tarfile.open(path, "r|")
    except FileNotFoundError:
        raise BundleError(f"{path}: no such bundle — check the path") from None
    except (tarfile.TarError, OSError) as exc:
        raise BundleError(f"{path}: not a morgan bundle ({exc}) — export it again") from None


def _next_member(tar: tarfile.TarFile, path: Path) -> tarfile.TarInfo | None:
    try:
        return tar.next()
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise BundleError(
            f"{path}: truncated or corrupt ({exc}) — nothing was imported; copy the bundle again"
        ) from None


def _read_small(tar: tarfile.TarFile, member: tarfile.TarInfo, path: Path) -> bytes:
    if not member.isfile() or member.size > _MAX_SMALL:
        raise BundleError(f"{path}: member {member.name!r} is not a small regular file")
    handle = tar.extractfile(member)
    if handle is None:
        raise BundleError(f"{path}: member {member.name!r} has no content")
    try:
        data = handle.read()
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise BundleError(
            f"{path}: truncated or corrupt ({exc}) — nothing was imported; copy the bundle again"
        ) from None
    if len(data) != member.size:
        raise BundleError(
            f"{path}: truncated in {member.name!r} — nothing was imported; copy the bundle again"
        )
    return data


def _read_header(tar: tarfile.TarFile, path: Path) -> dict[str, Any]:
    first = _next_member(tar, path)
    if first is None or first.name != HEADER:
        raise BundleError(f"{path}: does not start with {HEADER} — not a morgan bundle")
    try:
        header = json.loads(_read_small(tar, first, path))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{path}: {HEADER} is not JSON ({exc}) — export it again") from None
    if not isinstance(header, dict) or header.get("format") != BUNDLE_FORMAT:
        raise BundleError(
            f"{path}: format {header.get('format') if isinstance(header, dict) else None!r}, "
            f"expected {BUNDLE_FORMAT!r} — export it with a matching morgan version"
        )
    return header


def import_bundle(path: Path, mirror: Path, *, mode: Mode = "symlink") -> ImportResult:
    """Verify every blob of the bundle at ``path`` into ``mirror``'s store, then switch.

    Raises :class:`BundleError` (one line) on any corrupt, truncated or foreign content and
    when the mirror lacks an object a delta bundle assumes; the served index is unchanged.
    """
    mirror.mkdir(parents=True, exist_ok=True)
    store = Store(mirror / "store")
    with StoreLock(store.root).exclusive(timeout=0), _open_tar(path) as tar:
        header = _read_header(tar, path)
        try:
            manifest = Digest.parse(header["generation"])
            objects = [Digest.parse(d) for d in header["objects"]]
            blobs = {
                Digest.parse(b["digest"]): (int(b["size"]), str(b["sha256"]))
                for b in header["blobs"]
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
        sides = _stream_members(tar, path, store, blobs, files)
    missing = [d for d in objects if not store.has(d)]
    if missing or manifest not in set(objects):
        raise BundleError(f"{path}: the generation needs {missing[:1] or [manifest]}, absent")
    entries = _generation_entries(store, manifest, path)
    return _switch(store, mirror, manifest, entries=entries, sides=sides, mode=mode, blobs=blobs)


def _stream_members(
    tar: tarfile.TarFile,
    path: Path,
    store: Store,
    blobs: Mapping[Digest, tuple[int, str]],
    files: Mapping[str, tuple[str, int]],
) -> dict[str, bytes]:
    sides: dict[str, bytes] = {}
    seen: set[Digest] = set()
    while (member := _next_member(tar, path)) is not None:
        name = member.name
        if name in files and name not in sides:
            data = _read_small(tar, member, path)
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
    entries["manifest.json"] = manifest
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
    generations = mirror / "generations"
    generations.mkdir(exist_ok=True)
    carried = sum(size for size, _ in blobs.values())
    try:
        gen, current = current_generation(mirror)
    except BundleError:
        gen, current = None, None
    if gen is not None and current == manifest:
        _write_sides(mirror, sides)
        return ImportResult(str(manifest), int(gen.name), False, len(blobs), carried)
    numbers = [int(p.name) for p in generations.iterdir() if p.name.isdigit()]
    n = max(numbers, default=0) + 1
    try:
        materialize(store, entries, generations / str(n), mode=mode)
        set_root(store, f"generation-{n}", manifest)
        _write_sides(mirror, sides)
        switch_index(mirror, generations / str(n))
    except OSError as exc:
        raise BundleError(
            f"{mirror}: cannot write generation {n} ({exc.strerror or exc}) — free space or fix "
            "permissions and import again; the previous index is still served"
        ) from None
    return ImportResult(str(manifest), n, True, len(blobs), carried)


def _write_sides(mirror: Path, sides: Mapping[str, bytes]) -> None:
    for name, data in sides.items():
        tmp = mirror / f".{name}.tmp-{os.getpid()}"
        tmp.write_bytes(data)
        tmp.replace(mirror / name)
