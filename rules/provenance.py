"""Rule ``provenance``: a file's PEP 740 provenance, fetched and checked against the file.

Input: the file's :class:`~rules.fetch.Fetched` (its sha256 is what the provenance must
describe) and the URL upstream gave. Output: an :class:`~rules.wheel_metadata.Extracted`
blob served as ``<file>.provenance``. The checks are in :mod:`rules.lib.provenance`.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Protocol

from rules.errors import InputError
from rules.fetch import Fetched
from rules.lib.provenance import MAX_PROVENANCE_BYTES, ProvenanceError, check_provenance
from rules.model import UpstreamFile
from rules.rule import Inputs, Rule, Step, at_paths
from rules.wheel_metadata import Extracted
from store.objects import Store

RULE = Rule("provenance", 1, Extracted)


class Getter(Protocol):
    def get_bytes(self, url: str, *, max_bytes: int) -> bytes: ...


def run(client: Getter, store: Store, f: UpstreamFile, sha256: str) -> Extracted:
    """``f``'s provenance, fetched (size-capped), checked to be well-formed for the file
    with ``sha256``, and stored."""
    url = f.provenance_url or ""
    data = client.get_bytes(url, max_bytes=MAX_PROVENANCE_BYTES)
    try:
        check_provenance(data, f.filename, sha256)
    except ProvenanceError as exc:
        raise InputError(
            f"{f.filename}: the provenance upstream serves ({url}) is unusable: {exc} — "
            "report it to the index; nothing was switched"
        ) from None
    blob = store.put_bytes(data)
    return Extracted(blob.digest, blob.sha256)


class Fetcher(Protocol):
    """What the plan's provenance nodes run (the upstream catalog)."""

    def provenance_output(self, f: UpstreamFile, sha256: str) -> Extracted: ...


def step(fetcher: Fetcher, f: UpstreamFile, fetch_id: str, paths: Sequence[str]) -> Step[Extracted]:
    """The plan's node for ``f``'s provenance: ``<file>.provenance`` at each of ``paths``."""
    produces = tuple(paths)
    # (partials, not closures: see at_paths)
    return Step(
        id=f"provenance:{f.filename}",
        rule=RULE,
        params={"filename": f.filename, "url": f.provenance_url or ""},
        run=functools.partial(_run_step, fetcher, f, fetch_id),
        entries=functools.partial(at_paths, produces),
        produces=produces,
    )


def _run_step(fetcher: Fetcher, f: UpstreamFile, fetch_id: str, inputs: Inputs) -> Extracted:
    return fetcher.provenance_output(f, inputs.get(fetch_id, Fetched).sha256)
