"""Rule ``lock``: ``mirror.lock``, written from every selected file's outputs.

Input: each file's fetch (wheel-metadata, provenance) outputs. Parameter: the lock with
every fetched digest blanked (its *skeleton*), so the key is known before the files are in
and, with the files' digests, determines the text. Output: :class:`Stored`, the lock's
blob, served at the generation's top as ``mirror.lock``. What a lock says is the engine's
(``morgan.lock``): the build passes the function that writes it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Self

from rules.files import FileNodes, mirror_files
from rules.model import MirrorFile
from rules.rule import Inputs, Json, Rule, Step
from store.digest import Digest
from store.objects import Store


@dataclass(frozen=True, slots=True)
class Stored:
    """One blob a rule wrote (``mirror.lock``, ``manifest.json``)."""

    blob: Digest

    @property
    def blobs(self) -> tuple[Digest, ...]:
        return (self.blob,)

    def to_json(self) -> dict[str, object]:
        return {"blobs": [str(self.blob)], "blob": str(self.blob)}

    @classmethod
    def from_json(cls, data: Json) -> Self:
        return cls(Digest.parse(data["blob"]))


RULE = Rule("lock", 1, Stored)
ID = "lock"
PATH = "mirror.lock"

# filename -> what the mirror serves about it  ->  the lock's text, encoded (UTF-8), in
# runs (their concatenation is the text: the whole is never made in one piece)
LockMaker = Callable[[Mapping[str, MirrorFile]], list[bytes]]


class _Runs:
    """Runs of bytes read as a stream (``read(n)``: at most ``n`` bytes), each let go
    once it is read."""

    def __init__(self, runs: list[bytes]) -> None:
        self._runs = runs[::-1]
        self._view = memoryview(b"")

    def read(self, n: int = -1) -> bytes:
        if n < 0:  # (everything left)
            rest = [bytes(self._view), *self._runs[::-1]]
            self._view, self._runs = memoryview(b""), []
            return b"".join(rest)
        while not self._view and self._runs:
            self._view = memoryview(self._runs.pop())
        out, self._view = self._view[:n], self._view[n:]
        return bytes(out)


def step(
    store: Store,
    wanted: Mapping[str, FileNodes],
    make: LockMaker,
    skeleton: str,
    *,
    recorded: Mapping[str, MirrorFile] | None = None,
) -> Step[Stored]:
    """The plan's lock node over every selected file (``wanted``: filename -> its nodes;
    ``recorded``: the files of projects left out of the plan, as their records give them:
    the walk keys the node by their nodes' output digests all the same)."""

    def run(inputs: Inputs) -> Stored:
        runs = make({**(recorded or {}), **mirror_files(wanted, inputs)})
        return Stored(store.put_stream(_Runs(runs), overlap=False).digest)

    return Step(
        id=ID,
        rule=RULE,
        params={"skeleton": skeleton},
        run=run,
        entries=lambda out: {PATH: out.blob},
        produces=(PATH,),
    )
