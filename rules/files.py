"""One selected file's nodes (fetch, wheel-metadata, provenance) and what the mirror serves
about it, made from their outputs: the input of the render and lock rules."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from rules import fetch
from rules.fetch import Fetched
from rules.model import MirrorFile, UpstreamFile
from rules.rule import Inputs
from rules.wheel_metadata import Extracted
from store.digest import Digest


def mirror_file(
    f: UpstreamFile,
    fetched: Fetched,
    meta: Extracted | None,
    prov: Extracted | None = None,
) -> MirrorFile:
    """What the mirror serves about ``f``, from its fetch (wheel-metadata, provenance)
    outputs."""
    return MirrorFile(
        filename=f.filename,
        sha256=fetched.sha256,
        blake3=fetched.blob.hex,
        size=fetched.size,
        upload_time=f.upload_time,
        requires_python=f.requires_python,
        yanked=f.yanked,
        yanked_reason=f.yanked_reason,
        metadata_sha256=meta.sha256 if meta else None,
        metadata_blake3=meta.blob.hex if meta else None,
        provenance_sha256=prov.sha256 if prov else None,
        provenance_blake3=prov.blob.hex if prov else None,
    )


@dataclass(frozen=True, slots=True)
class FileNodes:
    """One selected file and the ids of the nodes whose outputs describe it."""

    file: UpstreamFile
    fetch: str
    metadata: str | None  # wheel-metadata (wheels only)
    provenance: str | None  # PEP 740 provenance (when upstream offers one)

    @classmethod
    def of(cls, f: UpstreamFile) -> FileNodes:
        fn = f.filename
        return cls(
            f,
            fetch.node_id(f),
            f"wheel-metadata:{fn}" if fn.endswith(".whl") else None,
            f"provenance:{fn}" if f.provenance_url else None,
        )

    @property
    def ids(self) -> list[str]:
        return [i for i in (self.fetch, self.metadata, self.provenance) if i is not None]

    def mirror_file(self, inputs: Inputs) -> MirrorFile:
        return mirror_file(
            self.file,
            inputs.get(self.fetch, Fetched),
            inputs.get(self.metadata, Extracted) if self.metadata else None,
            inputs.get(self.provenance, Extracted) if self.provenance else None,
        )


def mirror_files(wanted: Mapping[str, FileNodes], inputs: Inputs) -> dict[str, MirrorFile]:
    """filename -> what the mirror serves about it, from its nodes' outputs."""
    return {fn: nodes.mirror_file(inputs) for fn, nodes in wanted.items()}


def node_ids(files: Sequence[FileNodes]) -> list[str]:
    """Every node id of ``files`` (the predecessors of a node that reads them)."""
    return [i for n in files for i in n.ids]


ZERO_BLOB = Digest("blake3", "0" * 64)


def skeleton_files(wanted: Mapping[str, UpstreamFile]) -> dict[str, MirrorFile]:
    """The files as far as upstream describes them (digests blanked), for the lock's key."""
    blank = Fetched(ZERO_BLOB, "", 0)
    return {fn: mirror_file(f, blank, None) for fn, f in wanted.items()}
