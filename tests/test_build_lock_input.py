"""Mirroring exactly what a pylock.toml or uv.lock pins, with no resolution of Morgan's own."""

from __future__ import annotations

import tomllib
from pathlib import Path

from tests import clients
from tests.build_scenario import morgan
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
    (ws / "requirements.in").write_text("top\nleaf==1.0\n")
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
