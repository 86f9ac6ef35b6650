"""Spec policies that change what is mirrored: private packages, versions per requirement,
sdists."""

from __future__ import annotations

import sys
from pathlib import Path

from tests import clients, dists
from tests.build_scenario import morgan
from tests.server_process import server_process
from tests.upstream import FakeUpstream


def spec(ws: Path, url: str, body: str) -> None:
    ws.mkdir(parents=True, exist_ok=True)
    (ws / "mirror.toml").write_text(
        f'{body}\n[upstream]\nindex-url = "{url}"\n\n'
        '[environments.linux]\npython = "3.11"\nplatform = "manylinux_2_28_x86_64"\n'
    )


def listed(ws: Path, project: str) -> list[str]:
    folder = ws / "mirror" / "index" / "env" / "linux" / "simple" / project
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("index."))


def test_private_package_shadows_upstream_name(upstream: FakeUpstream, tmp_path: Path) -> None:
    upstream.add_release("internal", "9.9")  # a squatter on the public index
    upstream.add_release("leaf", "1.0")
    local = tmp_path / "ws" / "wheels"
    local.mkdir(parents=True)
    dists.build_wheel(local, "internal", "1.2", requires_dist=["leaf"])
    spec(tmp_path / "ws", upstream.url, 'requirements = ["internal"]\nprivate = ["wheels"]')
    proc = morgan(tmp_path / "ws", "build")
    assert proc.returncode == 0, proc.stderr
    assert listed(tmp_path / "ws", "internal") == [
        "internal-1.2-py3-none-any.whl",
        "internal-1.2-py3-none-any.whl.metadata",
    ]
    assert listed(tmp_path / "ws", "leaf") == [
        "leaf-1.0-py3-none-any.whl",
        "leaf-1.0-py3-none-any.whl.metadata",
        "leaf-1.0.tar.gz",
    ]
    assert "/simple/internal/" not in upstream.page_requests()
    assert not any("internal" in r for r in upstream.file_requests())


def test_versions_latest_n_mirrors_installable_older_releases(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    upstream.add_release("lib", "1.0", sdist=False)
    upstream.add_release("lib", "2.0", sdist=False, requires_dist=["helper<2"])
    upstream.add_release("lib", "3.0", sdist=False, requires_dist=["helper>=2"])
    upstream.add_release("helper", "1.0", sdist=False)
    upstream.add_release("helper", "2.0", sdist=False)
    ws = tmp_path / "ws"
    spec(ws, upstream.url, 'requirements = ["lib"]\n[policy]\nversions = 2')
    proc = morgan(ws, "build")
    assert proc.returncode == 0, proc.stderr
    assert [n for n in listed(ws, "lib") if n.endswith(".whl")] == [
        "lib-2.0-py3-none-any.whl",
        "lib-3.0-py3-none-any.whl",
    ]
    # lib 2.0 needs helper<2: it is mirrored too, so lib==2.0 installs from the mirror.
    assert [n for n in listed(ws, "helper") if n.endswith(".whl")] == [
        "helper-1.0-py3-none-any.whl",
        "helper-2.0-py3-none-any.whl",
    ]


def test_versions_all(upstream: FakeUpstream, tmp_path: Path) -> None:
    for v in ("1.0", "2.0", "3.0"):
        upstream.add_release("lib", v, sdist=False)
    ws = tmp_path / "ws"
    spec(ws, upstream.url, 'requirements = ["lib>=2"]\n[policy]\nversions = "all"')
    assert morgan(ws, "build").returncode == 0
    assert [n for n in listed(ws, "lib") if n.endswith(".whl")] == [
        "lib-2.0-py3-none-any.whl",
        "lib-3.0-py3-none-any.whl",
    ]


def test_sdists_false_keeps_sdists_only_where_a_target_must_build(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    upstream.add_backend()
    upstream.add_release("lib", "1.0", requires_dist=["srconly"])  # wheel and sdist upstream
    upstream.add_release("srconly", "1.0", wheels=[])  # no wheel: the target must build it
    ws = tmp_path / "ws"
    spec(ws, upstream.url, 'requirements = ["lib"]\n[policy]\nsdists = false')
    proc = morgan(ws, "build")
    assert proc.returncode == 0, proc.stderr
    assert listed(ws, "lib") == ["lib-1.0-py3-none-any.whl", "lib-1.0-py3-none-any.whl.metadata"]
    assert listed(ws, "srconly") == ["srconly-1.0.tar.gz"]
    # The backend that builds srconly is mirrored as its wheel only.
    assert listed(ws, "morgan-test-backend") == [
        "morgan_test_backend-1.0-py3-none-any.whl",
        "morgan_test_backend-1.0-py3-none-any.whl.metadata",
    ]
    union = ws / "mirror" / "index" / "simple" / "lib"
    assert not (union / "lib-1.0.tar.gz").exists()
    lock = (ws / "mirror.lock").read_text()
    assert "lib-1.0.tar.gz" not in lock
    assert morgan(ws, "verify").returncode == 0
    # Real pip installs lib from the view alone, building srconly with build isolation.
    upstream.stop()
    server = [sys.executable, str(ws / "mirror" / "server.py"), "--port", "0"]
    with server_process(server, tmp_path / "server.log") as mirror:
        venv = clients.make_venv(tmp_path / "venv")
        cmd = clients.pip_command("install", mirror.url + "env/linux/simple/", "lib", python=venv)
        done = clients.run(cmd, clients.pip_env(tmp_path))
        assert done.returncode == 0, done.stdout + done.stderr
        assert "Successfully installed lib-1.0 srconly-1.0" in done.stdout


def test_sdists_false_views_and_export_lock_follow_each_environment(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    upstream.add_backend()
    upstream.add_release("native", "1.0", wheels=["cp311-cp311-manylinux_2_17_x86_64"])
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "mirror.toml").write_text(
        f'requirements = ["native"]\n[policy]\nsdists = false\n[upstream]\nindex-url = '
        f'"{upstream.url}"\n[environments.linux]\npython = "3.11"\n'
        'platform = "manylinux_2_28_x86_64"\n[environments.windows]\npython = "3.11"\n'
        'platform = "win_amd64"\n'
    )
    assert morgan(ws, "build").returncode == 0
    index = ws / "mirror" / "index"
    # windows has no wheel of native: it gets the sdist; linux does not.
    assert (index / "env/windows/simple/native/native-1.0.tar.gz").exists()
    assert not (index / "env/linux/simple/native/native-1.0.tar.gz").exists()
    assert (index / "simple/native/native-1.0.tar.gz").exists()
    assert morgan(ws, "verify").returncode == 0
    linux = morgan(ws, "export-lock", "--env", "linux", "-o", "-")
    assert linux.returncode == 0, linux.stderr
    assert "native-1.0.tar.gz" not in linux.stdout
    windows = morgan(ws, "export-lock", "--env", "windows", "-o", "-")
    assert windows.returncode == 0, windows.stderr
    assert "native-1.0.tar.gz" in windows.stdout
