"""Rule ``index``: a view's root pages (``<view>simple/index.html`` and ``index.json``).

Input: the names of the view's projects (its parameter; no predecessor). Output: the two
root pages, as :class:`~rules.render.Pages`.
"""

from __future__ import annotations

from collections.abc import Iterable

from rules.lib.render import render_index_html, render_index_json
from rules.model import NormalizedName, ViewId
from rules.render import Pages
from rules.rule import Rule, Step
from store.digest import blake3_hex, canonical_json
from store.objects import Store

RULE = Rule("index", 1, Pages)


def run(store: Store, names: list[NormalizedName]) -> Pages:
    html = store.put_bytes(render_index_html(names))
    js = store.put_bytes(render_index_json(names))
    return Pages(html.digest, js.digest)


def step(store: Store, view: ViewId, projects: Iterable[str]) -> Step[Pages]:
    """The plan's node for ``view``'s root pages, listing ``projects``."""
    names = [NormalizedName(n) for n in sorted(projects)]
    base = f"{view.prefix}simple/"
    return Step(
        id=f"index:{view}",
        rule=RULE,
        params={"projects": blake3_hex(canonical_json(list(names)))},
        run=lambda _inputs: run(store, names),
        entries=lambda out: out.entries(base),
        produces=(base + "index.html", base + "index.json"),
    )
