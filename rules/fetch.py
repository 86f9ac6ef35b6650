"""Rule ``fetch``: one file, a fixed output keyed by what upstream promised (sha256, size).

Input: an :class:`~rules.model.UpstreamFile`. Output: :class:`Fetched`, the file's blob
with its sha256 and size. A ``file:`` URL (a private package) is read from disk and must
still have the sha256 it was locked with.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Self
from urllib.parse import urlsplit
from urllib.request import url2pathname

from rules.errors import InputError
from rules.lib.fetch import Downloader, fetch_file
from rules.model import UpstreamFile
from rules.rule import Inputs, Json, Node, Rule, Step, at_paths
from store.digest import Digest
from store.errors import IntegrityError
from store.objects import Blob, Store


@dataclass(frozen=True, slots=True)
class Fetched:
    """A file in the store: its blob, sha256 and size."""

    blob: Digest
    sha256: str
    size: int

    @property
    def blobs(self) -> tuple[Digest, ...]:
        return (self.blob,)

    def to_json(self) -> dict[str, object]:
        blob = str(self.blob)
        return {"blobs": [blob], "blob": blob, "sha256": self.sha256, "size": self.size}

    @classmethod
    def from_json(cls, data: Json) -> Self:
        return cls(Digest.parse(data["blob"]), str(data["sha256"]), int(data["size"]))

    @classmethod
    def of(cls, blob: Blob) -> Self:
        return cls(blob.digest, blob.sha256, blob.size)


RULE = Rule("fetch", 1, Fetched)


def node_id(f: UpstreamFile) -> str:
    """The id of ``f``'s fetch node (the plan and the project records name every file's
    nodes: 24 000 ids at 5 000 projects, without making the node each time)."""
    return f"file:{f.filename}:{(f.sha256 or f.url)[:16]}"


def node(f: UpstreamFile) -> Node[Fetched]:
    """The fetch node of ``f`` (its id names the file; its key is what upstream promised)."""
    # Fixed output: keyed by what upstream promised, never by where it lives.
    params: dict[str, object] = (
        {"filename": f.filename, "sha256": f.sha256 or "", "size": f.size or -1}
        if f.sha256
        else {"filename": f.filename, "url": f.url}
    )
    return RULE.node(node_id(f), params)


def run(client: Downloader, store: Store, f: UpstreamFile) -> Fetched:
    """Fetch ``f`` into ``store``, verified against what upstream promised."""
    if f.url.startswith("file:"):
        with Path(url2pathname(urlsplit(f.url).path)).open("rb") as fh:
            try:
                blob = store.put_stream(fh, expect_sha256=f.sha256, expect_size=f.size)
            except IntegrityError as exc:
                raise InputError(f"{f.url}: changed since it was locked ({exc})") from None
        return Fetched.of(blob)
    return Fetched.of(fetch_file(client, store, f.url, sha256=f.sha256, size=f.size))


class Fetcher(Protocol):
    """What the plan's fetch nodes run (the upstream catalog; never called by ``graph
    --build``)."""

    def fetch_output(self, f: UpstreamFile) -> Fetched: ...


def step(fetcher: Fetcher, f: UpstreamFile, paths: Sequence[str]) -> Step[Fetched]:
    """The plan's fetch node of ``f``: the file at each of ``paths`` (one per view)."""
    n = node(f)
    produces = tuple(paths)
    # (partials, not closures: see at_paths)
    return Step(
        id=n.id,
        rule=RULE,
        params=n.params,
        run=functools.partial(_run_step, fetcher, f),
        entries=functools.partial(at_paths, produces),
        produces=produces,
    )


def _run_step(fetcher: Fetcher, f: UpstreamFile, _inputs: Inputs) -> Fetched:
    return fetcher.fetch_output(f)
