"""Core metadata of a distribution without running any of its code.

Sources, per STANDARDS.md "Metadata without running code": a PEP 658 ``.metadata`` file or
a wheel's ``*.dist-info/METADATA`` (always static); for an sdist, ``PKG-INFO`` when its
Metadata-Version is at least 2.2 and nothing that matters is Dynamic, else
``pyproject.toml [project]`` when dependencies are static, else setuptools'
``*.egg-info/requires.txt``. Anything else is reported as unknowable (``metadata=None``).
Archives are read in memory through :mod:`rules.lib.archives` (bounded, never extracted).
"""

from __future__ import annotations

import contextlib
import email.parser
import email.policy
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any, BinaryIO

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import (
    InvalidWheelFilename,
    canonicalize_name,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from rules.errors import MetadataError
from rules.lib.archives import (
    MAX_MEMBER_SIZE,
    open_zip,
    plain_zip_members,
    read_plain_member,
    read_tar_members,
    read_zip_member,
    zip_regular_files,
)
from rules.lib.backend_config import backend_config_requires
from rules.lib.sdist_sources import (
    DEFAULT_BUILD_REQUIRES,
    MAX_REQUIREMENTS,
    build_system,
    load_pyproject,
    parse_requires_txt,
    project_requirements,
    valid_requirements,
)

_SDIST_SUFFIXES = (".tar.gz", ".tgz", ".tar.bz2", ".tbz", ".tar.xz", ".txz", ".tar", ".zip")
_PROJECT_NAME = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$", re.IGNORECASE)
_FOLD = re.compile(r"\r?\n[ \t]+")


@dataclass(frozen=True, slots=True)
class CoreMetadata:
    """The parts of core metadata that resolution needs, as the file wrote them."""

    name: str  # as written in Name:
    version: str
    requires_dist: tuple[str, ...]  # valid PEP 508 strings only
    requires_python: str | None
    provides_extra: tuple[str, ...]
    problems: tuple[str, ...] = ()  # what was ignored or repaired, one line each


@dataclass(frozen=True, slots=True)
class SdistInfo:
    """What an sdist says about itself without being built."""

    metadata: CoreMetadata | None  # None: dependencies unknowable without running code
    source: str  # where metadata came from, or what was missing
    build_requires: tuple[str, ...]
    build_backend: str | None
    # what the backend asks for because of the project's configuration (backend_config)
    backend_requires: tuple[str, ...] = ()


# --- core metadata (email format) ------------------------------------------------------


def parse_core_metadata(data: bytes, *, origin: str = "core metadata") -> CoreMetadata:
    """Parse METADATA / PKG-INFO / ``.metadata`` bytes of any Metadata-Version.

    Invalid UTF-8 is replaced (U+FFFD) and noted in ``problems``; so are Requires-Dist
    entries that are not PEP 508 and an invalid Requires-Python (both ignored). A missing or
    invalid Name or Version, an oversized file or too many Requires-Dist entries raise
    :class:`MetadataError` naming *origin*.
    """
    if len(data) > MAX_MEMBER_SIZE:
        raise MetadataError(
            f"{origin}: {len(data)} bytes, over the {MAX_MEMBER_SIZE}-byte limit for core metadata"
        )
    problems: list[str] = []
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        text = data.decode("utf-8", errors="replace")
        problems.append(
            f"not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start}):"
            " undecodable bytes replaced with U+FFFD"
        )
    msg = email.parser.Parser(policy=email.policy.compat32).parsestr(text, headersonly=True)

    def one(field: str) -> str | None:
        value = msg.get(field)
        return None if value is None else _FOLD.sub(" ", str(value)).strip()

    def many(field: str) -> list[str]:
        return [_FOLD.sub(" ", str(v)).strip() for v in msg.get_all(field) or []]

    for field in ("Name", "Version"):
        if len(msg.get_all(field) or []) > 1:
            raise MetadataError(f"{origin}: {field} appears more than once: refusing it")
    name = one("Name")
    if not name or not _PROJECT_NAME.match(name):
        raise MetadataError(f"{origin}: Name {name!r} is missing or not a valid project name")
    version = one("Version") or ""
    try:
        Version(version)
    except InvalidVersion as exc:
        raise MetadataError(
            f"{origin}: Version {version!r} is missing or not a PEP 440 version"
        ) from exc
    requires = valid_requirements(many("Requires-Dist"), origin, problems)
    requires_python = one("Requires-Python")
    if requires_python is not None:
        try:
            SpecifierSet(requires_python)
        except InvalidSpecifier:
            problems.append(f"Requires-Python {requires_python!r} is not a specifier: ignored")
            requires_python = None
    return CoreMetadata(
        name=name,
        version=version,
        requires_dist=tuple(requires),
        requires_python=requires_python,
        provides_extra=tuple(many("Provides-Extra")),
        problems=tuple(problems),
    )


def _metadata_fields(data: bytes) -> tuple[str | None, list[str]]:
    """Metadata-Version and the Dynamic fields (lowercased) of a PKG-INFO."""
    text = data.decode("utf-8", errors="replace")
    msg = email.parser.Parser(policy=email.policy.compat32).parsestr(text, headersonly=True)
    version = msg.get("Metadata-Version")
    dynamic = [str(v).strip().lower() for v in msg.get_all("Dynamic") or []]
    return (None if version is None else str(version).strip()), dynamic


def check_metadata_name(meta: CoreMetadata, filename: str) -> None:
    """Raise MetadataError when *meta*'s normalized Name is not the project of *filename*."""
    project = filename_project(filename)
    if canonicalize_name(meta.name) != project:
        raise MetadataError(
            f"{filename}: metadata Name {meta.name!r} does not match the project"
            f" {project!r} in the filename: refusing the file"
        )


def filename_project(filename: str) -> str:
    """The normalized project name a wheel or sdist filename declares."""
    if filename.endswith(".whl"):
        try:
            return str(parse_wheel_filename(filename)[0])
        except InvalidWheelFilename as exc:
            raise MetadataError(f"{filename}: not a valid wheel filename ({exc})") from exc
    stem = _sdist_stem(filename)
    name, sep, _ = stem.rpartition("-")
    if not sep or not _PROJECT_NAME.match(name):
        raise MetadataError(
            f"{filename}: not a valid sdist filename (expected NAME-VERSION.tar.gz)"
        )
    return str(canonicalize_name(name))


def _sdist_stem(filename: str) -> str:
    for suffix in _SDIST_SUFFIXES:
        if filename.lower().endswith(suffix):
            return filename[: -len(suffix)]
    raise MetadataError(f"{filename}: not an sdist (expected one of {', '.join(_SDIST_SUFFIXES)})")


# --- wheels ----------------------------------------------------------------------------


def wheel_metadata_bytes(fileobj: BinaryIO, filename: str) -> bytes:
    """The exact bytes of ``<name>-<version>.dist-info/METADATA`` inside a wheel.

    The wheel is read as a zip from the seekable *fileobj*, never extracted. The dist-info
    directory is the single top-level ``*.dist-info`` whose name and version match the
    filename's (normalized comparison); none, several, or a missing / oversized METADATA
    raise :class:`MetadataError`.
    """
    try:
        name, version, _, _ = parse_wheel_filename(filename)
    except InvalidWheelFilename as exc:
        raise MetadataError(f"{filename}: not a valid wheel filename ({exc})") from exc
    plain = plain_zip_members(fileobj)
    if plain is not None:
        with contextlib.suppress(MetadataError):
            data = read_plain_member(
                fileobj, plain[_metadata_member(plain, filename, name, version)]
            )
            if data is not None:
                return data
    # Not a plain zip, or something is wrong: zipfile reads it and says what.
    return _zipfile_metadata(fileobj, filename, name, version)


def _zipfile_metadata(fileobj: BinaryIO, filename: str, name: str, version: Version) -> bytes:
    """:func:`wheel_metadata_bytes` read with :mod:`zipfile` (any zip; every refusal)."""
    with open_zip(fileobj, filename) as zf:
        members = zip_regular_files(zf, filename)
        return read_zip_member(
            zf, members[_metadata_member(members, filename, name, version)], filename
        )


def _metadata_member(members: Collection[str], filename: str, name: str, version: Version) -> str:
    """The wheel's ``<name>-<version>.dist-info/METADATA`` among its regular ``members``."""
    dirs = sorted({m.split("/", 1)[0] for m in members if "/" in m} - {""})
    info_dirs = [d for d in dirs if d.endswith(".dist-info")]
    matching = [d for d in info_dirs if _dist_info_matches(d, name, version)]
    if not matching:
        found = ", ".join(info_dirs) or "none"
        raise MetadataError(
            f"{filename}: no .dist-info directory for {name} {version}"
            f" (found: {found}): not a valid wheel"
        )
    if len(matching) > 1:
        raise MetadataError(
            f"{filename}: several .dist-info directories match {name} {version}"
            f" ({', '.join(matching)}): refusing an ambiguous wheel"
        )
    member = f"{matching[0]}/METADATA"
    if member not in members:
        raise MetadataError(f"{filename}: {member} is missing: not a valid wheel")
    return member


def _dist_info_matches(directory: str, name: str, version: Version) -> bool:
    stem = directory[: -len(".dist-info")]
    dir_name, sep, dir_version = stem.rpartition("-")
    if not sep:
        return False
    try:
        return canonicalize_name(dir_name) == name and Version(dir_version) == version
    except InvalidVersion:
        return False


# --- sdists ----------------------------------------------------------------------------


def sdist_info(fileobj: BinaryIO, filename: str) -> SdistInfo:
    """Core metadata and build requirements of an sdist, never running its code.

    *fileobj* is a seekable ``.tar.gz``/``.tar.bz2``/``.tar.xz``/``.zip`` sdist. See the
    module docstring for the order of sources; ``source`` says which one was used, or what
    each lacked when ``metadata`` is None. Raises :class:`MetadataError` for unreadable or
    hostile archives and for an invalid ``pyproject.toml``.
    """
    stem = _sdist_stem(filename)
    if filename.lower().endswith(".zip"):
        with open_zip(fileobj, filename) as zf:
            members = zip_regular_files(zf, filename)

            def read(name: str) -> bytes | None:
                info = members.get(name)
                return None if info is None else read_zip_member(zf, info, filename)

            files = SdistFiles.select(frozenset(members), read, stem, filename)
    else:
        found, names = read_tar_members(fileobj, filename, _wanted_sdist_member)
        files = SdistFiles.select(names, found.get, stem, filename)
    pyproject = None if files.pyproject is None else load_pyproject(files.pyproject, filename)
    metadata, source = _sdist_metadata(files, pyproject, filename)
    requires, backend = build_system(pyproject, filename)
    return SdistInfo(
        metadata=metadata,
        source=source,
        build_requires=requires,
        build_backend=backend,
        backend_requires=backend_config_requires(pyproject, backend, filename),
    )


def _wanted_sdist_member(name: str) -> bool:
    parts = name.split("/")
    if len(parts) == 2:
        return parts[1] in ("PKG-INFO", "pyproject.toml")
    return 3 <= len(parts) <= 4 and _wanted_egg_member(name) and parts[-1] == "requires.txt"


@dataclass(frozen=True, slots=True)
class SdistFiles:
    """The metadata files found under an sdist's top-level directory."""

    pkg_info: bytes | None
    pyproject: bytes | None
    egg_info: str | None  # the chosen *.egg-info directory, if any
    requires_txt: bytes | None

    @classmethod
    def select(
        cls,
        names: frozenset[str],
        read: Callable[[str], bytes | None],
        stem: str,
        filename: str,
    ) -> SdistFiles:
        """Pick the top-level directory (the filename's stem, or the only one) and its files.

        *names* are the archive's safe regular files; *read* gives a member's bytes (None
        when absent) and is called only for the few files chosen here.
        """
        tops = {n.split("/", 1)[0] for n in names if "/" in n}
        if stem in tops or not tops:
            top = stem
        elif len(tops) == 1:
            (top,) = tops
        else:
            raise MetadataError(
                f"{filename}: several top-level directories ({', '.join(sorted(tops))})"
                f" and none is {stem!r}: not a valid sdist"
            )
        project = filename_project(filename)
        eggs = {
            n.rsplit("/", 1)[0]
            for n in names
            if n.startswith(f"{top}/") and _wanted_egg_member(n) and n.count("/") <= 3
        }
        # Only this project's egg-info counts (test fixtures may ship others); the shallowest
        # wins (src/ layouts nest it one level down).
        ranked = sorted(
            (
                d
                for d in eggs
                if canonicalize_name(d.rsplit("/", 1)[-1].removesuffix(".egg-info")) == project
            ),
            key=lambda d: (d.count("/"), d),
        )
        egg = ranked[0] if ranked else None
        return cls(
            pkg_info=read(f"{top}/PKG-INFO"),
            pyproject=read(f"{top}/pyproject.toml"),
            egg_info=egg,
            requires_txt=None if egg is None else read(f"{egg}/requires.txt"),
        )


def _wanted_egg_member(name: str) -> bool:
    """True for ``<...>/<x>.egg-info/PKG-INFO`` or ``requires.txt`` (marks an egg-info dir)."""
    parts = name.split("/")
    egg_files = ("PKG-INFO", "requires.txt")
    return len(parts) >= 3 and parts[-2].endswith(".egg-info") and parts[-1] in egg_files


def _sdist_metadata(
    files: SdistFiles, pyproject: dict[str, Any] | None, filename: str
) -> tuple[CoreMetadata | None, str]:
    reasons: list[str] = []
    pkg = None
    if files.pkg_info is None:
        reasons.append("no PKG-INFO")
    else:
        pkg = parse_core_metadata(files.pkg_info, origin=f"{filename}: PKG-INFO")
        meta_version, dynamic = _metadata_fields(files.pkg_info)
        fields: tuple[str, ...] = ("requires-dist", "requires-python", "provides-extra")
        blocking = [f for f in fields if f in dynamic]
        if not _at_least_2_2(meta_version):
            reasons.append(f"PKG-INFO Metadata-Version {meta_version} is older than 2.2")
        elif blocking:
            reasons.append(f"PKG-INFO lists {', '.join(blocking)} as Dynamic")
        else:
            return pkg, f"PKG-INFO (Metadata-Version {meta_version})"
    if pyproject is None:
        reasons.append("no pyproject.toml")
    else:
        project = pyproject.get("project")
        if not isinstance(project, dict):
            reasons.append("pyproject.toml has no [project] table")
        else:
            dynamic = project.get("dynamic", [])
            blocking = [f for f in ("dependencies", "optional-dependencies") if f in dynamic]
            if blocking:
                reasons.append(f"pyproject.toml [project] lists {', '.join(blocking)} as dynamic")
            else:
                return _from_pyproject(project, pkg, filename), "pyproject.toml [project]"
    if files.egg_info is None:
        reasons.append("no *.egg-info/requires.txt")
    else:
        problems: list[str] = list(pkg.problems) if pkg else []
        where = f"{filename}: {files.egg_info}/requires.txt"
        requires, extras = parse_requires_txt(files.requires_txt or b"", where, problems)
        name, version = _filename_name_version(filename)
        meta = CoreMetadata(
            name=pkg.name if pkg else name,
            version=pkg.version if pkg else version,
            requires_dist=tuple(requires),
            requires_python=pkg.requires_python if pkg else None,
            provides_extra=tuple(extras),
            problems=tuple(problems),
        )
        if files.requires_txt is None:  # setuptools deletes requires.txt when it is empty
            return meta, "egg-info without requires.txt (no dependencies)"
        return meta, "egg-info requires.txt"
    return None, "no static metadata: " + "; ".join(reasons)


def _at_least_2_2(meta_version: str | None) -> bool:
    try:
        return meta_version is not None and Version(meta_version) >= Version("2.2")
    except InvalidVersion:
        return False


def _filename_name_version(filename: str) -> tuple[str, str]:
    name, _, version = _sdist_stem(filename).rpartition("-")
    return name, version


def _from_pyproject(
    project: dict[str, Any], pkg: CoreMetadata | None, filename: str
) -> CoreMetadata:
    where = f"{filename}: pyproject.toml [project]"
    problems: list[str] = []
    name = project.get("name")
    if not isinstance(name, str) or not _PROJECT_NAME.match(name):
        raise MetadataError(f"{where}: name {name!r} is missing or not a valid project name")
    dynamic = project.get("dynamic", [])
    version = project.get("version")
    if not isinstance(version, str):
        if "version" not in dynamic:
            raise MetadataError(f"{where}: version is missing and not listed in dynamic")
        version = pkg.version if pkg else _filename_name_version(filename)[1]
    requires_python = project.get("requires-python")
    if requires_python is None and "requires-python" in dynamic:
        requires_python = pkg.requires_python if pkg else None
    if requires_python is not None:
        try:
            SpecifierSet(str(requires_python))
        except InvalidSpecifier:
            problems.append(f"requires-python {requires_python!r} is not a specifier: ignored")
            requires_python = None
    requires, extras = project_requirements(project, where, problems)
    return CoreMetadata(
        name=name,
        version=version,
        requires_dist=tuple(requires),
        requires_python=None if requires_python is None else str(requires_python),
        provides_extra=tuple(extras),
        problems=tuple(problems),
    )


__all__ = [
    "DEFAULT_BUILD_REQUIRES",
    "MAX_REQUIREMENTS",
    "CoreMetadata",
    "SdistInfo",
    "check_metadata_name",
    "filename_project",
    "parse_core_metadata",
    "sdist_info",
    "wheel_metadata_bytes",
]
