"""The bounded-history resolver gives exactly the stock resolver's result, backjumps included."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import pytest
from resolvelib import AbstractProvider, BaseReporter, Resolver

from morgan import lean_resolver
from morgan.lean_resolver import LeanResolver

# name -> version -> [(dependency, allowed versions)]
Index = dict[str, dict[int, list[tuple[str, frozenset[int]]]]]
Req = tuple[str, frozenset[int]]
Cand = tuple[str, int]


class _Provider(AbstractProvider[Req, Cand, str]):
    """Newest first; projects pinned in name order (a deterministic, deep walk)."""

    def __init__(self, index: Index) -> None:
        self.index = index

    def identify(self, requirement_or_candidate: Req | Cand) -> str:
        return requirement_or_candidate[0]

    def get_preference(self, identifier: str, *args: Any, **kwargs: Any) -> Any:
        return identifier

    def find_matches(
        self,
        identifier: str,
        requirements: Mapping[str, Iterator[Req]],
        incompatibilities: Mapping[str, Iterator[Cand]],
    ) -> list[Cand]:
        allowed = set(self.index[identifier])
        for _, versions in requirements[identifier]:
            allowed &= versions
        bad = {v for _, v in incompatibilities[identifier]}
        return [(identifier, v) for v in sorted(allowed - bad, reverse=True)]

    def is_satisfied_by(self, requirement: Req, candidate: Cand) -> bool:
        return candidate[1] in requirement[1]

    def get_dependencies(self, candidate: Cand) -> Sequence[Req]:
        return self.index[candidate[0]][candidate[1]]


def _index(chain: int, *, conflict: bool) -> Index:
    """``top`` N needs ``p000`` N, which needs ``p001`` N, … (N = 1 or 2); with
    ``conflict``, ``p{chain-1}`` 2 needs ``leaf`` 2, which the spec forbids: the resolver
    must backjump the whole chain back to ``top`` 1."""
    index: Index = {"top": {}, "leaf": {1: [], 2: []}}
    names = [f"p{i:03d}" for i in range(chain)]
    for i, name in enumerate(names):
        index[name] = {v: [(names[i + 1], frozenset({v}))] if i + 1 < chain else [] for v in (1, 2)}
    index["top"][1] = [(names[0], frozenset({1}))]
    index["top"][2] = [(names[0], frozenset({2}))]
    if conflict:
        index[names[-1]][2] = [("leaf", frozenset({2}))]
    return index


def _resolve(
    resolver_type: type[Resolver[Any, Any, Any]], index: Index, reqs: Iterable[Req]
) -> dict[str, int]:
    result = resolver_type(_Provider(index), BaseReporter()).resolve(list(reqs), max_rounds=5000)
    return {name: cand[1] for name, cand in result.mapping.items()}


@pytest.mark.parametrize("conflict", [False, True])
def test_lean_resolver_matches_the_stock_resolver(conflict: bool) -> None:
    index = _index(3 * lean_resolver.KEEP_STATES, conflict=conflict)
    reqs = [("top", frozenset({1, 2})), ("leaf", frozenset({1}))]
    lean = _resolve(LeanResolver, index, reqs)
    assert lean == _resolve(Resolver, index, reqs)
    assert lean["top"] == (1 if conflict else 2)


def test_lean_resolver_history_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """No whole copy of the pins is kept beyond the last KEEP_STATES rounds."""
    whole: list[int] = []
    real_push = lean_resolver._LeanResolution._push_new_state

    def push(self: Any) -> None:
        real_push(self)
        whole.append(sum(1 for s in self._states if s.mapping is not lean_resolver._DROPPED))

    monkeypatch.setattr(lean_resolver._LeanResolution, "_push_new_state", push)
    index = _index(4 * lean_resolver.KEEP_STATES, conflict=False)
    _resolve(LeanResolver, index, [("top", frozenset({1, 2}))])
    assert len(whole) > 4 * lean_resolver.KEEP_STATES
    assert max(whole) <= lean_resolver.KEEP_STATES + 2
