"""The blob store: immutable blake3-addressed files under ``objects/ab/<hex>``.

Write protocol (git / Nix / Bazel): stream into a uniquely named file in ``tmp/`` (same
filesystem), hashing blake3 and sha256 in the same pass with fixed-size chunks, so memory
stays constant for any size; check the expected size and sha256; fsync; ``chmod 0444``;
hard-link into ``objects/ab/<hex>`` (an existing object has the same content: success);
remove the temp file. A reader therefore sees a complete object or none, and a killed
writer leaves only a temp file, which :func:`store.gc.collect` removes once it is older
than the grace period. A small blob of a known size (at most :data:`SMALL` bytes: pages,
metadata, most files of an index) is read whole and written into an unnamed file instead
(``O_TMPFILE``, where the system has it), created read-only and linked into place: no
temporary name, and a killed writer leaves nothing. The fsync of the fan-out folder that
makes a new name durable is left to :func:`store.fsio.sync_names`, which runs before
anything durable names a blob (a GC root, the switch), once for all of them.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import blake3

from store import fsio, streams
from store.digest import ALGORITHM, Digest
from store.errors import IntegrityError, MissingObjectError
from store.streams import copy_hashed

if TYPE_CHECKING:
    from _typeshed import SupportsRead

    from store.lock import StoreLock

CHUNK_SIZE = streams.CHUNK_SIZE  # readers use the writers' chunk size
_SHA256 = re.compile(r"[0-9a-f]{64}")
_FANOUT = re.compile(r"[0-9a-f]{2}")
# link() is refused by filesystems without hard links; rename() is then the atomic move.
_NO_HARDLINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS}


@dataclass(frozen=True, slots=True)
class Blob:
    """A stored object: its content address, size in bytes and sha256 (lowercase hex)."""

    digest: Digest
    size: int
    sha256: str


class Store:
    """A content-addressed store rooted at ``root`` (``<mirror>/store``).

    Directories (``objects/``, ``tmp/``, ``actions/``, ``roots/``) are created on first
    write, so opening a store never writes and a read-only store can still be read.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.objects_dir = root / "objects"
        self.tmp_dir = root / "tmp"

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r})"

    def prepare(self) -> None:
        """Make a new store's folders at once, as their first writes would: the fan-out
        folders of blobs and action entries (:func:`store.fsio.prepare_fanouts`), ``tmp/``,
        ``traces/``, then the fan-out folders of folder objects. A cold build does this in
        a thread while it starts: otherwise the threads writing its first pages (their
        blobs, then their action entries and traces) all wait on these ``mkdir`` calls and
        fsyncs, on the path to every later request. The action cache counts a fan-out
        folder with nothing in it, in a store without a pack, as one with no entry to
        look up, as it does a missing one (:class:`store.actions.ActionCache`)."""
        fsio.prepare_fanouts(self.root / area for area in ("objects", "actions"))
        for folder in (self.tmp_dir, self.root / "traces"):
            fsio.make_dir(folder)
        fsio.prepare_fanouts([self.root / "folders"])

    def lock(self) -> StoreLock:
        """The build/gc lock of this store (see :class:`store.lock.StoreLock`)."""
        from store.lock import StoreLock

        return StoreLock(self.root)

    # -- writing ---------------------------------------------------------------------------

    def put_stream(
        self,
        readable: BinaryIO | SupportsRead[bytes],
        *,
        expect_sha256: str | None = None,
        expect_size: int | None = None,
        durable: bool = True,
        overlap: bool = True,
    ) -> Blob:
        """Store everything ``readable.read()`` yields, in constant memory; return the blob.

        With ``expect_size`` / ``expect_sha256``, a stream that does not match raises
        :class:`IntegrityError` ("expected sha256 X, got Y") and leaves nothing behind; a
        stream longer than ``expect_size`` is abandoned as soon as that is known. Storing
        content that is already present succeeds and returns the same blob. Write failures
        raise ``DiskFullError``, ``ReadOnlyStoreError`` or ``StoreError``; an exception from
        ``readable`` propagates unchanged. In every failure case no object appears and the
        temp file is removed.

        ``durable=False`` skips the fsync of the blob and of its folder, for a blob that is
        only a cache of upstream which no index entry names (a normalized project page): a
        power cut may then leave it torn, so its readers check it (:meth:`read_verified`)
        and the next store of the same content repairs it.

        ``overlap=False`` copies a large stream in the calling thread alone, without the
        threads that hash and write it beside the reads (see :mod:`store.streams`).
        """
        want_sha256 = _check_sha256(expect_sha256)
        if expect_size is not None and expect_size < 0:
            raise ValueError(f"expect_size must be >= 0, not {expect_size}")
        if expect_size is not None and expect_size <= SMALL:
            # Small and of a known size (most files of an index): read whole, then written
            # as bytes at hand are (_write).
            data = _read_small(readable, expect_size)
            blob = Blob(Digest.of(data), len(data), hashlib.sha256(data).hexdigest())
            _check(blob, want_sha256, expect_size)
            return self._write(data, blob, durable=durable)
        return self._put_via_temp(
            lambda fd, tmp: _stream_into(
                fd, tmp, readable, want_sha256, expect_size, overlap=overlap
            ),
            durable=durable,
        )

    def put_bytes(
        self,
        data: bytes,
        *,
        expect_sha256: str | None = None,
        expect_size: int | None = None,
        durable: bool = True,
    ) -> Blob:
        """Store ``data`` (see :meth:`put_stream` for the checks, errors and ``durable``).

        Content already present is not written again: re-storing an unchanged page costs
        one hash and one ``stat``.
        """
        want_sha256 = _check_sha256(expect_sha256)
        sha256 = hashlib.sha256(data).hexdigest()
        blob = Blob(Digest.of(data), len(data), sha256)
        matches = (expect_size is None or expect_size == blob.size) and (
            want_sha256 is None or want_sha256 == sha256
        )
        if matches and self._holds(blob, durable=durable):
            if durable:  # its name may be one a killed writer left unsynced
                fsio.name_later(self.path(blob.digest).parent)
            return blob
        if not matches:  # the checks and their messages are put_stream's
            return self.put_stream(
                io.BytesIO(data),
                expect_sha256=expect_sha256,
                expect_size=expect_size,
                durable=durable,
            )

        return self._write(data, blob, durable=durable)

    def _write(self, data: bytes, blob: Blob, *, durable: bool) -> Blob:
        """Store ``data``, hashed and checked already as ``blob``: a small one through an
        unnamed file (:func:`store.fsio.create_unnamed`), else through a named one."""
        if len(data) <= SMALL:
            fd = fsio.create_unnamed(self.tmp_dir)
            if fd is not None:
                try:
                    return self._put_unnamed(fd, data, blob, durable=durable)
                except _NoLinks:
                    fsio.unnamed_failed()

        # Hashed already: one write, no second pass over the bytes (a 7 MB page).
        def write(fd: int, tmp: Path) -> Blob:
            try:
                fsio.write_all(fd, data)
            except OSError as exc:
                raise fsio.write_error(exc, tmp) from exc
            return blob

        return self._put_via_temp(write, durable=durable)

    def _put_unnamed(self, fd: int, data: bytes, blob: Blob, *, durable: bool) -> Blob:
        """``data`` written into the unnamed file ``fd`` (closed here), synced unless not
        ``durable`` and linked into place; its folder's fsync is left to
        :func:`store.fsio.sync_names` (see there). :class:`_NoLinks` when this filesystem
        cannot link it (nothing is left behind: the caller writes a named file instead)."""
        target = self.path(blob.digest)
        try:
            try:
                fsio.write_all(fd, data)
                if durable:
                    os.fsync(fd)
                if not fsio.READ_ONLY_AT_CREATION:
                    os.fchmod(fd, 0o444)
            except OSError as exc:
                raise fsio.write_error(exc, self.tmp_dir) from exc
            try:
                fsio.in_fanout(lambda: fsio.link_unnamed(fd, target), target.parent)
            except FileExistsError:
                # Same name, same content -- unless an earlier object was truncated on
                # disk: replaced then (through a temporary name: an unnamed file cannot be
                # renamed over it).
                if not self._holds(blob, durable=durable):
                    self._replace_with_unnamed(fd, target)
            except OSError as exc:
                if exc.errno in _NO_HARDLINKS or exc.errno == errno.ENOENT:
                    raise _NoLinks from exc  # ENOENT: no /proc/self/fd after all
                raise fsio.write_error(exc, target) from exc
        finally:
            _close(fd, self.tmp_dir)
        if durable:
            fsio.name_later(target.parent)
        return blob

    def _replace_with_unnamed(self, fd: int, target: Path) -> None:
        tmp = self.tmp_dir / fsio.temp_name()
        try:
            try:
                fsio.link_unnamed(fd, tmp)
                tmp.replace(target)
            except OSError as exc:
                raise fsio.write_error(exc, target) from exc
        finally:
            fsio.discard(tmp)

    def _put_via_temp(self, fill: Callable[[int, Path], Blob], *, durable: bool) -> Blob:
        """The blob ``fill`` writes into a new temporary file (given its descriptor and
        path), made read-only, synced unless not ``durable``, and linked into place."""
        fd, tmp = fsio.create_temp(self.tmp_dir)
        try:
            try:
                blob = fill(fd, tmp)
                _sync_readonly(fd, tmp, durable=durable)
            finally:
                _close(fd, tmp)
            self._link_into_place(tmp, blob, durable=durable)
        finally:
            fsio.discard(tmp)
        return blob

    def _holds(self, blob: Blob, *, durable: bool = True) -> bool:
        """Whether the object is there whole: by its size, or (a blob written without fsync,
        which a power cut may have torn to the right size) by its content."""
        try:
            if durable:
                return self.path(blob.digest).stat().st_size == blob.size
            return self._sound(blob.digest)
        except FileNotFoundError:
            return False

    def _sound(self, digest: Digest) -> bool:
        hasher = blake3.blake3()
        with self.path(digest).open("rb") as f:
            while chunk := f.read(CHUNK_SIZE):
                hasher.update(chunk)
        return hasher.hexdigest() == digest.hex

    def _link_into_place(self, tmp: Path, blob: Blob, *, durable: bool = True) -> None:
        target = self.path(blob.digest)

        def place() -> None:
            try:
                os.link(tmp, target)
            except FileExistsError:
                raise
            except OSError as exc:
                if exc.errno not in _NO_HARDLINKS:
                    raise
                tmp.replace(target)

        try:
            try:
                fsio.in_fanout(place, target.parent)
            except FileExistsError:
                # Same name, same content -- unless an earlier object was truncated on disk;
                # a size check is free, so such a blob is repaired here by replacing it.
                if not self._holds(blob, durable=durable):
                    tmp.replace(target)
        except OSError as exc:
            raise fsio.write_error(exc, target) from exc
        if durable:
            fsio.name_later(target.parent)  # the folder's fsync: fsio.sync_names

    def remove(self, digest: Digest) -> int:
        """Delete an object (for gc and repair); return the bytes freed (0 if absent)."""
        path = self.path(digest)
        return fsio.remove_file(path)

    # -- reading ---------------------------------------------------------------------------

    def relpath(self, digest: Digest) -> str:
        """``"objects/ab/<hex>"``: where the object lives, relative to :attr:`root`."""
        return f"objects/{digest.hex[:2]}/{digest.hex}"

    def path(self, digest: Digest) -> Path:
        """The absolute path of the object (which may not exist)."""
        return self.objects_dir.joinpath(digest.hex[:2], digest.hex)

    def has(self, digest: Digest) -> bool:
        """Whether the store holds an object under ``digest`` (its content is not read)."""
        # (os.path on a string: a manifest checks every blob it lists, 31 700 at 5 000
        # projects, and a Path made and stat-ed per blob costs twice as much)
        hex_ = digest.hex
        return os.path.isfile(f"{self.objects_dir}/{hex_[:2]}/{hex_}")  # noqa: PTH113

    def __contains__(self, digest: object) -> bool:
        return isinstance(digest, Digest) and self.has(digest)

    def open(self, digest: Digest) -> BinaryIO:
        """Open the object for reading; :class:`MissingObjectError` if it is absent."""
        try:
            return self.path(digest).open("rb")
        except FileNotFoundError:
            raise self._missing(digest) from None

    def read_bytes(self, digest: Digest) -> bytes:
        """The whole content of the object (for small blobs: pages, metadata, manifests)."""
        with self.open(digest) as f:
            return f.read()

    def read_runs(self, digest: Digest, size: int = 1 << 20) -> Iterator[bytes]:
        """The content of the object in runs of at most ``size`` bytes (a large blob copied
        elsewhere is never held whole); :class:`MissingObjectError` if it is absent, when
        the first run is asked for."""
        with self.open(digest) as f:
            while run := f.read(size):
                yield run

    def read_verified(self, digest: Digest) -> bytes:
        """The whole content of the object, checked against its name: a blob stored with
        ``durable=False`` may have been torn by a power cut. :class:`IntegrityError` if
        it does not match (:class:`MissingObjectError` if it is absent)."""
        data = self.read_bytes(digest)
        if blake3.blake3(data).hexdigest() != digest.hex:
            raise IntegrityError(
                f"object {digest} is damaged ({self.path(digest)}): it is fetched again by"
                " the next build with network access"
            )
        return data

    def size(self, digest: Digest) -> int:
        """The object's size in bytes; :class:`MissingObjectError` if it is absent."""
        try:
            return self.path(digest).stat().st_size
        except FileNotFoundError:
            raise self._missing(digest) from None

    def verify(self, digest: Digest) -> None:
        """Re-hash the object; raise :class:`IntegrityError` if it does not match its name."""
        hasher = blake3.blake3()
        with self.open(digest) as f:
            while chunk := f.read(CHUNK_SIZE):
                hasher.update(chunk)
        actual = hasher.hexdigest()
        if actual != digest.hex:
            raise IntegrityError(
                f"object {digest} is corrupt: expected {digest}, got {ALGORITHM}:{actual}"
                f" ({self.path(digest)}): delete it and fetch it again"
            )

    def __iter__(self) -> Iterator[Digest]:
        """Every object's digest, sorted; stray files that are not objects are skipped."""
        try:
            fanouts = sorted(p for p in self.objects_dir.iterdir() if _FANOUT.fullmatch(p.name))
        except FileNotFoundError:
            return
        for fanout in fanouts:
            for entry in sorted(os.scandir(fanout), key=lambda e: e.name):
                if entry.name.startswith(fanout.name) and entry.is_file(follow_symlinks=False):
                    with contextlib.suppress(ValueError):  # a stray file, not an object
                        yield Digest(ALGORITHM, entry.name)

    def _missing(self, digest: Digest) -> MissingObjectError:
        return MissingObjectError(
            f"object {digest} is missing from the store {self.root}: fetch or import it again"
        )


class _NoLinks(Exception):  # noqa: N818 - internal signal
    """An unnamed file could not be linked on this filesystem."""


# Blobs up to this size, of a known size, are read whole and written from memory through
# an unnamed file: pages, metadata and most files of an index.
SMALL = 4 * CHUNK_SIZE


def _read_small(readable: BinaryIO | SupportsRead[bytes], expect_size: int) -> bytes:
    """Everything ``readable`` yields, at most ``expect_size`` bytes (:class:`IntegrityError`
    as soon as it yields more, as :func:`store.streams.copy_hashed` says it)."""
    chunks: list[bytes] = []
    size = 0
    while chunk := readable.read(CHUNK_SIZE):
        size += len(chunk)
        if size > expect_size:
            raise IntegrityError(
                f"expected size {expect_size} bytes, got more than {expect_size} bytes"
            )
        chunks.append(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _check(blob: Blob, expect_sha256: str | None, expect_size: int | None) -> None:
    if expect_size is not None and blob.size != expect_size:
        raise IntegrityError(f"expected size {expect_size} bytes, got {blob.size} bytes")
    if expect_sha256 is not None and blob.sha256 != expect_sha256:
        raise IntegrityError(f"expected sha256 {expect_sha256}, got {blob.sha256}")


def _check_sha256(value: str | None) -> str | None:
    if value is None:
        return None
    lowered = value.lower()
    if not _SHA256.fullmatch(lowered):
        raise ValueError(f"expect_sha256 {value!r} is not 64 hex digits")
    return lowered


def _stream_into(
    fd: int,
    tmp: Path,
    readable: BinaryIO | SupportsRead[bytes],
    expect_sha256: str | None,
    expect_size: int | None,
    *,
    overlap: bool = True,
) -> Blob:
    """Copy ``readable`` into ``fd`` (:func:`store.streams.copy_hashed`); check what was asked."""
    size, b3, sha256 = copy_hashed(fd, tmp, readable, expect_size, overlap=overlap)
    if expect_size is not None and size != expect_size:
        raise IntegrityError(f"expected size {expect_size} bytes, got {size} bytes")
    if expect_sha256 is not None and sha256 != expect_sha256:
        raise IntegrityError(f"expected sha256 {expect_sha256}, got {sha256}")
    return Blob(Digest(ALGORITHM, b3), size, sha256)


def _close(fd: int, tmp: Path) -> None:
    try:
        os.close(fd)
    except OSError as exc:  # NFS and quota filesystems report a full disk at close
        raise fsio.write_error(exc, tmp) from exc


def _sync_readonly(fd: int, tmp: Path, *, durable: bool) -> None:
    try:
        if durable:
            os.fsync(fd)
        os.fchmod(fd, 0o444)
    except OSError as exc:
        raise fsio.write_error(exc, tmp) from exc
