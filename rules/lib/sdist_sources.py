"""The static dependency declarations an sdist may carry besides PKG-INFO, as PEP 508 strings.

``pyproject.toml`` (``[project]`` dependencies and ``[build-system]``) and setuptools'
``*.egg-info/requires.txt``. Pure functions over bytes and dicts: the archive reading and
the choice between sources live in :mod:`rules.lib.metadata`.
"""

from __future__ import annotations

import tomllib
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement

from rules.errors import MetadataError

MAX_REQUIREMENTS = 10_000
"""Most requirements accepted from one metadata source (real projects have < 500)."""

DEFAULT_BUILD_REQUIRES = ("setuptools>=40.8.0",)
"""What pip and uv assume when pyproject.toml has no [build-system] requires."""


def valid_requirements(raw: list[str], where: str, problems: list[str]) -> list[str]:
    """The entries of *raw* that are PEP 508; each other one is noted in *problems*."""
    if len(raw) > MAX_REQUIREMENTS:
        raise MetadataError(
            f"{where}: {len(raw)} Requires-Dist entries, over the limit of {MAX_REQUIREMENTS}"
        )
    valid: list[str] = []
    for entry in raw:
        try:
            Requirement(entry)
        except InvalidRequirement:
            problems.append(f"Requires-Dist {entry!r} is not PEP 508: ignored")
        else:
            valid.append(entry)
    return valid


def load_pyproject(data: bytes, filename: str) -> dict[str, Any]:
    """pyproject.toml as a dict; MetadataError naming the sdist when it is not valid TOML."""
    try:
        return tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise MetadataError(f"{filename}: pyproject.toml is not valid TOML ({exc})") from exc


def build_system(
    pyproject: dict[str, Any] | None, filename: str
) -> tuple[tuple[str, ...], str | None]:
    """``[build-system]`` requires and build-backend, with pip's and uv's defaults.

    A missing file, table or ``requires`` key means ``setuptools>=40.8.0``; a requirement
    that is not PEP 508 (pip would refuse to build) raises :class:`MetadataError`.
    """
    table = None if pyproject is None else pyproject.get("build-system")
    if table is None:
        return DEFAULT_BUILD_REQUIRES, None
    where = f"{filename}: pyproject.toml [build-system]"
    if not isinstance(table, dict):
        raise MetadataError(f"{where} is not a table")
    requires = table.get("requires")
    if requires is None:
        requires = list(DEFAULT_BUILD_REQUIRES)
    elif not isinstance(requires, list) or not all(isinstance(r, str) for r in requires):
        raise MetadataError(f"{where}.requires must be a list of strings")
    for entry in requires:
        try:
            Requirement(entry)
        except InvalidRequirement as exc:
            raise MetadataError(f"{where}.requires entry {entry!r} is not PEP 508 ({exc})") from exc
    backend = table.get("build-backend")
    if backend is not None and not isinstance(backend, str):
        raise MetadataError(f"{where}.build-backend is not a string")
    return tuple(requires), backend


def project_requirements(
    project: dict[str, Any], where: str, problems: list[str]
) -> tuple[list[str], list[str]]:
    """Requires-Dist strings and extras from a static ``[project]`` table.

    ``optional-dependencies`` entries get ``extra == "<name>"`` and-ed onto their marker.
    """
    requires = valid_requirements(
        _string_list(project.get("dependencies", []), where), where, problems
    )
    optional = project.get("optional-dependencies", {})
    if not isinstance(optional, dict):
        raise MetadataError(f"{where}: optional-dependencies is not a table")
    for extra, entries in optional.items():
        for entry in _string_list(entries, where):
            combined = _add_markers(entry, "", str(extra), problems)
            if combined is not None:
                requires.append(combined)
    if len(requires) > MAX_REQUIREMENTS:
        raise MetadataError(f"{where}: over {MAX_REQUIREMENTS} requirements")
    return requires, [str(extra) for extra in optional]


def parse_requires_txt(data: bytes, where: str, problems: list[str]) -> tuple[list[str], list[str]]:
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
            raise MetadataError(f"{where}: over {MAX_REQUIREMENTS} requirements")
        combined = _add_markers(line, marker, extra, problems)
        if combined is not None:
            requires.append(combined)
    return requires, extras


def _string_list(value: object, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise MetadataError(f"{where}: dependencies must be lists of strings")
    if len(value) > MAX_REQUIREMENTS:
        raise MetadataError(f"{where}: over {MAX_REQUIREMENTS} requirements")
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
        section = f"[{extra}{':' if marker else ''}{marker}]"
        problems.append(f"requirement {entry!r} in {section} is not PEP 508: ignored")
        return None
    return combined
