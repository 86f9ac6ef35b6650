"""Edits of ``mirror.toml`` that keep every comment and the layout of the untouched parts.

The spec is parsed with tomlkit (which round-trips byte for byte), changed in place, and
written back atomically only when the result still loads as a valid spec
(:func:`morgan.spec.parse_spec`): a command can never leave a broken ``mirror.toml`` behind.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import tomlkit
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from tomlkit.exceptions import TOMLKitError
from tomlkit.items import Array

from morgan.errors import SpecError, UsageError
from morgan.resolve import parse_requirement
from morgan.spec import Spec, load_spec, parse_spec
from morgan.toml_reader import check_nesting, display_path
from store import fsio

__all__ = [
    "RequirementChange",
    "add_requirements",
    "index_requirement",
    "read_document",
    "remove_requirements",
    "write_checked",
]


@dataclass(frozen=True, slots=True)
class RequirementChange:
    """What one edit did to one requirement: ``added``, ``replaced`` (``old`` set) or ``kept``."""

    action: str
    requirement: str
    old: str | None = None


def read_document(spec_path: Path) -> tomlkit.TOMLDocument:
    """Parse the spec for editing; a missing file or a TOML syntax error is a SpecError."""
    try:
        text = spec_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(
            f"{display_path(spec_path)}: no such file — run 'morgan init' or pass -C DIR "
            "to the workspace that holds mirror.toml"
        ) from None
    check_nesting(text, spec_path)  # tomlkit recurses per level, like tomllib
    try:
        return tomlkit.parse(text)
    except TOMLKitError:
        load_spec(spec_path)  # reports the syntax error with its line, as every command does
        raise


def write_checked(spec_path: Path, text: str) -> Spec:
    """Replace the spec atomically, but only with ``text`` that loads as a valid spec."""
    spec = parse_spec(text, spec_path)
    fsio.replace_file(spec_path, text.encode("utf-8"))
    return spec


def index_requirement(text: str, *, origin: str = "") -> Requirement:
    """A PEP 508 requirement an index can serve (parsed by the one
    :func:`~morgan.resolve.parse_requirement`); else a one-line :class:`UsageError`."""
    where = f"{origin}: " if origin else ""
    try:
        requirement = parse_requirement(text)
    except InvalidRequirement as exc:
        first = str(exc).splitlines()[0]
        raise UsageError(
            f"{where}{text!r} is not a valid requirement ({first}) — write it like "
            "'requests>=2.24' or 'xonsh[full]~=0.11.0; python_version >= \"3.9\"' (PEP 508)"
        ) from None
    if requirement.url is not None:
        raise UsageError(
            f"{where}{text!r} is a direct URL requirement, which no index can serve — use a "
            "name and version, or put the file in the spec's private list"
        )
    return requirement


def _same_slot(a: Requirement, b: Requirement) -> bool:
    # One entry per (project, marker): "pywin32; sys_platform == 'win32'" and "pywin32>=300"
    # are different entries, "requests" and "requests>=2" are the same one.
    return canonicalize_name(a.name) == canonicalize_name(b.name) and str(a.marker) == str(b.marker)


def _requirements_array(doc: tomlkit.TOMLDocument) -> Array:
    existing = doc.get("requirements")
    if existing is None:
        array = tomlkit.array()
        array.multiline(True)
        # tomlkit places a new top-level key before the first table, where TOML needs it.
        doc.add("requirements", array)
        return array
    if not isinstance(existing, Array):
        raise SpecError(
            "mirror.toml: requirements: expected a list of strings — write "
            'requirements = ["requests>=2.24"]'
        )
    return existing


def add_requirements(
    doc: tomlkit.TOMLDocument, requirements: Iterable[Requirement]
) -> list[RequirementChange]:
    """Add each requirement to ``requirements`` in ``doc``, in place.

    A requirement for a project (and marker) already listed replaces that entry where it
    stands, keeping its comment; one already listed with the same text is kept; anything
    else is appended. Returns what happened to each, in order.
    """
    array = _requirements_array(doc)
    changes: list[RequirementChange] = []
    for new in requirements:
        text = str(new)
        for index, item in enumerate(array):
            try:
                old = Requirement(str(item))
            except InvalidRequirement:
                continue  # the spec check after the edit reports it with its line
            if not _same_slot(old, new):
                continue
            if str(old) == text:
                changes.append(RequirementChange("kept", text))
            else:
                array[index] = text
                changes.append(RequirementChange("replaced", text, str(item)))
            break
        else:
            array.append(text)
            changes.append(RequirementChange("added", text))
    return changes


def remove_requirements(doc: tomlkit.TOMLDocument, names: Sequence[str]) -> list[str]:
    """Remove every entry of ``requirements`` naming one of ``names``; return the removed texts.

    A name no entry uses is a :class:`UsageError` (with a "did you mean") and nothing is
    changed.
    """
    array = doc.get("requirements")
    if not isinstance(array, Array):
        raise UsageError("mirror.toml has no requirements list — nothing to remove")
    entries: list[tuple[str, str]] = []
    for item in array:
        try:
            entries.append((canonicalize_name(Requirement(str(item)).name), str(item)))
        except InvalidRequirement:
            entries.append(("", str(item)))
    listed = sorted({name for name, _ in entries if name})
    for name in names:
        if canonicalize_name(name) not in listed:
            close = difflib.get_close_matches(canonicalize_name(name), listed, 1)
            hint = f"did you mean {close[0]!r}?" if close else "listed: " + ", ".join(listed)
            raise UsageError(f"{name!r} is not in requirements — {hint}")
    wanted = {canonicalize_name(n) for n in names}
    removed: list[str] = []
    for index in reversed(range(len(entries))):
        name, text = entries[index]
        if name in wanted:
            del array[index]
            removed.append(text)
    if not array:
        raise UsageError(
            "removing " + ", ".join(names) + " would leave no requirements — add another "
            "first ('morgan add REQ'); a spec needs at least one"
        )
    return list(reversed(removed))
