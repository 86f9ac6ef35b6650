"""Mutual exclusion between builds (shared) and gc (exclusive) on one store.

``fcntl.flock`` on ``<root>/lock``: the kernel drops the lock when its holder exits, even
by SIGKILL, so a crashed build never blocks gc forever. Each holder writes its pid and mode
into the file, so a process that gives up can name who holds the store. Several shared
holders overwrite each other's record: the pid named is then the latest of them.

The contract that keeps gc safe: a build holds the shared lock from its first put until
the root naming its manifest is set (objects, then manifest, then root); gc holds the
exclusive lock while it computes the live set and sweeps. A blob stored under one hold and
rooted under another may be collected in between.

Locks are per open file, not per process: a process that holds the shared lock and asks
for the exclusive one through another :class:`StoreLock` waits for itself. Take the lock
once, at the top of a command.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

from store import fsio
from store.errors import LockedError

_POLL_SECONDS = 0.05
_RECORD_WIDTH = 32  # fixed width: every pwrite replaces the whole record


class StoreLock:
    """The lock of the store rooted at ``root``. Use :meth:`exclusive` or :meth:`shared`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.path = root / "lock"

    @contextlib.contextmanager
    def exclusive(self, timeout: float | None = None) -> Iterator[None]:
        """Hold the lock alone (gc). ``timeout`` None waits forever; 0 tries once.

        Raises :class:`LockedError` naming the holder when ``timeout`` seconds pass.
        """
        with self._hold(fcntl.LOCK_EX, "exclusive", timeout):
            yield

    @contextlib.contextmanager
    def shared(self, timeout: float | None = None) -> Iterator[None]:
        """Hold the lock alongside other shared holders (builds); excludes :meth:`exclusive`."""
        with self._hold(fcntl.LOCK_SH, "shared", timeout):
            yield

    @contextlib.contextmanager
    def _hold(self, operation: int, mode: str, timeout: float | None) -> Iterator[None]:
        fd, writable = self._open()
        try:
            self._acquire(fd, operation, mode, timeout)
            try:
                if writable:
                    record = f"{os.getpid()} {mode}".ljust(_RECORD_WIDTH).encode("ascii")
                    os.pwrite(fd, record, 0)
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def _open(self) -> tuple[int, bool]:
        """Open (creating) the lock file; read-only when the store is on read-only media."""
        fsio.make_dir(self.root)
        try:
            return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644), True
        except OSError as exc:
            if not self.path.is_file():
                raise fsio.write_error(exc, self.path) from exc
            # flock works on a read-only descriptor: readers of a read-only mirror (verify,
            # serve) still exclude a writer that could reach it through another mount.
            try:
                return os.open(self.path, os.O_RDONLY | os.O_CLOEXEC), False
            except OSError:
                raise fsio.write_error(exc, self.path) from exc

    def _acquire(self, fd: int, operation: int, mode: str, timeout: float | None) -> None:
        if timeout is None:
            fcntl.flock(fd, operation)
            return
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, operation | fcntl.LOCK_NB)
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockedError(self._locked_message(fd, mode, timeout)) from None
                time.sleep(_POLL_SECONDS)
            else:
                return

    def _locked_message(self, fd: int, mode: str, timeout: float) -> str:
        holder = os.pread(fd, _RECORD_WIDTH, 0).decode("ascii", "replace").split()
        if len(holder) == 2 and holder[0].isdigit():
            who = f"pid {holder[0]} ({holder[1]})"
        else:
            who = "another process"
        return (
            f"store {self.root} is locked by {who}; could not take the {mode} lock"
            f" within {timeout:g} s: wait for that process to finish, or stop it if it hangs"
        )
