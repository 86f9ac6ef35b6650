"""Core metadata of a distribution without running any of its code.

Sources, per STANDARDS.md "Metadata without running code": a PEP 658 ``.metadata`` file or
a wheel's ``*.dist-info/METADATA`` (always static); for an sdist, ``PKG-INFO`` when its
Metadata-Version is at least 2.2 and nothing that matters is Dynamic, else
``pyproject.toml [project]`` when dependencies are static, else setuptools'
``*.egg-info/requires.txt``. Anything else is reported as unknowable (``metadata=None``).
Archives are read in memory through :mod:`rules.archives` (bounded, never extracted).
"""

from __future__ import annotations

import email.parser
import email.policy
import re
import tomllib
from dataclasses import dataclass
from typing import Any, BinaryIO

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import (
    InvalidWheelFilename,
    canonicalize_name,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from rules.archives import (
    MAX_MEMBER_SIZE,
    open_zip,
    read_tar_members,
    read_zip_member,
    zip_regular_files,
)
from rules.errors import MetadataError

MAX_REQUIREMENTS = 10_000
"""Most Requires-Dist entries accepted in one metadata file (real projects have < 500)."""

DEFAULT_BUILD_REQUIRES = ("setuptools>=40.8.0",)
"""What pip and uv assume when pyproject.toml has no [build-system] requires."""

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

    name = one("Name")
    if not name or not _PROJECT_NAME.match(name):
        raise MetadataError(f"{origin}: Name {name!r} is missing or not a valid project name")
    version = one("Version")
    try:
        Version(version or "")
    except InvalidVersion as exc:
        raise MetadataError(
            f"{origin}: Version {version!r} is missing or not a PEP 440 version"
        ) from exc
    assert version is not None  # Version("") raised above  # noqa: S101
    raw_requires = many("Requires-Dist")
    if len(raw_requires) > MAX_REQUIREMENTS:
        raise MetadataError(
            f"{origin}: {len(raw_requires)} Requires-Dist entries, over the limit of"
            f" {MAX_REQUIREMENTS}"
        )
    requires = _valid_requirements(raw_requires, problems)
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


def _valid_requirements(raw: list[str], problems: list[str]) -> list[str]:
    valid: list[str] = []
    for entry in raw:
        try:
            Requirement(entry)
        except InvalidRequirement:
            problems.append(f"Requires-Dist {entry!r} is not PEP 508: ignored")
        else:
            valid.append(entry)
    return valid


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
    with open_zip(fileobj, filename) as zf:
        members = zip_regular_files(zf, filename)
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
        return read_zip_member(zf, members[member], filename)


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
    wanted = _wanted_sdist_member
    if filename.lower().endswith(".zip"):
        with open_zip(fileobj, filename) as zf:
            members = zip_regular_files(zf, filename)
            names = frozenset(members)
            found = {n: read_zip_member(zf, members[n], filename) for n in names if wanted(n)}
    else:
        found, names = read_tar_members(fileobj, filename, wanted)
    files = SdistFiles.select(found, names, stem, filename)
    metadata, source = _sdist_metadata(files, filename)
    requires, backend = _build_system(files.pyproject, filename)
    return SdistInfo(
        metadata=metadata, source=source, build_requires=requires, build_backend=backend
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
        cls, found: dict[str, bytes], names: frozenset[str], stem: str, filename: str
    ) -> SdistFiles:
        """Pick the top-level directory (the filename's stem, or the only one) and its files."""
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
        # Prefer the egg-info of this project, then the shallowest (src/ layouts nest it).
        ranked = sorted(
            eggs,
            key=lambda d: (
                canonicalize_name(d.rsplit("/", 1)[-1][: -len(".egg-info")]) != project,
                d.count("/"),
                d,
            ),
        )
        egg = ranked[0] if ranked else None
        return cls(
            pkg_info=found.get(f"{top}/PKG-INFO"),
            pyproject=found.get(f"{top}/pyproject.toml"),
            egg_info=egg,
            requires_txt=None if egg is None else found.get(f"{egg}/requires.txt"),
        )


def _wanted_egg_member(name: str) -> bool:
    parts = name.split("/")
    return (
        len(parts) >= 3
        and parts[-2].endswith(".egg-info")
        and parts[-1]
        in (
            "PKG-INFO",
            "requires.txt",
        )
    )


def _sdist_metadata(files: SdistFiles, filename: str) -> tuple[CoreMetadata | None, str]:
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
    if files.pyproject is None:
        reasons.append("no pyproject.toml")
    else:
        project = load_pyproject(files.pyproject, filename).get("project")
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
        requires, extras = parse_requires_txt(files.requires_txt or b"", problems)
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
    requires = _valid_requirements(_string_list(project.get("dependencies", []), where), problems)
    optional = project.get("optional-dependencies", {})
    if not isinstance(optional, dict):
        raise MetadataError(f"{where}: optional-dependencies is not a table")
    for extra, entries in optional.items():
        with_marker = [
            _add_markers(entry, "", str(extra), problems) for entry in _string_list(entries, where)
        ]
        requires.extend(r for r in with_marker if r is not None)
    return CoreMetadata(
        name=name,
        version=version,
        requires_dist=tuple(requires),
        requires_python=None if requires_python is None else str(requires_python),
        provides_extra=tuple(str(e) for e in optional),
        problems=tuple(problems),
    )


def _string_list(value: object, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise MetadataError(f"{where}: dependencies must be lists of strings")
    if len(value) > MAX_REQUIREMENTS:
        raise MetadataError(
            f"{where}: {len(value)} dependencies, over the limit of {MAX_REQUIREMENTS}"
        )
    return value


def _add_markers(entry: str, marker: str, extra: str, problems: list[str]) -> str | None:
    """*entry* with *marker* and ``extra == "<extra>"`` and-ed to its own marker, or None."""
    try:
        req = Requirement(entry)
        parts = [f"({m})" for m in (str(req.marker) if req.marker else "", marker) if m]
        if extra:
            parts.append(f'extra == "{extra}"')
        req.marker = None
        combined = str(req) + ("; " + " and ".join(parts) if parts else "")
        Requirement(combined)
    except InvalidRequirement:
        where = f"[{extra}{':' + marker if marker else ''}]" if extra or marker else ""
        problems.append(f"requirement {entry!r} {where} is not PEP 508: ignored".replace("  ", " "))
        return None
    return combined


def parse_requires_txt(data: bytes, problems: list[str]) -> tuple[list[str], list[str]]:
    """setuptools' ``requires.txt`` as Requires-Dist strings and the extras it declares.

    Sections ``[extra]``, ``[:marker]`` and ``[extra:marker]`` become markers and-ed onto
    each requirement (``extra == "extra"``); bad lines are noted in *problems* and skipped.
    """
    text = data.decode("utf-8", errors="replace")
    requires: list[str] = []
    extras: list[str] = []
    extra, marker = "", ""
    for raw_line in text.splitlines():
        line = raw_line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            extra, _, marker = (part.strip() for part in line[1:-1].partition(":"))
            if extra and extra not in extras:
                extras.append(extra)
            continue
        if len(requires) >= MAX_REQUIREMENTS:
            raise MetadataError(f"requires.txt: over {MAX_REQUIREMENTS} requirements")
        combined = _add_markers(line, marker, extra, problems)
        if combined is not None:
            requires.append(combined)
    return requires, extras


def load_pyproject(data: bytes, filename: str) -> dict[str, Any]:
    """pyproject.toml as a dict; MetadataError naming the sdist when it is not valid TOML."""
    try:
        return tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise MetadataError(f"{filename}: pyproject.toml is not valid TOML ({exc})") from exc


def _build_system(pyproject: bytes | None, filename: str) -> tuple[tuple[str, ...], str | None]:
    if pyproject is None:
        return DEFAULT_BUILD_REQUIRES, None
    table = load_pyproject(pyproject, filename).get("build-system")
    if table is None:
        return DEFAULT_BUILD_REQUIRES, None
    if not isinstance(table, dict):
        raise MetadataError(f"{filename}: pyproject.toml [build-system] is not a table")
    requires = table.get("requires")
    if requires is None:
        requires_t = DEFAULT_BUILD_REQUIRES
    elif not isinstance(requires, list) or not all(isinstance(r, str) for r in requires):
        raise MetadataError(
            f"{filename}: pyproject.toml [build-system].requires must be a list of strings"
        )
    else:
        for entry in requires:
            try:
                Requirement(entry)
            except InvalidRequirement as exc:
                raise MetadataError(
                    f"{filename}: pyproject.toml [build-system].requires entry {entry!r}"
                    f" is not PEP 508 ({exc})"
                ) from exc
        requires_t = tuple(requires)
    backend = table.get("build-backend")
    if backend is not None and not isinstance(backend, str):
        raise MetadataError(
            f"{filename}: pyproject.toml [build-system].build-backend is not a string"
        )
    return requires_t, backend


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
