"""A fork server for tests that run `morgan` many times: each run is a fresh child process.

Starting an interpreter and importing morgan costs about half a second; the crash tests
run dozens of builds. This process imports the CLI once, then for each request read from
stdin forks a child that runs ``morgan.cli.main(argv)`` with the given environment and
exits. The child is a real process: tests SIGKILL it by pid. It has no threads when it
forks (only this loop runs), so the children start clean.

Protocol, one JSON object per line on stdin::

    {"argv": [...], "env": {...}, "stderr": "/path/file", "kill_at": "event|needle|n" | null}

answered on stdout by ``started <pid>`` and, once the child is gone,
``exited <pid> <code>`` (a negative code: killed by that signal). ``kill_at`` makes the
child SIGKILL itself just before the n-th audit event ``event`` (``os.link``,
``os.rename``, ``os.symlink``...) whose first two arguments mention ``needle``.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import traceback
from typing import Any

# What `morgan build` imports lazily: loaded here once, before any fork.
import morgan.build
import morgan.commands.build  # noqa: F401
import rules.http  # noqa: F401
from morgan import cli


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
                os.kill(os.getpid(), signal.SIGKILL)

    sys.addaudithook(kill_at)


def _child(request: dict[str, Any]) -> int:
    os.environ.clear()
    os.environ.update(request["env"])
    fd = os.open(str(request["stderr"]), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 2)
    os.close(fd)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
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
