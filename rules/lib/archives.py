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
from typing import BinaryIO, NamedTuple, Protocol

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
    if "/." not in name and "//" not in name and ":" not in name and name[0] != ".":
        return True  # (no part can be empty, "." or "..", and no drive: the common case)
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


def _end_record(fileobj: BinaryIO) -> tuple[int, bytes, int] | None:
    """The zip's tail (where its end record may be), as ``(tail_start, tail, at)`` with the
    record at ``tail[at:]``, found as zipfile finds it; None when there is none."""
    size = fileobj.seek(0, 2)
    tail_start = max(0, size - _EOCD.size - 0xFFFF)  # the record ends with a <64 KiB comment
    fileobj.seek(tail_start)
    tail = fileobj.read()
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or at + _EOCD.size > len(tail):
        return None
    return tail_start, tail, at


def _central_directory(fileobj: BinaryIO) -> tuple[int, int] | None:
    """(start, size) of the central directory as zipfile will read it, or None."""
    found = _end_record(fileobj)
    if found is None:
        return None
    tail_start, tail, at = found
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


# A plain zip read straight from its central directory: one read of the directory, one
# pass over its entries, no ZipInfo objects. A wheel's METADATA is read this way on every
# build that lacks its .metadata (the registry offers none, or it is an sdist's wheel):
# zipfile's parse of django's 3 700 members, the member count before it and the name
# checks after it were the largest share of the CPU a wheel's METADATA cost. Anything but
# a plain zip gives None, and the caller reads it with zipfile, which explains what is wrong.

_LOCAL_HEADER = struct.Struct("<4s5H3L2H")
_MAX_PLAIN_DIRECTORY = 64 * 1024 * 1024
_ZIP_VERSION_READ = 63  # the newest "version needed to extract" zipfile reads


class PlainMember(NamedTuple):
    """Where one member of a plain zip is and how it is stored (its central directory entry)."""

    raw_name: bytes
    offset: int
    flags: int
    method: int
    compressed: int
    size: int
    crc: int


def _plain_directory(fileobj: BinaryIO) -> bytes | None:
    """The central directory of a zip with nothing before it, no zip64 record, one disk and
    an end record that ends the file; None for any other zip."""
    found = _end_record(fileobj)
    if found is None:
        return None
    tail_start, tail, at = found
    _sig, disk, cd_disk, on_disk, total, cd_size, cd_offset, comment = _EOCD.unpack_from(tail, at)
    if disk or cd_disk or on_disk != total or at + _EOCD.size + comment != len(tail):
        return None
    locator_at = at - _ZIP64_LOCATOR.size
    if locator_at >= 0 and tail[locator_at : locator_at + 4] == b"PK\x06\x07":
        return None
    if cd_offset + cd_size != tail_start + at or cd_size > _MAX_PLAIN_DIRECTORY:
        return None
    fileobj.seek(cd_offset)
    directory = fileobj.read(cd_size)
    return directory if len(directory) == cd_size else None


def _plain_extra(extra: bytes) -> bool:
    """True when an extra field parses as zipfile parses it and holds no zip64 record."""
    while len(extra) >= 4:
        kind, length = struct.unpack_from("<HH", extra)
        if kind == 0x0001 or length + 4 > len(extra):
            return False
        extra = extra[length + 4 :]
    return True


def plain_zip_members(fileobj: BinaryIO) -> dict[str, PlainMember] | None:
    """The regular members of a plain zip by name, as :func:`zip_regular_files` would give
    them (unsafe names, directories and symlinks left out); None when the zip is not plain
    (see :func:`_plain_directory`; also zip64 sizes, a NUL or undecodable name, a member
    listed twice, more than ``MAX_MEMBERS``, damage): read it with :func:`open_zip`."""
    directory = _plain_directory(fileobj)
    if directory is None:
        return None
    members: dict[str, PlainMember] = {}
    unpack = _CENTRAL_HEADER.unpack_from
    header = _CENTRAL_HEADER.size
    end = len(directory)
    pos = count = 0
    while pos < end:
        if pos + header > end:
            return None
        (sig, made, needed, flags, method, _t, _d, crc, compressed, size, name_len, extra_len,
         comment_len, _disk, _internal, external, offset) = unpack(directory, pos)  # fmt: skip
        count += 1
        if sig != b"PK\x01\x02" or count > MAX_MEMBERS or needed > _ZIP_VERSION_READ:
            return None
        name_at = pos + header
        extra_at = name_at + name_len
        pos = extra_at + extra_len + comment_len
        if pos > end or 0xFFFFFFFF in (compressed, size, offset):
            return None
        if extra_len and not _plain_extra(directory[extra_at : extra_at + extra_len]):
            return None
        raw = directory[name_at:extra_at]
        try:
            name = raw.decode("utf-8" if flags & 0x800 else "cp437")
        except UnicodeDecodeError:
            return None
        if "\x00" in name:
            return None
        if name.endswith("/") or not safe_member_name(name):
            continue
        if made >> 8 == 3 and stat.S_IFMT(external >> 16) not in (0, stat.S_IFREG):
            continue
        if name in members:
            return None
        members[name] = PlainMember(raw, offset, flags, method, compressed, size, crc)
    return members


def read_plain_member(fileobj: BinaryIO, member: PlainMember) -> bytes | None:
    """The bytes :func:`read_zip_member` would give for ``member``, when it is stored or
    deflated, unencrypted, within the limits, and its local header, length and CRC agree
    with the central directory; None otherwise (read it with :func:`read_zip_member`)."""
    if member.flags & 0x21 or member.method not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        return None
    size = member.size
    if size > MAX_MEMBER_SIZE or (
        size > RATIO_FREE_BYTES // 64 and size > MAX_COMPRESSION_RATIO * max(member.compressed, 1)
    ):
        return None
    fileobj.seek(member.offset)
    local = fileobj.read(_LOCAL_HEADER.size)
    if len(local) != _LOCAL_HEADER.size:
        return None
    sig, _v, flags, _m, _t, _d, _crc, _c, _s, name_len, extra_len = _LOCAL_HEADER.unpack(local)
    if sig != b"PK\x03\x04" or flags & 0x20 or fileobj.read(name_len) != member.raw_name:
        return None
    fileobj.seek(extra_len, 1)
    data = fileobj.read(member.compressed)
    if len(data) != member.compressed:
        return None
    if member.method == zipfile.ZIP_DEFLATED:
        try:
            data = zlib.decompressobj(-15).decompress(data, size + 1)
        except zlib.error:
            return None
    if len(data) != size or zlib.crc32(data) != member.crc:
        return None
    return data


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
