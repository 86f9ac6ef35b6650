"""``morgan verify --provenance``: each stored PEP 740 provenance checked against its file.

For every locked file that came with a provenance, the stored object is read back and
checked to be a well-formed provenance for that file's name and sha256
(:func:`rules.lib.provenance.check_provenance`); the publishers it names are reported.
Signatures are checked only with ``--signatures`` (:mod:`morgan.attestations`, an optional
extra).
"""

from __future__ import annotations

from dataclasses import dataclass

from morgan.attestations import verify_signatures
from morgan.lock import Lock
from rules.lib.provenance import ProvenanceError, Publisher, check_provenance
from store.digest import Digest
from store.errors import StoreError
from store.objects import Store

__all__ = ["ProvenanceCheck", "check_provenances"]


@dataclass(frozen=True, slots=True)
class ProvenanceCheck:
    """One locked file's provenance: its publishers, or what is wrong with it."""

    filename: str
    publishers: tuple[Publisher, ...]
    problem: str | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "filename": self.filename,
            "publishers": [{"kind": p.kind, **dict(p.claims)} for p in self.publishers],
            "problem": self.problem,
        }


def check_provenances(
    lock: Lock, store: Store, *, signatures: bool = False
) -> list[ProvenanceCheck]:
    """A check per locked file that has a provenance, sorted by filename; with
    ``signatures``, each well-formed one's attestations are also verified (the optional
    ``pypi-attestations`` extra, :mod:`morgan.attestations`)."""
    out = []
    for release in lock.releases:
        for f in release.files:
            if f.provenance_blake3 is None:
                continue
            try:
                data = store.read_bytes(Digest("blake3", f.provenance_blake3))
                publishers = check_provenance(data, f.filename, f.sha256)
            except (StoreError, OSError) as exc:
                out.append(ProvenanceCheck(f.filename, (), f"stored provenance unreadable: {exc}"))
            except ProvenanceError as exc:
                out.append(ProvenanceCheck(f.filename, (), f"malformed provenance: {exc}"))
            else:
                problem = verify_signatures(data, f.filename, f.sha256) if signatures else None
                out.append(ProvenanceCheck(f.filename, publishers, problem))
    return sorted(out, key=lambda c: c.filename)
