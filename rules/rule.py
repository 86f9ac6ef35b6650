"""What a rule declares, and the two shapes the engine runs it in.

A rule kind is one module of ``rules/``: a :class:`Rule` (kind, version, output type), its
typed output (a frozen dataclass implementing :class:`Output`) and its run function. The
engine runs a rule application as a :class:`Node` (resolution asks for it by id: pages,
metadata, files) or, after resolution, as a :class:`Step` of the plan graph, which also says
what the output puts into the generation's tree. Outputs are typed for everything that reads
them; the action cache stores their JSON (:meth:`Output.to_json`), whose digest is what a
node's dependants are keyed by.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Generic, Protocol, Self, TypeVar

from store.actions import action_key
from store.digest import Digest

# The JSON an output is stored as in the action cache (and read back from).
Json = Mapping[str, Any]


class Output(Protocol):
    """A rule's typed output: the blobs it names and its JSON form (keys sorted on write)."""

    @property
    def blobs(self) -> tuple[Digest, ...]:
        """The blobs that must exist for a cached output to be reused."""
        ...

    def to_json(self) -> dict[str, object]: ...

    @classmethod
    def from_json(cls, data: Json) -> Self:
        """The output back from its JSON; ``KeyError``/``TypeError``/``ValueError`` when the
        JSON is not one (an entry of an older format reads as a cache miss)."""
        ...


OutT = TypeVar("OutT", bound=Output)
T = TypeVar("T", bound=Output)


@dataclass(frozen=True, slots=True)
class Rule(Generic[OutT]):
    """A rule kind: its name, its implementation version (part of every key) and its
    output type."""

    kind: str
    version: int
    output: type[OutT]

    def node(
        self,
        node_id: str,
        params: Mapping[str, object],
        *,
        inputs: Mapping[str, str] | None = None,
        cacheable: bool = True,
    ) -> Node[OutT]:
        """One application of this rule, for the executor."""
        return Node(
            id=node_id,
            kind=self.kind,
            version=self.version,
            params=params,
            output=self.output,
            inputs=dict(inputs or {}),
            cacheable=cacheable,
        )


@dataclass(frozen=True, slots=True)
class Node(Generic[OutT]):
    """One rule application: what the executor runs once per build and keys in the cache."""

    id: str
    kind: str
    version: int
    params: Mapping[str, object]
    output: type[OutT]
    inputs: Mapping[str, str] = field(default_factory=dict)
    cacheable: bool = True  # False: always run (e.g. an upstream page being refreshed)
    volatile: str = "upstream page refresh"  # why a node that is not cacheable runs
    # False for an effect (the switch): nothing is written to the action cache after it,
    # so the switch is the last write of a build that makes a generation.
    stored: bool = True
    _key: str | None = field(default=None, compare=False, repr=False)

    @property
    def key(self) -> str:
        """The action key (made once: a walk asks for it two or three times per node)."""
        key = self._key
        if key is None:
            key = action_key(self.kind, self.version, dict(self.params), dict(self.inputs))
            object.__setattr__(self, "_key", key)
        return key


class Inputs:
    """The outputs of a plan node's predecessors, read by node id and expected type."""

    __slots__ = ("_outputs",)

    def __init__(self, outputs: Mapping[str, Output]) -> None:
        self._outputs = outputs

    def get(self, node_id: str, kind: type[T]) -> T:
        out = self._outputs[node_id]
        if not isinstance(out, kind):
            raise TypeError(f"{node_id}: expected {kind.__name__}, got {type(out).__name__}")
        return out

    def ids(self) -> list[str]:
        return sorted(self._outputs)


def _no_entries(_out: Any) -> dict[str, Digest]:
    return {}


def _spent(_inputs: Inputs) -> Any:
    raise RuntimeError("internal: a plan step ran again after its walk let go of it")


_SPENT_PARAMS: Mapping[str, object] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Step(Generic[OutT]):
    """One node of the plan: what the executor runs and what it puts into the tree.

    ``run`` gets the outputs of the node's predecessors. ``entries`` maps its output to the
    tree paths whose content it is (a file in each view that lists it, a project's two
    pages, ...): every entry of a generation has exactly one producer.
    """

    id: str
    rule: Rule[OutT]
    params: Mapping[str, object]
    run: Callable[[Inputs], OutT]
    entries: Callable[[OutT], dict[str, Digest]] = _no_entries
    produces: tuple[str, ...] = ()  # the tree paths of ``entries``, known before it runs
    cacheable: bool = True
    volatile: str = ""  # why it runs when it is not cacheable
    # An effect node (the switch) is not cached; this says, from its inputs, when it has
    # nothing to do (its output then), so that it counts as reused and does not run.
    current: Callable[[Inputs], OutT | None] | None = None

    @property
    def kind(self) -> str:
        return self.rule.kind

    def spend(self) -> None:
        """Let go of what the step ran with (``run``, ``current``, its parameters) once it
        has run and its key is known: what a build reads of its plan after the walk is
        each step's id, rule, ``entries`` and ``produces``. A cold build's walk ends at
        its high-water mark with every step of the plan still held (~47 000 at 5 000
        projects; their parameters and run partials ~20 MB). The step is changed in place
        (it is frozen to its users, not to the walk), so every holder of it, the plan and
        the manifest's map of producers, lets go at once."""
        object.__setattr__(self, "run", _spent)
        object.__setattr__(self, "params", _SPENT_PARAMS)
        object.__setattr__(self, "current", None)

    @property
    def spent(self) -> bool:
        """Whether :meth:`spend` let go of the step's parameters (its key cannot be made)."""
        return self.run is _spent

    def node(self, inputs: Mapping[str, str]) -> Node[OutT]:
        """The executor node of this step given its predecessors' output digests."""
        return Node(
            id=self.id,
            kind=self.rule.kind,
            version=self.rule.version,
            params=self.params,
            output=self.rule.output,
            inputs=dict(inputs),
            cacheable=self.cacheable,
            volatile=self.volatile,
            stored=self.cacheable,
        )


def at_paths(paths: tuple[str, ...], out: Any) -> dict[str, Digest]:
    """A step's entries when its output is one blob at each of ``paths`` (its ``produces``):
    ``functools.partial(at_paths, produces)``. A plan holds ~47 000 steps at 5 000
    projects: a partial over the tuple a step holds anyway is lighter than a closure (and
    the list of paths it kept alive)."""
    blob: Digest = out.blob
    return dict.fromkeys(paths, blob)


def digests(values: Any) -> tuple[Digest, ...]:
    """JSON digest strings as :class:`Digest` values (for ``from_json``)."""
    return tuple(Digest.parse(str(v)) for v in values)
