"""Air-gap bundles: one tar carrying a generation across, with only the blobs the other side lacks.

Layout (a plain, uncompressed ustar, deterministic: sorted, mtime 0, uid/gid 0, mode 0444;
blobs are already compressed archives, so gzip would cost time for little):

1. ``morgan-bundle.json`` — the header, first, so a reader knows everything before any
   blob: the generation's manifest digest, the digest of every object that generation
   needs (``objects``), and for each blob carried (``blobs``) its digest, size and sha256;
   the blake3 and size of each of ``mirror.toml``, ``mirror.lock``, ``server.py``.
2. ``morgan-bundle.json.sig`` when exported with ``--sign``: an OpenSSH signature over the
   header's exact bytes (:mod:`morgan.signing`), which therefore covers every blob.
3. those three files, then ``blobs/<blake3 hex>`` for each carried blob, in header order.

A delta (``--since``) leaves out what the other side already holds: every object of the
generation an old bundle carried (its header lists them), or every file and ``.metadata``
blob named by an old ``mirror.lock``. Pages and manifests are small and always carried
when in doubt.

Import (:mod:`morgan.bundle_import`) streams each blob into the store with
:meth:`Store.put_stream`, which checks size and sha256 before the object appears, then
compares blake3; it checks that every object the generation needs is present; only then
does it materialize the generation, set its GC root, replace the copied files and switch
``index``. Any failure rejects the whole bundle: the served index does not change (blobs
already stored are unreferenced and ``morgan gc``
collects them). Member names are never used as paths: nothing is extracted.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import blake3

from morgan.credentials import public_spec_text
from morgan.errors import MorganError
from morgan.generations import current_generation, manifest_digest
from morgan.lock import Lock
from store import fsio
from store.digest import Digest
from store.errors import StoreError
from store.lock import StoreLock
from store.manifests import manifest_digests
from store.objects import CHUNK_SIZE, Store

__all__ = [
    "BUNDLE_FORMAT",
    "BundleError",
    "ExportResult",
    "export_bundle",
    "next_member",
    "objects_in_bundle",
    "objects_in_lock",
    "open_bundle",
    "read_header",
    "read_raw_header",
    "read_small",
]

BUNDLE_FORMAT = "morgan-bundle-1"
HEADER = "morgan-bundle.json"
SIGNATURE = "morgan-bundle.json.sig"
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


# -- export ---------------------------------------------------------------------------------


def objects_in_lock(lock: Lock) -> frozenset[Digest]:
    """Every file, ``.metadata`` and ``.provenance`` blob an old ``mirror.lock`` names."""
    found: set[Digest] = set()
    for release in lock.releases:
        for f in release.files:
            found.add(Digest("blake3", f.blake3))
            if f.metadata_blake3:
                found.add(Digest("blake3", f.metadata_blake3))
            if f.provenance_blake3:
                found.add(Digest("blake3", f.provenance_blake3))
    return frozenset(found)


def objects_in_bundle(path: Path) -> frozenset[Digest]:
    """Every object the generation of an old bundle needs (all present after its import)."""
    with open_bundle(path) as tar:
        header = read_header(tar, path)
    return frozenset(Digest.parse(d) for d in header["objects"])


def served_manifest(mirror: Path) -> Digest:
    """The manifest digest of the generation ``mirror/index`` serves."""
    current = current_generation(mirror)
    digest = manifest_digest(mirror, current) if current is not None else None
    if digest is None:
        raise BundleError(
            f"{mirror}: no current generation (index/manifest.json) — run 'morgan build' first"
        )
    return digest


def export_bundle(
    mirror: Path,
    output: Path,
    *,
    since: frozenset[Digest] = frozenset(),
    sign: Callable[[bytes], bytes] | None = None,
) -> ExportResult:
    """Write the current generation of ``mirror`` to ``output``, leaving out ``since``.

    The mirror's own copies of ``mirror.toml`` and ``mirror.lock`` (those that built the
    generation) travel with it. ``sign`` turns the header's bytes into a signature carried
    next to it. The tar is written beside ``output`` and renamed into place.
    """
    store = Store(mirror / "store")
    with StoreLock(store.root).shared(timeout=0):
        manifest = served_manifest(mirror)
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
        header_bytes = json.dumps(header, indent=1, sort_keys=True).encode()
        signature = sign(header_bytes) if sign is not None else None
        try:
            with (
                fsio.replacing(output) as sink,
                tarfile.open(fileobj=sink, mode="w", format=tarfile.USTAR_FORMAT) as tar,
            ):
                _add_bytes(tar, HEADER, header_bytes)
                if signature is not None:
                    _add_bytes(tar, SIGNATURE, signature)
                for name, data in sides.items():
                    _add_bytes(tar, name, data)
                for d in carried:
                    with store.open(d) as handle:
                        tar.addfile(_member(f"blobs/{d.hex}", store.size(d)), handle)
        except (OSError, StoreError) as exc:
            cause = exc if isinstance(exc, OSError) else exc.__cause__
            reason = cause.strerror if isinstance(cause, OSError) and cause.strerror else exc
            raise BundleError(
                f"{output}: cannot write the bundle ({reason}) — check the folder "
                "exists, is writable and has space"
            ) from None
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
        data = path.read_bytes()
    except FileNotFoundError:
        raise BundleError(f"{path}: missing from the mirror — run 'morgan build' first") from None
    if path.name == "mirror.toml" and b"@" in data:
        # A mirror built before credentials were kept out of its copy: never bundle them.
        return public_spec_text(data.decode("utf-8", "replace")).encode("utf-8")
    return data


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


# -- reading ------------------------------------------------------------------------------


def open_bundle(path: Path) -> tarfile.TarFile:
    try:
        # Stream mode: members are read in order, once; nothing is seeked or extracted.
        return tarfile.open(path, "r|")
    except FileNotFoundError:
        raise BundleError(f"{path}: no such bundle — check the path") from None
    except (tarfile.TarError, OSError) as exc:
        raise BundleError(f"{path}: not a morgan bundle ({exc}) — export it again") from None


def next_member(tar: tarfile.TarFile, path: Path) -> tarfile.TarInfo | None:
    try:
        return tar.next()
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise BundleError(
            f"{path}: truncated or corrupt ({exc}) — nothing was imported; copy the bundle again"
        ) from None


def read_small(tar: tarfile.TarFile, member: tarfile.TarInfo, path: Path) -> bytes:
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


def read_header(tar: tarfile.TarFile, path: Path) -> dict[str, Any]:
    return read_raw_header(tar, path)[0]


def read_raw_header(tar: tarfile.TarFile, path: Path) -> tuple[dict[str, Any], bytes]:
    """The header, parsed, and its exact bytes (what a signature covers)."""
    first = next_member(tar, path)
    if first is None or first.name != HEADER:
        raise BundleError(f"{path}: does not start with {HEADER} — not a morgan bundle")
    raw = read_small(tar, first, path)
    try:
        header = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{path}: {HEADER} is not JSON ({exc}) — export it again") from None
    if not isinstance(header, dict) or header.get("format") != BUNDLE_FORMAT:
        raise BundleError(
            f"{path}: format {header.get('format') if isinstance(header, dict) else None!r}, "
            f"expected {BUNDLE_FORMAT!r} — export it with a matching morgan version"
        )
    return header, raw
