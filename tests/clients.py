"""Real pip and uv as clients of a test index, isolated from this machine's configuration.

The machine's pip configuration adds extra indexes, find-links and constraints; uv has its
own config files. A client of a test index must see only the index the test gives it, so:

- `pip_env(tmp)` is the process environment to run them with: no `PIP_*`/`UV_*` variable
  from outside, `PIP_CONFIG_FILE=/dev/null` (pip then reads no config file at all),
  `UV_NO_CONFIG=1`, caches under `tmp`.
- `pip_command("install", url, ...)` is `python -m pip --isolated --no-cache-dir install
  --index-url URL ...`; `uv_pip_command("compile", url, ...)` the same for `uv pip`.
- `make_venv(path)` makes a venv *without* pip (stdlib `venv`, ~40 ms); install into it with
  the outer pip: `pip_command("install", url, "NAME", python=venv_python)` — pip 22.3+ re-runs
  itself against that interpreter (`pip --python`), so no pip copy per venv is needed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from collections.abc import Sequence
from pathlib import Path


def pip_env(tmp: Path) -> dict[str, str]:
    """An environment for pip/uv subprocesses that no outside configuration leaks into."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    env.update(
        {
            "PIP_CONFIG_FILE": os.devnull,
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            "PIP_NO_INPUT": "1",
            "UV_NO_CONFIG": "1",
            "UV_CACHE_DIR": str(tmp / "uv-cache"),
            "UV_PYTHON_DOWNLOADS": "never",
            "UV_NO_PROGRESS": "1",
            "XDG_CACHE_HOME": str(tmp / "xdg-cache"),
        }
    )
    return env


def pip_command(
    subcommand: str, index_url: str, *args: str, python: Path | None = None
) -> list[str]:
    """`python -m pip --isolated --no-cache-dir SUBCOMMAND --index-url URL ARGS...`.

    With `python`, pip acts on that interpreter's environment (`pip --python`).
    """
    cmd = [sys.executable, "-m", "pip", "--isolated", "--no-cache-dir"]
    if python is not None:
        cmd += ["--python", str(python)]
    return [*cmd, subcommand, "--index-url", index_url, *args]


def uv_pip_command(subcommand: str, index_url: str, *args: str) -> list[str]:
    """`uv pip SUBCOMMAND --index-url URL ARGS...` (run it with `pip_env`: no config, tmp cache)."""
    return [uv_executable(), "pip", subcommand, "--index-url", index_url, *args]


def uv_executable() -> str:
    """The uv binary (the one installed next to this interpreter first)."""
    beside = Path(sys.executable).with_name("uv")
    if beside.exists():
        return str(beside)
    found = shutil.which("uv")
    if found is None:
        raise FileNotFoundError("uv not found: install the test extras (`pip install .[test]`)")
    return found


def make_venv(path: Path) -> Path:
    """Create a venv at `path` without pip; return its python executable."""
    venv.create(path, with_pip=False, symlinks=os.name != "nt", clear=True)
    bindir = "Scripts" if os.name == "nt" else "bin"
    return path / bindir / ("python.exe" if os.name == "nt" else "python")


def run(
    cmd: Sequence[str], env: dict[str, str], *, cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run a client command, capturing text output (the caller asserts on returncode)."""
    return subprocess.run(
        list(cmd), env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )
