"""Real pip and uv install from ``python morgan/server.py`` (a child process on 127.0.0.1)."""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.index_tree import IndexTree, build_tree
from tests.server_process import SERVER_PY, ServerProcess, pip, server_process, uv

pytestmark = pytest.mark.slow

ENVS = {"linux": ["alpha", "beta"]}


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> IndexTree:
    return build_tree(tmp_path_factory.mktemp("clients") / "mirror", environments=ENVS)


@pytest.fixture(scope="module")
def mirror(tree: IndexTree) -> Iterator[ServerProcess]:
    command = [sys.executable, str(SERVER_PY), "--root", str(tree.root), "--port", "0"]
    with server_process(command, tree.root.parent / "server.log") as proc:
        yield proc


def installed(target: Path) -> list[str]:
    return sorted(p.name for p in target.glob("*.dist-info"))


def test_pip_install_resolves_from_the_mirror(mirror: ServerProcess, tmp_path: Path) -> None:
    target = tmp_path / "site"
    proc = pip(
        tmp_path, "install", "--index-url", f"{mirror.url}simple/", "--target", str(target), "alpha"
    )
    assert proc.returncode == 0, proc.stderr
    # 3.0 is yanked and 4.0 needs Python >= 4: pip must pick 2.0 and its dependency.
    assert installed(target) == ["alpha-2.0.dist-info", "beta-1.0.dist-info"]
    assert (target / "alpha" / "__init__.py").read_text() == '__version__ = "2.0"\n'
    log = mirror.log_text()
    assert '"GET /simple/alpha/ HTTP/1.1" 200' in log
    assert '"GET /simple/beta/ HTTP/1.1" 200' in log


def test_pip_download_for_another_platform(
    tree: IndexTree, mirror: ServerProcess, tmp_path: Path
) -> None:
    dest = tmp_path / "dl"
    proc = pip(
        tmp_path,
        "download",
        "--index-url",
        f"{mirror.url}simple/",
        "--only-binary=:all:",
        "--platform",
        "manylinux_2_17_x86_64",
        "--python-version",
        "3.9",
        "--implementation",
        "cp",
        "-d",
        str(dest),
        "gamma-lib",
    )
    assert proc.returncode == 0, proc.stderr
    files = sorted(p.name for p in dest.iterdir())
    assert files == ["gamma_lib-1.0-cp39-cp39-manylinux_2_17_x86_64.whl"]
    expected = next(d for d in tree.dists if d.filename == files[0])
    assert hashlib.sha256((dest / files[0]).read_bytes()).hexdigest() == expected.sha256


def test_pip_uses_an_environment_view(mirror: ServerProcess, tmp_path: Path) -> None:
    index = f"{mirror.url}env/linux/simple/"
    ok = pip(tmp_path, "install", "--index-url", index, "--target", str(tmp_path / "a"), "alpha")
    assert ok.returncode == 0, ok.stderr
    assert installed(tmp_path / "a") == ["alpha-2.0.dist-info", "beta-1.0.dist-info"]
    missing = pip(
        tmp_path, "download", "--index-url", index, "-d", str(tmp_path / "b"), "gamma-lib"
    )
    assert missing.returncode == 1
    assert "No matching distribution found for gamma-lib" in missing.stderr


def test_uv_pip_install(mirror: ServerProcess, tmp_path: Path) -> None:
    target = tmp_path / "site"
    proc = uv(
        tmp_path,
        "pip",
        "install",
        "--no-config",
        "--python",
        sys.executable,
        "--index-url",
        f"{mirror.url}simple/",
        "--target",
        str(target),
        "alpha",
    )
    assert proc.returncode == 0, proc.stderr
    assert installed(target) == ["alpha-2.0.dist-info", "beta-1.0.dist-info"]


@pytest.mark.parametrize(
    ("platform", "python"), [("windows", "3.12"), ("x86_64-manylinux_2_17", "3.9")]
)
def test_uv_pip_compile_for_a_target_platform(
    mirror: ServerProcess, tmp_path: Path, platform: str, python: str
) -> None:
    (tmp_path / "requirements.in").write_text("alpha\ngamma-lib\n")
    before = len(mirror.log_text())
    proc = uv(
        tmp_path,
        "pip",
        "compile",
        "--no-config",
        "--no-header",
        "--no-annotate",
        "--python-platform",
        platform,
        "--python-version",
        python,
        "--index-url",
        f"{mirror.url}simple/",
        "requirements.in",
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["alpha==2.0", "beta==1.0", "gamma-lib==1.0"]
    log = mirror.log_text()[before:]
    # uv resolves from PEP 658 metadata; it never needs the wheels themselves.
    assert '"GET /simple/alpha/alpha-2.0-py3-none-any.whl.metadata HTTP/1.1" 200' in log
    assert '"GET /simple/alpha/alpha-2.0-py3-none-any.whl HTTP/1.1"' not in log
