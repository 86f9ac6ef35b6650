"""Two `morgan build` runs (or a build and `morgan gc`) on one mirror at once: the second fails
clearly or waits its turn.

A build holds the store lock for its whole run. The first build here is held up by an
upstream page that does not come (a fault delay, ended by the test) while it holds the
lock; the second starts meanwhile. Without `--wait` it exits 1 at once naming the holder's
pid; with `--wait` it runs after the first and finds its work done (or, with another spec,
makes the next generation). The store and the served index are consistent afterwards.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.build_checks import (
    assert_consistent,
    morgan_command,
    morgan_env,
    run_morgan,
    write_spec,
)
from tests.upstream import FakeUpstream, Fault

HOLD_SECONDS = 120.0  # longer than any test: the test releases the page itself


@dataclass
class Race:
    upstream: FakeUpstream
    workspace: Path

    @property
    def mirror(self) -> Path:
        return self.workspace / "mirror"

    def start_holder(self) -> subprocess.Popen[str]:
        """A build that holds the store lock until :meth:`release` (its page is held back)."""
        # Its first page request is held back (whatever the spec asks for).
        self.upstream.clear_requests()
        self.upstream.set_fault("/simple/*", Fault(delay=HOLD_SECONDS, times=1))
        proc = subprocess.Popen(
            morgan_command(self.workspace, "build"),
            env=morgan_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        # Holding: it wrote its pid into the lock file and is waiting for the slow page.
        lock = self.mirror / "store" / "lock"
        deadline = time.monotonic() + 60
        while not (
            lock.exists()
            and lock.read_text().split()[:1] == [str(proc.pid)]
            and self.upstream.page_requests()
        ):
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "the first build never took the lock"
            time.sleep(0.01)
        return proc

    def release(self) -> None:
        """Let the held page go: the fake upstream's delays end when `stopping` is set."""
        self.upstream.stopping.set()
        self.upstream.stopping.clear()


def _start(workspace: Path, *args: str) -> subprocess.Popen[str]:
    return _start_command(workspace, "build", *args)


def _start_command(workspace: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        morgan_command(workspace, *args),
        env=morgan_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def race(tmp_path: Path) -> Iterator[Race]:
    with FakeUpstream(tmp_path / "upstream").start() as up:
        up.add_release("demo", "1.0", requires_dist=["dep"])
        up.add_release("dep", "1.0")
        up.add_release("other", "1.0")
        workspace = tmp_path / "ws"
        write_spec(workspace, up.url, ["demo"])
        yield Race(up, workspace)


def _finish(proc: subprocess.Popen[str]) -> tuple[int, str]:
    _, stderr = proc.communicate(timeout=120)
    return proc.returncode, stderr


def test_second_build_fails_at_once_naming_the_holder(race: Race) -> None:
    holder = race.start_holder()
    second = run_morgan(race.workspace, "build")
    race.release()
    code, stderr = _finish(holder)
    store = race.mirror / "store"
    assert (second.returncode, second.stderr) == (
        1,
        (
            f"morgan: error: store: store {store} is locked by pid {holder.pid} (exclusive); "
            "could not take the exclusive lock within 0 s: wait for that process to finish, or "
            "stop it if it hangs\n"
        ),
    )
    assert code == 0, stderr
    served = assert_consistent(race.mirror)
    assert served is not None
    assert served.number == 1


def test_second_build_with_wait_runs_after_the_first(race: Race) -> None:
    holder = race.start_holder()
    second = _start(race.workspace, "--wait", "60")
    time.sleep(1)
    waiting = second.poll() is None
    race.release()
    code, stderr = _finish(holder)
    second_code, second_stderr = _finish(second)
    assert waiting
    assert code == 0, stderr
    assert second_code == 0, second_stderr
    # The first build wrote the lock; the second found everything done.
    assert "unchanged, still generation 1" in second_stderr
    served = assert_consistent(race.mirror)
    assert served is not None
    assert served.number == 1


def test_two_workspaces_sharing_one_mirror_take_turns(race: Race, tmp_path: Path) -> None:
    other = tmp_path / "other"
    write_spec(other, race.upstream.url, ["other"])
    holder = race.start_holder()
    second = _start(other, "--out", str(race.mirror), "--wait", "60")
    time.sleep(1)
    waiting = second.poll() is None
    race.release()
    code, stderr = _finish(holder)
    second_code, second_stderr = _finish(second)
    assert waiting
    assert code == 0, stderr
    assert second_code == 0, second_stderr
    served = assert_consistent(race.mirror)
    assert served is not None
    # The second build ran after the first and made the next generation, of its own spec.
    assert served.number == 2
    assert sorted({p.split("/")[1] for p in served.entries if p.startswith("simple/")}) == [
        "index.html",
        "index.json",
        "other",
    ]
    assert sorted(p.name for p in (race.mirror / "generations").iterdir()) == ["1", "2"]


def test_wait_gives_up_after_its_timeout(race: Race) -> None:
    holder = race.start_holder()
    second = run_morgan(race.workspace, "build", "--wait", "0.5")
    race.release()
    code, stderr = _finish(holder)
    assert second.returncode == 1
    assert second.stderr == (
        f"morgan: error: store: store {race.mirror / 'store'} is locked by pid {holder.pid} "
        "(exclusive); could not take the exclusive lock within 0.5 s: wait for that process "
        "to finish, or stop it if it hangs\n"
    )
    assert code == 0, stderr
    assert assert_consistent(race.mirror) is not None


def test_gc_during_a_build_fails_at_once_or_waits(race: Race, tmp_path: Path) -> None:
    # A first generation for gc to keep, then a second build (another spec) that is held.
    first = run_morgan(race.workspace, "build")
    assert first.returncode == 0, first.stderr
    write_spec(race.workspace, race.upstream.url, ["other"])
    holder = race.start_holder()
    refused = run_morgan(race.workspace, "gc")
    waiting = _start_command(race.workspace, "gc", "--keep", "1", "--wait", "60")
    time.sleep(1)
    gc_waited = waiting.poll() is None
    race.release()
    code, stderr = _finish(holder)
    gc_code, gc_stderr = _finish(waiting)
    assert (refused.returncode, refused.stderr) == (
        1,
        (
            f"morgan: error: store: store {race.mirror / 'store'} is locked by pid "
            f"{holder.pid} (exclusive); could not take the exclusive lock within 0 s: wait "
            "for that process to finish, or stop it if it hangs\n"
        ),
    )
    assert code == 0, stderr
    assert gc_waited
    assert gc_code == 0, gc_stderr
    # gc ran after the build: it kept the build's new generation and dropped the first.
    served = assert_consistent(race.mirror)
    assert served is not None
    assert served.number == 2
    assert sorted(p.name for p in (race.mirror / "generations").iterdir()) == ["2"]
    verify = run_morgan(race.workspace, "verify")
    assert verify.returncode == 0, verify.stderr
