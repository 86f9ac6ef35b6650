"""Hostile archives: escaping names, links, bombs and huge member counts are refused or ignored.

Every archive is built here, in memory; bombs are built from pre-compressed pieces so the
tests stay small and fast while the archives claim (and would inflate to) a gigabyte.
"""

from __future__ import annotations

import gzip
import io
import struct
import tarfile
import tracemalloc
import zipfile
import zlib
from collections.abc import Callable

import pytest

from rules.errors import MetadataError
from rules.lib import archives
from rules.lib.archives import MAX_MEMBER_SIZE, MAX_MEMBERS, safe_member_name
from rules.lib.metadata import sdist_info, wheel_metadata_bytes

GIB = 1 << 30
MIB = 1 << 20
PKG_INFO = b"Metadata-Version: 2.2\nName: foo\nVersion: 1.0\nRequires-Dist: bar>=1\n"


def _tar_gz(members: list[tuple[tarfile.TarInfo, bytes]]) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for info, data in members:
            info.size = len(data) if info.isreg() else 0
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    buf.seek(0)
    return buf


def _reg(name: str) -> tarfile.TarInfo:
    return tarfile.TarInfo(name)


def _link(name: str, target: str, kind: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


def _deflated_zeros(prefix: bytes, mib: int) -> bytes:
    """Raw deflate of ``prefix + mib MiB of zeros``, built from one repeated flushed block.

    After a full flush the compressor keeps no history, so every further MiB of zeros
    compresses to the same bytes: the stream is assembled without compressing a gigabyte.
    """
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    zeros = bytes(MIB)
    head = comp.compress(prefix) + comp.compress(zeros) + comp.flush(zlib.Z_FULL_FLUSH)
    block = comp.compress(zeros) + comp.flush(zlib.Z_FULL_FLUSH)
    assert comp.compress(zeros) + comp.flush(zlib.Z_FULL_FLUSH) == block
    return head + block * (mib - 2) + comp.compress(zeros) + comp.flush(zlib.Z_FINISH)


def _zip_with_raw_member(name: str, deflated: bytes, declared_size: int) -> io.BytesIO:
    """A one-member zip whose headers declare *declared_size* (true or a lie)."""
    raw = name.encode()
    crc = 0  # never reached: the reader must refuse before the CRC check
    local = struct.pack(
        "<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0, crc, len(deflated), declared_size, len(raw), 0
    )
    central = struct.pack(
        "<IHHHHHHIIIHHHHHII",
        0x02014B50,
        20,
        20,
        0,
        8,
        0,
        0,
        crc,
        len(deflated),
        declared_size,
        len(raw),
        0,
        0,
        0,
        0,
        0,
        0,
    )
    body = local + raw + deflated
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(central) + len(raw), len(body), 0)
    return io.BytesIO(body + central + raw + end)


def _peak_mib(func: Callable[[], object]) -> float:
    tracemalloc.start()
    try:
        func()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak / MIB


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("foo-1.0/PKG-INFO", True),
        ("foo-1.0.dist-info/METADATA", True),
        ("../PKG-INFO", False),
        ("foo-1.0/../../etc/passwd", False),
        ("/foo-1.0/PKG-INFO", False),
        ("C:/foo-1.0/PKG-INFO", False),
        ("foo-1.0\\..\\PKG-INFO", False),
        ("foo-1.0//PKG-INFO", False),
        ("./foo-1.0/PKG-INFO", False),
        ("", False),
    ],
)
def test_member_names_that_could_escape_are_unsafe(name: str, safe: bool) -> None:
    assert safe_member_name(name) is safe


def test_tar_links_and_escaping_members_are_never_used() -> None:
    sdist = _tar_gz(
        [
            (_link("foo-1.0/PKG-INFO", "/etc/passwd", tarfile.SYMTYPE), b""),
            (_link("foo-1.0/pyproject.toml", "/etc/shadow", tarfile.LNKTYPE), b""),
            (_reg("../foo-1.0/PKG-INFO"), PKG_INFO),
            (_reg("/foo-1.0/PKG-INFO"), PKG_INFO),
            (_reg("foo-1.0/../foo-1.0/PKG-INFO"), PKG_INFO),
            (_link("foo-1.0/foo.egg-info", "/", tarfile.SYMTYPE), b""),
            (_reg("foo-1.0/setup.py"), b"raise SystemExit('never run')\n"),
        ]
    )
    info = sdist_info(sdist, "foo-1.0.tar.gz")
    assert info.metadata is None
    assert info.source == (
        "no static metadata: no PKG-INFO; no pyproject.toml; no *.egg-info/requires.txt"
    )
    assert info.build_requires == ("setuptools>=40.8.0",)


def test_zip_symlink_and_escaping_members_are_never_used() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        link = zipfile.ZipInfo("foo-1.0.dist-info/METADATA")
        link.create_system = 3
        link.external_attr = (0o120777) << 16  # a unix symlink
        zf.writestr(link, "/etc/passwd")
        zf.writestr("../foo-1.0.dist-info/METADATA", PKG_INFO)
        zf.writestr("/foo-1.0.dist-info/METADATA", PKG_INFO)
        zf.writestr("foo-1.0.dist-info/RECORD", b"")
    buf.seek(0)
    with pytest.raises(MetadataError) as exc:
        wheel_metadata_bytes(buf, "foo-1.0-py3-none-any.whl")
    assert str(exc.value) == (
        "foo-1.0-py3-none-any.whl: foo-1.0.dist-info/METADATA is missing: not a valid wheel"
    )


def test_zip_member_listed_twice_is_refused() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("foo-1.0.dist-info/METADATA", PKG_INFO)
        with pytest.warns(UserWarning, match="Duplicate name"):
            zf.writestr("foo-1.0.dist-info/METADATA", b"Name: evil\n")
    buf.seek(0)
    with pytest.raises(MetadataError) as exc:
        wheel_metadata_bytes(buf, "foo-1.0-py3-none-any.whl")
    assert str(exc.value) == (
        "foo-1.0-py3-none-any.whl: member 'foo-1.0.dist-info/METADATA' appears twice:"
        " refusing an ambiguous zip"
    )


def test_tar_member_listed_twice_is_refused() -> None:
    sdist = _tar_gz([(_reg("foo-1.0/PKG-INFO"), PKG_INFO), (_reg("foo-1.0/PKG-INFO"), b"x")])
    with pytest.raises(MetadataError) as exc:
        sdist_info(sdist, "foo-1.0.tar.gz")
    assert str(exc.value) == (
        "foo-1.0.tar.gz: member 'foo-1.0/PKG-INFO' appears twice: refusing an ambiguous tar"
    )


def test_zip_bomb_with_honest_1gb_header_is_refused_without_inflating() -> None:
    wheel = _zip_with_raw_member(
        "foo-1.0.dist-info/METADATA", _deflated_zeros(b"Name: foo\n", 1024), GIB
    )
    assert len(wheel.getvalue()) < 2 * MIB
    errors: list[str] = []

    def read() -> None:
        try:
            wheel_metadata_bytes(wheel, "foo-1.0-py3-none-any.whl")
        except MetadataError as exc:
            errors.append(str(exc))

    assert _peak_mib(read) < 8
    assert errors == [
        (
            f"foo-1.0-py3-none-any.whl: member 'foo-1.0.dist-info/METADATA' is {GIB} bytes"
            f" uncompressed, over the {MAX_MEMBER_SIZE}-byte limit for metadata files:"
            " refusing to read it"
        )
    ]


def test_zip_bomb_that_lies_about_its_size_is_refused_by_ratio() -> None:
    deflated = _deflated_zeros(b"Name: foo\n", 16)
    wheel = _zip_with_raw_member("foo-1.0.dist-info/METADATA", deflated, 10 * MIB)
    with pytest.raises(MetadataError) as exc:
        wheel_metadata_bytes(wheel, "foo-1.0-py3-none-any.whl")
    assert str(exc.value) == (
        f"foo-1.0-py3-none-any.whl: member 'foo-1.0.dist-info/METADATA' inflates"
        f" {len(deflated)} bytes to {10 * MIB} (over 200x): refusing a zip bomb"
    )


def test_zip_bomb_with_small_lying_size_stops_at_the_declared_size() -> None:
    wheel = _zip_with_raw_member(
        "foo-1.0.dist-info/METADATA", _deflated_zeros(b"Name: foo\n", 1024), 200_000
    )
    errors: list[str] = []

    def read() -> None:
        try:
            wheel_metadata_bytes(wheel, "foo-1.0-py3-none-any.whl")
        except MetadataError as exc:
            errors.append(str(exc))

    assert _peak_mib(read) < 8
    assert errors == [
        (
            "foo-1.0-py3-none-any.whl: member 'foo-1.0.dist-info/METADATA' cannot be"
            " decompressed (Bad CRC-32 for file 'foo-1.0.dist-info/METADATA')"
        )
    ]


def test_tar_bomb_stops_inflating_at_the_ratio_limit() -> None:
    header = tarfile.TarInfo("foo-1.0/PKG-INFO")
    header.size = GIB
    deflated = _deflated_zeros(header.tobuf(), 1024)
    gz = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff" + deflated + bytes(8)  # CRC never reached
    errors: list[str] = []

    def read() -> None:
        try:
            sdist_info(io.BytesIO(gz), "foo-1.0.tar.gz")
        except MetadataError as exc:
            errors.append(str(exc))

    assert _peak_mib(read) < 8
    assert errors == [
        (
            f"foo-1.0.tar.gz: member 'foo-1.0/PKG-INFO' is {GIB} bytes uncompressed, over the"
            f" {MAX_MEMBER_SIZE}-byte limit for metadata files: refusing to read it"
        )
    ]


def test_tar_bomb_in_an_unwanted_member_is_refused_by_ratio() -> None:
    header = tarfile.TarInfo("foo-1.0/data.bin")
    header.size = GIB
    deflated = _deflated_zeros(header.tobuf(), 1024)
    gz = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff" + deflated + bytes(8)
    limit = max(64 * MIB, 200 * len(gz))
    errors: list[str] = []

    def read() -> None:
        try:
            sdist_info(io.BytesIO(gz), "foo-1.0.tar.gz")
        except MetadataError as exc:
            errors.append(str(exc))

    assert _peak_mib(read) < 8
    assert errors == [
        (
            f"foo-1.0.tar.gz: decompresses to more than {limit} bytes (over 200x its size):"
            " refusing a tar bomb"
        )
    ]


@pytest.mark.slow  # ~3 s alone: tarfile parses 100 000 headers
def test_tar_with_too_many_members_is_refused() -> None:
    one = tarfile.TarInfo("foo-1.0/empty").tobuf()
    raw = one * MAX_MEMBERS + tarfile.TarInfo("foo-1.0/PKG-INFO").tobuf() + bytes(1024)
    with pytest.raises(MetadataError) as exc:
        sdist_info(io.BytesIO(gzip.compress(raw, compresslevel=1)), "foo-1.0.tar.gz")
    assert str(exc.value) == (
        f"foo-1.0.tar.gz: tar has more than {MAX_MEMBERS} members: refusing to scan it"
    )


def test_scanning_many_tar_members_keeps_no_member_list() -> None:
    # Were every TarInfo kept (tarfile's default), 10 000 members would cost over 4 MiB.
    one = tarfile.TarInfo("foo-1.0/empty").tobuf()
    pkg_info = tarfile.TarInfo("foo-1.0/PKG-INFO")
    pkg_info.size = len(PKG_INFO)
    padding = bytes(-len(PKG_INFO) % 512)
    raw = one * 10_000 + pkg_info.tobuf() + PKG_INFO + padding + bytes(1024)
    data = gzip.compress(raw, compresslevel=1)
    found: list[str] = []

    def read() -> None:
        found.append(sdist_info(io.BytesIO(data), "foo-1.0.tar.gz").source)

    assert _peak_mib(read) < 1
    assert found == ["PKG-INFO (Metadata-Version 2.2)"]


def test_not_an_archive_is_one_clear_error() -> None:
    with pytest.raises(MetadataError) as exc:
        sdist_info(io.BytesIO(b"<html>not found</html>"), "foo-1.0.tar.gz")
    assert str(exc.value) == "foo-1.0.tar.gz: not a gzip, bzip2 or xz compressed tar archive"
    with pytest.raises(MetadataError) as exc:
        wheel_metadata_bytes(io.BytesIO(b"<html>"), "foo-1.0-py3-none-any.whl")
    assert str(exc.value) == (
        "foo-1.0-py3-none-any.whl: not a readable zip archive (File is not a zip file)"
    )


def test_tar_with_many_metadata_files_is_refused_past_the_total_budget(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(archives, "MAX_TOTAL_READ", 100_000)
    sdist = _tar_gz([(_reg(f"top{i}/PKG-INFO"), bytes(10_000)) for i in range(30)])
    with pytest.raises(MetadataError) as exc:
        sdist_info(sdist, "foo-1.0.tar.gz")
    assert str(exc.value) == (
        "foo-1.0.tar.gz: its metadata files add up to more than 100000 bytes: refusing to read them"
    )


def _eocd(count: int, cd_size: int, cd_offset: int) -> bytes:
    return struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, count, count, cd_size, cd_offset, 0)


def test_zip_with_too_many_members_is_refused_before_parsing_even_if_the_count_lies() -> None:
    entry = struct.pack(
        "<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0
    )
    central = (entry + b"a") * (MAX_MEMBERS + 1)
    data = central + _eocd(1, len(central), 0)
    with pytest.raises(MetadataError) as exc:
        wheel_metadata_bytes(io.BytesIO(data), "foo-1.0-py3-none-any.whl")
    assert str(exc.value) == (
        f"foo-1.0-py3-none-any.whl: zip lists more than {MAX_MEMBERS} members: refusing to scan it"
    )


def test_zip64_central_directory_is_counted_too() -> None:
    entry = struct.pack(
        "<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0
    )
    central = (entry + b"a") * (MAX_MEMBERS + 1)
    n = MAX_MEMBERS + 1
    record = struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, n, n, len(central), 0)
    locator = struct.pack("<4sLQL", b"PK\x06\x07", 0, len(central), 1)
    data = central + record + locator + _eocd(0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF)
    with pytest.raises(MetadataError) as exc:
        sdist_info(io.BytesIO(data), "foo-1.0.zip")
    assert str(exc.value) == (
        f"foo-1.0.zip: zip lists more than {MAX_MEMBERS} members: refusing to scan it"
    )


@pytest.mark.parametrize("kind", [tarfile.XHDTYPE, tarfile.GNUTYPE_LONGNAME])
def test_huge_tar_extension_header_is_refused_before_it_is_read(kind: bytes) -> None:
    header = tarfile.TarInfo("foo-1.0/././@LongLink")
    header.type = kind
    header.size = GIB
    deflated = _deflated_zeros(header.tobuf(), 1024)
    gz = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff" + deflated + bytes(8)
    errors: list[str] = []

    def read() -> None:
        try:
            sdist_info(io.BytesIO(gz), "foo-1.0.tar.gz")
        except MetadataError as exc:
            errors.append(str(exc))

    assert _peak_mib(read) < 8
    assert errors == [
        (
            f"foo-1.0.tar.gz: a tar extension header is {GIB} bytes, over the 1048576-byte limit:"
            " refusing it"
        )
    ]
