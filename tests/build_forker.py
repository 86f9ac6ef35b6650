"""A fork server for tests that run `morgan` many times: each run is a fresh child process.

Starting an interpreter and importing morgan costs about half a second; the crash tests
run dozens of builds. This process imports the CLI once, then for each request read from
stdin forks a child that runs ``morgan.cli.main(argv)`` with the given environment and
exits. The child is a real process: tests SIGKILL it by pid. It has no threads when it
forks (only this loop runs), so the children start clean.

Protocol, one JSON object per line on stdin::

    {"argv": [...], "env": {...}, "stderr": "/path/file", "cwd": "/dir" | null,
     "kill_at": "event|needle|n" | null}

answered on stdout by ``started <pid>`` and, once the child is gone,
``exited <pid> <code>`` (a negative code: killed by that signal). ``kill_at`` makes the
child SIGKILL itself just before the n-th audit event ``event`` (``os.link``,
``os.rename``, ``os.symlink``...) whose first two arguments mention ``needle``; before it
dies it writes ``killed at <point>, inside the walk`` (or ``outside``) to its stderr: inside
when some thread is in ``morgan.walk.walk``, the executor walking the plan graph.

:class:`Forker` is the test side: it starts this module and talks the protocol.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import traceback
from pathlib import Path
from types import FrameType
from typing import Any

# What `morgan build` imports lazily: loaded here once, before any fork.
import morgan.build
import morgan.commands.build  # noqa: F401
import rules.lib.http  # noqa: F401
from morgan import cli
from tests.build_checks import ROOT, morgan_env

WALK_FILE = str(Path("morgan", "walk.py"))


def _install_kill(plan: str) -> None:
    event, needle, n = plan.split("|")
    left = [int(n)]
    lock = threading.Lock()

    def kill_at(name: str, args: tuple[object, ...]) -> None:
        if name != event or needle not in " ".join(str(a) for a in args[:2]):
            return
        with lock:
            left[0] -= 1
            if left[0] == 0:
                where = "inside the walk" if _walking() else "outside the walk"
                os.write(2, f"\nkilled at {plan}, {where}\n".encode())
                os.kill(os.getpid(), signal.SIGKILL)

    sys.addaudithook(kill_at)


def _walking() -> bool:
    """Whether some thread is inside ``morgan.walk.walk`` (the executor walking the plan)."""
    for frame in sys._current_frames().values():
        f: FrameType | None = frame
        while f is not None:
            code = f.f_code
            if code.co_name == "walk" and code.co_filename.endswith(WALK_FILE):
                return True
            f = f.f_back
    return False


def _child(request: dict[str, Any]) -> int:
    os.environ.clear()
    os.environ.update(request["env"])
    fd = os.open(str(request["stderr"]), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 2)
    os.close(fd)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    if request.get("cwd"):
        os.chdir(request["cwd"])
    if request.get("kill_at"):
        _install_kill(str(request["kill_at"]))
    try:
        return cli.main([str(a) for a in request["argv"]])
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()
        return 70
    finally:
        sys.stderr.flush()


class Forker:
    """tests/build_forker.py as a child process: runs `morgan` in forked grandchildren."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.build_forker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=morgan_env(),
            cwd=ROOT,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self._exited: str | None = None
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.strip())
        self.lines.put("eof")

    def start(
        self,
        argv: list[str],
        stderr: Path,
        *,
        kill_at: str | None = None,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> int:
        """Fork a child running `morgan argv`; return its pid."""
        request = {
            "argv": argv,
            "env": env or morgan_env(),
            "stderr": str(stderr),
            "kill_at": kill_at,
            "cwd": str(cwd) if cwd is not None else None,
        }
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        self._exited = None
        word, pid = self.lines.get(timeout=60).split()
        assert word == "started", word
        return int(pid)

    def finished(self) -> bool:
        """Whether the last child started has exited (without waiting)."""
        if self._exited is None:
            try:
                self._exited = self.lines.get_nowait()
            except queue.Empty:
                return False
        return True

    def wait(self, pid: int) -> int:
        """The exit code of the last child (negative: the signal that killed it)."""
        line = self._exited or self.lines.get(timeout=120)
        word, got, code = line.split()
        assert (word, int(got)) == ("exited", pid), line
        return int(code)

    def run(
        self,
        argv: list[str],
        stderr: Path,
        *,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> tuple[int, str]:
        """Run `morgan argv` to the end; return its exit code and stderr."""
        pid = self.start(argv, stderr, env=env, cwd=cwd)
        return self.wait(pid), stderr.read_text(encoding="utf-8")

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def main() -> None:
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            code = 70
            try:
                code = _child(request)
            finally:
                os._exit(code)
        print(f"started {pid}", flush=True)
        _, status = os.waitpid(pid, 0)
        print(f"exited {pid} {os.waitstatus_to_exitcode(status)}", flush=True)


if __name__ == "__main__":
    main()
