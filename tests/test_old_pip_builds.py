"""The pips Python 3.6, 3.7 and 3.9 ship build sdists from a mirror made for those targets.

Python 3.6.15 ships pip 18.1, 3.7.16 pip 22.0.4 and 3.9 pip 23.0.1; each test makes a fresh
``python -m venv`` (pip never upgraded) and installs from the mirror alone, with no
``patchelf``/``ninja``/``cmake`` on PATH (``clients.build_env``). The fake upstream serves the
newest backends (repacked from the test venv: they need Python ≥ 3.8–3.10) next to the old
releases a 3.6/3.7/3.9 host needs (tests/old_wheels.py: the setuptools each interpreter
bundles, wheel 0.37.1, flit-core 3.12.0), so Morgan must pick the old ones for these targets
(3.9 gets the same setuptools and wheel — the newest wheel needs a packaging that needs 3.10
— and the newest flit-core, which runs on 3.8+). Projects:

- ``legacy-proj``: ``setup.py`` only. These pips run it in the client's own environment (the
  venv's setuptools): nothing comes from the mirror unless ``--use-pep517`` is given; then
  pip 22 and 23.0 install their fallback ``setuptools>=40.8.0`` and ``wheel`` from it.
- ``setup-proj``: ``pyproject.toml`` with ``requires = ["setuptools>=40.8.0"]`` and the
  ``setuptools.build_meta`` backend, plus ``setup.py``. pip 18.1 only installs the
  requirements into an isolated environment (PEP 518) and runs ``setup.py`` there; pip 22
  and 23.0 ask the backend, and setuptools < 70.1 asks for ``wheel`` (the modelled dynamic
  requirement, morgan/backends.py).
- ``flit-proj``: flit-core, no ``setup.py``: pip 22 and 23.0 build it (PEP 517); pip 18.1
  cannot build any project without ``setup.py`` (it has no PEP 517 build), from any index.

pip 18.1 reads the HTML Simple API only, and is pointed at the union index, where the newest
setuptools/wheel/flit-core are listed too: only ``data-requires-python`` keeps it off them.
"""

from __future__ import annotations

import re
import sys
import tomllib
import zipfile
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import pytest

from tests import clients, installed_wheels, old_wheels
from tests.backend_projects import PROJECTS, write_sdist
from tests.build_scenario import morgan
from tests.pythons import require_python, shipped_pip_venv
from tests.server_process import ServerProcess, server_process
from tests.upstream import FakeUpstream

SETUP_PROJ = {
    "pyproject.toml": (
        '[build-system]\nrequires = ["setuptools>=40.8.0"]\n'
        'build-backend = "setuptools.build_meta"\n'
    ),
    "setup.py": (
        "from setuptools import setup\n\n"
        "setup(name='setup-proj', version='1.0', packages=['setup_proj'])\n"
    ),
}
SDISTS = {
    "legacy-proj": PROJECTS["legacy-proj"],
    "setup-proj": SETUP_PROJ,
    "flit-proj": PROJECTS["flit-proj"],
}
# The newest releases, with what they need (wheel needs packaging), from the test venv.
NEWEST = installed_wheels.closure(["setuptools", "wheel", "flit-core"])
SPEC = """requirements = ["legacy-proj", "setup-proj", "flit-proj"]

[upstream]
index-url = "{url}"

[environments.py36]
python = "3.6"
platform = "manylinux_2_17_x86_64"

[environments.py37]
python = "3.7"
platform = "manylinux_2_17_x86_64"

[environments.py39]
python = "3.9"
platform = "manylinux_2_17_x86_64"

[environments.py311]
python = "3.11"
platform = "manylinux_2_17_x86_64"
"""


@dataclass
class Mirror:
    workspace: Path
    server: ServerProcess

    @property
    def union(self) -> str:
        return f"{self.server.url}simple/"

    def view(self, env: str) -> str:
        return f"{self.server.url}env/{env}/simple/"

    def log_size(self) -> int:
        return len(self.server.log_text())

    def wheels_served(self, since: int) -> list[str]:
        """The wheel files the mirror served (200) since ``since`` (a log size)."""
        log = self.server.log_text()[since:]
        return sorted(set(re.findall(r'"GET /\S*/([^/\s]+\.whl) HTTP/[\d.]+" 200', log)))


def _requires_python(wheel: Path) -> str | None:
    """The wheel's ``Requires-Python`` (for the upstream page, as PyPI lists it)."""
    with zipfile.ZipFile(wheel) as zf:
        # the wheel's own METADATA, not one of a vendored project (setuptools/_vendor/...)
        name = next(
            n for n in zf.namelist() if n.count("/") == 1 and n.endswith(".dist-info/METADATA")
        )
        for line in zf.read(name).decode("utf-8").splitlines():
            if line.startswith("Requires-Python:"):
                return line.split(":", 1)[1].strip()
            if not line:
                return None
    return None


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mirror]:
    python36, python37 = require_python("3.6"), require_python("3.7")
    require_python("3.9")  # its pip is a client below
    old = old_wheels.pinned()
    root = tmp_path_factory.mktemp("oldpip")
    with ExitStack() as stack:
        up = stack.enter_context(FakeUpstream(root / "upstream").start())
        newest = [installed_wheels.repack(n, root / "wheels") for n in NEWEST]
        bundled = [old_wheels.bundled(p, "setuptools") for p in (python36, python37)]
        for wheel in [*newest, *bundled, *old]:
            up.add_dist(wheel, requires_python=_requires_python(wheel))
        for name, files in SDISTS.items():
            up.add_dist(write_sdist(root / "sdists", name, files))
        workspace = root / "ws"
        workspace.mkdir()
        (workspace / "mirror.toml").write_text(SPEC.format(url=up.url), encoding="utf-8")
        proc = morgan(workspace, "build")
        assert proc.returncode == 0, proc.stderr
        stack.close()  # from here on, only the mirror answers
        cmd = [sys.executable, str(workspace / "mirror" / "server.py"), "--port", "0"]
        with server_process(cmd, root / "server.log") as server:
            yield Mirror(workspace, server)


def _pip(python: str, subcommand: str, index_url: str, *args: str) -> list[str]:
    base = [python, "-m", "pip", "--isolated", "--no-cache-dir", subcommand]
    return [*base, "--index-url", index_url, *args]


def _built(folder: Path) -> list[str]:
    return sorted("-".join(p.name.split("-")[:2]) for p in folder.glob("*.whl"))


def test_python36_pip_18_1_installs_and_builds_from_the_mirror(
    mirror: Mirror, tmp_path: Path
) -> None:
    env = clients.build_env(tmp_path)
    python = str(shipped_pip_venv("3.6", tmp_path / "venv", "18.1 "))
    # setup-proj's isolated build environment gets setuptools 47.1.0 (the venv's 40.6.2 is
    # too old for its >=40.8.0) from the union index, past the newest setuptools listed there.
    proc = clients.run(_pip(python, "install", mirror.union, "legacy-proj", "setup-proj"), env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    imported = clients.run([python, "-c", "import legacy_proj, setup_proj"], env)
    assert imported.returncode == 0, imported.stderr
    # `pip wheel` needs wheel in the client's environment: the mirror has one for Python 3.6.
    proc = clients.run(_pip(python, "install", mirror.union, "wheel"), env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Successfully installed wheel-0.37.1" in proc.stdout
    out = tmp_path / "out"
    cmd = _pip(python, "wheel", mirror.union, "--no-deps", "-w", str(out))
    proc = clients.run([*cmd, "legacy-proj", "setup-proj"], env, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert _built(out) == ["legacy_proj-1.0", "setup_proj-1.0"]
    # pip 18.1 runs setup.py even for a project with a build backend: it cannot build one
    # without setup.py (flit-core's), whatever the index. docs/resolution.md says so.
    proc = clients.run(_pip(python, "install", mirror.union, "flit-proj"), env)
    assert proc.returncode != 0
    assert "flit-proj/setup.py'" in proc.stdout + proc.stderr


def test_python37_pip_22_0_builds_every_project_from_the_mirror(
    mirror: Mirror, tmp_path: Path
) -> None:
    """pip 22.0.4 builds setup-proj and flit-proj in isolation (PEP 517): the environments
    get flit-core 3.12.0, setuptools 47.1.0 and, because that setuptools' backend asks for it,
    wheel 0.37.1. legacy-proj is run with ``setup.py install`` in the venv (no wheel there),
    and with ``--use-pep517`` built in isolation with pip's fallback requirements."""
    env = clients.build_env(tmp_path)
    python = str(shipped_pip_venv("3.7", tmp_path / "venv", "22.0.4 "))
    view = mirror.view("py37")
    proc = clients.run(_pip(python, "install", view, *SDISTS), env, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    imported = clients.run([python, "-c", "import legacy_proj, setup_proj, flit_proj"], env)
    assert imported.returncode == 0, imported.stderr
    out = tmp_path / "out"
    cmd = _pip(python, "wheel", view, "--no-deps", "--use-pep517", "-w", str(out))
    proc = clients.run([*cmd, "legacy-proj"], env, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert _built(out) == ["legacy_proj-1.0"]


def test_python39_pip_23_0_builds_from_the_mirror(mirror: Mirror, tmp_path: Path) -> None:
    """pip 23.0.1 installs all three (legacy-proj with ``setup.py install`` in the venv, the
    others built in isolation), and builds each wheel in isolation: legacy-proj with
    ``--use-pep517`` (its fallback ``setuptools>=40.8.0`` and ``wheel``, which pip < 24 adds
    and only the mirror has), setup-proj with setuptools 47.1.0's backend (which asks for
    ``wheel``), flit-proj with the newest flit-core."""
    env = clients.build_env(tmp_path)
    python = str(shipped_pip_venv("3.9", tmp_path / "venv", "23.0.1 "))
    view = mirror.view("py39")
    proc = clients.run(_pip(python, "install", view, *SDISTS), env, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    imported = clients.run([python, "-c", "import legacy_proj, setup_proj, flit_proj"], env)
    assert imported.returncode == 0, imported.stderr
    before = mirror.log_size()
    out = tmp_path / "out"
    cmd = _pip(python, "wheel", view, "--no-deps", "--use-pep517", "-w", str(out))
    proc = clients.run([*cmd, *SDISTS], env, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert _built(out) == ["flit_proj-1.0", "legacy_proj-1.0", "setup_proj-1.0"]
    assert mirror.wheels_served(before) == [
        f"flit_core-{version('flit-core')}-py3-none-any.whl",
        "setuptools-47.1.0-py3-none-any.whl",
        "wheel-0.37.1-py2.py3-none-any.whl",
    ]


def test_each_target_python_gets_the_build_tools_that_run_on_it(mirror: Mirror) -> None:
    data = tomllib.loads((mirror.workspace / "mirror.lock").read_text())

    def build_pins(env: str) -> dict[str, str]:
        pins = data["environment"][env]["pins"]
        return {p["name"]: p["version"] for p in pins if p["role"] == "build"}

    def build_children(env: str, sdist: str) -> set[str]:
        edges = data["environment"][env]["edges"]
        return {e["child"] for e in edges if e["parent"] == sdist and e["kind"] == "build-system"}

    # setuptools < 70.1's backend asks for wheel; the setuptools a 3.11 host gets does not.
    assert build_children("py36", "setup-proj 1.0") == {"setuptools", "wheel"}
    assert build_children("py37", "setup-proj 1.0") == {"setuptools", "wheel"}
    assert build_children("py311", "setup-proj 1.0") == {"setuptools"}
    old = {"flit-core": "3.12.0", "setuptools": "47.1.0", "wheel": "0.37.1"}
    assert build_pins("py36") == old
    assert build_pins("py37") == old
    assert build_pins("py39") == old | {"flit-core": version("flit-core")}
    assert build_children("py39", "legacy-proj 1.0") == {"setuptools", "wheel"}
    assert build_children("py39", "setup-proj 1.0") == {"setuptools", "wheel"}
    newest = {name: version(name) for name in NEWEST}
    assert build_pins("py311") == newest
