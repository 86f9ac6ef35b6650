"""Mirroring exactly what a pylock.toml or uv.lock pins, with no resolution of Morgan's own."""

from __future__ import annotations

import json
import sys
import tomllib
from pathlib import Path

import tomlkit

from tests import clients
from tests.build_scenario import morgan
from tests.server_process import server_process
from tests.upstream import FakeUpstream


def publish(up: FakeUpstream) -> None:
    up.add_release("top", "1.0", requires_dist=["leaf>=1"])
    up.add_release("leaf", "1.0")
    up.add_release("leaf", "2.0")  # newer, but the lock says 1.0


def spec(ws: Path, url: str, lock: str) -> None:
    (ws / "mirror.toml").write_text(
        f'locks = ["{lock}"]\n[upstream]\nindex-url = "{url}"\n'
        '[environments.linux]\npython = "3.11"\nplatform = "manylinux_2_28_x86_64"\n'
    )


def test_pylock_from_real_uv_is_mirrored_exactly(upstream: FakeUpstream, tmp_path: Path) -> None:
    publish(upstream)
    ws = tmp_path / "ws"
    ws.mkdir()
    _uv_pylock(upstream, ws, tmp_path, "top\nleaf==1.0\n")
    spec(ws, upstream.url, "pylock.toml")
    upstream.clear_requests()
    build = morgan(ws, "build")
    assert build.returncode == 0, build.stderr
    # No resolution of our own: not one page request, only the locked files.
    assert upstream.page_requests() == []
    assert sorted(upstream.file_requests()) == [
        "/files/leaf-1.0-py3-none-any.whl",
        "/files/leaf-1.0.tar.gz",
        "/files/top-1.0-py3-none-any.whl",
        "/files/top-1.0.tar.gz",
    ]
    lock = tomllib.loads((ws / "mirror.lock").read_text())
    assert {(p["name"], p["version"]) for p in lock["environment"]["linux"]["pins"]} == {
        ("leaf", "1.0"),
        ("top", "1.0"),
    }
    simple = ws / "mirror" / "index" / "simple"
    assert sorted(p.name for p in (simple / "leaf").iterdir()) == [
        "index.html",
        "index.json",
        "leaf-1.0-py3-none-any.whl",
        "leaf-1.0-py3-none-any.whl.metadata",
        "leaf-1.0.tar.gz",
    ]


def test_uv_lock_file_with_a_changed_upstream_file_is_refused(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    publish(upstream)
    ws = tmp_path / "ws"
    ws.mkdir()
    wheel = upstream.file_url("leaf-1.0-py3-none-any.whl")
    (ws / "uv.lock").write_text(
        "version = 1\n\n[[package]]\n"
        'name = "leaf"\nversion = "1.0"\nsource = { registry = "' + upstream.url + '" }\n'
        f'wheels = [{{ url = "{wheel}", hash = "sha256:{"0" * 64}", size = 1 }}]\n'
    )
    spec(ws, upstream.url, "uv.lock")
    proc = morgan(ws, "build")
    assert proc.returncode == 1
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith(f"morgan: error: GET {wheel}: expected size 1 bytes, got more")
    assert not (ws / "mirror" / "index").exists()


def _uv_pylock(
    upstream: FakeUpstream, ws: Path, tmp_path: Path, requirements: str = "top\n"
) -> None:
    """``uv pip compile`` of ``requirements`` into ``ws/pylock.toml`` (linux, Python 3.11)."""
    (ws / "requirements.in").write_text(requirements)
    proc = clients.run(
        clients.uv_pip_command(
            "compile",
            upstream.url,
            "--python-version",
            "3.11",
            "--python-platform",
            "x86_64-manylinux_2_28",
            "-o",
            str(ws / "pylock.toml"),
            str(ws / "requirements.in"),
        ),
        clients.pip_env(tmp_path),
        cwd=ws,
    )
    assert proc.returncode == 0, proc.stderr


def test_lock_driven_mirror_keeps_requires_python_and_graph_and_verify_follow_its_edges(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    upstream.add_release("top", "1.0", requires_dist=["leaf>=1"], requires_python=">=3.8")
    upstream.add_release("leaf", "1.0", requires_python=">=3.9")
    ws = tmp_path / "ws"
    ws.mkdir()
    _uv_pylock(upstream, ws, tmp_path)
    spec(ws, upstream.url, "pylock.toml")
    assert morgan(ws, "build").returncode == 0
    # Requires-Python on the served pages, as upstream has it (read from each file's metadata).
    page = json.loads((ws / "mirror/index/env/linux/simple/top/index.json").read_text())
    assert {f["filename"]: f.get("requires-python") for f in page["files"]} == {
        "top-1.0-py3-none-any.whl": ">=3.8",
        "top-1.0.tar.gz": ">=3.8",
    }
    html = (ws / "mirror/index/simple/leaf/index.html").read_text()
    assert 'data-requires-python="&gt;=3.9"' in html
    # graph --why follows the input lock's edges.
    why = morgan(ws, "graph", "--why", "leaf")
    assert why.returncode == 0, why.stderr
    assert "  <pylock.toml> --[top==1.0]--> top 1.0 --[leaf>=1]--> leaf 1.0" in why.stdout
    assert "no path" not in why.stdout
    ok = morgan(ws, "verify")
    assert ok.returncode == 0, ok.stderr
    assert "environment linux: installable" in ok.stderr
    # The input lock loses leaf: the mirror lacks it, and verify says so as uv does.
    doc = tomlkit.parse((ws / "pylock.toml").read_text())
    packages = doc["packages"]
    assert isinstance(packages, tomlkit.items.AoT)
    for i, pkg in enumerate(list(packages)):
        if pkg["name"] == "leaf":
            del packages[i]
    (ws / "pylock.toml").write_text(tomlkit.dumps(doc))
    assert morgan(ws, "build").returncode == 0
    bad = morgan(ws, "verify")
    assert bad.returncode == 1
    assert "environment linux: NOT installable" in bad.stderr
    assert "leaf" in bad.stderr
    upstream.stop()
    server = [sys.executable, str(ws / "mirror" / "server.py"), "--port", "0"]
    with server_process(server, tmp_path / "server.log") as mirror:
        uv = clients.run(
            clients.uv_pip_command(
                "compile",
                mirror.url + "env/linux/simple/",
                "--python-version",
                "3.11",
                "--python-platform",
                "x86_64-manylinux_2_28",
                str(ws / "requirements.in"),
            ),
            clients.pip_env(tmp_path),
            cwd=ws,
        )
    assert uv.returncode != 0
    assert "leaf" in uv.stderr
