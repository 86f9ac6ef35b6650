"""Build/gc exclusion across processes: waits, timeouts naming the holder, crash release."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from store.errors import LockedError
from store.lock import StoreLock
from store.objects import Store

ROOT = Path(__file__).resolve().parent.parent

HOLDER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from store.lock import StoreLock

    lock = StoreLock(Path(sys.argv[1]))
    with getattr(lock, sys.argv[2])():
        print("held", flush=True)
        sys.stdin.read()  # hold until the test closes our stdin (or kills us)
    print("released", flush=True)
    """
)


class Holder:
    """A child process holding the store lock until released or killed."""

    def __init__(self, root: Path, mode: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(root), mode],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline() == "held\n"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def release(self) -> None:
        out, _ = self.proc.communicate(input="", timeout=30)
        assert out == "released\n"

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "store"


def _message(root: Path, pid: int, held: str, wanted: str, timeout: str) -> str:
    return (
        f"store {root} is locked by pid {pid} ({held}); could not take the {wanted} lock"
        f" within {timeout} s: wait for that process to finish, or stop it if it hangs"
    )


def test_exclusive_holder_makes_others_time_out_naming_its_pid(root: Path) -> None:
    holder = Holder(root, "exclusive")
    lock = StoreLock(root)
    try:
        with pytest.raises(LockedError) as exc, lock.exclusive(timeout=0.2):
            pass
        assert str(exc.value) == _message(root, holder.pid, "exclusive", "exclusive", "0.2")
        with pytest.raises(LockedError) as exc, lock.shared(timeout=0):
            pass
        assert str(exc.value) == _message(root, holder.pid, "exclusive", "shared", "0")
    finally:
        holder.release()
    with lock.exclusive(timeout=0):
        assert (root / "lock").read_text().split() == [str(os.getpid()), "exclusive"]


def test_shared_holders_coexist_but_exclude_gc(root: Path) -> None:
    holder = Holder(root, "shared")
    lock = StoreLock(root)
    try:
        with lock.shared(timeout=0):
            pass  # a second build may run beside the first
        with pytest.raises(LockedError) as exc, lock.exclusive(timeout=0):
            pass
        # our own shared hold above rewrote the holder record: the latest holder is named
        assert str(exc.value) == _message(root, os.getpid(), "shared", "exclusive", "0")
    finally:
        holder.release()


def test_a_waiter_gets_the_lock_when_the_holder_finishes(root: Path) -> None:
    holder = Holder(root, "exclusive")
    acquired = threading.Event()
    release_waiter = threading.Event()

    def wait_for_lock() -> None:
        with StoreLock(root).shared(timeout=None):
            acquired.set()
            release_waiter.wait(30)

    thread = threading.Thread(target=wait_for_lock)
    thread.start()
    try:
        assert not acquired.wait(0.3)  # still blocked while the holder runs
        holder.release()
        assert acquired.wait(30)
    finally:
        release_waiter.set()
        thread.join(30)


def test_a_killed_holder_releases_the_lock(root: Path) -> None:
    holder = Holder(root, "exclusive")
    holder.kill()
    with StoreLock(root).exclusive(timeout=0):
        pass


def test_store_lock_shortcut(tmp_path: Path) -> None:
    store = Store(tmp_path / "s")
    with store.lock().exclusive(timeout=0):
        assert (tmp_path / "s" / "lock").is_file()
