"""Python 2.7 targets end to end: resolution picks the last 2.7 releases, real pips download.

The fake upstream carries what PyPI carries for a 2.7 fleet: projects whose newest releases
need Python 3 (Requires-Python on the page and in the metadata, or only a ``py3`` wheel),
``py2.py3`` universal wheels, and a binary project with ``cp27mu``/``cp27m`` wheels. Clients:
the newest pip told to act as a 2.7 Linux host (``--python-version 2.7.18 --platform
manylinux1_x86_64 --abi cp27mu``), and the real pip 19.2.3 that Python 2.7.18 ships, run by
that interpreter against the environment's view.
"""

from __future__ import annotations

import sys
import tomllib
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import clients
from tests.build_scenario import morgan
from tests.pythons import require_python
from tests.server_process import ServerProcess, server_process
from tests.upstream import FakeUpstream

PY2 = ">=2.7, !=3.0.*, !=3.1.*, !=3.2.*, !=3.3.*, !=3.4.*"
SPEC = """requirements = ["requests", "native", "py3late", "tagged"]

[upstream]
index-url = "{url}"

[environments.py27]
python = "2.7.18"
platform = "manylinux1_x86_64"

[environments.win27]
python = "2.7.18"
platform = "win_amd64"

[environments.py311]
python = "3.11"
platform = "manylinux_2_17_x86_64"
"""

EXPECTED = {
    "py27": {
        "requests": "2.27.1",
        "urllib3": "1.26.18",
        "six": "1.16.0",
        "native": "1.0",
        "py3late": "1.0",
        "tagged": "1.0",
        "linux2dep": "1.0",
    },
    "win27": {
        "requests": "2.27.1",
        "urllib3": "1.26.18",
        "six": "1.16.0",
        "native": "1.0",
        "py3late": "1.0",
        "tagged": "1.0",
    },
    "py311": {
        "requests": "2.31.0",
        "urllib3": "2.0.7",
        "native": "1.0",
        "py3late": "2.0",
        "tagged": "1.0",
    },
}


def _populate(up: FakeUpstream) -> None:
    up.add_release("six", "1.16.0", wheels=["py2.py3-none-any"], requires_python=PY2)
    up.add_release("urllib3", "1.26.18", wheels=["py2.py3-none-any"], requires_python=PY2)
    up.add_release("urllib3", "2.0.7", wheels=["py3-none-any"], requires_python=">=3.7")
    up.add_release(
        "requests",
        "2.27.1",
        wheels=["py2.py3-none-any"],
        requires_python=PY2,
        requires_dist=["urllib3<1.27,>=1.21.1", "six; python_version < '3'"],
    )
    up.add_release(
        "requests",
        "2.31.0",
        wheels=["py3-none-any"],
        requires_python=">=3.7",
        requires_dist=["urllib3<3,>=1.21.1"],
    )
    up.add_release(
        "native",
        "1.0",
        sdist=False,
        wheels=[
            "cp27-cp27mu-manylinux1_x86_64",
            "cp27-cp27m-manylinux1_x86_64",
            "cp27-cp27m-win_amd64",
            "cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64",
        ],
    )
    # No Requires-Python anywhere: only the wheel's tag says that 2.0 is Python 3 only.
    up.add_release("py3late", "1.0", sdist=False, wheels=["py2.py3-none-any"])
    up.add_release("py3late", "2.0", sdist=False, wheels=["py3-none-any"])
    # Python 2's Linux sys_platform is "linux2".
    up.add_release(
        "tagged",
        "1.0",
        sdist=False,
        wheels=["py2.py3-none-any"],
        requires_dist=["linux2dep; sys_platform == 'linux2'"],
    )
    up.add_release("linux2dep", "1.0", wheels=["py2-none-any"])


@dataclass
class Mirror:
    workspace: Path
    server: ServerProcess


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mirror]:
    root = tmp_path_factory.mktemp("py2")
    with ExitStack() as stack:
        up = stack.enter_context(FakeUpstream(root / "upstream").start())
        _populate(up)
        workspace = root / "ws"
        workspace.mkdir()
        (workspace / "mirror.toml").write_text(SPEC.format(url=up.url), encoding="utf-8")
        proc = morgan(workspace, "build")
        assert proc.returncode == 0, proc.stderr
        stack.close()  # clients below can only reach the mirror
        cmd = [sys.executable, str(workspace / "mirror" / "server.py"), "--port", "0"]
        with server_process(cmd, root / "server.log") as server:
            yield Mirror(workspace, server)


@pytest.mark.parametrize("env", sorted(EXPECTED))
def test_python27_resolution_picks_the_last_compatible_releases(mirror: Mirror, env: str) -> None:
    data = tomllib.loads((mirror.workspace / "mirror.lock").read_text())
    pins = {p["name"]: p["version"] for p in data["environment"][env]["pins"]}
    assert pins == EXPECTED[env]


def test_python27_views_carry_only_the_fitting_binary_wheel(mirror: Mirror) -> None:
    index = mirror.workspace / "mirror" / "index"
    linux = sorted(p.name for p in (index / "env/py27/simple/native").glob("*.whl"))
    assert linux == ["native-1.0-cp27-cp27mu-manylinux1_x86_64.whl"]
    win = sorted(p.name for p in (index / "env/win27/simple/native").glob("*.whl"))
    assert win == ["native-1.0-cp27-cp27m-win_amd64.whl"]


def _downloaded(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


PY27_FILES = {
    "requests-2.27.1-py2.py3-none-any.whl",
    "urllib3-1.26.18-py2.py3-none-any.whl",
    "six-1.16.0-py2.py3-none-any.whl",
    "native-1.0-cp27-cp27mu-manylinux1_x86_64.whl",
    "py3late-1.0-py2.py3-none-any.whl",
    "tagged-1.0-py2.py3-none-any.whl",
    "linux2dep-1.0-py2-none-any.whl",
}


@pytest.mark.parametrize("index", ["simple/", "env/py27/simple/"])
def test_newest_pip_downloads_for_python27_from_the_mirror(
    mirror: Mirror, tmp_path: Path, index: str
) -> None:
    cmd = clients.pip_command(
        "download",
        mirror.server.url + index,
        "--python-version",
        "2.7.18",
        "--platform",
        "manylinux1_x86_64",
        "--abi",
        "cp27mu",
        "--implementation",
        "cp",
        "--only-binary=:all:",
        "-d",
        str(tmp_path / "dl"),
        "requests",
        "native",
        "py3late",
        "tagged",
    )
    proc = clients.run(cmd, clients.pip_env(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    got = _downloaded(tmp_path / "dl")
    # pip evaluates markers on the host it runs on (Python 3, sys_platform "linux"), not
    # for the --python-version target: it skips `six; python_version < '3'` and linux2dep.
    # Python 2.7's own pip (below) gets them, and the mirror carries them.
    host_only = {"six-1.16.0-py2.py3-none-any.whl", "linux2dep-1.0-py2-none-any.whl"}
    assert got == PY27_FILES - host_only


def test_python27_own_pip_downloads_from_the_view(mirror: Mirror, tmp_path: Path) -> None:
    python27 = require_python("2.7")
    cmd = [
        str(python27),
        "-m",
        "pip",
        "--isolated",
        "--no-cache-dir",
        "download",
        "--index-url",
        mirror.server.url + "env/py27/simple/",
        "--only-binary=:all:",
        "-d",
        str(tmp_path / "dl"),
        "requests",
        "native",
        "py3late",
        "tagged",
    ]
    proc = clients.run(cmd, clients.pip_env(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert _downloaded(tmp_path / "dl") == PY27_FILES
