"""Run a server as a child process on a free loopback port; run pip and uv against it.

Clients are isolated from this machine's pip/uv configuration (common brief): pip gets
``PIP_CONFIG_FILE=/dev/null``, ``--isolated`` and no ``PIP_*`` variables; uv gets
``UV_NO_CONFIG=1``, its own cache and no ``UV_*`` variables.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests import clients

ROOT = Path(__file__).resolve().parent.parent
SERVER_PY = ROOT / "morgan" / "server.py"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[bytes], log: Path, seconds: float = 20) -> None:
    """Return once something accepts connections on 127.0.0.1:``port``; raise RuntimeError
    (with ``log``) if ``proc`` exits first or ``seconds`` pass."""
    deadline = time.monotonic() + seconds
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text(errors='replace')}")
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"server did not listen on {port}: {log.read_text(errors='replace')}"
            )
        time.sleep(0.05)


def stop(proc: subprocess.Popen[Any], grace: float = 10) -> None:
    """Stop a child: SIGTERM, then SIGKILL if it has not exited within ``grace`` seconds."""
    proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


@dataclass
class ServerProcess:
    url: str  # "http://127.0.0.1:PORT/"
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


@contextmanager
def server_process(command: Sequence[str], log: Path, cwd: Path = ROOT) -> Iterator[ServerProcess]:
    """Start ``command`` (which prints ``Serving ... at http://HOST:PORT/``), yield its URL."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    with log.open("wb") as sink:
        proc = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, cwd=cwd, env=env)
    try:
        url = None
        for _ in range(200):  # up to ~20 s for the interpreter to start and bind
            match = re.search(r"Serving .* at (https?://[0-9.]+:\d+/)", log.read_text())
            if match:
                url = match.group(1)
                break
            if proc.poll() is not None:
                break
            time.sleep(0.1)
        if url is None:
            raise AssertionError(f"server did not start: {log.read_text()}")
        yield ServerProcess(url, log)
    finally:
        stop(proc)


def pip(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "pip", *args[:1], "--isolated", "--no-cache-dir"]
    command += ["--disable-pip-version-check", "--no-input", *args[1:]]
    return subprocess.run(
        command, capture_output=True, text=True, env=clients.pip_env(tmp), check=False, timeout=300
    )


def uv(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [clients.uv_executable(), *args],
        capture_output=True,
        text=True,
        env=clients.pip_env(tmp),
        check=False,
        timeout=300,
        cwd=tmp,
    )
