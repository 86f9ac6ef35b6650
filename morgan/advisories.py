"""Known vulnerabilities, offline: an OSV export (the zip OSV publishes) against locked pins.

OSV publishes one zip per ecosystem (``PyPI/all.zip``): one JSON document per advisory in the
OSV schema. Morgan reads it without extracting anything to disk, with size limits, and keeps
the advisories that name a ``PyPI`` package. A version is affected when an advisory lists it
in ``affected[].versions`` or when it falls in one of its ``ECOSYSTEM`` ranges (events
``introduced`` / ``fixed`` / ``last_affected``, compared as PEP 440 versions). ``GIT`` and
``SEMVER`` ranges are not evaluated (PyPI advisories list the versions they cover as well).
Withdrawn advisories (``withdrawn`` set) never match.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from morgan.errors import UsageError

__all__ = ["Advisory", "Finding", "find", "load_advisories"]

MAX_MEMBER_BYTES = 4 << 20  # one advisory; the largest real ones are a few hundred KB
MAX_TOTAL_BYTES = 2 << 30  # the whole export, uncompressed (PyPI's is ~100 MB)
MAX_MEMBERS = 500_000


@dataclass(frozen=True, slots=True)
class Advisory:
    """What one advisory says about one package."""

    id: str
    summary: str
    aliases: tuple[str, ...]
    versions: frozenset[str]  # explicit versions, as written
    ranges: tuple[tuple[tuple[str, str], ...], ...]  # ECOSYSTEM ranges: ((event, version), …)
    fixed: tuple[str, ...]

    def affects(self, version: str) -> bool:
        """Whether ``version`` is listed or inside one of the ranges."""
        if version in self.versions:
            return True
        try:
            v = Version(version)
        except InvalidVersion:
            return False
        if any(_same(v, listed) for listed in self.versions):
            return True
        return any(_in_range(v, events) for events in self.ranges)


@dataclass(frozen=True, slots=True)
class Finding:
    """A locked release that an advisory affects."""

    name: str
    version: str
    advisory: Advisory
    environments: tuple[str, ...]

    def line(self) -> str:
        fixed = ", ".join(self.advisory.fixed) or "no fixed version"
        return (
            f"{self.name} {self.version}: {self.advisory.id} {self.advisory.summary} "
            f"(fixed in: {fixed})"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "id": self.advisory.id,
            "aliases": list(self.advisory.aliases),
            "summary": self.advisory.summary,
            "fixed": list(self.advisory.fixed),
            "environments": list(self.environments),
        }


def load_advisories(path: Path) -> dict[str, list[Advisory]]:
    """Normalized project name → its advisories, read from the OSV zip at ``path``.

    A file that is not such a zip raises :class:`UsageError` naming it and the fix.
    """
    out: dict[str, list[Advisory]] = {}
    try:
        with zipfile.ZipFile(path) as zf:
            for name, doc in _documents(zf, path):
                for package, advisory in _parse(doc, f"{path}:{name}"):
                    out.setdefault(package, []).append(advisory)
    except FileNotFoundError:
        raise UsageError(
            f"{path}: no such file — download the OSV export for PyPI "
            "(https://osv-vulnerabilities.storage.googleapis.com/PyPI/all.zip) and give its path"
        ) from None
    except (zipfile.BadZipFile, OSError) as exc:
        raise UsageError(
            f"{path}: not a readable zip ({exc}) — give the OSV export for PyPI (all.zip)"
        ) from None
    return out


def _documents(zf: zipfile.ZipFile, path: Path) -> Iterator[tuple[str, Any]]:
    infos = [i for i in zf.infolist() if not i.is_dir() and i.filename.endswith(".json")]
    if len(infos) > MAX_MEMBERS or sum(i.file_size for i in infos) > MAX_TOTAL_BYTES:
        raise UsageError(f"{path}: larger than any OSV export — check the file")
    for info in infos:
        if info.file_size > MAX_MEMBER_BYTES:
            raise UsageError(f"{path}:{info.filename}: over {MAX_MEMBER_BYTES} bytes")
        with zf.open(info) as fh:
            data = fh.read(MAX_MEMBER_BYTES + 1)
        if len(data) > MAX_MEMBER_BYTES:
            raise UsageError(f"{path}:{info.filename}: over {MAX_MEMBER_BYTES} bytes")
        try:
            yield info.filename, json.loads(data)
        except (ValueError, RecursionError) as exc:
            raise UsageError(
                f"{path}:{info.filename}: not JSON ({exc}) — re-download the OSV export"
            ) from None


def _parse(doc: object, where: str) -> Iterator[tuple[str, Advisory]]:
    if not isinstance(doc, dict) or not isinstance(doc.get("id"), str):
        raise UsageError(f"{where}: not an OSV advisory (no 'id') — re-download the OSV export")
    if doc.get("withdrawn"):
        return
    summary = doc.get("summary") or (doc.get("details") or "").strip().split("\n", 1)[0]
    aliases = tuple(a for a in doc.get("aliases") or () if isinstance(a, str))
    for affected in doc.get("affected") or ():
        package = affected.get("package") if isinstance(affected, dict) else None
        if not isinstance(package, dict) or package.get("ecosystem") != "PyPI":
            continue
        name = package.get("name")
        if not isinstance(name, str):
            continue
        ranges = []
        fixed: list[str] = []
        for r in affected.get("ranges") or ():
            if not isinstance(r, dict) or r.get("type") != "ECOSYSTEM":
                continue
            events = tuple(
                (key, str(value))
                for event in r.get("events") or ()
                if isinstance(event, dict)
                for key, value in event.items()
                if key in ("introduced", "fixed", "last_affected")
            )
            fixed += [v for k, v in events if k == "fixed"]
            ranges.append(events)
        versions = frozenset(str(v) for v in affected.get("versions") or ())
        yield (
            canonicalize_name(name),
            Advisory(
                id=doc["id"],
                summary=str(summary or "(no summary)").strip(),
                aliases=aliases,
                versions=versions,
                ranges=tuple(ranges),
                fixed=tuple(dict.fromkeys(fixed)),
            ),
        )


def find(
    advisories: Mapping[str, list[Advisory]], pins: Iterable[tuple[str, str, str]]
) -> list[Finding]:
    """Every (release, advisory) where ``pins`` = (name, version, environment) is affected."""
    where: dict[tuple[str, str], list[str]] = {}
    for name, version, env in pins:
        where.setdefault((canonicalize_name(name), version), []).append(env)
    found = []
    for (name, version), envs in sorted(where.items()):
        for advisory in advisories.get(name, ()):
            if advisory.affects(version):
                found.append(Finding(name, version, advisory, tuple(sorted(set(envs)))))
    found.sort(key=lambda f: (f.name, f.version, f.advisory.id))
    return found


def _same(v: Version, text: str) -> bool:
    try:
        return Version(text) == v
    except InvalidVersion:
        return False


def _in_range(v: Version, events: tuple[tuple[str, str], ...]) -> bool:
    """OSV's range walk: events in version order switch "affected" on and off."""

    def key(event: tuple[str, str]) -> tuple[int, Version]:
        kind, text = event
        if kind == "introduced" and text == "0":
            return (0, Version("0"))
        try:
            return (1, Version(text))
        except InvalidVersion:
            return (2, Version("0"))  # an unparsable bound never switches anything

    affected = False
    for kind, text in sorted(events, key=key):
        rank, bound = key((kind, text))
        if rank == 2:
            continue
        if kind == "introduced" and bound <= v:
            affected = True
        elif (kind == "fixed" and bound <= v) or (kind == "last_affected" and bound < v):
            affected = False
    return affected
