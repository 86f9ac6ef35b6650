"""resolvelib's resolver in linear memory and with per-round work bounded by what changed.

resolvelib keeps one state per round (per pin), each with a full copy of the pins and the
criteria so far, only to be able to backtrack to it: for an environment of N projects that
is N copies of N entries. At a few thousand projects per environment, times six
environments resolved at once, that history was most of a build's memory (about 1 GB at
2 000 synthetic projects). Each round it also asks, of every criterion, whether its current
pin still satisfies it, to find the names left to pin: N checks per round, N² per
resolution, which is what made resolution CPU grow with the square of the projects.

:class:`LeanResolver` runs resolvelib's own loop (:meth:`_LeanResolution.resolve` is that
loop, step for step) with changes that cannot alter its result:

- **The unsatisfied names are kept up to date instead of recomputed.** Whether a name is
  satisfied depends only on its criterion and its pin, and resolvelib replaces rather than
  changes both; a successful pin replaces only the pinned name's pin and the criteria of
  the pinned candidate's dependencies, so only those names are checked again. Anything else
  (a backjump, a rollback of optimistic backjumping, information removed from criteria)
  recomputes the set from every criterion, as resolvelib does. The set is handed out in
  the criteria's order, which is the order resolvelib's own scan gives.
- **Only the last :data:`KEEP_STATES` states are kept whole**; older ones are replaced by a
  marker. A backjump rarely goes further back than a few states; when one reaches a dropped
  state (or resolvelib's optimistic backjumping asks to copy the whole history), the
  resolution starts over with the whole history kept: the lean run either never reads the
  dropped states, or is thrown away. The pins are a plain ``dict`` (resolvelib starts from
  an ``OrderedDict``; both keep insertion order and pop the last item first): a copy of one
  takes half the memory. Six environments of 1 600 names each kept 64 states of about
  250 kB, ~60 MB of a 2 000-project build's peak; 16 dict states are ~14 MB.

With a provider that says it reads the criteria only by identifier (``reads_by_identifier``:
``get_preference`` reads the name's own criterion and the backtrack causes, ``find_matches``
its requirements and incompatibilities by identifier; Morgan's provider), two more:

- **The name to pin is taken from a heap.** resolvelib ranks every unsatisfied name by
  ``get_preference`` each round to pin the least; in name order (Morgan's) the unsatisfied
  names are a growing share of all, so that was ~N²/4 preference calls per environment,
  a third of a 2 000-project cold build's CPU. A heap of (preference, position in the
  criteria, name) is kept across rounds: a name is pushed again when a pin replaces its
  criterion, an entry whose name is satisfied is dropped when it comes up, and the entry
  that comes up is checked against a fresh preference; ties go to the first in the
  criteria, as in ``min``. Whatever recomputes the unsatisfied set rebuilds the heap.
- **A candidate's new criteria are an overlay, not a copy.** resolvelib copies every
  criterion to add a candidate's few dependencies and writes the copy back over them all
  when the pin holds (N entries per round); the lean round hands over only the criteria the
  candidate adds or replaces, read over the current ones, and the update writes those.

The round limit may grow with the resolution (``rounds_per_criterion``): an environment of
N projects needs at least N rounds, so a fixed limit caps the size of what can be resolved.

The loop is resolvelib 1.2's; with an older resolvelib the stock resolver runs unchanged.
"""

from __future__ import annotations

import heapq
import operator
from collections.abc import Iterable
from typing import Any, NoReturn

from resolvelib import AbstractProvider, Resolver
from resolvelib.resolvers import ResolutionImpossible, ResolutionTooDeep

try:  # resolvelib >= 1.2 (resolvers is a package, with optimistic backjumping)
    from resolvelib.resolvers.exceptions import RequirementsConflicted
    from resolvelib.resolvers.resolution import Resolution, _build_result
    from resolvelib.structs import IteratorMapping, State

    LEAN = hasattr(Resolution, "_rollback_states")
except ImportError:  # pragma: no cover - older resolvelib: the stock resolver only
    LEAN = False

# A safe backjump pops a few states; an optimistic one copies the whole history (a restart
# whatever this number), so more states buy little and each costs 2 copies of N entries.
KEEP_STATES = 16


class _HistoryDroppedError(Exception):
    """The resolution needs a state the lean history no longer holds."""


class _Dropped:
    """A dropped state's mapping and criteria: any use ends the lean run."""

    def _dropped(self, *args: object, **kwargs: object) -> NoReturn:
        raise _HistoryDroppedError

    def __getattr__(self, name: str) -> Any:
        return self._dropped

    __len__ = __bool__ = __iter__ = __getitem__ = __contains__ = _dropped


_DROPPED: Any = _Dropped()
_DONE: Any = object()  # _choose: every criterion is satisfied
_ABSENT: Any = object()


class _Overlay(dict[Any, Any]):
    """The criteria a candidate adds or replaces (its own items), read over the current
    ones (``base``) by key: what resolvelib's ``_add_to_criteria`` and a provider that
    reads its mappings only by identifier see of a whole copy. ``dict.update`` with it
    writes only its own items."""

    def __init__(self, base: dict[Any, Any]) -> None:
        super().__init__()
        self.base = base

    def __missing__(self, key: Any) -> Any:
        return self.base[key]

    def __contains__(self, key: object) -> bool:
        return dict.__contains__(self, key) or key in self.base

    def get(self, key: Any, default: Any = None) -> Any:
        own = dict.get(self, key, _ABSENT)
        return own if own is not _ABSENT else self.base.get(key, default)


if LEAN:

    class _LeanResolution(Resolution[Any, Any, Any]):
        def __init__(
            self, *args: Any, keep_states: int | None, rounds_per_criterion: int, **kwargs: Any
        ) -> None:
            super().__init__(*args, **kwargs)
            self._keep = keep_states
            self._per_criterion = rounds_per_criterion
            # Names whose pin does not satisfy their criterion, in the criteria's order;
            # None: recompute from every criterion at the next round.
            self._unsat: dict[Any, None] | None = None
            self._unsorted = False
            self._order: dict[Any, int] = {}  # a name's position in the criteria
            self._touched: list[Any] = []  # names whose criterion the last pin replaced
            # (preference, position, name) of the unsatisfied names, when the provider's
            # preferences are local (see _next_name); None: make it at the next round.
            self._heap: list[tuple[Any, int, Any]] | None = None
            self._local = bool(getattr(self._p, "reads_by_identifier", False)) and (
                type(self._p).narrow_requirement_selection
                is AbstractProvider.narrow_requirement_selection
            )

        # -- what changed --------------------------------------------------------------------

        def _add_to_criteria(self, criteria: Any, requirement: Any, parent: Any) -> None:
            super()._add_to_criteria(criteria, requirement, parent)
            self._touched.append(self._p.identify(requirement_or_candidate=requirement))

        def _get_updated_criteria(self, candidate: Any) -> Any:
            self._touched = []  # a rejected candidate's criteria are thrown away
            if not self._local:
                return super()._get_updated_criteria(candidate)
            # resolvelib copies every criterion to add a candidate's few dependencies, then
            # writes the copy back over them all: N entries per round. The criteria this
            # candidate adds or replaces, over the current ones, make the same update.
            criteria = _Overlay(self.state.criteria)
            for requirement in self._p.get_dependencies(candidate=candidate):
                self._add_to_criteria(criteria, requirement, parent=candidate)
            return criteria

        def _unsatisfied_names(self) -> list[Any]:
            if self._unsat is None:
                criteria = self.state.criteria
                self._order = {k: i for i, k in enumerate(criteria)}
                self._unsat = {
                    k: None
                    for k, c in criteria.items()
                    if not self._is_current_pin_satisfying(k, c)
                }
                self._unsorted = False
            elif self._unsorted:
                self._unsat = dict.fromkeys(sorted(self._unsat, key=self._order.__getitem__))
                self._unsorted = False
            return list(self._unsat)

        def _unsat_now(self) -> dict[Any, None]:
            """The unsatisfied names (recomputed from every criterion when unknown, which
            also drops the preference heap); their order does not matter here."""
            if self._unsat is None:
                self._unsatisfied_names()
                self._heap = None
            if self._unsat is None:  # pragma: no cover - _unsatisfied_names sets it
                raise RuntimeError("unsatisfied names unknown")
            return self._unsat

        def _heap_push(self, name: Any) -> None:
            if self._heap is not None:
                heapq.heappush(self._heap, (self._get_preference(name), self._order[name], name))

        def _next_name(self, unsat: dict[Any, None]) -> Any:
            """The unsatisfied name resolvelib's ``min(names, key=get_preference)`` picks,
            from a heap kept across rounds (a provider whose preferences are local only).
            An entry is (preference, position in the criteria, name): ties go to the first
            in the criteria, as they do in ``min``. Entries of names satisfied since are
            skipped; an entry whose preference is stale is checked against a fresh one
            (a name whose criterion a pin replaced was pushed again with its new one)."""
            if self._heap is None:
                self._heap = [(self._get_preference(k), self._order[k], k) for k in unsat]
                heapq.heapify(self._heap)
            heap = self._heap
            while True:
                pref, pos, name = heap[0]
                if name not in unsat:
                    heapq.heappop(heap)
                    continue
                fresh = self._get_preference(name)
                if fresh == pref:
                    return name
                heapq.heapreplace(heap, (fresh, pos, name))

        def _choose(self) -> Any:
            """The name resolvelib pins this round, or ``_DONE`` when every criterion is
            satisfied."""
            if self._local:
                unsat = self._unsat_now()
                if len(unsat) > 1:
                    return self._next_name(unsat)
                return next(iter(unsat), _DONE)
            names = self._unsatisfied_names()
            if len(names) <= 1:
                return names[0] if names else _DONE
            narrowed = list(
                self._p.narrow_requirement_selection(
                    identifiers=names,
                    resolutions=self.state.mapping,
                    candidates=IteratorMapping(
                        self.state.criteria, operator.attrgetter("candidates")
                    ),
                    information=IteratorMapping(
                        self.state.criteria, operator.attrgetter("information")
                    ),
                    backtrack_causes=self.state.backtrack_causes,
                )
            )
            if not narrowed:
                raise RuntimeError("narrow_requirement_selection returned 0 names")
            return min(narrowed, key=self._get_preference) if len(narrowed) > 1 else narrowed[0]

        def _pinned(self, name: Any) -> set[Any]:
            """After ``name`` was pinned: the names that were satisfied before and are not
            now (resolvelib's "newly unsatisfied"), with the kept set updated otherwise."""
            unsat = self._unsat
            if unsat is None:  # pragma: no cover - a round always computes it first
                raise RuntimeError("unsatisfied names unknown")
            criteria = self.state.criteria
            touched = dict.fromkeys([name, *self._touched])
            newly = {
                k
                for k in touched
                if k in self._order
                and k not in unsat
                and not self._is_current_pin_satisfying(k, criteria[k])
            }
            if newly:
                self._unsat = None  # information is removed from every criterion
                return newly
            for k in self._touched:
                if k not in self._order:
                    self._order[k] = len(self._order)
            for k in touched:
                if self._is_current_pin_satisfying(k, criteria[k]):
                    unsat.pop(k, None)
                    continue
                if k not in unsat:
                    if unsat and self._order[k] < self._order[next(reversed(unsat))]:
                        self._unsorted = True
                    unsat[k] = None
                self._heap_push(k)  # its criterion changed: so may its preference
            return newly

        # -- bounded history -----------------------------------------------------------------

        def _push_new_state(self) -> None:
            super()._push_new_state()
            if self._keep is None:
                return
            states = self._states
            old = len(states) - self._keep - 1
            # The root state (index 0) stays: resolvelib starts every resolution from it.
            if old > 0 and states[old].mapping is not _DROPPED:
                states[old] = states[old]._replace(
                    mapping=_DROPPED, criteria=_DROPPED, backtrack_causes=[]
                )

        # -- resolvelib 1.2's loop, with the two changes ---------------------------------------

        def _limit(self, max_rounds: int) -> int:
            return max(max_rounds, self._per_criterion * len(self.state.criteria))

        def resolve(self, requirements: Iterable[Any], max_rounds: int) -> Any:
            """resolvelib 1.2's ``Resolution.resolve``, in one piece to compare with it."""
            if self._states:
                raise RuntimeError("already resolved")
            self._r.starting()
            self._states = [State(mapping={}, criteria={}, backtrack_causes=[])]
            for r in requirements:
                try:
                    self._add_to_criteria(self.state.criteria, r, parent=None)
                except RequirementsConflicted as e:
                    raise ResolutionImpossible(e.criterion.information) from e
            self._push_new_state()

            optimistic_rounds_cutoff: int | None = None
            optimistic_backjumping_start_round: int | None = None
            round_index = -1
            while True:
                round_index += 1
                if round_index >= self._limit(max_rounds):
                    raise ResolutionTooDeep(round_index)
                self._r.starting_round(index=round_index)

                if self._optimistic_backjumping_ratio and self._save_states is not None:
                    if optimistic_backjumping_start_round is None:
                        optimistic_backjumping_start_round = round_index
                        optimistic_rounds_cutoff = int(
                            (self._limit(max_rounds) - round_index)
                            * self._optimistic_backjumping_ratio
                        )
                        if optimistic_rounds_cutoff <= 0:
                            self._rollback_states()
                            self._unsat = None
                            continue
                    elif optimistic_rounds_cutoff is not None and (
                        round_index - optimistic_backjumping_start_round >= optimistic_rounds_cutoff
                    ):
                        self._rollback_states()
                        self._unsat = None
                        continue

                name = self._choose()
                if name is _DONE:
                    self._r.ending(state=self.state)
                    return self.state

                failure_criterion = self._attempt_to_pin_criterion(name)

                if failure_criterion:
                    self._unsat = None
                    causes = self._extract_causes(failure_criterion)
                    self._r.resolving_conflicts(causes=causes)
                    try:
                        success = self._backjump(causes)
                    except ResolutionImpossible:
                        if self._optimistic_backjumping_ratio and self._save_states:
                            failed_optimistic_backjumping = True
                        else:
                            raise
                    else:
                        failed_optimistic_backjumping = bool(
                            not success and self._optimistic_backjumping_ratio and self._save_states
                        )
                    if failed_optimistic_backjumping and self._save_states:
                        self._rollback_states()
                    else:
                        self.state.backtrack_causes[:] = causes
                        if not success:
                            raise ResolutionImpossible(self.state.backtrack_causes)
                else:
                    newly_unsatisfied_names = self._pinned(name)
                    self._remove_information_from_criteria(
                        self.state.criteria, newly_unsatisfied_names
                    )
                    self._push_new_state()

                self._r.ending_round(index=round_index, state=self.state)


class LeanResolver(Resolver[Any, Any, Any]):
    """:class:`resolvelib.Resolver` with a bounded history and incremental rounds (see the
    module's docstring); its result is exactly the stock resolver's."""

    def resolve(  # type: ignore[override]
        self,
        requirements: Iterable[Any],
        max_rounds: int = 100,
        *,
        rounds_per_criterion: int = 0,
    ) -> Any:
        """Resolve like :meth:`resolvelib.Resolver.resolve`; the round limit is the larger
        of ``max_rounds`` and ``rounds_per_criterion`` per name the resolution has met."""
        if not LEAN:  # pragma: no cover - older resolvelib
            return super().resolve(requirements, max_rounds=max_rounds)
        reqs = list(requirements)

        def attempt(keep_states: int | None) -> Any:
            return _LeanResolution(
                self.provider,
                self.reporter,
                keep_states=keep_states,
                rounds_per_criterion=rounds_per_criterion,
            ).resolve(reqs, max_rounds=max_rounds)

        try:
            state = attempt(KEEP_STATES)
        except _HistoryDroppedError:
            state = attempt(None)  # the whole history: a backjump past the kept states
        return _build_result(state)
