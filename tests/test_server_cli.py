"""``morgan serve`` and ``python server.py`` as a user runs them."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from morgan.cli import main
from tests.index_tree import build_tree
from tests.server_process import SERVER_PY, server_process


def fetch(url: str, accept: str = "text/html") -> tuple[int, str, bytes]:
    req = urllib.request.Request(url, headers={"Accept": accept})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.status, resp.headers["Content-Type"], resp.read()


def test_morgan_serve_serves_the_mirror(tmp_path: Path) -> None:
    tree = build_tree(tmp_path / "mirror")
    command = [sys.executable, "-m", "morgan", "serve", "--root", str(tree.root), "--port", "0"]
    with server_process(command, tmp_path / "serve.log") as proc:
        status, ctype, body = fetch(
            f"{proc.url}simple/alpha/", "application/vnd.pypi.simple.v1+json"
        )
        assert (status, ctype) == (200, "application/vnd.pypi.simple.v1+json")
        assert body == (tree.generation(1) / "simple" / "alpha" / "index.json").read_bytes()


def test_morgan_serve_passes_processes_to_the_server(tmp_path: Path) -> None:
    tree = build_tree(tmp_path / "mirror")
    command = [sys.executable, "-m", "morgan", "serve", "--root", str(tree.root), "--port", "0"]
    with server_process([*command, "--processes", "2"], tmp_path / "serve.log") as proc:
        # Many short connections: the kernel hands them to whichever process accepts.
        for _ in range(40):
            assert fetch(f"{proc.url}simple/alpha/")[0] == 200
    log = (tmp_path / "serve.log").read_text()
    assert "with 2 processes" in log
    assert log.count('"GET /simple/alpha/ HTTP/1.1" 200') == 40


def test_morgan_serve_rejects_processes_out_of_range(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tree = build_tree(tmp_path / "mirror")
    assert main(["serve", "--root", str(tree.root), "--processes", "0"]) == 2
    assert capsys.readouterr().err == ("morgan: error: --processes 0 is out of range: use 1..64\n")


def test_max_open_connections_out_of_range_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tree = build_tree(tmp_path / "mirror")
    assert main(["serve", "--root", str(tree.root), "--max-open-connections", "0"]) == 2
    assert capsys.readouterr().err == (
        "morgan: error: --max-open-connections 0 is out of range: use 1..65536\n"
    )
    proc = subprocess.run(
        [sys.executable, str(SERVER_PY), "--root", str(tree.root), "--max-open-connections", "0"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr == "server.py: error: --max-open-connections must be 1..65536\n"


def test_morgan_serve_finds_the_mirror_of_a_workspace(tmp_path: Path) -> None:
    build_tree(tmp_path / "ws" / "mirror")
    command = [sys.executable, "-m", "morgan", "serve", "-C", str(tmp_path / "ws"), "--port", "0"]
    with server_process(command, tmp_path / "serve.log") as proc:
        assert fetch(f"{proc.url}simple/")[0] == 200


def test_morgan_serve_inside_a_mirror_folder(tmp_path: Path) -> None:
    tree = build_tree(tmp_path / "mirror")
    command = [sys.executable, "-m", "morgan", "serve", "--port", "0"]
    with server_process(command, tmp_path / "serve.log", cwd=tree.root) as proc:
        assert fetch(f"{proc.url}simple/beta/")[0] == 200


def test_morgan_serve_without_a_mirror_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", "-C", str(tmp_path), "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"morgan: error: no mirror index at {tmp_path / 'mirror' / 'index'}: "
        "run 'morgan build' first or pass --root DIR\n"
    )


def test_morgan_serve_on_a_busy_port_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tree = build_tree(tmp_path / "mirror")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["serve", "--root", str(tree.root), "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"morgan: error: cannot listen on 127.0.0.1:{port}: ")
    assert err.endswith(" — pick another --port or --host\n")


def test_morgan_serve_rejects_a_bad_port(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tree = build_tree(tmp_path / "mirror")
    assert main(["serve", "--root", str(tree.root), "--port", "70000"]) == 2
    assert "--port 70000 is not a TCP port" in capsys.readouterr().err


def test_server_py_copied_into_a_mirror_serves_its_folder(tmp_path: Path) -> None:
    """As ``morgan build`` ships it: ``python server.py`` with no flags but the port."""
    tree = build_tree(tmp_path / "mirror")
    shutil.copy(SERVER_PY, tree.root / "server.py")
    command = [sys.executable, str(tree.root / "server.py"), "--port", "0"]
    with server_process(command, tmp_path / "server.log", cwd=tmp_path) as proc:
        status, ctype, _ = fetch(f"{proc.url}simple/")
        assert (status, ctype) == (200, "text/html; charset=utf-8")
        assert f"Serving {tree.root.resolve()} at {proc.url}" in proc.log_text()


def _python38() -> str | None:
    """A real Python 3.8 (pyenv's shim for an inactive version would only print an error)."""
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates = sorted(pyenv.glob("3.8*/bin/python3.8"))
    if candidates:
        return str(candidates[0])
    found = shutil.which("python3.8")
    return found if found and ".pyenv/shims" not in found else None


def test_server_py_runs_on_python_3_8(tmp_path: Path) -> None:
    python38 = _python38()
    if python38 is None:
        pytest.skip("no Python 3.8 interpreter here; vermin checks the minimum version in CI")
    tree = build_tree(tmp_path / "mirror")
    shutil.copy(SERVER_PY, tree.root / "server.py")
    command = [python38, str(tree.root / "server.py"), "--port", "0"]
    with server_process(command, tmp_path / "server.log", cwd=tmp_path) as proc:
        status, ctype, body = fetch(
            f"{proc.url}simple/alpha/", "application/vnd.pypi.simple.v1+json"
        )
        assert (status, ctype) == (200, "application/vnd.pypi.simple.v1+json")
        assert body == (tree.generation(1) / "simple" / "alpha" / "index.json").read_bytes()
