"""The acceptance scenario of `morgan build`: an upstream graph and a 3+1 environment spec.

The graph exercises markers, extras (two at once), a per-environment version split
(`util` 2.0 needs Python ≥ 3.10), abi3 wheels, a manylinux_2_34-only latest release versus
an older manylinux2014 one, an sdist-only project built by a backend from the index, a
yanked release, a yanked release pinned with `==`, a prerelease that must not be chosen and
a project whose only release is a prerelease.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from morgan.cli import main
from morgan.environments import Environment
from tests.server_process import ServerProcess, server_process
from tests.upstream import FakeUpstream

ROOT = Path(__file__).resolve().parent.parent

REQUIREMENTS = [
    "app[fast,cli]",
    "native",
    "glibcy",
    "srconly",
    "yanky",
    "pinny==2.0",
    "pre",
    "onlypre",
]

ENVIRONMENTS = {
    "legacy-linux": ("3.9", "manylinux_2_17_x86_64"),
    "windows": ("3.12", "win_amd64"),
    "mac": ("3.13", "macosx_14_0_arm64"),
    # This machine: the environment that `pip install` into a real venv uses.
    "host": ("3.11", "manylinux_2_28_x86_64"),
}

# What each environment must get (name -> version).
EXPECTED = {
    "legacy-linux": {
        "app": "1.0",
        "util": "1.5",
        "oldpy": "1.0",
        "speedup": "1.0",
        "clicky": "1.0",
        "native": "1.0",
        "glibcy": "1.0",
        "srconly": "1.0",
        "yanky": "1.0",
        "pinny": "2.0",
        "pre": "1.0",
        "onlypre": "0.1a1",
    },
    "windows": {
        "app": "1.0",
        "util": "2.0",
        "winonly": "1.0",
        "speedup": "1.0",
        "clicky": "1.0",
        "native": "1.0",
        "glibcy": "2.0",
        "srconly": "1.0",
        "yanky": "1.0",
        "pinny": "2.0",
        "pre": "1.0",
        "onlypre": "0.1a1",
    },
}
EXPECTED["mac"] = {k: v for k, v in EXPECTED["windows"].items() if k != "winonly"}
EXPECTED["host"] = dict(EXPECTED["mac"])


def populate(up: FakeUpstream) -> None:
    """Publish the scenario's projects on ``up``."""
    up.add_backend()
    up.add_release(
        "app",
        "1.0",
        requires_dist=[
            "util>=1",
            "winonly; sys_platform == 'win32'",
            "oldpy; python_version < '3.10'",
            "speedup; extra == 'fast'",
            "clicky; extra == 'cli'",
            "never-needed; extra == 'docs'",
        ],
        provides_extra=["fast", "cli", "docs"],
    )
    up.add_release("util", "1.5")
    up.add_release("util", "2.0", requires_python=">=3.10")
    for name in ("winonly", "oldpy", "speedup", "clicky"):
        up.add_release(name, "1.0")
    up.add_release(
        "native",
        "1.0",
        wheels=[
            "cp38-abi3-manylinux_2_17_x86_64.manylinux2014_x86_64",
            "cp38-abi3-win_amd64",
            "cp38-abi3-macosx_11_0_arm64",
        ],
    )
    up.add_release("glibcy", "1.0", wheels=["py3-none-manylinux2014_x86_64"])
    up.add_release(
        "glibcy",
        "2.0",
        wheels=[
            "py3-none-manylinux_2_34_x86_64",
            "py3-none-manylinux_2_28_x86_64",
            "py3-none-win_amd64",
            "py3-none-macosx_11_0_arm64",
        ],
    )
    up.add_release("srconly", "1.0", wheels=[])
    up.add_release("yanky", "1.0")
    up.add_release("yanky", "1.1", yanked="broken")
    up.add_release("pinny", "1.0")
    up.add_release("pinny", "2.0", yanked=True)
    up.add_release("pre", "1.0")
    up.add_release("pre", "2.0b1")
    up.add_release("onlypre", "0.1a1")


def write_spec(workspace: Path, index_url: str, requirements: list[str] | None = None) -> Path:
    workspace.mkdir(parents=True, exist_ok=True)
    reqs = ",\n  ".join(f'"{r}"' for r in (requirements or REQUIREMENTS))
    text = f'requirements = [\n  {reqs},\n]\n\n[upstream]\nindex-url = "{index_url}"\n'
    for name, (python, platform) in ENVIRONMENTS.items():
        text += f'\n[environments.{name}]\npython = "{python}"\nplatform = "{platform}"\n'
    path = workspace / "mirror.toml"
    path.write_text(text, encoding="utf-8")
    return path


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run the CLI in this process: (exit code, stdout, stderr)."""
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def morgan(workspace: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the real CLI in a subprocess (as users do)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "morgan", *args, "-C", str(workspace)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=300,
    )


@dataclass(frozen=True)
class Target:
    """How real clients are told to act as an environment."""

    name: str
    python: str
    platforms: tuple[str, ...]  # pip needs every platform tag: it does not expand glibc
    abi: str
    uv_platform: str


def target(name: str) -> Target:
    python, platform = ENVIRONMENTS[name]
    env = Environment(name=name, python=python, platform=platform)
    platforms = tuple(dict.fromkeys(t.platform for t in env.tags() if t.platform != "any"))
    uv_platform = {
        "legacy-linux": "x86_64-manylinux_2_17",
        "windows": "x86_64-pc-windows-msvc",
        "mac": "aarch64-apple-darwin",
        "host": "x86_64-manylinux_2_28",
    }[name]
    return Target(name, python, platforms, "cp" + python.replace(".", ""), uv_platform)


@dataclass
class Built:
    """The scenario's mirror, built and served by its own ``server.py``."""

    upstream: FakeUpstream  # stopped already unless the upstream stays up
    workspace: Path
    mirror: Path
    server: ServerProcess
    first_output: str  # the build's stderr


@contextmanager
def built_and_served(root: Path, *, upstream_stays_up: bool) -> Iterator[Built]:
    """Build the scenario under ``root`` and serve the mirror; without
    ``upstream_stays_up`` the fake upstream is stopped first, so clients can only have
    reached the mirror."""
    with ExitStack() as stack:
        up = stack.enter_context(FakeUpstream(root / "upstream").start())
        populate(up)
        workspace = root / "ws"
        write_spec(workspace, up.url)
        proc = morgan(workspace, "build")
        assert proc.returncode == 0, proc.stderr
        if not upstream_stays_up:
            stack.close()
        mirror = workspace / "mirror"
        cmd = [sys.executable, str(mirror / "server.py"), "--port", "0"]
        with server_process(cmd, root / "server.log") as server:
            yield Built(up, workspace, mirror, server, proc.stderr)
