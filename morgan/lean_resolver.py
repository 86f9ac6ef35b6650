"""resolvelib's resolver with a bounded state history: memory linear in the projects.

resolvelib keeps one state per round (per pin), each with a full copy of the pins and the
criteria so far, only to be able to backtrack to it: for an environment of N projects that
is N copies of N entries. At a few thousand projects per environment, times six
environments resolved at once, that history was most of a build's memory (about 1 GB at
2 000 synthetic projects).

:class:`LeanResolver` keeps only the last :data:`KEEP_STATES` states whole; older ones are
replaced by a marker. A backjump rarely goes further back than a few states; when one
reaches a dropped state (or resolvelib's optimistic backjumping asks to copy the whole
history), the resolution starts over with the stock resolver and its full history. Either
way the result is exactly what the stock resolver gives: the lean run either never reads
the dropped states, or is thrown away.

Each round resolvelib also checks every pin against every criterion (N × N checks over a
resolution); the answer depends only on the two objects, which resolvelib replaces rather
than changes, so it is remembered per pair.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NoReturn

from resolvelib import Resolver

try:  # resolvelib >= 1.1 (resolvers is a package)
    from resolvelib.resolvers.resolution import Resolution, _build_result

    LEAN = True
except ImportError:  # pragma: no cover - older resolvelib: the stock resolver only
    LEAN = False

KEEP_STATES = 64
SATISFYING_MAX = 1 << 18


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

if LEAN:

    class _LeanResolution(Resolution[Any, Any, Any]):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._satisfying: dict[tuple[int, int], tuple[object, object, bool]] = {}

        def _is_current_pin_satisfying(self, name: Any, criterion: Any) -> bool:
            """The stock check, remembered per (criterion, pin) object: resolvelib asks it of
            every criterion every round, and replaces a criterion rather than change it."""
            pin = self.state.mapping.get(name)
            if pin is None:
                return False
            key = (id(criterion), id(pin))
            hit = self._satisfying.get(key)
            if hit is not None and hit[0] is criterion and hit[1] is pin:
                return hit[2]
            ok = super()._is_current_pin_satisfying(name, criterion)
            if len(self._satisfying) > SATISFYING_MAX:
                self._satisfying.clear()
            # The objects are held, so their ids cannot be reused while the entry lives.
            self._satisfying[key] = (criterion, pin, ok)
            return ok

        def _push_new_state(self) -> None:
            super()._push_new_state()
            states = self._states
            old = len(states) - KEEP_STATES - 1
            # The root state (index 0) stays: resolvelib starts every resolution from it.
            if old > 0 and states[old].mapping is not _DROPPED:
                states[old] = states[old]._replace(
                    mapping=_DROPPED, criteria=_DROPPED, backtrack_causes=[]
                )


class LeanResolver(Resolver[Any, Any, Any]):
    """:class:`resolvelib.Resolver` whose history is bounded (see the module's docstring)."""

    def resolve(  # type: ignore[override]
        self, requirements: Iterable[Any], max_rounds: int = 100
    ) -> Any:
        if not LEAN:  # pragma: no cover - older resolvelib
            return super().resolve(requirements, max_rounds=max_rounds)
        reqs = list(requirements)
        try:
            state = _LeanResolution(self.provider, self.reporter).resolve(
                reqs, max_rounds=max_rounds
            )
        except _HistoryDroppedError:
            return super().resolve(reqs, max_rounds=max_rounds)
        return _build_result(state)
