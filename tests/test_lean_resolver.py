"""The lean resolver gives exactly the stock resolver's result, backjumps included, with
bounded history and per-round work."""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import pytest
from resolvelib import AbstractProvider, BaseReporter, Resolver
from resolvelib.resolvers import ResolutionImpossible, ResolutionTooDeep

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


def _random_index(seed: int) -> tuple[Index, list[Req]]:
    """Projects with 1-4 versions whose dependencies allow random version sets: many
    resolutions backtrack, some are impossible. (No cycles: resolvelib's result builder
    recurses forever on some.)"""
    rng = random.Random(seed)  # noqa: S311 - test data, not secrets
    names = [f"r{i:02d}" for i in range(rng.randint(4, 40))]
    index: Index = {}
    for i, name in enumerate(names):
        index[name] = {}
        later = names[i + 1 :]
        for v in range(1, rng.randint(1, 4) + 1):
            deps = rng.sample(later, rng.randint(0, min(3, len(later))))
            index[name][v] = [
                (d, frozenset(rng.sample(range(1, 5), rng.randint(1, 3)))) for d in deps
            ]
    roots = rng.sample(names, rng.randint(1, 3))
    return index, [(r, frozenset(range(1, 5))) for r in roots]


class _LocalProvider(_Provider):
    """A preference read from the name's own criterion (how many requirements name it, so
    it changes as pins add them), with ties, in a provider that says so: the lean resolver
    keeps a heap of the unsatisfied names instead of ranking all of them each round."""

    reads_by_identifier = True

    def get_preference(self, identifier: str, *args: Any, **kwargs: Any) -> Any:
        return -len(list(kwargs["information"][identifier])) % 3


def _outcome(
    resolver_type: type[Resolver[Any, Any, Any]],
    index: Index,
    reqs: list[Req],
    provider: type[_Provider] = _Provider,
) -> Any:
    try:
        result = resolver_type(provider(index), BaseReporter()).resolve(reqs, max_rounds=300)
    except (ResolutionImpossible, ResolutionTooDeep) as exc:
        return type(exc).__name__
    return (
        {name: cand[1] for name, cand in result.mapping.items()},
        sorted((str(a), str(b)) for a in result.graph for b in result.graph.iter_children(a)),
    )


@pytest.mark.parametrize("provider", [_Provider, _LocalProvider])
@pytest.mark.parametrize("keep", [lean_resolver.KEEP_STATES, 2])
def test_lean_resolver_matches_the_stock_resolver_on_random_graphs(
    keep: int, provider: type[_Provider], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pins, graph and failures equal the stock resolver's on 150 random graphs; with a
    history of two states the dropped-history restart is taken too; with preferences
    kept in a heap, ties and preferences that change as pins are added included."""
    monkeypatch.setattr(lean_resolver, "KEEP_STATES", keep)
    kinds: set[str] = set()
    for seed in range(150):
        index, reqs = _random_index(seed)
        stock = _outcome(Resolver, index, reqs, provider)
        assert _outcome(LeanResolver, index, reqs, provider) == stock, seed
        kinds.add(stock if isinstance(stock, str) else "resolved")
    assert kinds == {"resolved", "ResolutionImpossible"}  # the corpus has both


def _wide_index(width: int) -> Index:
    """``top`` needs ``w000`` … ``w{width}``, each needing the next one's leaf: wide and
    two levels deep, the shape where every round used to re-check every criterion."""
    index: Index = {"top": {1: [(f"w{i:03d}", frozenset({1})) for i in range(width)]}}
    for i in range(width):
        index[f"w{i:03d}"] = {1: [(f"l{i:03d}", frozenset({1}))]}
        index[f"l{i:03d}"] = {1: []}
    return index


class _Counting(_Provider):
    checks = 0

    def is_satisfied_by(self, requirement: Req, candidate: Cand) -> bool:
        type(self).checks += 1
        return super().is_satisfied_by(requirement, candidate)


def test_lean_resolver_rounds_check_only_what_changed() -> None:
    """Satisfaction checks grow with the projects, not with their square (the stock loop
    checks every criterion every round)."""
    checks = {}
    for width in (100, 400):
        _Counting.checks = 0
        result = LeanResolver(_Counting(_wide_index(width)), BaseReporter()).resolve(
            [("top", frozenset({1}))], max_rounds=5000
        )
        assert len(result.mapping) == 2 * width + 1
        checks[width] = _Counting.checks
    assert checks[400] < 5 * checks[100]
    _Counting.checks = 0
    Resolver(_Counting(_wide_index(400)), BaseReporter()).resolve(
        [("top", frozenset({1}))], max_rounds=5000
    )
    assert _Counting.checks > 50 * checks[400]


def test_lean_resolver_round_limit_grows_with_the_resolution() -> None:
    """A fixed limit stops a large resolution; a limit per name met lets it finish, and
    still stops a resolution that runs past it."""
    index = _index(300, conflict=False)  # 302 pins: more rounds than max_rounds
    reqs = [("top", frozenset({1, 2}))]
    with pytest.raises(ResolutionTooDeep):
        LeanResolver(_Provider(index), BaseReporter()).resolve(reqs, max_rounds=100)
    with pytest.raises(ResolutionTooDeep):
        Resolver(_Provider(index), BaseReporter()).resolve(reqs, max_rounds=100)
    result = LeanResolver(_Provider(index), BaseReporter()).resolve(
        reqs, max_rounds=100, rounds_per_criterion=2
    )
    assert len(result.mapping) == 301
    with pytest.raises(ResolutionTooDeep):
        LeanResolver(_Provider(index), BaseReporter()).resolve(
            [("top", frozenset({1, 2})), ("leaf", frozenset({1}))],
            max_rounds=10,
            rounds_per_criterion=0,
        )
