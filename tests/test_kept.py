"""Files removed upstream are kept: a locked file, release or project that upstream deletes
stays in the lock and in the served index, said once; ``--upgrade`` moves off it only to a
fitting replacement."""

from __future__ import annotations

import tomllib
from pathlib import Path

from morgan.server import MirrorServer
from tests import clients
from tests.build_scenario import morgan
from tests.server_fixtures import running_server
from tests.upstream import FakeUpstream


def spec(ws: Path, url: str, requirements: list[str]) -> None:
    ws.mkdir(parents=True, exist_ok=True)
    reqs = ", ".join(f'"{r}"' for r in requirements)
    (ws / "mirror.toml").write_text(
        f'requirements = [{reqs}]\n\n[upstream]\nindex-url = "{url}"\n\n'
        '[environments.linux]\npython = "3.11"\nplatform = "manylinux_2_28_x86_64"\n'
    )


def lock_files(ws: Path) -> dict[str, bool]:
    """filename → marked kept, for every file in mirror.lock."""
    data = tomllib.loads((ws / "mirror.lock").read_text())
    return {f["filename"]: f.get("kept", False) for r in data["release"] for f in r["files"]}


def pins(ws: Path) -> dict[str, str]:
    data = tomllib.loads((ws / "mirror.lock").read_text())
    return {p["name"]: p["version"] for p in data["environment"]["linux"]["pins"]}


def pip_downloads(server: MirrorServer, tmp: Path, requirement: str) -> list[str]:
    """What real pip downloads from the served mirror for ``requirement`` (wheels only)."""
    dest = tmp / "downloads"
    url = f"http://127.0.0.1:{server.server_address[1]}/simple/"
    proc = clients.run(
        clients.pip_command(
            "download", url, "--only-binary=:all:", "--dest", str(dest), requirement
        ),
        clients.pip_env(tmp),
    )
    assert proc.returncode == 0, proc.stderr
    return sorted(p.name for p in dest.iterdir())


def test_a_file_removed_upstream_stays_locked_and_served(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    upstream.add_release("demo", "1.0")
    ws = tmp_path / "ws"
    spec(ws, upstream.url, ["demo"])
    assert morgan(ws, "build").returncode == 0
    upstream.remove("demo", filename="demo-1.0-py3-none-any.whl")
    upstream.clear_requests()
    proc = morgan(ws, "build", "--upgrade")
    assert proc.returncode == 0, proc.stderr
    assert (
        "morgan: upstream no longer lists demo-1.0-py3-none-any.whl; kept (served from the store)"
        in proc.stderr.splitlines()
    )
    # Nothing was fetched again: the blob was in the store.
    assert upstream.file_requests() == []
    assert lock_files(ws) == {"demo-1.0-py3-none-any.whl": True, "demo-1.0.tar.gz": False}
    # Said once: the next build finds the mark in the lock.
    again = morgan(ws, "build", "--upgrade")
    assert again.returncode == 0, again.stderr
    assert "no longer lists" not in again.stderr
    assert lock_files(ws)["demo-1.0-py3-none-any.whl"] is True
    with running_server(ws / "mirror") as (server, _log):
        assert pip_downloads(server, tmp_path, "demo") == ["demo-1.0-py3-none-any.whl"]
    # Upstream lists it again: the mark goes.
    upstream.add_dist(upstream.build_dir / "demo-1.0-py3-none-any.whl")
    assert morgan(ws, "build", "--upgrade").returncode == 0
    assert lock_files(ws) == {"demo-1.0-py3-none-any.whl": False, "demo-1.0.tar.gz": False}


def test_a_release_removed_upstream_is_kept_until_a_newer_one_fits(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    upstream.add_release("demo", "1.0")
    upstream.add_release("demo", "2.0")
    ws = tmp_path / "ws"
    spec(ws, upstream.url, ["demo"])
    assert morgan(ws, "build").returncode == 0
    upstream.remove("demo", version="2.0")
    proc = morgan(ws, "build", "--upgrade")
    assert proc.returncode == 0, proc.stderr
    assert "morgan: upstream no longer lists demo 2.0; kept (2 files) (served from the store)" in (
        proc.stderr.splitlines()
    )
    # Not moved back to 1.0 because 2.0 was deleted.
    assert pins(ws) == {"demo": "2.0"}
    assert lock_files(ws) == {"demo-2.0-py3-none-any.whl": True, "demo-2.0.tar.gz": True}
    # A spec change re-resolves with the kept release still there.
    upstream.add_release("other", "1.0")
    spec(ws, upstream.url, ["demo", "other"])
    proc = morgan(ws, "build")
    assert proc.returncode == 0, proc.stderr
    assert pins(ws) == {"demo": "2.0", "other": "1.0"}
    assert "no longer lists" not in proc.stderr
    # A fitting replacement appears: --upgrade moves to it, and the kept files leave the lock.
    upstream.add_release("demo", "2.1")
    proc = morgan(ws, "build", "--upgrade")
    assert proc.returncode == 0, proc.stderr
    assert pins(ws) == {"demo": "2.1", "other": "1.0"}
    assert "no longer lists" not in proc.stderr
    assert not any(lock_files(ws).values())


def test_a_project_removed_upstream_is_kept_and_installable(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    upstream.add_release("app", "1.0", requires_dist=["gone>=1"])
    upstream.add_release("gone", "1.5")
    ws = tmp_path / "ws"
    spec(ws, upstream.url, ["app"])
    assert morgan(ws, "build").returncode == 0
    upstream.remove("gone")
    proc = morgan(ws, "build", "--upgrade")
    assert proc.returncode == 0, proc.stderr
    assert (
        "morgan: upstream no longer lists project gone; kept 1.5 (2 files) (served from the store)"
        in proc.stderr.splitlines()
    )
    assert pins(ws) == {"app": "1.0", "gone": "1.5"}
    with running_server(ws / "mirror") as (server, _log):
        assert pip_downloads(server, tmp_path, "app") == [
            "app-1.0-py3-none-any.whl",
            "gone-1.5-py3-none-any.whl",
        ]
    verify = morgan(ws, "verify")
    assert verify.returncode == 0, verify.stderr + verify.stdout


def test_a_project_never_locked_and_not_upstream_is_still_an_error(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    upstream.add_release("app", "1.0")
    ws = tmp_path / "ws"
    spec(ws, upstream.url, ["app", "nowhere"])
    proc = morgan(ws, "build")
    assert proc.returncode == 1
    assert "project 'nowhere' not found on" in proc.stderr
