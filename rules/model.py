"""Values that flow between rules: an upstream project page, a mirrored file, a view's id.

These are the canonical forms: an upstream page, whether it came as PEP 691 JSON or PEP 503
HTML, is normalized into :class:`ProjectPage`; what the mirror serves about one file is a
:class:`MirrorFile`. Both are frozen and serialize to canonical JSON (sorted keys), so
their blake3 is a stable content digest.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, NewType

from packaging.version import Version

NormalizedName = NewType("NormalizedName", str)


@dataclass(frozen=True, slots=True, order=True)
class ViewId:
    """Names one index tree of a generation: an index's union of its targets' files
    (``env`` None) or one target's view, of the default index (``index`` None) or of a named
    one (``[indexes.NAME]``). It names the render and index nodes of the tree."""

    index: str | None = None
    env: str | None = None  # an environment or universal view

    def __str__(self) -> str:
        """``union``, ``env-ENV``, ``index/NAME`` or ``index/NAME/env-ENV``."""
        base = "" if self.index is None else f"index/{self.index}"
        if self.env is None:
            return base or "union"
        return f"{base}/env-{self.env}" if base else f"env-{self.env}"

    @property
    def prefix(self) -> str:
        """Where the tree lives in a generation (before ``simple/``): "", ``env/ENV/``,
        ``indexes/NAME/`` or ``indexes/NAME/env/ENV/``."""
        base = "" if self.index is None else f"indexes/{self.index}/"
        return base if self.env is None else f"{base}env/{self.env}/"


@dataclass(frozen=True, slots=True)
class UpstreamFile:
    """One file as an upstream index lists it."""

    filename: str
    url: str  # absolute; credentials never stored here
    sha256: str | None
    size: int | None
    upload_time: str | None  # "YYYY-MM-DDThh:mm:ss.ffffffZ" as upstream gave it
    requires_python: str | None
    yanked: bool
    yanked_reason: str
    core_metadata: bool  # PEP 658/714: upstream serves <url>.metadata
    core_metadata_sha256: str | None
    provenance_url: str | None = None  # PEP 740: where upstream serves its provenance

    def to_json(self) -> dict[str, Any]:
        return _without_none(asdict(self), "provenance_url")

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> UpstreamFile:
        return cls(**data)


def _without_none(data: dict[str, Any], *keys: str) -> dict[str, Any]:
    # Fields added later are left out while unset, so existing digests do not change.
    for key in keys:
        if data.get(key) is None:
            data.pop(key, None)
    return data


PROJECT_STATUSES = ("active", "archived", "quarantined", "deprecated")  # PEP 792


@dataclass(frozen=True, slots=True)
class ProjectPage:
    """An upstream project page, normalized (files sorted by filename)."""

    name: NormalizedName
    files: tuple[UpstreamFile, ...]
    status: str = "active"  # PEP 792 project status: one of PROJECT_STATUSES
    status_reason: str = ""
    # The versions of the distribution files the page lists that the parse was asked not
    # to make into files (``parse_project_page(keep=…)``), once each in the page's order:
    # their releases still exist. Not part of the JSON.
    skipped: tuple[Version, ...] = ()

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "files": [f.to_json() for f in self.files]}
        if self.status != "active" or self.status_reason:
            # Only then: an active project's page keeps the digest it always had.
            data["status"] = self.status
            data["status-reason"] = self.status_reason
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ProjectPage:
        return cls(
            name=NormalizedName(data["name"]),
            files=tuple(UpstreamFile.from_json(f) for f in data["files"]),
            status=data.get("status", "active"),
            status_reason=data.get("status-reason", ""),
        )


@dataclass(frozen=True, slots=True)
class MirrorFile:
    """One file as the mirror serves it: always with sha256, size and blake3."""

    filename: str
    sha256: str
    blake3: str  # hex of the content address in the store
    size: int
    upload_time: str | None
    requires_python: str | None
    yanked: bool
    yanked_reason: str
    metadata_sha256: str | None  # sha256 of the PEP 658 .metadata served next to a wheel
    metadata_blake3: str | None
    provenance_sha256: str | None = None  # the PEP 740 provenance served as <file>.provenance
    provenance_blake3: str | None = None

    def to_json(self) -> dict[str, Any]:
        return _without_none(asdict(self), "provenance_sha256", "provenance_blake3")

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MirrorFile:
        return cls(**data)
