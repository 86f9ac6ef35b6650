"""Rule ``render``: one project's two pages (PEP 503 HTML, PEP 691 JSON) in one view.

Input: the outputs describing each of the project's files in the view (fetch,
wheel-metadata, provenance: :class:`~rules.files.FileNodes`) and its PEP 792 status.
Output: :class:`Pages`, the blobs served at ``<view>simple/<project>/index.html`` and
``index.json``. The parameters hold what the upstream page says about each file besides its
bytes, so an unchanged page renders nothing again (early cutoff).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Self

from rules.files import FileNodes
from rules.lib.render import render_project_html, render_project_json
from rules.model import MirrorFile, NormalizedName, UpstreamFile, ViewId
from rules.rule import Inputs, Json, Rule, Step
from store.digest import Digest, blake3_hex, canonical_json
from store.objects import Store


@dataclass(frozen=True, slots=True)
class Pages:
    """A page in its two forms: ``index.html`` and ``index.json``."""

    html: Digest
    json: Digest

    @property
    def blobs(self) -> tuple[Digest, ...]:
        return (self.html, self.json)

    def to_json(self) -> dict[str, object]:
        html, js = str(self.html), str(self.json)
        return {"blobs": [html, js], "html": html, "json": js}

    @classmethod
    def from_json(cls, data: Json) -> Self:
        return cls(Digest.parse(data["html"]), Digest.parse(data["json"]))

    def entries(self, base: str) -> dict[str, Digest]:
        """The two pages under the folder ``base`` (ending in ``/``)."""
        return {base + "index.html": self.html, base + "index.json": self.json}


RULE = Rule("render", 2, Pages)

ACTIVE = ("active", "")


def run(
    store: Store, name: NormalizedName, files: Sequence[MirrorFile], status: tuple[str, str]
) -> Pages:
    """Render and store the project's two pages."""
    marks = {"status": status[0], "status_reason": status[1]}
    html = store.put_bytes(render_project_html(name, files, **marks))
    js = store.put_bytes(render_project_json(name, files, **marks))
    return Pages(html.digest, js.digest)


def _upstream_attrs(f: UpstreamFile) -> list[object]:
    # What a page says about a file besides its bytes: part of a render node's parameters.
    return [f.filename, f.upload_time, f.requires_python, f.yanked, f.yanked_reason]


def step(
    store: Store,
    view: ViewId,
    name: NormalizedName,
    files: Sequence[FileNodes],
    status: tuple[str, str] = ACTIVE,
) -> Step[Pages]:
    """The plan's node rendering ``name``'s pages in ``view`` from ``files``' nodes."""
    base = f"{view.prefix}simple/{name}/"
    produces = (base + "index.html", base + "index.json")
    attrs = canonical_json([_upstream_attrs(n.file) for n in files])
    params: dict[str, object] = {"project": name, "files": blake3_hex(attrs)}
    if status[0] != "active":
        params["status"] = list(status)
    return Step(
        id=f"render:{view}:{name}",
        rule=RULE,
        params=params,
        # (partials, not closures: see rules.rule.at_paths)
        run=functools.partial(_run_step, store, name, files, status),
        entries=functools.partial(_entries, produces),
        produces=produces,
    )


def _run_step(
    store: Store,
    name: NormalizedName,
    files: Sequence[FileNodes],
    status: tuple[str, str],
    inputs: Inputs,
) -> Pages:
    return run(store, name, [n.mirror_file(inputs) for n in files], status)


def _entries(paths: tuple[str, str], out: Pages) -> dict[str, Digest]:
    """The two pages at the step's own path strings (``produces``): the tree writer and the
    manifest key their maps by these, not by two new strings per render node each (55 000
    paths at 5 000 projects)."""
    html, js = paths
    return {html: out.html, js: out.json}
