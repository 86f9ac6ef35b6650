"""Rule ``metadata``: what a release needs, read from one of its files without running code.

Input: a wheel's METADATA bytes (from upstream's PEP 658 ``.metadata``, or out of the
wheel), or a fetched sdist. Output: :class:`MetadataOut`, the dependencies resolution reads
(and an sdist's build requirements). Keyed by the file's upstream sha256, so a file's
dependencies are read once, ever, per store. Which bytes to read from (and sharing one
``.metadata`` request between environments) is the upstream catalog's business.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Self

from rules.fetch import Fetched
from rules.lib.metadata import parse_core_metadata, sdist_info
from rules.model import UpstreamFile
from rules.rule import Json, Node, Rule, digests
from rules.wheel_metadata import metadata_bytes
from store.digest import Digest
from store.objects import Store


@dataclass(frozen=True, slots=True)
class MetadataOut:
    """A release's dependencies as one of its files declares them."""

    requires_dist: tuple[str, ...]
    requires_python: str | None
    known: bool  # False: an sdist whose dependencies cannot be known without building it
    source: str  # where they were read ("PEP 658 .metadata", "wheel METADATA", PKG-INFO...)
    build_requires: tuple[str, ...] = ()
    build_backend: str | None = None
    # what the backend asks for because of the sdist's own configuration (backend_config)
    backend_requires: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()  # what was ignored or repaired, one line each
    sdist: bool = False
    # Not required for a cache hit (blobs are); gc keeps the entry while what it was read
    # from is kept.
    about: tuple[Digest, ...] = ()

    @property
    def blobs(self) -> tuple[Digest, ...]:
        return ()

    def to_json(self) -> dict[str, object]:
        data: dict[str, object] = {
            "blobs": [],
            "about": [str(d) for d in self.about],
            "requires_dist": list(self.requires_dist),
            "requires_python": self.requires_python,
            "known": self.known,
            "source": self.source,
            "build_requires": list(self.build_requires),
            "problems": list(self.problems),
        }
        if self.sdist:
            data["build_backend"] = self.build_backend
            data["backend_requires"] = list(self.backend_requires)
        return data

    @classmethod
    def from_json(cls, data: Json) -> Self:
        return cls(
            requires_dist=tuple(str(r) for r in data["requires_dist"]),
            requires_python=data["requires_python"],
            known=bool(data["known"]),
            source=str(data["source"]),
            build_requires=tuple(str(r) for r in data.get("build_requires") or ()),
            build_backend=data.get("build_backend"),
            backend_requires=tuple(str(r) for r in data.get("backend_requires") or ()),
            problems=tuple(str(p) for p in data.get("problems") or ()),
            sdist="build_backend" in data,
            about=digests(data.get("about") or ()),
        )


# 2: an sdist's output also carries what its backend's configuration asks for.
RULE = Rule("metadata", 2, MetadataOut)


def node(f: UpstreamFile) -> Node[MetadataOut]:
    ident = f.sha256 or f.url
    return RULE.node(f"metadata:{f.filename}:{ident[:16]}", {"filename": f.filename, "file": ident})


def from_core_metadata(data: bytes, read_from: Digest, source: str) -> MetadataOut:
    """A wheel's dependencies from its METADATA bytes (stored as ``read_from``)."""
    meta = parse_core_metadata(data)
    return MetadataOut(
        requires_dist=meta.requires_dist,
        requires_python=meta.requires_python,
        known=True,
        source=source,
        problems=meta.problems,
        about=(read_from,),
    )


def from_wheel(store: Store, wheel: Fetched, filename: str) -> MetadataOut:
    """A wheel's dependencies read out of the fetched wheel."""
    data = metadata_bytes(store, wheel.blob, filename)
    return from_core_metadata(data, wheel.blob, "wheel METADATA")


def from_sdist(store: Store, sdist: Fetched, filename: str) -> MetadataOut:
    """An sdist's dependencies and build requirements, never running its code."""
    with store.open(sdist.blob) as fh:
        info = sdist_info(fh, filename)
    md = info.metadata
    return MetadataOut(
        requires_dist=md.requires_dist if md else (),
        requires_python=md.requires_python if md else None,
        known=md is not None,
        source=info.source,
        build_requires=info.build_requires,
        build_backend=info.build_backend,
        backend_requires=info.backend_requires,
        problems=md.problems if md else (),
        sdist=True,
        about=(sdist.blob,),
    )
