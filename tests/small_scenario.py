"""A small mirror for graph / gc / verify tests: two environments, one build dependency.

- ``app`` needs ``util`` everywhere and ``winonly`` on Windows only (a marker);
- ``native`` has one wheel per platform and no sdist (removing a wheel breaks one env);
- ``srconly`` has only an sdist, built by ``morgan-test-backend`` from the index;
- ``dropme`` and ``other`` are plain projects the gc tests remove from the spec.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.upstream import FakeUpstream

ENVIRONMENTS = {
    "linux": ("3.11", "manylinux_2_28_x86_64"),
    "windows": ("3.12", "win_amd64"),
}
REQUIREMENTS = ["app", "native", "srconly", "dropme", "other"]


def populate(up: FakeUpstream) -> None:
    up.add_backend()
    up.add_release("app", "1.0", requires_dist=["util>=1", "winonly; sys_platform == 'win32'"])
    up.add_release("util", "1.5")
    up.add_release("winonly", "1.0")
    up.add_release(
        "native",
        "1.0",
        wheels=["py3-none-manylinux_2_17_x86_64", "py3-none-win_amd64"],
        sdist=False,
    )
    up.add_release("srconly", "1.0", wheels=[])
    up.add_release("dropme", "1.0")
    up.add_release("other", "1.0")


def write_spec(workspace: Path, index_url: str, requirements: list[str] | None = None) -> Path:
    workspace.mkdir(parents=True, exist_ok=True)
    reqs = ", ".join(f'"{r}"' for r in (REQUIREMENTS if requirements is None else requirements))
    text = f'requirements = [{reqs}]\n\n[upstream]\nindex-url = "{index_url}"\n'
    for name, (python, platform) in ENVIRONMENTS.items():
        text += f'\n[environments.{name}]\npython = "{python}"\nplatform = "{platform}"\n'
    path = workspace / "mirror.toml"
    path.write_text(text, encoding="utf-8")
    return path


def copy_mirror(mirror: Path, dest: Path) -> Path:
    """A copy of a mirror folder alone (relative links stay valid), writable for damage."""
    shutil.copytree(mirror, dest, symlinks=True)
    return dest
