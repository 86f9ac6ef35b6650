"""Exact inputs: the packages and files a ``pylock.toml`` (PEP 751) or ``uv.lock`` pins.

A user who locked with pip or uv and tested that set wants the mirror to hold *exactly*
those files: Morgan then runs no resolution of its own for them. Each file is taken from
the lock with its URL, size and sha256, and fetched as a fixed output (verified while it
streams), so a file that changed upstream is an error, not a silent substitution.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from packaging.markers import InvalidMarker, Marker
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from morgan.errors import BuildError
from rules.model import NormalizedName, UpstreamFile


@dataclass(frozen=True, slots=True)
class LockedInput:
    """One package pinned by an input lock."""

    name: NormalizedName
    version: Version
    marker: Marker | None
    files: tuple[UpstreamFile, ...]
    source: str  # the lock's file name, for messages and `morgan graph`


def read_lock_input(path: Path) -> list[LockedInput]:
    """Every index package of ``path`` with its files; BuildError naming the bad entry."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise BuildError(f"{path}: cannot read this lock ({exc}) — fix or regenerate it") from None
    uv = path.name == "uv.lock"
    packages = data.get("package" if uv else "packages", [])
    out = []
    for index, pkg in enumerate(packages):
        where = f"{path.name}: package #{index + 1}"
        if not isinstance(pkg, dict) or not isinstance(pkg.get("name"), str):
            raise BuildError(f"{where} has no name — regenerate the lock")
        if uv and "registry" not in pkg.get("source", {}):
            continue  # the project itself, a path or VCS dependency: not an index package
        if not isinstance(pkg.get("version"), str):
            continue
        try:
            version = Version(pkg["version"])
            marker = Marker(pkg["marker"]) if isinstance(pkg.get("marker"), str) else None
        except (InvalidVersion, InvalidMarker) as exc:
            raise BuildError(f"{where} ({pkg['name']}): {exc} — regenerate the lock") from None
        entries = list(pkg.get("wheels", []))
        if isinstance(pkg.get("sdist"), dict):
            entries.append(pkg["sdist"])
        files = tuple(_file(e, f"{where} ({pkg['name']})", uv) for e in entries)
        if not files:
            continue  # vcs/directory/archive entries of a pylock: nothing an index serves
        out.append(
            LockedInput(
                NormalizedName(canonicalize_name(pkg["name"])), version, marker, files, path.name
            )
        )
    return out


def _file(entry: Any, where: str, uv: bool) -> UpstreamFile:
    if not isinstance(entry, dict) or not isinstance(entry.get("url"), str):
        raise BuildError(f"{where}: a file without a url — regenerate the lock with URLs")
    url = entry["url"]
    if uv:
        algo, _, sha = str(entry.get("hash", "")).partition(":")
        sha256 = sha if algo == "sha256" else None
    else:
        sha256 = entry.get("hashes", {}).get("sha256")
    if not sha256:
        raise BuildError(f"{where}: {url} has no sha256 — an exact mirror needs the hash")
    filename = entry.get("name") or unquote(urlsplit(url).path.rsplit("/", 1)[-1])
    size = entry.get("size")
    return UpstreamFile(
        filename=filename,
        url=url,
        sha256=sha256,
        size=int(size) if isinstance(size, int) else None,
        upload_time=_time(entry.get("upload-time")),
        requires_python=None,
        yanked=False,
        yanked_reason="",
        core_metadata=False,
        core_metadata_sha256=None,
    )


def _time(value: Any) -> str | None:
    if value is None:
        return None
    text = value.isoformat() if hasattr(value, "isoformat") else str(value)
    return text.replace("+00:00", "Z")
