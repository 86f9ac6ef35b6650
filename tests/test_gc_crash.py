"""`morgan gc --keep 1` killed with SIGKILL inside (issue 14, item 11).

gc condemns each dropped generation by renaming its folder, removes its GC root, deletes the
folder and sweeps the store (morgan/generations.py). The kills land at every one of those
steps; after each run the served generation must be whole, `morgan verify` clean (no
generation folder without its root: a half-deleted generation is never offered as a rollback
target), and the next gc or build must finish what the killed one left.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from morgan.generations import generation_numbers
from store.objects import Store
from store.roots import roots
from tests.build_checks import assert_consistent, served
from tests.build_forker import Forker
from tests.build_scenario import populate
from tests.test_build_crash import SPEC_A, SPEC_B, Chain, fetch_keys
from tests.upstream import FakeUpstream

pytestmark = pytest.mark.slow

# Audit events inside gc, in the order gc meets them. The folder deletions run through
# shutil.rmtree, whose unlink and rmdir events carry names relative to a directory fd:
# they are matched by names that only generation trees hold.
GC_POINTS = [
    *(f"os.rename|/generations/.gc-|{k}" for k in (1, 2, 3)),
    *(f"os.remove|/store/roots/|{k}" for k in (1, 2)),
    *(f"os.remove|index.json|{k}" for k in (1, 2, 5, 10, 25, 50)),
    *(f"os.remove|index.html|{k}" for k in (3, 7)),
    *(f"os.rmdir|simple|{k}" for k in (1, 2, 4)),
    *(f"os.remove|/store/actions/|{k}" for k in (1, 2)),
    *(f"os.remove|/store/objects/|{k}" for k in (1, 2, 3, 5, 8)),
]


def _gc(chain: Chain, label: str, at: str | None) -> bool:
    """One `gc --keep 1`, killed at `at`; checks the mirror after it; True if killed."""
    before = served(chain.mirror)
    stderr = chain.workspace.parent / "gc.err"
    argv = ["gc", "--keep", "1", "-q", "-C", str(chain.workspace)]
    pid = chain.forker.start(argv, stderr, kill_at=at)
    code = chain.forker.wait(pid)
    killed = code == -signal.SIGKILL
    assert killed or code == 0, f"{label}: exit {code}: {stderr.read_text()}"
    after = assert_consistent(chain.mirror)
    assert before is not None
    assert after is not None
    assert after.number == before.number, label
    code, err = chain.forker.run(["verify", "-C", str(chain.workspace)], stderr)
    assert code == 0, f"{label}: verify: {err}"
    return killed


def _leftovers(mirror: Path) -> tuple[list[str], list[str]]:
    """Condemned folders, and generation roots whose folder is gone."""
    condemned = sorted(p.name for p in (mirror / "generations").iterdir() if p.name[0] == ".")
    numbers = {str(n) for n in generation_numbers(mirror)}
    dangling = sorted(
        r
        for r in roots(Store(mirror / "store"))
        if r.startswith("generation-") and r.removeprefix("generation-") not in numbers
    )
    return condemned, dangling


def _new_generations(chain: Chain) -> None:
    """Two more generations, the served one of spec B: spec A's own blobs become garbage."""
    for label, spec in (("A", SPEC_A), ("B", SPEC_B)):
        chain.write_spec(spec)
        assert not chain.run(f"more work for gc ({label})")


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[Chain]:
    forker = Forker()
    with FakeUpstream(tmp_path / "upstream").start() as up:
        populate(up)
        workspace = tmp_path / "ws"
        workspace.mkdir()
        try:
            yield Chain(up, workspace, forker, fetch_keys(up))
        finally:
            forker.close()


def test_sigkill_inside_gc_loses_nothing(chain: Chain) -> None:
    chain.write_spec(SPEC_A)
    assert not chain.run("first build")
    _new_generations(chain)
    _new_generations(chain)
    killed: list[str] = []
    for point in GC_POINTS:
        for _ in range(2):  # a run that finished first gets more work and one more try
            if _gc(chain, f"gc, at {point}", point):
                killed.append(point)
                break
            _new_generations(chain)
    assert len(killed) >= 20, (len(killed), sorted(set(GC_POINTS) - set(killed)))

    # A gc left unfinished is finished by the next gc...
    _new_generations(chain)
    assert _gc(chain, "gc, before its first root removal", "os.remove|/store/roots/|1")
    assert _leftovers(chain.mirror) != ([], [])
    assert not _gc(chain, "gc, to the end", None)
    assert _leftovers(chain.mirror) == ([], [])
    assert generation_numbers(chain.mirror) == [served(chain.mirror).number]  # type: ignore[union-attr]

    # ... and by a build.
    _new_generations(chain)
    assert _gc(chain, "gc, before its first folder unlink", "os.remove|index.json|1")
    condemned, dangling = _leftovers(chain.mirror)
    assert condemned != []
    assert dangling == []  # roots go before folders
    chain.write_spec(SPEC_A)
    assert not chain.run("build after a killed gc")
    assert _leftovers(chain.mirror) == ([], [])
    print(f"{len(killed)} distinct kill points inside gc")
