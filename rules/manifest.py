"""Rule ``manifest``: the generation's tree manifest, from every producing node's output.

Input: the outputs of every node that produces tree entries (files, ``.metadata``,
``.provenance``, pages, root pages, ``mirror.lock``). Output: a
:class:`~rules.lock.Stored` blob, a store manifest (``store.manifests``) that keeps every
entry's blob alive and maps each tree path to its blob; it is served as ``manifest.json``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from rules.lock import Stored
from rules.rule import Inputs, Rule, Step
from store.digest import Digest
from store.manifests import write_manifest
from store.objects import Store

RULE = Rule("manifest", 1, Stored)
ID = "manifest"
PATH = "manifest.json"


def run(
    store: Store, entries: Mapping[str, Digest], has: Callable[[Digest], bool] | None = None
) -> Stored:
    """Store the manifest of a tree with ``entries`` (path -> blob); ``has``: whether the
    store holds a blob (see :func:`~store.manifests.write_manifest`)."""
    # canonical JSON sorts the keys and writes each Digest as its text: no sorted or
    # stringified copy of the entries (60 000 at 2 000 projects) is made first.
    tree = entries if isinstance(entries, dict) else dict(entries)  # JSON needs a dict
    blob = write_manifest(store, tree.values(), extra={"version": 1, "entries": tree}, has=has)
    return Stored(blob.digest)


class Written:
    """The entries of the manifest a build's manifest node wrote, handed to the generation
    node of the same plan, so that it does not read the blob back and parse it (8.7 MB of
    JSON and 60 000 digests at 2 000 projects). A manifest taken from the action cache was
    not written: the generation node reads it then."""

    __slots__ = ("_blob", "_entries")

    def __init__(self) -> None:
        self._blob: Digest | None = None
        self._entries: dict[str, Digest] | None = None

    def keep(self, blob: Digest, entries: dict[str, Digest]) -> None:
        self._blob, self._entries = blob, entries

    def take(self, blob: Digest) -> dict[str, Digest] | None:
        """The entries of the manifest ``blob`` if this build wrote it (once)."""
        entries = self._entries if self._blob == blob else None
        self._blob, self._entries = None, None
        return entries


def step(
    store: Store,
    steps: Mapping[str, Step[Any]],
    written: Written | None = None,
    *,
    recorded: Mapping[str, Digest] | None = None,
    has: Callable[[Digest], bool] | None = None,
) -> Step[Stored]:
    """The plan's manifest node; its predecessors are the producers among ``steps``.
    ``written`` keeps what it wrote for the generation node; ``recorded``: the entries of
    projects left out of the plan (from their records: the walk keys the node by their
    nodes' output digests all the same); ``has``: whether the store holds a blob, as the
    build knows it (else a ``stat`` per blob)."""

    def entries(inputs: Inputs) -> dict[str, Digest]:
        out: dict[str, Digest] = dict(recorded or {})
        for node_id in inputs.ids():
            producer = steps[node_id]
            out.update(producer.entries(inputs.get(node_id, producer.rule.output)))
        return out

    return Step(
        id=ID,
        rule=RULE,
        params={},
        run=lambda inputs: _run_and_keep(store, entries(inputs), written, has),
        entries=lambda out: {PATH: out.blob},
        produces=(PATH,),
    )


def _run_and_keep(
    store: Store,
    entries: dict[str, Digest],
    written: Written | None,
    has: Callable[[Digest], bool] | None = None,
) -> Stored:
    out = run(store, entries, has)
    if written is not None:
        written.keep(out.blob, entries)
    return out
