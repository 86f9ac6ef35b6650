"""The incremental executor: runs rule nodes once, in parallel, skipping what is cached.

A node is identified by a stable id (``page:requests``, ``fetch:<sha256>``) and keyed by
:func:`store.actions.action_key` over its rule kind, implementation version, parameters and
the content digests of its inputs. A node whose key is in the action cache, and all of whose
output blobs exist, is not re-run. Every node that runs is recorded with the reason, for
``morgan build --explain``. Two nodes with the same key are one action: when one has made
the output in this build, the other takes it and is recorded as having run, with its own
reason, whichever of them got there first (so ``--explain`` does not depend on timing).
Which node follows which is the plan's business (:mod:`morgan.plan`, walked by
:mod:`morgan.walk`), not the executor's.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from rules.rule import Json, Node, Output
from store.actions import ActionCache, action_key
from store.digest import Digest
from store.objects import Store
from store.traces import TraceLog

__all__ = ["Executor", "Node", "NullReporter", "Ran", "Reporter", "cached_output", "explain"]

OutT = TypeVar("OutT", bound=Output)

# A download this large (its size known from the page or lock) runs on a pool of its own:
# a few large wheels streaming for seconds at the link's speed do not take the threads the
# hundreds of small files need (each mostly a round trip).
LARGE_FILE = 4 << 20


@dataclass(frozen=True, slots=True)
class Ran:
    """A node that ran, and why."""

    id: str
    reason: str


class Reporter(Protocol):
    """Observes the executor (progress display, --explain); every hook may do nothing."""

    def node_started(self, node: Node[Any]) -> None: ...

    def node_finished(self, node: Node[Any], output: Output, *, cached: bool) -> None: ...

    def environment_resolved(self, name: str, pins: int) -> None: ...


class NullReporter:
    def node_started(self, node: Node[Any]) -> None:
        pass

    def node_finished(self, node: Node[Any], output: Output, *, cached: bool) -> None:
        pass

    def environment_resolved(self, name: str, pins: int) -> None:
        pass


@dataclass(frozen=True, slots=True)
class _Failed:
    """How a finished node failed (kept instead of its future)."""

    error: BaseException


def _legacy_id_key(node_id: str) -> str:
    """Where a node's trace was kept in the action cache before the trace log (a store of
    an older Morgan still has them there; gc removes them with their entries)."""
    return action_key("node-id", 1, {"id": node_id}, {})


class _Lanes:
    """The order a pool's threads take its queued nodes in: every node asked for with
    ``urgent`` (what a resolver needs next) before any other, each lane first in first out.
    A node moved to the urgent lane stays in the other too; whichever entry comes first
    takes it (see :meth:`Executor._take_next`), the other is skipped."""

    __slots__ = ("normal", "urgent")

    def __init__(self) -> None:
        self.urgent: deque[str] = deque()
        self.normal: deque[str] = deque()


class ExecutorClosedError(RuntimeError):
    """A node submitted after the executor began to close: it never runs."""


class Executor:
    """Runs nodes at most once per build; consults and fills the action cache."""

    def __init__(
        self,
        store: Store,
        *,
        workers: int = 16,
        small_workers: int = 16,
        reporter: Reporter | None = None,
    ) -> None:
        """``workers`` threads run file downloads (kind "fetch"), and half as many more (at
        least one) the downloads of :data:`LARGE_FILE` bytes or more; ``small_workers`` run
        everything else (pages, metadata, renders): a queue of large downloads never holds
        up the small requests resolution is waiting for, nor the small files.

        A small file costs mostly a round trip, a large one the link's bandwidth: after
        resolution, the files no download ahead could start are mostly small, and with 8
        at a time at a 30 ms round trip they took longer than the bytes of the whole build
        (docs/performance.md, "Small downloads after resolution")."""
        self.store = store
        self.cache = ActionCache(store, record=True)  # the next build's pack
        self.traces = TraceLog(store)  # each node's last run, for --explain
        self.ran: list[Ran] = []
        self.reused = 0
        self.hits: list[str] = []  # the ids of the nodes reused from the cache
        # key -> why the node that runs it in this build runs (set before it starts)
        self._made: dict[str, str] = {}
        self._reporter: Reporter = reporter or NullReporter()
        self._pool = ThreadPoolExecutor(max_workers=small_workers, thread_name_prefix="morgan")
        self._downloads = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="morgan-dl")
        self._large = ThreadPoolExecutor(
            max_workers=max(1, workers // 2), thread_name_prefix="morgan-dl-large"
        )
        self._lanes = {id(p): _Lanes() for p in (self._pool, self._downloads, self._large)}
        self._lock = threading.Lock()
        self._closing = False
        # A running node's future; once it is done, only its output (or failure).
        self._futures: dict[str, Future[Any] | Output | _Failed] = {}
        # Submitted nodes no thread has taken yet: whoever takes one first runs it (a pool
        # thread, or a thread that needs its output now: see run()).
        self._queued: dict[str, Callable[[], None]] = {}

    def close(self) -> None:
        with self._lock:
            self._closing = True  # see submit
        self._downloads.shutdown(wait=True, cancel_futures=True)
        self._large.shutdown(wait=True, cancel_futures=True)
        self._pool.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            left, self._queued = self._queued, {}
        for node_id in left:  # never taken: their waiters must not wait for ever
            entry = self._futures.get(node_id)
            if isinstance(entry, Future):
                entry.cancel()

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def submit(
        self, node: Node[OutT], fn: Callable[[], OutT], *, urgent: bool = False
    ) -> Future[OutT]:
        """Schedule ``node`` (once per build, whatever the number of callers).

        The node waits in its pool's queue; a thread that needs its output before a pool
        thread has taken it runs it itself (:meth:`run`), so a guess queued behind a
        hundred page fetches never holds up the resolver that now asks for it. An
        ``urgent`` node (a page the resolver will need next) is taken by the pool's
        threads before every node queued without it, even one queued earlier: asked for
        again with ``urgent``, a node still queued moves ahead.
        """
        pool = self._pool
        if node.kind == "fetch":
            size = node.params.get("size")
            large = isinstance(size, int) and size >= LARGE_FILE
            pool = self._large if large else self._downloads
        lanes = self._lanes[id(pool)]
        with self._lock:
            existing: Future[OutT] | None = self._future(node.id)
            if existing is not None:
                if urgent and node.id in self._queued:
                    lanes.urgent.append(node.id)
                return existing
            fut: Future[OutT] = Future()
            if self._closing:
                # A crawl callback that ran while the build stopped (a page answered after
                # another node failed): nothing more starts, and the caller's callbacks see
                # a failed future, as for any node that could not run.
                fut.set_exception(ExecutorClosedError(f"{node.id}: the build has stopped"))
                return fut
            self._futures[node.id] = fut
            self._queued[node.id] = lambda: self._complete(fut, node, fn)
            (lanes.urgent if urgent else lanes.normal).append(node.id)
        # Outside the lock (a pool's submit takes its own lock and may start a thread):
        # the node is queued already, so whoever takes it first runs it (_take_next, run()).
        # One task per node queued: each takes the first node still queued in its lanes.
        try:
            pool.submit(self._take_next, lanes)
        except RuntimeError:  # the pool shut down since the check above: see close
            with self._lock:
                queued = self._queued.pop(node.id, None)
            if queued is not None and fut.set_running_or_notify_cancel():
                fut.set_exception(ExecutorClosedError(f"{node.id}: the build has stopped"))
        # Outside the lock: a future already done runs the callback here and now.
        fut.add_done_callback(lambda done, i=node.id: self._settle(i, done))  # type: ignore[misc]
        return fut

    def _take_next(self, lanes: _Lanes) -> None:
        """Run the first node still queued in ``lanes`` (urgent ones first), if any: a node
        another thread took already (run(), or its entry in the other lane) is skipped.
        There is a task per node queued, so every queued node is taken by one of them."""
        with self._lock:
            job = None
            while job is None and (lanes.urgent or lanes.normal):
                node_id = (lanes.urgent or lanes.normal).popleft()
                job = self._queued.pop(node_id, None)
        if job is not None:
            job()

    def _complete(self, fut: Future[OutT], node: Node[OutT], fn: Callable[[], OutT]) -> None:
        if not fut.set_running_or_notify_cancel():
            return
        try:
            output = self._run(node, fn)
        except BaseException as exc:  # noqa: BLE001 - the node's waiters get it
            fut.set_exception(exc)
        else:
            fut.set_result(output)

    def reuse(self, node: Node[OutT]) -> OutT | None:
        """The cached output of ``node``, taken in the calling thread and counted as reused,
        when the node has not been asked for yet in this build and its cache entry is
        complete; else None (then :meth:`submit` it). A walk over tens of thousands of
        unchanged nodes pays no thread hand-off for each."""
        if not node.cacheable:
            return None
        with self._lock:
            if node.id in self._futures or node.key in self._made:
                return None
        output = cached_output(self.cache, node)
        if output is None:
            return None
        with self._lock:
            # Asked for meanwhile (that one counts), or the entry was just made by a node
            # with the same key (then this one is run through that, see the docstring).
            if node.id in self._futures or node.key in self._made:
                return None
            self._futures[node.id] = output
            self.reused += 1
            self.hits.append(node.id)
        self._reporter.node_finished(node, output, cached=True)
        return output

    def run(self, node: Node[OutT], fn: Callable[[], OutT]) -> OutT:
        """Run ``node`` in the calling thread unless it is already scheduled; its output."""
        with self._lock:
            fut: Future[OutT] | None = self._future(node.id)
            queued = self._queued.pop(node.id, None)
            if fut is None:
                fut = Future()
                self._futures[node.id] = fut
                mine = True
            else:
                mine = False
        if queued is not None:  # submitted, not started: run it here rather than wait
            queued()
            return fut.result()
        if mine:
            try:
                fut.set_result(self._run(node, fn))
            except BaseException as exc:
                fut.set_exception(exc)
                self._settle(node.id, fut)
                raise
            self._settle(node.id, fut)
        return fut.result()

    def _future(self, node_id: str) -> Future[Any] | None:
        """The node's future (the caller holds the lock): the running one, or a new settled
        one made from its outcome."""
        entry = self._futures.get(node_id)
        if entry is None or isinstance(entry, Future):
            return entry
        fut: Future[Any] = Future()
        if isinstance(entry, _Failed):
            fut.set_exception(entry.error)
        else:
            fut.set_result(entry)
        return fut

    def _settle(self, node_id: str, done: Future[Any]) -> None:
        """Keep only a finished node's outcome: a future with its condition and lock is
        ~1.7 kB, and a 2 000-project build finishes ~50 000 nodes."""
        if done.cancelled():
            return
        exc = done.exception()
        outcome: Output | _Failed = _Failed(exc) if exc is not None else done.result()
        with self._lock:
            self._futures[node_id] = outcome

    def finished(self, node_id: str) -> Output | None:
        """The output of a node that finished well earlier in this build, else None."""
        with self._lock:
            entry = self._futures.get(node_id)
        return None if entry is None or isinstance(entry, Future | _Failed) else entry

    def note_reused(self, node_id: str) -> None:
        """Count a node that had nothing to do (decided outside the cache) as reused."""
        with self._lock:
            self.reused += 1
            self.hits.append(node_id)

    def note_recorded(self, nodes: Iterable[tuple[str, str, str]]) -> None:
        """Count the nodes of project records (id, key, output digest) as reused: their
        entries stay in the next build's pack, as if the walk had read them."""
        taken = list(nodes)
        with self._lock:
            ids = [i for i, _k, _d in taken if i not in self._futures]
            self.reused += len(ids)
            self.hits.extend(ids)
        self.cache.keep_packed(k for _i, k, _d in taken)

    def cached(self, node: Node[OutT]) -> OutT | None:
        """The cached output of ``node`` if it is complete, without running anything."""
        return cached_output(self.cache, node)

    def _run(self, node: Node[OutT], fn: Callable[[], OutT]) -> OutT:
        key = node.key
        # Read once: the reason below is made from this entry, as it was before this node
        # ran. Read again, it could be the entry a node with the same key (another view's
        # render) appended meanwhile, and the reason would say "output missing (unknown)".
        entry = self.cache.get(key) if node.cacheable else None
        output = _complete(self.cache, node, entry)
        if output is not None:
            with self._lock:
                made = self._made.get(key)
            if made is not None:
                return self._made_by_twin(node, key, output, made)
            with self._lock:
                self.reused += 1
                self.hits.append(node.id)
            self._reporter.node_finished(node, output, cached=True)
            return output
        reason = self._reason(node, entry)
        if node.cacheable:
            # Before its outputs exist: a node with the same key that finds them knows.
            with self._lock:
                self._made.setdefault(key, reason)
        self._reporter.node_started(node)
        output = fn()
        # Action entries are a cache over durable blobs (each blob is fsynced before the
        # entry naming it is written): losing one to a power cut costs a re-run, so they
        # skip fsync, which was most of a cold build's time.
        if node.stored:
            self.cache.put(key, output.to_json(), durable=False)
            if node.cacheable:  # a volatile node explains itself without one
                self.traces.put(node.id, _trace(node, key))
        with self._lock:
            self.ran.append(Ran(node.id, reason))
        self._reporter.node_finished(node, output, cached=False)
        return output

    def _made_by_twin(self, node: Node[OutT], key: str, output: OutT, made: str) -> OutT:
        """``node``'s output, made in this build by another node with the same key: it
        counts as run (see the module docstring), with the reason its own last run gives,
        or, when that run had this key too, the reason the other node ran (``made``)."""
        last = self._last(node)
        if last is not None and last.get("key") == key:
            reason = made
        else:
            reason = explain(node, None, last, self.store)
        self._reporter.node_started(node)
        if node.stored:
            self.traces.put(node.id, _trace(node, key))
        with self._lock:
            self.ran.append(Ran(node.id, reason))
        self._reporter.node_finished(node, output, cached=False)
        return output

    def _reason(self, node: Node[Any], entry: Json | None) -> str:
        """Why ``node`` runs, from ``entry`` (its cache entry as read before it ran)."""
        if not node.cacheable:
            return explain(node, None, None, self.store)
        return explain(node, entry, self._last(node), self.store)

    def _last(self, node: Node[Any]) -> Json | None:
        """The trace of ``node``'s last run: from the trace log, else (a store an older
        Morgan wrote) from the action cache."""
        last = self.traces.get(node.id)
        return last if last is not None else self.cache.get(_legacy_id_key(node.id))


def cached_output(cache: ActionCache, node: Node[OutT], key: str | None = None) -> OutT | None:
    """The output of ``node`` cached under ``key`` (default: its key) if every blob it names
    is present; an entry that does not read as the node's output type is a miss."""
    return _complete(cache, node, cache.get(node.key if key is None else key))


def _complete(cache: ActionCache, node: Node[OutT], entry: Json | None) -> OutT | None:
    """The output ``entry`` names if it reads as ``node``'s output and its blobs are all
    present, else None."""
    if entry is None:
        return None
    try:
        output = node.output.from_json(entry)
    except (KeyError, TypeError, ValueError):
        return None
    return output if all(cache.has_blob(d) for d in output.blobs) else None


def _trace(node: Node[Any], key: str) -> dict[str, object]:
    """What the last run of a node was keyed by, kept under its id for ``--explain``."""
    return {
        "trace": True,
        "key": key,
        "kind": node.kind,
        "version": node.version,
        "params": dict(node.params),
        "inputs": dict(node.inputs),
    }


def explain(node: Node[Any], entry: Json | None, last: Json | None, store: Store) -> str:
    """Why ``node`` has to run: the stored trace of its last run compared with its key now.

    ``entry``: the cache entry under its current key, as stored (its outputs are missing,
    or it would not run); ``last``: the trace kept under its id by its last run.
    """
    if not node.cacheable:
        return f"volatile ({node.volatile})"
    if entry is not None:
        missing = [d for d in entry.get("blobs", ()) if not store.has(Digest.parse(d))]
        return f"output missing ({missing[0] if missing else 'unknown'})"
    if last is None or "params" not in last:
        return "new"
    if last.get("version") != node.version:
        return f"rule version changed ({last.get('version')} → {node.version})"
    params = dict(node.params)
    for name in sorted(set(params) | set(last["params"])):
        if last["params"].get(name) != params.get(name):
            return f"parameter {name} changed"
    inputs = dict(node.inputs)
    old_inputs: dict[str, str] = last.get("inputs", {})
    for name in sorted(set(inputs) | set(old_inputs)):
        old, new = old_inputs.get(name), inputs.get(name)
        if old != new:
            return f"input {name} changed ({_short(old)} → {_short(new)})"
    # Same key as the last run, and still no usable entry: gc removed it with its outputs.
    return "output missing (removed by gc)"


def _short(digest: str | None) -> str:
    if digest is None:
        return "none"
    return digest.removeprefix("blake3:")[:12]
