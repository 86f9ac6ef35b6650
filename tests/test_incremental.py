"""A change of requirements resolves only what it touches; the lock's other pins stay."""

from __future__ import annotations

import functools
import shutil
from pathlib import Path
from typing import Any

import pytest

from morgan import build as build_module
from morgan import cli, incremental
from morgan import lock as lock_module
from morgan.lock import LockedEdge
from tests.build_scenario import morgan
from tests.test_build_incremental import pins, spec
from tests.upstream import FakeUpstream


def _graph(up: FakeUpstream) -> None:
    up.add_release("top", "1.0", requires_dist=["mid>=1"])
    up.add_release("mid", "1.0", requires_dist=["leaf"])
    up.add_release("leaf", "1.0")
    up.add_release("other", "1.0", requires_dist=["leaf"])
    up.add_release("app", "1.0", requires_dist=["clidep; extra == 'cli'"], provides_extra=["cli"])
    up.add_release("clidep", "1.0")


def _resolutions(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("resolution ")]


def test_requirement_changes_keep_every_other_pin(upstream: FakeUpstream, tmp_path: Path) -> None:
    _graph(upstream)
    ws = tmp_path / "ws"
    spec(ws, upstream.url, ["top"])
    assert morgan(ws, "build").returncode == 0
    # Newer releases upstream do not move a kept pin: no upgrade without --upgrade.
    upstream.add_release("mid", "2.0", requires_dist=["leaf"])
    upstream.add_release("leaf", "2.0")

    # Added: only the new closure is resolved, and only its pages are read.
    upstream.clear_requests()
    spec(ws, upstream.url, ["top", "other", "app[cli]"])
    proc = morgan(ws, "build", "--explain")
    assert proc.returncode == 0, proc.stderr
    want = {"top": "1.0", "mid": "1.0", "leaf": "1.0", "other": "1.0", "app": "1.0"}
    assert pins(ws) == pins(ws, "old") == {**want, "clidep": "1.0"}
    assert sorted(upstream.page_requests()) == [
        "/simple/app/",
        "/simple/clidep/",
        "/simple/other/",
    ]
    assert _resolutions(proc.stderr) == [
        f"resolution {env}: kept 3 locked pins, resolved other, app[cli] against them (3 more pins)"
        for env in ("linux", "old")
    ]

    # Removed: exactly the pins nothing reaches any more drop out (top and mid, and the
    # extra's dependency); leaf stays for other. No page is read.
    upstream.clear_requests()
    spec(ws, upstream.url, ["other", "app"])
    proc = morgan(ws, "build", "--explain")
    assert proc.returncode == 0, proc.stderr
    assert pins(ws) == pins(ws, "old") == {"other": "1.0", "leaf": "1.0", "app": "1.0"}
    assert upstream.page_requests() == []
    assert _resolutions(proc.stderr) == [
        f"resolution {env}: kept 2 locked pins, dropped 4 no longer needed, resolved app "
        "against them (1 more pins)"
        for env in ("linux", "old")
    ]

    # A new requirement a kept pin cannot meet: the full resolution decides, and succeeds.
    spec(ws, upstream.url, ["other", "app", "leaf>=2"])
    proc = morgan(ws, "build", "--explain")
    assert proc.returncode == 0, proc.stderr
    assert pins(ws) == {"other": "1.0", "leaf": "2.0", "app": "1.0"}
    assert _resolutions(proc.stderr) == [
        f"resolution {env}: resolved in full: leaf>=2 conflicts with a locked pin"
        for env in ("linux", "old")
    ]

    # --upgrade still upgrades what the lock kept.
    upstream.add_release("other", "2.0", requires_dist=["leaf"])
    proc = morgan(ws, "build", "--upgrade", "--explain")
    assert proc.returncode == 0, proc.stderr
    assert pins(ws) == {"other": "2.0", "leaf": "2.0", "app": "1.0"}
    assert _resolutions(proc.stderr) == [
        f"resolution {env}: resolved in full: --upgrade" for env in ("linux", "old")
    ]


def test_carried_environments_give_the_lock_the_kept_resolution_gives(
    upstream: FakeUpstream,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A change that removes nothing carries each environment's locked pins and edges as
    they are (morgan/incremental.py, Carried): the same lock, byte for byte, and the same
    generation as making the kept pins a Resolution and uniting the new closure with it."""
    _graph(upstream)
    upstream.add_release("top", "1.0", requires_dist=["mid>=1", "app[cli]; extra == 'all'"])
    ws = tmp_path / "ws"
    spec(ws, upstream.url, ["top", "app"])
    assert cli.main(["build", "-q", "-C", str(ws)]) == 0
    upstream.add_release("leaf", "2.0")  # newer upstream: the kept leaf 1.0 stays
    other = tmp_path / "other"
    shutil.copytree(ws, other, symlinks=True)
    # New: a closure with an extra of a kept pin, one requirement a kept pin already meets.
    changed = ["top", "app", "other", "app[cli]", "leaf>=1", "top[all]"]
    spec(ws, upstream.url, changed)
    spec(other, upstream.url, changed)
    capsys.readouterr()
    assert cli.main(["build", "--explain", "-C", str(ws)]) == 0
    carried = capsys.readouterr()
    monkeypatch.setattr(
        build_module,
        "resolve_change",
        functools.partial(incremental.resolve_change, carry=False),
    )
    assert cli.main(["build", "--explain", "-C", str(other)]) == 0
    rebuilt = capsys.readouterr()
    assert (ws / "mirror.lock").read_bytes() == (other / "mirror.lock").read_bytes()
    digests = [
        line
        for out in (carried, rebuilt)
        for line in (out.out + out.err).splitlines()
        if line.startswith("generation digest")
    ]
    assert len(digests) == 2
    assert digests[0] == digests[1]
    for env in ("linux", "old"):
        assert (
            f"resolution {env}: kept 4 locked pins, resolved other, app[cli], top[all] against "
            "them (2 more pins), 1 new requirement(s) already met"
        ) in carried.err
    assert _resolutions(carried.err) == _resolutions(rebuilt.err)
    assert pins(ws) == {
        "top": "1.0",
        "mid": "1.0",
        "leaf": "1.0",
        "app": "1.0",
        "other": "1.0",
        "clidep": "1.0",
    }


def test_carried_edges_come_in_the_lock_order_and_the_lock_sorts_them_once(
    upstream: FakeUpstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A change that removes nothing carries the lock's run edges in the lock's own order,
    the new closure's after them; the lock's environments are made with their edges
    sorted as the lock writes them (so the text and the parsed form sort a sorted list)."""
    _graph(upstream)
    ws = tmp_path / "ws"
    spec(ws, upstream.url, ["top", "app[cli]"])
    assert cli.main(["build", "-q", "-C", str(ws)]) == 0
    before = lock_module.load(ws / "mirror.lock")
    assert before is not None
    carried: list[list[LockedEdge]] = []
    made: list[list[LockedEdge]] = []
    absorb, environments = build_module._absorb_carried, build_module.locked_environments

    def absorbing(sel: Any, c: incremental.Carried, deps: Any) -> None:
        carried.append(list(c.edges))
        absorb(sel, c, deps)

    def making(selections: Any) -> Any:
        envs = environments(selections)
        made.extend(list(e.edges) for found in envs.values() for e in found)
        return envs

    monkeypatch.setattr(build_module, "_absorb_carried", absorbing)
    monkeypatch.setattr(build_module, "locked_environments", making)
    spec(ws, upstream.url, ["top", "app[cli]", "other"])
    assert cli.main(["build", "-q", "-C", str(ws)]) == 0
    assert len(carried) == 2
    for env, edges in zip(before.environments, carried, strict=True):
        run = [e for e in env.edges if e.kind == "run"]
        assert len(run) > 3
        assert edges[: len(run)] == run
        assert len(edges) > len(run)  # (other's)
    assert made
    for edges in made:
        assert edges == sorted(edges, key=lock_module.EDGE_ORDER)


def test_a_kept_pin_s_dependencies_are_the_lock_s_read_once_per_build(
    upstream: FakeUpstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every environment keeps the same locked releases: what one depends on is read from
    the lock once per build and shared, not looked up again per environment."""
    _graph(upstream)
    ws = tmp_path / "ws"
    spec(ws, upstream.url, ["top", "app[cli]"])
    assert cli.main(["build", "-q", "-C", str(ws)]) == 0
    seen: list[dict[Any, Any]] = []
    absorb = build_module._absorb_carried

    def absorbing(sel: Any, c: incremental.Carried, deps: Any) -> None:
        seen.append(dict(c.dependencies))
        absorb(sel, c, deps)

    monkeypatch.setattr(build_module, "_absorb_carried", absorbing)
    spec(ws, upstream.url, ["top", "app[cli]", "other"])
    assert cli.main(["build", "-q", "-C", str(ws)]) == 0
    linux, old = seen
    kept = {"top", "mid", "leaf", "app", "clidep"}
    assert kept <= linux.keys() & old.keys()
    for name in kept:
        assert linux[name] is old[name]
    assert linux["top"].requires_dist == ("mid>=1",)
    assert linux["mid"].requires_dist == ("leaf",)
