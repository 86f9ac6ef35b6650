"""The package users install: the sdist and the wheel built from it hold the whole program.

Built offline from a clean copy of the checkout with the setuptools of the test venv, the way
uv and ``python -m build`` do (sdist first, then the wheel from the unpacked sdist). A module
left out of the package list once broke every non-editable install while every other test,
run from the checkout, passed; these tests compare the built files with the source tree, so
the next new subpackage or data file cannot be forgotten. ``.ci/run`` also installs both
into fresh venvs and runs them (tests/installed_smoke.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from morgan import __version__
from tests.build_scenario import ROOT

PACKAGES = ("morgan", "rules", "store")
# Top-level entries of the checkout that never go into a package or its build.
_NOT_COPIED = {".git", ".venv", "build", "dist", "mirror", "mirror.lock", ".mypy_cache"}
_NOT_COPIED |= {".ruff_cache", ".pytest_cache"}


def _source_files() -> set[str]:
    """Every file a package must ship: its modules, ``py.typed`` and ``server.py``."""
    files = set()
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*"):
            if "__pycache__" in path.parts or not path.is_file():
                continue
            if path.suffix == ".py" or path.name == "py.typed":
                files.add(path.relative_to(ROOT).as_posix())
    return files


def _clean_copy(dest: Path) -> Path:
    def ignore(folder: str, names: list[str]) -> set[str]:
        dropped = {n for n in names if n == "__pycache__" or n.endswith(".egg-info")}
        if Path(folder) == ROOT:
            dropped |= {n for n in names if n in _NOT_COPIED}
        return dropped

    shutil.copytree(ROOT, dest, ignore=ignore)
    return dest


def _hook(source: Path, hook: str, out: Path) -> Path:
    """Call a PEP 517 hook of the project's backend in ``source``; the built file's path."""
    code = f"from setuptools import build_meta; print(build_meta.{hook}({str(out)!r}))"
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=source,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return out / done.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(sdist, wheel): the sdist from a clean copy, the wheel from the unpacked sdist."""
    tmp = tmp_path_factory.mktemp("packaging")
    out = tmp / "dist"
    out.mkdir()
    sdist = _hook(_clean_copy(tmp / "checkout"), "build_sdist", out)
    with tarfile.open(sdist) as archive:
        archive.extractall(tmp / "unpacked", filter="data")
    (top,) = (tmp / "unpacked").iterdir()
    wheel = _hook(top, "build_wheel", out)
    return sdist, wheel


def test_the_wheel_holds_every_module_and_data_file_and_nothing_else(
    built: tuple[Path, Path],
) -> None:
    _, wheel = built
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        scripts = archive.read(entry_points).decode()
    in_packages = {n for n in names if n.split("/")[0] in PACKAGES}
    assert in_packages == _source_files()
    assert "morgan/server.py" in in_packages
    assert {"morgan/py.typed", "rules/py.typed", "store/py.typed"} <= in_packages
    others = {n.split("/")[0] for n in names - in_packages}
    assert others == {f"morgan_mirror-{__version__}.dist-info"}
    assert f"morgan_mirror-{__version__}.dist-info/licenses/LICENSE" in names
    assert "morgan = morgan.cli:entry" in scripts


def test_the_sdist_holds_the_packages_and_license_but_no_tests_bench_or_docs(
    built: tuple[Path, Path],
) -> None:
    sdist, _ = built
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    assert _source_files() <= names
    assert {"LICENSE", "README.md", "pyproject.toml"} <= names
    tops = {name.split("/")[0] for name in names}
    assert not tops & {"tests", "bench", "docs", ".ci"}, sorted(tops)


def test_the_installed_wheel_imports_every_module_and_runs_outside_the_checkout(
    built: tuple[Path, Path], tmp_path: Path
) -> None:
    _, wheel = built
    target = tmp_path / "site"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env |= {"PIP_CONFIG_FILE": os.devnull}
    install = [sys.executable, "-m", "pip", "install", "--isolated", "--no-index", "--no-deps"]
    install += ["--disable-pip-version-check", "--target", str(target), str(wheel)]
    done = subprocess.run(install, capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0, done.stdout + done.stderr

    # Run from an empty folder with only the installed copy first on the path: every module
    # must import from there (a module missing from the wheel fails here, not at a user's).
    code = (
        "import importlib, pathlib, pkgutil, sys\n"
        f"target = pathlib.Path({str(target)!r})\n"
        f"for top in {PACKAGES!r}:\n"
        "    package = importlib.import_module(top)\n"
        "    assert pathlib.Path(package.__file__).is_relative_to(target), package.__file__\n"
        "    for info in pkgutil.walk_packages(package.__path__, top + '.'):\n"
        "        if info.name != 'morgan.__main__':\n"
        "            module = importlib.import_module(info.name)\n"
        "            assert pathlib.Path(module.__file__).is_relative_to(target), info.name\n"
        "            print(info.name)\n"
    )
    run_env = {**env, "PYTHONPATH": str(target), "PYTHONNOUSERSITE": "1"}
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        env=run_env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    imported = set(done.stdout.split())
    expected = {
        path[: -len(".py")].replace("/", ".").removesuffix(".__init__")
        for path in _source_files()
        if path.endswith(".py") and path != "morgan/__main__.py"
    } - set(PACKAGES)
    assert imported == expected

    for argv in (["-m", "morgan", "--version"], [str(target / "bin" / "morgan"), "-V"]):
        command = [sys.executable, *argv] if argv[0] == "-m" else argv
        done = subprocess.run(
            command, cwd=cwd, env=run_env, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert done.stdout.strip() == f"morgan {__version__}"


def test_the_readme_install_note_names_the_wheel_that_is_built(built: tuple[Path, Path]) -> None:
    _, wheel = built
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("Install from a wheel", 1)[1].split("```sh\n", 1)[1].split("```")[0]
    assert f"pip install {wheel.name} " in block
    assert "morgan --version" in block
