"""Named indexes ("audiences"): ``[indexes.NAME]`` tables of ``mirror.toml``.

The top-level ``requirements`` (and ``private``) make the *default* index, served at
``simple/`` as always. Each ``[indexes.NAME]`` is one more index of the same mirror, served
at ``indexes/NAME/simple/`` with its environment views at ``indexes/NAME/env/ENV/simple/``:

- its closure is its own ``requirements`` and ``private`` packages plus those of every index
  it ``inherits`` (transitively), resolved for every environment of the spec; it serves that
  closure and nothing else, so a project outside it is a 404 there even when the default
  index or another named index carries it;
- its private packages are served in it (each is an implicit requirement) and in the indexes
  that inherit it, and nowhere else; their names are never asked of an upstream by any index
  (no dependency confusion), so another index that needs one fails to build, naming the
  index that owns it.

This module reads the tables; ``morgan.build`` resolves each index and lays out its trees.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, Protocol

from packaging.requirements import Requirement

from morgan.environments import folder_name_problem
from morgan.toml_reader import KeyPath, short
from rules.model import ViewId

__all__ = ["INDEX_KEYS", "NamedIndex", "index_prefix", "parse_indexes"]

INDEX_KEYS = ("requirements", "private", "inherits")
_EXAMPLE = '[indexes.team] requirements = ["requests"] inherits = ["base"]'


def index_prefix(name: str | None) -> str:
    """Where an index's trees live in a generation: "" for the default index."""
    return ViewId(name).prefix


@dataclass(frozen=True, slots=True)
class NamedIndex:
    """One ``[indexes.NAME]`` table, with its inheritance already followed."""

    name: str
    own_requirements: tuple[Requirement, ...]
    own_private: tuple[Path, ...]
    inherits: tuple[str, ...] = ()  # as written
    ancestors: tuple[str, ...] = ()  # every index inherited, transitively, sorted
    requirements: tuple[Requirement, ...] = ()  # its own, then each ancestor's (deduplicated)
    private: tuple[Path, ...] = ()  # likewise

    @property
    def prefix(self) -> str:
        return index_prefix(self.name)


class _Reader(Protocol):
    """What parsing needs of the spec parser."""

    def fail(self, path: KeyPath, what: str) -> NoReturn: ...

    def table(self, value: object, at: KeyPath, example: str) -> dict[str, Any]: ...

    def strings(self, value: object, at: KeyPath, example: str) -> list[str]: ...

    def check_keys(
        self, table: Mapping[str, Any], allowed: tuple[str, ...], at: KeyPath
    ) -> None: ...

    def requirement(self, text: str, at: KeyPath) -> Requirement: ...

    def private(self, data: dict[str, Any], table: KeyPath = ()) -> tuple[Path, ...]: ...


def parse_indexes(reader: _Reader, data: Mapping[str, Any]) -> tuple[NamedIndex, ...]:
    """The spec's ``[indexes.NAME]`` tables, inheritance checked (unknown names, cycles)."""
    if "indexes" not in data:
        return ()
    tables = reader.table(data["indexes"], ("indexes",), _EXAMPLE)
    if not tables:
        reader.fail(("indexes",), f"no index in [indexes] — add one, e.g. {_EXAMPLE}")
    seen: dict[str, str] = {}
    own: dict[str, NamedIndex] = {}
    for name, value in tables.items():
        at: KeyPath = ("indexes", name)
        problem = folder_name_problem(name, "an index name", "indexes/<name>/")
        if problem is not None:
            reader.fail(at, problem)
        if name.lower() in seen:
            reader.fail(
                at,
                f"{name!r} and {seen[name.lower()]!r} differ only by case, and index names become "
                "folder names — rename one of them",
            )
        seen[name.lower()] = name
        table = reader.table(value, at, _EXAMPLE)
        reader.check_keys(table, INDEX_KEYS, at)
        own[name] = _own(reader, table, at, name)
    closed = {name: _with_ancestors(reader, own, name) for name in own}
    return tuple(closed[n] for n in sorted(closed))


def _own(reader: _Reader, table: dict[str, Any], at: KeyPath, name: str) -> NamedIndex:
    example = 'requirements = ["requests>=2.24"]'
    texts = reader.strings(table.get("requirements", []), (*at, "requirements"), example)
    parsed: dict[str, Requirement] = {}
    for index, text in enumerate(texts):
        req = reader.requirement(text, (*at, "requirements", index))
        parsed.setdefault(str(req), req)
    private = reader.private(table, at)
    inherits = reader.strings(table.get("inherits", []), (*at, "inherits"), 'inherits = ["base"]')
    if not parsed and not private and not inherits:
        reader.fail(
            at,
            f"index {name!r} serves nothing — add requirements, private or inherits, "
            f"e.g. {example}",
        )
    return NamedIndex(name, tuple(parsed.values()), private, tuple(dict.fromkeys(inherits)))


def _with_ancestors(reader: _Reader, own: Mapping[str, NamedIndex], name: str) -> NamedIndex:
    """``own[name]`` with its inherited requirements and private paths: a depth-first walk
    that refuses unknown names and cycles, naming the path of the cycle."""
    order: list[str] = []

    def visit(current: str, path: Sequence[str]) -> None:
        for position, parent in enumerate(own[current].inherits):
            at: KeyPath = ("indexes", current, "inherits", position)
            if parent not in own:
                close = difflib.get_close_matches(parent, list(own), 1, 0.6)
                hint = (
                    f"did you mean {close[0]!r}?"
                    if close
                    else "use one of " + ", ".join(map(repr, sorted(own)))
                )
                reader.fail(at, f"{short(parent)} is not an index of this spec — {hint}")
            if parent == current or parent in path:
                walked = [*path, current]
                cycle = " → ".join([*walked[walked.index(parent) :], parent])
                reader.fail(
                    at,
                    f"{parent!r} makes an inheritance cycle ({cycle}) — remove one of these "
                    "inherits",
                )
            if parent not in order:
                order.append(parent)
                visit(parent, [*path, current])

    visit(name, [])
    chain = [own[name], *(own[n] for n in order)]
    requirements: dict[str, Requirement] = {}
    private: dict[Path, None] = {}
    for index in chain:
        for req in index.own_requirements:
            requirements.setdefault(str(req), req)
        private.update(dict.fromkeys(index.own_private))
    base = own[name]
    return NamedIndex(
        name=name,
        own_requirements=base.own_requirements,
        own_private=base.own_private,
        inherits=base.inherits,
        ancestors=tuple(sorted(order)),
        requirements=tuple(requirements.values()),
        private=tuple(private),
    )


def digest_data(
    indexes: Sequence[NamedIndex],
    relative: Callable[[Path], str],
    contents: Callable[[tuple[Path, ...]], list[list[str]]],
) -> list[dict[str, object]]:
    """What the spec digest holds of the indexes (as written: inheritance is derived)."""
    return [
        {
            "name": i.name,
            "requirements": [str(r) for r in i.own_requirements],
            "private": [relative(p) for p in i.own_private],
            "private-files": contents(i.own_private),
            "inherits": list(i.inherits),
        }
        for i in indexes
    ]
