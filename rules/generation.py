"""Rule ``generation``: the tree a manifest describes, made and switched to (an effect).

Input: the manifest's :class:`~rules.lock.Stored` blob. Output: :class:`Switched`, the
generation's number and whether the served tree changed. Not cached: it runs unless the
manifest is served already with the same side files (``current``). Making the tree (root,
links, side files, the switch) is the engine's owner of generations
(``morgan.generations``): the build passes it as ``publish``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Self

from rules import manifest
from rules.lock import Stored
from rules.rule import Json, Rule, Step
from store.digest import Digest
from store.objects import Store


@dataclass(frozen=True, slots=True)
class Switched:
    """The generation served after the node: its number, and whether it is a new one."""

    number: int
    changed: bool

    @property
    def blobs(self) -> tuple[Digest, ...]:
        return ()

    def to_json(self) -> dict[str, object]:
        return {"blobs": [], "number": self.number, "changed": self.changed}

    @classmethod
    def from_json(cls, data: Json) -> Self:
        return cls(int(data["number"]), bool(data["changed"]))


RULE = Rule("generation", 1, Switched)
ID = "generation"

# (manifest, its entries and manifest.json) -> the switch done; manifest -> the switch, if
# already served
Publisher = Callable[[Digest, Mapping[str, Digest]], Switched]
Served = Callable[[Digest], Switched | None]


def entries_of(store: Store, blob: Digest) -> dict[str, Digest]:
    """A tree manifest's entries: tree path -> blob."""
    data = json.loads(store.read_bytes(blob))
    # A file's blob is listed in every view that has it: each digest is parsed once.
    seen: dict[str, Digest] = {}
    out: dict[str, Digest] = {}
    for rel, text in data["entries"].items():
        d = seen.get(text)
        if d is None:
            d = seen[text] = Digest.parse(text)
        out[rel] = d
    return out


def step(
    store: Store, publish: Publisher, served: Served, written: manifest.Written | None = None
) -> Step[Switched]:
    """The plan's generation node; ``written`` holds the entries of the manifest this
    build's manifest node wrote (else they are read from the blob)."""

    def run(blob: Digest) -> Switched:
        entries = written.take(blob) if written is not None else None
        if entries is None:
            entries = entries_of(store, blob)
        # The tree's manifest.json, put into the dict this node holds (no one else reads
        # it): publish takes the entries as they are rather than a copy with it added
        # (150 000 entries at 5 000 projects, held through the tree's commit).
        entries[manifest.PATH] = blob
        return publish(blob, entries)

    return Step(
        id=ID,
        rule=RULE,
        params={},
        run=lambda inputs: run(inputs.get(manifest.ID, Stored).blob),
        cacheable=False,  # the switch is an effect: it runs unless the manifest is served
        volatile="the switch: the served tree or its side files differ",
        current=lambda inputs: served(inputs.get(manifest.ID, Stored).blob),
    )
