"""Bounded, in-memory reading of a few named members of a hostile zip or tar archive.

Morgan never extracts an archive to disk and never uses a member name as a filesystem path:
members are looked up by name in a table built here. Everything that could make a small
archive cost a lot is capped by the module constants below, and every refusal is a
:class:`~rules.errors.MetadataError` naming the archive and the cause.

Members whose name is absolute, contains a ``..`` or empty component or a backslash, or
that are symlinks, hard links, devices or directories, are *ignored* for lookup: they can
never be what a caller asked for, so they are skipped rather than followed.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import stat
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Callable
from typing import BinaryIO, Protocol

from rules.errors import MetadataError

MAX_MEMBER_SIZE = 16 * 1024 * 1024
"""Largest uncompressed member (METADATA, PKG-INFO, pyproject.toml, requires.txt) we read."""

MAX_MEMBERS = 100_000
"""Most members scanned in one archive; a real sdist or wheel has far fewer."""

MAX_COMPRESSION_RATIO = 200
"""Largest uncompressed/compressed ratio accepted (text compresses ~5-20x; zeros ~1000x)."""

RATIO_FREE_BYTES = 64 * 1024 * 1024
"""Uncompressed bytes always allowed before the ratio guard applies (small archives)."""

MAX_TOTAL_READ = 64 * 1024 * 1024
"""Most bytes of selected members kept from one tar (many top-level dirs each with a PKG-INFO)."""

MAX_HEADER_EXTENSION = 1024 * 1024
"""Largest pax or GNU long-name header accepted (tarfile reads one whole into memory)."""

_CHUNK = 64 * 1024

MemberFilter = Callable[[str], bool]


def safe_member_name(name: str) -> bool:
    """True when *name* is a plain relative path inside the archive (no escape possible)."""
    if not name or name.startswith("/") or "\\" in name or "\x00" in name:
        return False
    parts = name.rstrip("/").split("/")
    if ":" in parts[0]:  # a Windows drive ("C:") smuggled into a zip
        return False
    return all(part not in ("", ".", "..") for part in parts)


def _too_big(archive: str, name: str, size: int) -> MetadataError:
    return MetadataError(
        f"{archive}: member {name!r} is {size} bytes uncompressed, over the"
        f" {MAX_MEMBER_SIZE}-byte limit for metadata files: refusing to read it"
    )


# --- zip -------------------------------------------------------------------------------


def open_zip(fileobj: BinaryIO, archive: str) -> zipfile.ZipFile:
    """Open a zip from a seekable file object; MetadataError when it is not a usable zip.

    The central directory is counted first (headers only, stopping past ``MAX_MEMBERS``),
    so a zip that lists millions of members is refused before :mod:`zipfile` builds an
    object for each; the count in the end record is not trusted (it may lie or wrap).
    """
    count = _zip_member_count(fileobj)
    if count > MAX_MEMBERS:
        raise MetadataError(
            f"{archive}: zip lists more than {MAX_MEMBERS} members: refusing to scan it"
        )
    try:
        return zipfile.ZipFile(fileobj)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError) as exc:
        raise MetadataError(f"{archive}: not a readable zip archive ({exc})") from exc


_EOCD = struct.Struct("<4s4H2LH")  # end of central directory record
_ZIP64_LOCATOR = struct.Struct("<4sLQL")
_ZIP64_EOCD = struct.Struct("<4sQ2H2L4Q")
_CENTRAL_HEADER = struct.Struct("<4s6H3L5H2L")


def _central_directory(fileobj: BinaryIO) -> tuple[int, int] | None:
    """(start, size) of the central directory as zipfile will read it, or None."""
    size = fileobj.seek(0, 2)
    tail_start = max(0, size - _EOCD.size - 0xFFFF)  # the record ends with a <64 KiB comment
    fileobj.seek(tail_start)
    tail = fileobj.read()
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or at + _EOCD.size > len(tail):
        return None
    record_pos = tail_start + at
    cd_size: int = _EOCD.unpack_from(tail, at)[5]
    locator_at = at - _ZIP64_LOCATOR.size
    if locator_at >= 0 and tail[locator_at : locator_at + 4] == b"PK\x06\x07":
        # zipfile expects the zip64 record right before its locator.
        record_pos = tail_start + locator_at - _ZIP64_EOCD.size
        fileobj.seek(max(record_pos, 0))
        record = fileobj.read(_ZIP64_EOCD.size)
        if record_pos < 0 or not record.startswith(b"PK\x06\x06"):
            return None
        cd_size = _ZIP64_EOCD.unpack(record)[8]
    start = record_pos - cd_size
    return None if start < 0 else (start, cd_size)


def _zip_member_count(fileobj: BinaryIO) -> int:
    """Central directory entries, counted up to ``MAX_MEMBERS + 1`` (0 when unreadable)."""
    where = _central_directory(fileobj)
    count = 0
    if where is not None:
        start, size = where
        offset = 0
        while offset + _CENTRAL_HEADER.size <= size and count <= MAX_MEMBERS:
            fileobj.seek(start + offset)
            header = fileobj.read(_CENTRAL_HEADER.size)
            if len(header) < _CENTRAL_HEADER.size or not header.startswith(b"PK\x01\x02"):
                break  # zipfile will report the damage
            name_len, extra_len, comment_len = _CENTRAL_HEADER.unpack(header)[10:13]
            offset += _CENTRAL_HEADER.size + name_len + extra_len + comment_len
            count += 1
    fileobj.seek(0)
    return count


def zip_regular_files(zf: zipfile.ZipFile, archive: str) -> dict[str, zipfile.ZipInfo]:
    """The zip's regular file members by name, unsafe names and symlinks left out.

    A name listed twice is refused: which copy a client would use is ambiguous.
    """
    found: dict[str, zipfile.ZipInfo] = {}
    for info in zf.infolist():
        if info.is_dir() or not safe_member_name(info.filename):
            continue
        file_type = stat.S_IFMT(info.external_attr >> 16)
        if info.create_system == 3 and file_type not in (0, stat.S_IFREG):
            continue  # a unix symlink, device or fifo: never followed
        if info.filename in found:
            raise MetadataError(
                f"{archive}: member {info.filename!r} appears twice: refusing an ambiguous zip"
            )
        found[info.filename] = info
    return found


def read_zip_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, archive: str) -> bytes:
    """The uncompressed bytes of one member, refusing oversized or bomb-like members.

    The declared size and ratio are checked first; the read itself is bounded too, because
    the declared size of a hostile zip may lie.
    """
    if info.file_size > MAX_MEMBER_SIZE:
        raise _too_big(archive, info.filename, info.file_size)
    if info.file_size > RATIO_FREE_BYTES // 64 and info.file_size > MAX_COMPRESSION_RATIO * max(
        info.compress_size, 1
    ):
        raise MetadataError(
            f"{archive}: member {info.filename!r} inflates {info.compress_size} bytes to"
            f" {info.file_size} (over {MAX_COMPRESSION_RATIO}x): refusing a zip bomb"
        )
    chunks: list[bytes] = []
    total = 0
    try:
        with zf.open(info) as member:
            while chunk := member.read(_CHUNK):
                total += len(chunk)
                if total > MAX_MEMBER_SIZE:
                    raise _too_big(archive, info.filename, total)
                chunks.append(chunk)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError) as exc:
        raise MetadataError(
            f"{archive}: member {info.filename!r} cannot be decompressed ({exc})"
        ) from exc
    return b"".join(chunks)


# --- tar -------------------------------------------------------------------------------


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class _BoundedReader:
    """A read-only stream over a decompressor that refuses to inflate past *limit* bytes."""

    def __init__(self, raw: _Readable, limit: int, archive: str) -> None:
        self._raw = raw
        self._limit = limit
        self._archive = archive
        self._total = 0

    def read(self, size: int = -1) -> bytes:
        if size < 0:
            size = _CHUNK
        data = self._raw.read(size)
        self._total += len(data)
        if self._total > self._limit:
            raise MetadataError(
                f"{self._archive}: decompresses to more than {self._limit} bytes"
                f" (over {MAX_COMPRESSION_RATIO}x its size): refusing a tar bomb"
            )
        return data


class _HeaderExtensionTooBigError(Exception):
    """A pax / GNU long-name header larger than MAX_HEADER_EXTENSION."""


_EXTENSION_TYPES = frozenset(
    {
        tarfile.XHDTYPE,
        tarfile.XGLTYPE,
        tarfile.SOLARIS_XHDTYPE,
        tarfile.GNUTYPE_LONGNAME,
        tarfile.GNUTYPE_LONGLINK,
    }
)


class _GuardedTarInfo(tarfile.TarInfo):
    """A TarInfo that refuses oversized extension headers before tarfile reads them whole."""

    def _proc_member(self, tar: tarfile.TarFile) -> tarfile.TarInfo:
        if self.type in _EXTENSION_TYPES and self.size > MAX_HEADER_EXTENSION:
            raise _HeaderExtensionTooBigError(self.size)
        return super()._proc_member(tar)  # type: ignore[misc, no-any-return]


def _decompressor(fileobj: BinaryIO, archive: str) -> _Readable:
    magic = fileobj.read(6)
    fileobj.seek(0)
    if magic.startswith(b"\x1f\x8b"):
        return gzip.GzipFile(fileobj=fileobj, mode="rb")
    if magic.startswith(b"BZh"):
        return bz2.BZ2File(fileobj, mode="rb")
    if magic.startswith(b"\xfd7zXZ\x00"):
        return lzma.LZMAFile(fileobj, mode="rb")
    if archive.endswith(".tar"):
        return fileobj
    raise MetadataError(f"{archive}: not a gzip, bzip2 or xz compressed tar archive")


def read_tar_members(
    fileobj: BinaryIO, archive: str, wanted: MemberFilter
) -> tuple[dict[str, bytes], frozenset[str]]:
    """Stream a (compressed) tar once; return the bytes of the regular files *wanted* selects.

    Also returns the set of every safe regular-file name seen, so callers can tell which
    directories exist. Members are read in one forward pass with the member list cleared as
    we go (memory stays bounded whatever the member count); decompression stops at
    ``max(RATIO_FREE_BYTES, MAX_COMPRESSION_RATIO * compressed size)`` bytes.
    """
    fileobj.seek(0, 2)
    compressed = fileobj.tell()
    fileobj.seek(0)
    limit = max(RATIO_FREE_BYTES, MAX_COMPRESSION_RATIO * compressed)
    stream = _BoundedReader(_decompressor(fileobj, archive), limit, archive)
    found: dict[str, bytes] = {}
    names: set[str] = set()
    count = kept = 0
    try:
        with tarfile.open(  # type: ignore[call-overload]
            fileobj=stream, mode="r|", tarinfo=_GuardedTarInfo
        ) as tar:
            while (member := tar.next()) is not None:
                tar.members.clear()  # streaming: keep no history of members
                count += 1
                if count > MAX_MEMBERS:
                    raise MetadataError(
                        f"{archive}: tar has more than {MAX_MEMBERS} members: refusing to scan it"
                    )
                if not member.isreg() or not safe_member_name(member.name):
                    continue  # links, devices, directories, escaping names: never followed
                names.add(member.name)
                if not wanted(member.name):
                    continue
                if member.name in found:
                    raise MetadataError(
                        f"{archive}: member {member.name!r} appears twice:"
                        " refusing an ambiguous tar"
                    )
                found[member.name] = _read_tar_member(tar, member, archive)
                kept += member.size
                if kept > MAX_TOTAL_READ:
                    raise MetadataError(
                        f"{archive}: its metadata files add up to more than {MAX_TOTAL_READ}"
                        " bytes: refusing to read them"
                    )
    except _HeaderExtensionTooBigError as exc:
        raise MetadataError(
            f"{archive}: a tar extension header is {exc.args[0]} bytes, over the"
            f" {MAX_HEADER_EXTENSION}-byte limit: refusing it"
        ) from exc
    except (tarfile.TarError, EOFError, OSError, zlib.error, lzma.LZMAError) as exc:
        raise MetadataError(f"{archive}: not a readable tar archive ({exc})") from exc
    return found, frozenset(names)


def _read_tar_member(tar: tarfile.TarFile, member: tarfile.TarInfo, archive: str) -> bytes:
    if member.size > MAX_MEMBER_SIZE:
        raise _too_big(archive, member.name, member.size)
    extracted = tar.extractfile(member)
    if extracted is None:  # pragma: no cover - isreg() members always have data
        raise MetadataError(f"{archive}: member {member.name!r} has no data")
    with extracted:
        # A tar member's data is exactly the header's size: ask for no more (the buffered
        # reader would allocate whatever size we asked for up front).
        return extracted.read(member.size)
