"""``morgan export-lock``: a PEP 751 pylock.toml that real pip and uv install from."""

from __future__ import annotations

import functools
import os
import shutil
import threading
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from packaging.pylock import Pylock

from tests import clients
from tests.build_scenario import (
    EXPECTED,
    Built,
    built_and_served,
    morgan,
    run_cli,
)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    with built_and_served(tmp_path_factory.mktemp("pylock"), upstream_stays_up=False) as done:
        yield done


def _installed(venv: Path) -> dict[str, str]:
    site = next((venv / "lib").glob("python*/site-packages"))
    out = {}
    for d in site.glob("*.dist-info"):
        name, version = d.name[: -len(".dist-info")].rsplit("-", 1)
        out[name.lower().replace("_", "-")] = version
    return out


def test_export_lock_with_base_url_is_valid_pep751(built: Built, tmp_path: Path) -> None:
    out = tmp_path / "pylock.toml"
    proc = morgan(
        built.workspace, "export-lock", "--env", "windows", "-o", str(out),
        "--base-url", "http://mirror.lan:8080/",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"wrote {out}: 12 packages for environment windows\n"
    data = tomllib.loads(out.read_text())
    lock = Pylock.from_dict(data)  # raises on anything PEP 751 does not allow
    assert lock.environments is not None
    assert [str(m) for m in lock.environments] == [
        (
            'implementation_name == "cpython" and python_version == "3.12" and '
            'sys_platform == "win32" and platform_machine == "AMD64"'
        )
    ]
    assert {p.name: str(p.version) for p in lock.packages} == EXPECTED["windows"]
    native = next(p for p in data["packages"] if p["name"] == "native")
    # Files and index are the environment's view: what its clients use as --index-url.
    assert native["index"] == "http://mirror.lan:8080/env/windows/simple/"
    # Only the wheel that fits Windows, plus the sdist; sizes and sha256 from mirror.lock.
    assert [w["name"] for w in native["wheels"]] == ["native-1.0-cp38-abi3-win_amd64.whl"]
    assert native["wheels"][0]["url"] == (
        "http://mirror.lan:8080/env/windows/simple/native/native-1.0-cp38-abi3-win_amd64.whl"
    )
    locked = tomllib.loads((built.workspace / "mirror.lock").read_text())
    files = {f["filename"]: f for r in locked["release"] for f in r["files"]}
    wheel = files["native-1.0-cp38-abi3-win_amd64.whl"]
    assert native["wheels"][0]["hashes"] == {"sha256": wheel["sha256"]}
    assert native["wheels"][0]["size"] == wheel["size"]
    assert native["sdist"]["name"] == "native-1.0.tar.gz"
    # Deterministic: the same lock gives the same bytes.
    again = tmp_path / "pylock.again.toml"
    proc = morgan(
        built.workspace, "export-lock", "--env", "windows", "-o", str(again),
        "--base-url", "http://mirror.lan:8080/",
    )  # fmt: skip
    assert again.read_bytes() == out.read_bytes()


@pytest.mark.slow
def test_pip_installs_exactly_the_locked_set_from_the_served_mirror(
    built: Built, tmp_path: Path
) -> None:
    out = tmp_path / "pylock.toml"
    proc = morgan(
        built.workspace, "export-lock", "--env", "host", "-o", str(out),
        "--base-url", built.server.url,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    python = clients.make_venv(tmp_path / "venv")
    # The index is only for build isolation: srconly is an sdist built with its backend.
    cmd = clients.pip_command(
        "install", f"{built.server.url}env/host/simple/", "-r", str(out), python=python
    )
    result = clients.run(cmd, clients.pip_env(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert _installed(tmp_path / "venv") == EXPECTED["host"]


def test_uv_installs_from_relative_paths_into_the_mirror_folder(
    built: Built, tmp_path: Path
) -> None:
    out = built.workspace / "pylock.host.toml"
    proc = morgan(built.workspace, "export-lock", "--env", "host")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"wrote {out}: 11 packages for environment host\n"
    text = out.read_text()
    assert 'path = "mirror/index/env/host/simple/app/app-1.0-py3-none-any.whl"' in text
    python = clients.make_venv(tmp_path / "venv")
    index = (built.mirror / "index" / "env" / "host" / "simple").as_uri() + "/"
    cmd = clients.uv_pip_command("install", index, "--python", str(python), "-r", str(out))
    result = clients.run(cmd, clients.pip_env(tmp_path), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert _installed(tmp_path / "venv") == EXPECTED["host"]


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (stdlib name)
        del format, args


@contextmanager
def static_server(folder: Path) -> Iterator[str]:
    """A plain static file server (stdlib http.server) for ``folder`` on 127.0.0.1."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


@pytest.mark.parametrize("env", sorted(EXPECTED))
def test_every_file_the_pylock_names_is_in_the_environments_view(
    built: Built, env: str, tmp_path: Path
) -> None:
    out = tmp_path / "pylock.toml"
    proc = morgan(built.workspace, "export-lock", "--env", env, "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    view = built.mirror / "index" / "env" / env / "simple"
    data = tomllib.loads(out.read_text())
    named = [
        f["path"] for p in data["packages"] for f in [*p.get("wheels", []), p.get("sdist")] if f
    ]
    assert len(named) >= len(EXPECTED[env])
    for path in named:
        target = (tmp_path / path).resolve()
        assert target.is_file(), path
        assert Path(os.path.normpath(tmp_path / path)).is_relative_to(view), path


def test_uv_installs_from_a_host_that_publishes_only_the_environments_view(
    built: Built, tmp_path: Path
) -> None:
    # A static host holding env/host/ alone (as a team's share of the mirror might): the
    # pylock's URLs and index must all be inside that view.
    public = tmp_path / "public"
    (public / "env").mkdir(parents=True)
    (public / "env" / "host").symlink_to(built.mirror / "index" / "env" / "host")
    with static_server(public) as url:
        out = tmp_path / "pylock.toml"
        proc = morgan(
            built.workspace, "export-lock", "--env", "host", "-o", str(out), "--base-url", url
        )
        assert proc.returncode == 0, proc.stderr
        python = clients.make_venv(tmp_path / "venv")
        cmd = clients.uv_pip_command(
            "install", f"{url}env/host/simple/", "--python", str(python), "-r", str(out)
        )
        result = clients.run(cmd, clients.pip_env(tmp_path), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert _installed(tmp_path / "venv") == EXPECTED["host"]


def _main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code, _, err = run_cli(capsys, *argv)
    return code, err


def test_export_lock_errors(
    built: Built, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = str(built.workspace)
    assert _main(capsys, "export-lock", "-C", ws, "--env", "linux") == (
        2,
        (
            "morgan: error: no environment 'linux' in mirror.toml — known: host, legacy-linux, "
            "mac, windows\n"
        ),
    )
    bad = str(tmp_path / "x.toml")
    assert _main(capsys, "export-lock", "-C", ws, "--env", "host", "-o", bad) == (
        2,
        (
            "morgan: error: 'x.toml': pip and uv read only files named pylock.toml or "
            "pylock.<name>.toml — e.g. -o pylock.toml\n"
        ),
    )
    assert _main(capsys, "export-lock", "-C", ws, "--env", "host", "--base-url", "mirror") == (
        2,
        (
            "morgan: error: --base-url 'mirror': not an absolute URL — write it like "
            "http://mirror.lan:8080/\n"
        ),
    )
    stale = tmp_path / "stale"
    stale.mkdir()
    shutil.copyfile(built.workspace / "mirror.lock", stale / "mirror.lock")
    spec = (built.workspace / "mirror.toml").read_text().replace('"pre",', '"pre>=1",')
    (stale / "mirror.toml").write_text(spec)
    assert _main(capsys, "export-lock", "-C", str(stale), "--env", "host") == (
        2,
        (
            f"morgan: error: {stale}/mirror.lock is older than mirror.toml — run 'morgan build' "
            "first, so the pylock matches the mirror\n"
        ),
    )
    (stale / "mirror.lock").unlink()
    assert _main(capsys, "export-lock", "-C", str(stale), "--env", "host") == (
        2,
        f"morgan: error: {stale}/mirror.lock: no such file — run 'morgan build' first\n",
    )
