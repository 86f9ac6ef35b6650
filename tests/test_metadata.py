"""Core metadata from .metadata files, wheels and sdists, by the rules of STANDARDS.md."""

from __future__ import annotations

import io
import random
import stat
import struct
import tarfile
import zipfile
from collections.abc import Callable

import pytest
from packaging.version import Version

from rules.errors import MetadataError
from rules.lib.metadata import (
    CoreMetadata,
    SdistInfo,
    _zipfile_metadata,
    check_metadata_name,
    parse_core_metadata,
    sdist_info,
    wheel_metadata_bytes,
)

# --- helpers ---------------------------------------------------------------------------


def _tar(files: dict[str, bytes], mode: str = "w:gz") -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tar:  # type: ignore[call-overload]
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


def _zip(files: dict[str, bytes]) -> io.BytesIO:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    buf.seek(0)
    return buf


def _pkg_info(version: str = "2.2", *extra: str) -> bytes:
    lines = [f"Metadata-Version: {version}", "Name: Foo", "Version: 1.0", *extra]
    return ("\n".join(lines) + "\n\nLong description.\n").encode()


STATIC_PKG_INFO = _pkg_info(
    "2.2",
    "Requires-Python: >=3.8",
    "Requires-Dist: bar>=1",
    "Requires-Dist: baz; extra == 'fast'",
    "Provides-Extra: fast",
    "Dynamic: Description",
)

PYPROJECT_STATIC = b"""
[build-system]
requires = ["hatchling>=1.20"]
build-backend = "hatchling.build"

[project]
name = "Foo"
version = "1.0"
requires-python = ">=3.9"
dependencies = ["bar>=2", "qux; sys_platform == 'win32'"]

[project.optional-dependencies]
cli = ["click>=8", "colorama; os_name == 'nt'"]
"""

PYPROJECT_DYNAMIC = b"""
[build-system]
requires = ["setuptools>=61", "wheel"]
build-backend = "setuptools.build_meta"

[project]
name = "Foo"
dynamic = ["version", "dependencies"]
"""

REQUIRES_TXT = b"""bar>=3
six

[cli]
click>=8

[:python_version < "3.11"]
tomli>=1

[yaml:sys_platform == "win32"]
pyyaml; python_version >= "3.8"
"""


# --- parse_core_metadata ---------------------------------------------------------------


def test_parse_core_metadata_reads_the_fields_resolution_needs() -> None:
    meta = parse_core_metadata(STATIC_PKG_INFO)
    assert meta == CoreMetadata(
        name="Foo",
        version="1.0",
        requires_dist=("bar>=1", "baz; extra == 'fast'"),
        requires_python=">=3.8",
        provides_extra=("fast",),
        problems=(),
    )


def test_invalid_requirements_and_specifiers_are_ignored_with_a_problem() -> None:
    data = _pkg_info(
        "2.1",
        "Requires-Dist: foo >>> 1",
        "Requires-Dist: ok>=1",
        "Requires-Python: >=three",
    )
    meta = parse_core_metadata(data)
    assert meta.requires_dist == ("ok>=1",)
    assert meta.requires_python is None
    assert meta.problems == (
        "Requires-Dist 'foo >>> 1' is not PEP 508: ignored",
        "Requires-Python '>=three' is not a specifier: ignored",
    )


def test_invalid_utf8_is_tolerated_and_noted() -> None:
    data = b"Metadata-Version: 2.1\nName: foo\nVersion: 1.0\nSummary: caf\xe9\nRequires-Dist: bar\n"
    meta = parse_core_metadata(data)
    assert (meta.name, meta.requires_dist) == ("foo", ("bar",))
    assert meta.problems == (
        "not valid UTF-8 (byte 0xe9 at offset 57): undecodable bytes replaced with U+FFFD",
    )


def test_folded_header_values_are_unfolded() -> None:
    data = b"Name: foo\nVersion: 1.0\nRequires-Dist: bar;\n python_version < '3.9'\n"
    assert parse_core_metadata(data).requires_dist == ("bar; python_version < '3.9'",)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            b"Metadata-Version: 2.1\nVersion: 1.0\n",
            "foo.metadata: Name None is missing or not a valid project name",
        ),
        (
            b"Metadata-Version: 2.1\nName: ../etc\nVersion: 1.0\n",
            "foo.metadata: Name '../etc' is missing or not a valid project name",
        ),
        (
            b"Metadata-Version: 2.1\nName: foo\nVersion: one\n",
            "foo.metadata: Version 'one' is missing or not a PEP 440 version",
        ),
    ],
)
def test_missing_or_invalid_name_or_version_is_an_error(data: bytes, message: str) -> None:
    with pytest.raises(MetadataError) as exc:
        parse_core_metadata(data, origin="foo.metadata")
    assert str(exc.value) == message


def test_a_several_megabyte_metadata_file_is_parsed() -> None:
    requires = "".join(f"Requires-Dist: dep{i}>=1.{i}\n" for i in range(5000))
    body = "A long description line.\n" * 250_000
    data = f"Metadata-Version: 2.1\nName: big\nVersion: 1.0\n{requires}\n{body}".encode()
    assert len(data) > 6_000_000
    meta = parse_core_metadata(data)
    assert len(meta.requires_dist) == 5000
    assert meta.requires_dist[-1] == "dep4999>=1.4999"


def test_too_many_requirements_and_oversized_files_are_refused() -> None:
    requires = "".join(f"Requires-Dist: d{i}\n" for i in range(10_001))
    with pytest.raises(MetadataError) as exc:
        parse_core_metadata(f"Name: x\nVersion: 1\n{requires}".encode(), origin="x.metadata")
    assert str(exc.value) == "x.metadata: 10001 Requires-Dist entries, over the limit of 10000"
    with pytest.raises(MetadataError) as exc:
        parse_core_metadata(b"Name: x\nVersion: 1\n\n" + bytes(17 * 1024 * 1024))
    assert str(exc.value) == (
        "core metadata: 17825812 bytes, over the 16777216-byte limit for core metadata"
    )


# --- wheels ----------------------------------------------------------------------------


def test_wheel_metadata_bytes_are_exact() -> None:
    metadata = b"Metadata-Version: 2.1\r\nName: foo_bar\r\nVersion: 1.0.0\r\n\r\n\xff body \n"
    wheel = _zip(
        {
            "foo_bar/__init__.py": b"",
            "Foo.Bar-1.0.dist-info/METADATA": metadata,
            "Foo.Bar-1.0.dist-info/RECORD": b"",
        }
    )
    assert wheel_metadata_bytes(wheel, "foo_bar-1.0.0-py3-none-any.whl") == metadata


def _plain_zip_sample() -> bytes:
    """A wheel-like zip: METADATA deflated, members stored, a symlink, a directory, a
    comment, a unix-made entry with an extra field."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("foo/__init__.py", b"x = 1\n" * 50)
        zf.writestr("foo/data.bin", bytes(range(256)) * 4, compress_type=zipfile.ZIP_STORED)
        zf.writestr("foo-1.0.dist-info/METADATA", b"Metadata-Version: 2.1\nName: foo\n" * 30)
        link = zipfile.ZipInfo("foo/link")
        link.create_system = 3
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, b"__init__.py")
        zf.writestr(zipfile.ZipInfo("foo/sub/"), b"")
        extra = zipfile.ZipInfo("foo/extra.txt")
        extra.create_system = 3
        extra.extra = struct.pack("<HHB4s", 0x5455, 5, 1, b"\0\0\0\0")
        zf.writestr(extra, b"extra")
        zf.writestr("foo-1.0.dist-info/RECORD", b"")
        zf.comment = b"made by a test"
    return buf.getvalue()


def _outcome(read: Callable[[bytes], bytes], data: bytearray) -> tuple[str, object]:
    """What ``read(data)`` gives or raises (any exception, by type and message)."""
    try:
        return "bytes", read(bytes(data))
    except Exception as exc:
        return type(exc).__name__, str(exc)


def test_plain_zip_reading_gives_zipfiles_bytes_or_steps_aside() -> None:
    """METADATA is read straight from a plain zip's central directory; on 600 damaged
    copies of one, that read gives exactly what zipfile's gives, the same error, or the
    same exception: it never accepts what zipfile refuses."""
    base = _plain_zip_sample()
    filename = "foo-1.0-py3-none-any.whl"
    assert wheel_metadata_bytes(io.BytesIO(base), filename).startswith(b"Metadata-Version")
    directory_at = (
        base.rindex(b"PK\x05\x06")
        - struct.unpack_from("<L", base, base.rindex(b"PK\x05\x06") + 12)[0]
    )
    rng = random.Random(20261206)  # noqa: S311 - a repeatable choice of damage
    outcomes: set[str] = set()
    for _ in range(600):
        data = bytearray(base)
        for _ in range(rng.randint(1, 3)):
            # Mostly the headers and the central directory, where a zip's structure is.
            at = (
                rng.randrange(directory_at, len(data))
                if rng.random() < 0.7
                else rng.randrange(len(data))
            )
            data[at] = rng.randrange(256)

        got = _outcome(lambda d: wheel_metadata_bytes(io.BytesIO(d), filename), data)
        want = _outcome(
            lambda d: _zipfile_metadata(io.BytesIO(d), filename, "foo", Version("1.0")), data
        )
        assert got == want, bytes(data).hex()
        outcomes.add(got[0])
    assert {"bytes", "MetadataError"} <= outcomes  # (the damage was varied enough)


def test_wheel_picks_the_dist_info_of_its_own_project() -> None:
    wheel = _zip(
        {
            "vendored-2.0.dist-info/METADATA": b"Name: vendored\n",
            "foo-1.0.dist-info/METADATA": b"Name: foo\n",
        }
    )
    assert wheel_metadata_bytes(wheel, "foo-1.0-py3-none-any.whl") == b"Name: foo\n"


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (
            {"foo-1.0.dist-info/METADATA": b"", "FOO-1.0.0.dist-info/METADATA": b""},
            (
                "foo-1.0-py3-none-any.whl: several .dist-info directories match foo 1.0"
                " (FOO-1.0.0.dist-info, foo-1.0.dist-info): refusing an ambiguous wheel"
            ),
        ),
        (
            {"foo-2.0.dist-info/METADATA": b"", "bar-1.0.dist-info/METADATA": b""},
            (
                "foo-1.0-py3-none-any.whl: no .dist-info directory for foo 1.0"
                " (found: bar-1.0.dist-info, foo-2.0.dist-info): not a valid wheel"
            ),
        ),
        (
            {"foo/__init__.py": b""},
            (
                "foo-1.0-py3-none-any.whl: no .dist-info directory for foo 1.0 (found: none):"
                " not a valid wheel"
            ),
        ),
        (
            {"foo-1.0.dist-info/RECORD": b""},
            "foo-1.0-py3-none-any.whl: foo-1.0.dist-info/METADATA is missing: not a valid wheel",
        ),
    ],
    ids=["ambiguous", "mismatched", "none", "no-METADATA"],
)
def test_wheel_dist_info_problems_are_errors(files: dict[str, bytes], message: str) -> None:
    with pytest.raises(MetadataError) as exc:
        wheel_metadata_bytes(_zip(files), "foo-1.0-py3-none-any.whl")
    assert str(exc.value) == message


def test_invalid_wheel_filename_is_an_error() -> None:
    with pytest.raises(MetadataError) as exc:
        wheel_metadata_bytes(_zip({}), "foo.whl")
    assert str(exc.value).startswith("foo.whl: not a valid wheel filename (")


# --- check_metadata_name ---------------------------------------------------------------


def test_name_matching_is_normalized() -> None:
    meta = parse_core_metadata(b"Name: Foo.Bar\nVersion: 1.0\n")
    check_metadata_name(meta, "foo_bar-1.0-py3-none-any.whl")
    check_metadata_name(meta, "foo-bar-1.0.tar.gz")


def test_a_wheel_whose_name_differs_from_its_filename_is_refused() -> None:
    meta = parse_core_metadata(b"Name: evil\nVersion: 1.0\n")
    with pytest.raises(MetadataError) as exc:
        check_metadata_name(meta, "requests-2.0-py3-none-any.whl")
    assert str(exc.value) == (
        "requests-2.0-py3-none-any.whl: metadata Name 'evil' does not match the project"
        " 'requests' in the filename: refusing the file"
    )


# --- sdists: which source is trusted ---------------------------------------------------


def test_static_pkg_info_2_2_is_trusted() -> None:
    info = sdist_info(
        _tar({"foo-1.0/PKG-INFO": STATIC_PKG_INFO, "foo-1.0/setup.py": b""}), "foo-1.0.tar.gz"
    )
    assert info == SdistInfo(
        metadata=parse_core_metadata(STATIC_PKG_INFO),
        source="PKG-INFO (Metadata-Version 2.2)",
        build_requires=("setuptools>=40.8.0",),
        build_backend=None,
    )


def test_dynamic_pkg_info_falls_back_to_static_pyproject() -> None:
    pkg_info = _pkg_info("2.3", "Requires-Dist: stale", "Dynamic: Requires-Dist")
    info = sdist_info(
        _tar({"foo-1.0/PKG-INFO": pkg_info, "foo-1.0/pyproject.toml": PYPROJECT_STATIC}),
        "foo-1.0.tar.gz",
    )
    assert info == SdistInfo(
        metadata=CoreMetadata(
            name="Foo",
            version="1.0",
            requires_dist=(
                "bar>=2",
                "qux; sys_platform == 'win32'",
                'click>=8; extra == "cli"',
                'colorama; (os_name == "nt") and extra == "cli"',
            ),
            requires_python=">=3.9",
            provides_extra=("cli",),
        ),
        source="pyproject.toml [project]",
        build_requires=("hatchling>=1.20",),
        build_backend="hatchling.build",
    )


def test_dynamic_pyproject_falls_back_to_egg_info_with_every_section_kind() -> None:
    info = sdist_info(
        _tar(
            {
                "foo-1.0/PKG-INFO": _pkg_info("2.1", "Requires-Python: >=3.7"),
                "foo-1.0/pyproject.toml": PYPROJECT_DYNAMIC,
                "foo-1.0/src/foo.egg-info/PKG-INFO": b"",
                "foo-1.0/src/foo.egg-info/requires.txt": REQUIRES_TXT,
            }
        ),
        "foo-1.0.tar.gz",
    )
    assert info == SdistInfo(
        metadata=CoreMetadata(
            name="Foo",
            version="1.0",
            requires_dist=(
                "bar>=3",
                "six",
                'click>=8; extra == "cli"',
                'tomli>=1; (python_version < "3.11")',
                (
                    'pyyaml; (python_version >= "3.8") and (sys_platform == "win32")'
                    ' and extra == "yaml"'
                ),
            ),
            requires_python=">=3.7",
            provides_extra=("cli", "yaml"),
        ),
        source="egg-info requires.txt",
        build_requires=("setuptools>=61", "wheel"),
        build_backend="setuptools.build_meta",
    )


def test_egg_info_without_requires_txt_means_no_dependencies() -> None:
    info = sdist_info(
        _tar(
            {
                "foo-1.0/PKG-INFO": _pkg_info("1.2"),
                "foo-1.0/foo.egg-info/PKG-INFO": b"",
                "foo-1.0/foo.egg-info/SOURCES.txt": b"",
            }
        ),
        "foo-1.0.tar.gz",
    )
    assert info.source == "egg-info without requires.txt (no dependencies)"
    assert info.metadata is not None
    assert info.metadata.requires_dist == ()


def test_nothing_static_gives_none_and_says_what_was_missing() -> None:
    info = sdist_info(
        _tar(
            {
                "foo-1.0/PKG-INFO": _pkg_info(
                    "2.2", "Dynamic: Requires-Dist", "Dynamic: Provides-Extra"
                ),
                "foo-1.0/pyproject.toml": PYPROJECT_DYNAMIC,
                "foo-1.0/setup.py": b"",
            }
        ),
        "foo-1.0.tar.gz",
    )
    assert info == SdistInfo(
        metadata=None,
        source="no static metadata: PKG-INFO lists requires-dist, provides-extra as Dynamic;"
        " pyproject.toml [project] lists dependencies as dynamic; no *.egg-info/requires.txt",
        build_requires=("setuptools>=61", "wheel"),
        build_backend="setuptools.build_meta",
    )


def test_old_pkg_info_without_anything_else_is_unknowable() -> None:
    info = sdist_info(_tar({"foo-1.0/PKG-INFO": _pkg_info("2.1")}), "foo-1.0.tar.gz")
    assert info.metadata is None
    assert info.source == (
        "no static metadata: PKG-INFO Metadata-Version 2.1 is older than 2.2;"
        " no pyproject.toml; no *.egg-info/requires.txt"
    )


@pytest.mark.parametrize(
    ("pyproject", "requires", "backend"),
    [
        (None, ("setuptools>=40.8.0",), None),
        (b"[project]\nname = 'foo'\nversion = '1.0'\n", ("setuptools>=40.8.0",), None),
        (
            b"[build-system]\nbuild-backend = 'flit_core.buildapi'\n",
            ("setuptools>=40.8.0",),
            "flit_core.buildapi",
        ),
        (b"[build-system]\nrequires = []\n", (), None),
    ],
    ids=["no-pyproject", "no-table", "no-requires", "empty-requires"],
)
def test_build_system_defaults(
    pyproject: bytes | None, requires: tuple[str, ...], backend: str | None
) -> None:
    files = {"foo-1.0/PKG-INFO": STATIC_PKG_INFO}
    if pyproject is not None:
        files["foo-1.0/pyproject.toml"] = pyproject
    info = sdist_info(_tar(files), "foo-1.0.tar.gz")
    assert (info.build_requires, info.build_backend) == (requires, backend)


@pytest.mark.parametrize(
    ("suffix", "make"),
    [
        (".tar.gz", lambda f: _tar(f, "w:gz")),
        (".tar.bz2", lambda f: _tar(f, "w:bz2")),
        (".tar.xz", lambda f: _tar(f, "w:xz")),
        (".zip", _zip),
    ],
)
def test_every_sdist_format_is_read(suffix: str, make: object) -> None:
    assert callable(make)
    archive = make(
        {"foo-1.0/PKG-INFO": STATIC_PKG_INFO, "foo-1.0/pyproject.toml": PYPROJECT_STATIC}
    )
    info = sdist_info(archive, f"foo-1.0{suffix}")
    assert info.source == "PKG-INFO (Metadata-Version 2.2)"
    assert info.build_requires == ("hatchling>=1.20",)


def test_invalid_pyproject_is_an_error_naming_the_sdist() -> None:
    with pytest.raises(MetadataError) as exc:
        sdist_info(
            _tar({"foo-1.0/PKG-INFO": STATIC_PKG_INFO, "foo-1.0/pyproject.toml": b"[x"}),
            "foo-1.0.tar.gz",
        )
    assert str(exc.value) == (
        "foo-1.0.tar.gz: pyproject.toml is not valid TOML (Expected ']' at the end of a table"
        " declaration (at end of document))"
    )


def test_invalid_build_requirement_is_an_error() -> None:
    with pytest.raises(MetadataError) as exc:
        sdist_info(
            _tar({"foo-1.0/pyproject.toml": b"[build-system]\nrequires = ['ok', 'bad >>> 1']\n"}),
            "foo-1.0.tar.gz",
        )
    assert str(exc.value).startswith(
        "foo-1.0.tar.gz: pyproject.toml [build-system].requires entry 'bad >>> 1' is not PEP 508 ("
    )


def test_sdist_with_several_top_directories_is_refused() -> None:
    with pytest.raises(MetadataError) as exc:
        sdist_info(_tar({"a/PKG-INFO": b"", "b/PKG-INFO": b""}), "foo-1.0.tar.gz")
    assert str(exc.value) == (
        "foo-1.0.tar.gz: several top-level directories (a, b) and none is 'foo-1.0':"
        " not a valid sdist"
    )


def test_unknown_sdist_suffix_is_an_error() -> None:
    with pytest.raises(MetadataError) as exc:
        sdist_info(io.BytesIO(b""), "foo-1.0.rar")
    assert str(exc.value) == (
        "foo-1.0.rar: not an sdist (expected one of .tar.gz, .tgz, .tar.bz2, .tbz, .tar.xz,"
        " .txz, .tar, .zip)"
    )


def test_duplicate_name_is_refused() -> None:
    with pytest.raises(MetadataError) as exc:
        parse_core_metadata(b"Name: foo\nName: evil\nVersion: 1.0\n", origin="x.metadata")
    assert str(exc.value) == "x.metadata: Name appears more than once: refusing it"


def test_bad_requirements_in_sdist_sources_are_problems_not_failures() -> None:
    pyproject = b"""
[project]
name = "foo"
version = "1.0"
dependencies = ["ok", "bad >>> 1"]
optional-dependencies = { x = ["worse <<<"] }
"""
    info = sdist_info(_tar({"foo-1.0/pyproject.toml": pyproject}), "foo-1.0.tar.gz")
    assert info.metadata == CoreMetadata(
        name="foo",
        version="1.0",
        requires_dist=("ok",),
        requires_python=None,
        provides_extra=("x",),
        problems=(
            "Requires-Dist 'bad >>> 1' is not PEP 508: ignored",
            "requirement 'worse <<<' in [x] is not PEP 508: ignored",
        ),
    )
    egg = sdist_info(
        _tar({"foo-1.0/foo.egg-info/requires.txt": b"fine\n[:not a marker]\nbar\n"}),
        "foo-1.0.tar.gz",
    )
    assert egg.metadata == CoreMetadata(
        name="foo",
        version="1.0",
        requires_dist=("fine",),
        requires_python=None,
        provides_extra=(),
        problems=("requirement 'bar' in [:not a marker] is not PEP 508: ignored",),
    )
    assert egg.source == "egg-info requires.txt"


def test_dynamic_version_in_pyproject_comes_from_pkg_info() -> None:
    pyproject = b'[project]\nname = "foo"\ndynamic = ["version"]\ndependencies = ["bar"]\n'
    info = sdist_info(
        _tar({"foo-1.0/PKG-INFO": _pkg_info("2.1"), "foo-1.0/pyproject.toml": pyproject}),
        "foo-1.0.tar.gz",
    )
    assert info.source == "pyproject.toml [project]"
    assert info.metadata is not None
    assert (info.metadata.version, info.metadata.requires_dist) == ("1.0", ("bar",))


def test_egg_info_of_another_project_is_not_used() -> None:
    info = sdist_info(
        _tar(
            {
                "foo-1.0/PKG-INFO": _pkg_info("1.0"),
                "foo-1.0/tests/fixture.egg-info/requires.txt": b"evil\n",
            }
        ),
        "foo-1.0.tar.gz",
    )
    assert info.metadata is None
    assert info.source == (
        "no static metadata: PKG-INFO Metadata-Version 1.0 is older than 2.2;"
        " no pyproject.toml; no *.egg-info/requires.txt"
    )


def test_sdist_top_directory_may_differ_from_the_filename_spelling() -> None:
    info = sdist_info(_tar({"Foo_Bar-1.0/PKG-INFO": STATIC_PKG_INFO}), "foo_bar-1.0.tar.gz")
    assert info.source == "PKG-INFO (Metadata-Version 2.2)"
