"""Run a server as a child process on a free loopback port; run pip and uv against it.

Clients are isolated from this machine's pip/uv configuration (common brief): pip gets
``PIP_CONFIG_FILE=/dev/null``, ``--isolated`` and no ``PIP_*`` variables; uv gets
``UV_NO_CONFIG=1``, its own cache and no ``UV_*`` variables.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests import clients

ROOT = Path(__file__).resolve().parent.parent
SERVER_PY = ROOT / "morgan" / "server.py"


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
            match = re.search(r"Serving .* at (http://[0-9.]+:\d+/)", log.read_text())
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
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


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
