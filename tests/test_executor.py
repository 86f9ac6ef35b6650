"""The executor on its own: once per build, cached across builds, with reasons (which node
follows which is the plan graph's: tests/test_plan.py, tests/test_walk.py)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from morgan.executor import Executor, Node
from rules.rule import Json, Rule
from store.digest import Digest
from store.objects import Store


@dataclass(frozen=True, slots=True)
class Text:
    """A typed output for these tests: a text and the blobs holding it."""

    text: str
    blobs: tuple[Digest, ...] = ()

    def to_json(self) -> dict[str, object]:
        return {"blobs": [str(b) for b in self.blobs], "text": self.text}

    @classmethod
    def from_json(cls, data: Json) -> Self:
        return cls(data["text"], tuple(Digest.parse(b) for b in data["blobs"]))


def node(node_id: str, kind: str = "page", value: str = "a") -> Node[Text]:
    return Rule(kind, 1, Text).node(node_id, {"value": value})


def test_a_node_runs_once_per_build_then_comes_from_the_cache(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    calls: list[str] = []

    def make(text: str) -> Text:
        calls.append(text)
        blob = store.put_bytes(text.encode())
        return Text(text, (blob.digest,))

    with Executor(store) as ex:
        first = ex.submit(node("page:a"), lambda: make("a")).result()
        again = ex.run(node("page:a"), lambda: make("never"))
    assert first == again == Text("a", first.blobs)
    assert first.blobs == (Digest.of(b"a"),)
    assert calls == ["a"]
    assert [(r.id, r.reason) for r in ex.ran] == [("page:a", "new")]

    with Executor(store) as ex:  # the next build: cached, nothing runs
        assert ex.run(node("page:a"), lambda: make("never")) == first
    assert (calls, ex.reused, ex.ran) == (["a"], 1, [])

    with Executor(store) as ex:  # a build where the node's parameters changed
        assert ex.run(node("page:a", value="b"), lambda: make("b")).text == "b"
    assert calls == ["a", "b"]
    assert [(r.id, r.reason) for r in ex.ran] == [("page:a", "parameter value changed")]


def test_explain_names_the_reason_from_the_stored_key(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")

    def render(inputs: dict[str, str]) -> Node[Text]:
        return Rule("render", 1, Text).node("render:a", {"p": 1}, inputs=inputs)

    def make(text: str) -> Text:
        blob = store.put_bytes(text.encode())
        return Text(text, (blob.digest,))

    d1, d2 = "blake3:" + "1" * 64, "blake3:" + "2" * 64
    with Executor(store) as ex:
        out = ex.run(render({"fetch:x": d1}), lambda: make("one"))
    assert [r.reason for r in ex.ran] == ["new"]
    with Executor(store) as ex:  # a predecessor's output changed
        ex.run(render({"fetch:x": d2}), lambda: make("two"))
    assert [r.reason for r in ex.ran] == [f"input fetch:x changed ({'1' * 12} → {'2' * 12})"]
    with Executor(store) as ex:  # same key as the first build, its output blob deleted
        store.remove(out.blobs[0])
        ex.run(render({"fetch:x": d1}), lambda: make("one"))
    assert [r.reason for r in ex.ran] == [f"output missing ({out.blobs[0]})"]
    with Executor(store) as ex:  # an upstream page being refreshed always runs
        volatile = Rule("page", 1, Text).node("page:a", {}, cacheable=False)
        ex.run(volatile, lambda: make("page"))
    assert [r.reason for r in ex.ran] == ["volatile (upstream page refresh)"]


def test_a_queued_node_is_run_by_the_thread_that_needs_it(tmp_path: Path) -> None:
    # One worker, busy: a node queued behind it is run by whoever asks for its output,
    # instead of waiting for the worker (a resolver never waits behind a queue of guesses).
    import threading

    store = Store(tmp_path / "store")
    release = threading.Event()
    with Executor(store, small_workers=1) as ex:
        busy = ex.submit(
            node("page:busy", value="busy"),
            lambda: Text("busy") if release.wait(30) else Text(""),
        )
        queued = ex.submit(node("page:queued", value="queued"), lambda: Text("queued"))
        assert ex.run(node("page:queued", value="queued"), lambda: Text("never")) == Text("queued")
        assert queued.result() == Text("queued")
        assert not busy.done()
        release.set()
        assert busy.result() == Text("busy")
    assert sorted(r.id for r in ex.ran) == ["page:busy", "page:queued"]


def test_urgent_nodes_are_taken_before_the_others_queued_even_earlier(tmp_path: Path) -> None:
    # One worker, busy: of the nodes queued behind it, an urgent one (a page the resolver
    # needs next) runs first, and a node asked for again as urgent moves ahead.
    store = Store(tmp_path / "store")
    release = threading.Event()
    order: list[str] = []

    def make(name: str) -> Text:
        order.append(name)
        return Text(name)

    with Executor(store, small_workers=1) as ex:
        busy = ex.submit(node("page:busy", value="busy"), lambda: Text("busy" * release.wait(30)))
        queued = {
            name: ex.submit(node(f"page:{name}", value=name), lambda n=name: make(n))  # type: ignore[misc]
            for name in ("crawl-1", "crawl-2", "crawl-3")
        }
        urgent = ex.submit(node("page:next", value="next"), lambda: make("next"), urgent=True)
        again = ex.submit(node("page:crawl-3", value="crawl-3"), lambda: make("never"), urgent=True)
        assert again is queued["crawl-3"]
        release.set()
        assert busy.result() == Text("busy")
        assert urgent.result() == Text("next")
        assert [f.result().text for f in queued.values()] == ["crawl-1", "crawl-2", "crawl-3"]
    assert order == ["next", "crawl-3", "crawl-1", "crawl-2"]


def test_a_node_missing_its_entry_keeps_that_reason_when_its_twin_makes_one_meanwhile(
    tmp_path: Path,
) -> None:
    # Two views' renders with one key, in two threads: the env-b render finds no entry
    # and, before it says why it runs, the env-a render makes and appends one. env-b's
    # reason is still what changed since its last run, never "output missing (unknown)".
    store = Store(tmp_path / "store")
    with Executor(store) as ex:
        for view in ("render:env-a", "render:env-b"):
            ex.run(node(view, "render", "a"), lambda: Text("a", (store.put_bytes(b"a").digest,)))
    reading, made = threading.Event(), threading.Event()
    with Executor(store) as ex:
        get, put = ex.cache.get, ex.cache.put
        waited: list[bool] = []

        def slow_get(key: str) -> Any:
            entry = get(key)
            if threading.current_thread().name == "env-b" and not waited:
                reading.set()
                waited.append(made.wait(10))  # env-a runs and appends its entry now
            return entry

        def signalled_put(key: str, data: Any, **kw: Any) -> None:
            put(key, data, **kw)
            made.set()

        ex.cache.get = slow_get  # type: ignore[method-assign]
        ex.cache.put = signalled_put  # type: ignore[method-assign,assignment]

        def render(view: str) -> None:
            ex.run(node(view, "render", "b"), lambda: Text("b", (store.put_bytes(b"b").digest,)))

        b = threading.Thread(target=render, args=("render:env-b",), name="env-b")
        b.start()
        assert reading.wait(10)
        render("render:env-a")
        b.join(10)
    assert waited == [True]
    assert sorted((r.id, r.reason) for r in ex.ran) == [
        ("render:env-a", "parameter value changed"),
        ("render:env-b", "parameter value changed"),
    ]


def test_two_nodes_with_one_key_both_run_with_their_own_reason(tmp_path: Path) -> None:
    # One project page the same in two views: two render nodes, one key. Whichever runs
    # second finds the first's entry; --explain names both, as a build that ran them at
    # once would, so what it prints does not depend on which thread was first.
    store = Store(tmp_path / "store")
    calls: list[str] = []

    def make(text: str) -> Text:
        calls.append(text)
        return Text(text, (store.put_bytes(text.encode()).digest,))

    def ran(value: str) -> list[tuple[str, str]]:
        with Executor(store) as ex:
            for view in ("render:env-a", "render:env-b"):
                ex.run(node(view, "render", value), lambda: make(value))
        return sorted((r.id, r.reason) for r in ex.ran)

    assert ran("a") == [("render:env-a", "new"), ("render:env-b", "new")]
    assert calls == ["a"]  # made once
    changed = "parameter value changed"
    assert ran("b") == [("render:env-a", changed), ("render:env-b", changed)]
    assert calls == ["a", "b"]
    with Executor(store) as ex:  # the next build: both cached, nothing runs
        for view in ("render:env-a", "render:env-b"):
            ex.run(node(view, "render", "b"), lambda: make("never"))
    assert (ex.ran, ex.reused) == ([], 2)


def test_a_node_submitted_while_the_build_stops_fails_quietly(tmp_path: Path) -> None:
    # A crawl callback can run while the build stops (a page answered after another node
    # failed): it used to hit the shut-down pool, and concurrent.futures printed the
    # RuntimeError's traceback under the build's one-line error.
    from morgan.executor import ExecutorClosedError

    store = Store(tmp_path / "store")
    seen: list[BaseException | None] = []
    with Executor(store) as ex:
        done = ex.submit(node("page:first", value="first"), lambda: Text("first"))
        assert done.result() == Text("first")
    late = ex.submit(node("page:late", value="late"), lambda: Text("late"))
    late.add_done_callback(lambda f: seen.append(f.exception()))
    assert len(seen) == 1
    assert isinstance(seen[0], ExecutorClosedError)
    assert [r.id for r in ex.ran] == ["page:first"]
