"""`morgan build` end to end: the fake upstream, the real CLI, real pip and uv as clients."""

from __future__ import annotations

import os
import re
import shutil
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import clients
from tests.build_scenario import (
    ENVIRONMENTS,
    EXPECTED,
    REQUIREMENTS,
    Built,
    built_and_served,
    morgan,
    target,
)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    with built_and_served(tmp_path_factory.mktemp("build"), upstream_stays_up=True) as done:
        yield done


def locked_pins(workspace: Path, env: str) -> dict[str, str]:
    data = tomllib.loads((workspace / "mirror.lock").read_text())
    return {p["name"]: p["version"] for p in data["environment"][env]["pins"] if p["role"] == "run"}


@pytest.mark.parametrize("env", sorted(ENVIRONMENTS))
def test_each_environment_locks_the_expected_versions(built: Built, env: str) -> None:
    assert locked_pins(built.workspace, env) == EXPECTED[env]


def test_sdist_only_project_brings_its_build_backend(built: Built) -> None:
    data = tomllib.loads((built.workspace / "mirror.lock").read_text())
    for env in ENVIRONMENTS:
        build = {p["name"] for p in data["environment"][env]["pins"] if p["role"] == "build"}
        assert build == {"morgan-test-backend"}
        edges = data["environment"][env]["edges"]
        assert {
            "parent": "srconly 1.0",
            "child": "morgan-test-backend",
            "requirement": "morgan-test-backend",
            "kind": "build-system",
        } in edges


def test_summary_prints_generation_digest(built: Built) -> None:
    assert re.search(r"generation digest blake3:[0-9a-f]{64}", built.first_output)
    assert (built.mirror / "index").readlink() == Path("generations/1")


def _index_urls(built: Built, env: str) -> dict[str, str]:
    return {
        "union": f"{built.server.url}simple/",
        "view": f"{built.server.url}env/{env}/simple/",
    }


def _binary_requirements() -> list[str]:
    # srconly has no wheel anywhere: --only-binary cannot take it (pip wheel covers it).
    return [r for r in REQUIREMENTS if not r.startswith("srconly")]


@pytest.mark.parametrize("view", ["union", "view"])
@pytest.mark.parametrize("env", sorted(ENVIRONMENTS))
def test_pip_download_only_binary_for_every_environment(
    built: Built, env: str, view: str, tmp_path: Path
) -> None:
    t = target(env)
    platforms = [a for p in t.platforms for a in ("--platform", p)]
    cmd = clients.pip_command(
        "download",
        _index_urls(built, env)[view],
        "--only-binary=:all:",
        *platforms,
        "--python-version",
        t.python,
        "--implementation",
        "cp",
        "--abi",
        t.abi,
        "--abi",
        "abi3",
        "--abi",
        "none",
        "-d",
        str(tmp_path / "dl"),
        *_binary_requirements(),
    )
    proc = clients.run(cmd, clients.pip_env(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    got = sorted(p.name for p in (tmp_path / "dl").iterdir())
    # pip evaluates environment markers against the interpreter it runs on, not the
    # --platform/--python-version target: marker-only dependencies follow this host.
    host_markers = {"winonly", "oldpy"}
    expected_versions = {
        k: v for k, v in EXPECTED[env].items() if k != "srconly" and k not in host_markers
    }
    got_versions = {name.split("-")[0].replace("_", "-"): name.split("-")[1] for name in got}
    assert {k: v for k, v in got_versions.items() if k not in host_markers} == expected_versions


@pytest.mark.parametrize("view", ["union", "view"])
@pytest.mark.parametrize("env", sorted(ENVIRONMENTS))
def test_uv_pip_compile_for_every_environment(
    built: Built, env: str, view: str, tmp_path: Path
) -> None:
    t = target(env)
    reqs = tmp_path / "requirements.in"
    expected = dict(EXPECTED[env])
    extra: list[str] = []
    if view == "union":
        # The union index also lists releases other targets chose (glibcy 2.0 has no wheel
        # for an old glibc, only an sdist): a resolver free to build from source may take
        # them. With binaries only it must land on exactly the locked set; a target's own
        # view (below) gives the locked set whatever the flags.
        extra = ["--only-binary", ":all:"]
        expected.pop("srconly")
        reqs.write_text("\n".join(_binary_requirements()) + "\n")
    else:
        reqs.write_text("\n".join(REQUIREMENTS) + "\n")
    cmd = clients.uv_pip_command(
        "compile",
        _index_urls(built, env)[view],
        "--python-platform",
        t.uv_platform,
        "--python-version",
        t.python,
        "--prerelease",
        "if-necessary-or-explicit",
        "--no-header",
        "--no-annotate",
        *extra,
        str(reqs),
    )
    proc = clients.run(cmd, clients.pip_env(tmp_path), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    pins = dict(line.split("==") for line in proc.stdout.split() if "==" in line)
    assert pins == expected


def test_pip_install_from_host_view_installs_exactly_the_locked_versions(
    built: Built, tmp_path: Path
) -> None:
    python = clients.make_venv(tmp_path / "venv")
    cmd = clients.pip_command(
        "install",
        f"{built.server.url}env/host/simple/",
        "--only-binary=:all:",
        *[r for r in REQUIREMENTS if not r.startswith("srconly")],
        python=python,
    )
    proc = clients.run(cmd, clients.pip_env(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    site = next((tmp_path / "venv" / "lib").glob("python*/site-packages"))
    installed = {}
    for d in site.glob("*.dist-info"):
        name, version = d.name[: -len(".dist-info")].rsplit("-", 1)
        installed[name.lower().replace("_", "-")] = version
    expected = {k: v for k, v in EXPECTED["host"].items() if k != "srconly"}
    assert installed == expected


def test_pip_wheel_builds_the_sdist_only_project_from_the_mirror_alone(
    built: Built, tmp_path: Path
) -> None:
    cmd = clients.pip_command(
        "wheel",
        f"{built.server.url}env/host/simple/",
        "--no-binary",
        "srconly",
        "--no-deps",
        "-w",
        str(tmp_path / "wheels"),
        "srconly",
    )
    proc = clients.run(cmd, clients.pip_env(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert [p.name for p in (tmp_path / "wheels").iterdir()] == ["srconly-1.0-py3-none-any.whl"]


def test_pip_download_from_file_url(built: Built, tmp_path: Path) -> None:
    url = (built.mirror / "index" / "env" / "host" / "simple").as_uri() + "/"
    cmd = clients.pip_command(
        "download", url, "--only-binary=:all:", "--no-deps", "-d", str(tmp_path), "native"
    )
    proc = clients.run(cmd, clients.pip_env(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (
        tmp_path / "native-1.0-cp38-abi3-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
    ).exists()


def test_views_hold_only_their_environment(built: Built) -> None:
    index = built.mirror / "index"
    linux = sorted(p.name for p in (index / "env/legacy-linux/simple/glibcy").iterdir())
    assert linux == [
        "glibcy-1.0-py3-none-manylinux2014_x86_64.whl",
        "glibcy-1.0-py3-none-manylinux2014_x86_64.whl.metadata",
        "glibcy-1.0.tar.gz",
        "index.html",
        "index.json",
    ]
    assert not (index / "env/mac/simple/winonly").exists()
    assert (index / "simple/winonly/index.html").exists()
    union = sorted(p.name for p in (index / "simple/glibcy").iterdir())
    # Every wheel that fits some environment; the manylinux_2_34 wheel fits none.
    assert "glibcy-2.0-py3-none-manylinux_2_34_x86_64.whl" not in union
    assert "glibcy-2.0-py3-none-manylinux_2_28_x86_64.whl" in union
    assert "glibcy-1.0-py3-none-manylinux2014_x86_64.whl" in union


def test_pinned_yanked_release_is_served_with_its_yanked_mark(built: Built) -> None:
    page = (built.mirror / "index/simple/pinny/index.html").read_text()
    assert 'data-yanked=""' in page
    assert not (built.mirror / "index/simple/yanky/yanky-1.1-py3-none-any.whl").exists()


def test_noop_rebuild_sends_no_request_and_keeps_the_generation(built: Built) -> None:
    built.upstream.clear_requests()
    proc = morgan(built.workspace, "build", "--explain")
    assert proc.returncode == 0, proc.stderr
    assert built.upstream.requests == []
    assert "unchanged, still generation 1: nothing to do" in proc.stderr
    assert "ran " not in proc.stderr


def test_offline_rebuild_works_from_lock_and_store(built: Built) -> None:
    proc = morgan(built.workspace, "build", "--offline")
    assert proc.returncode == 0, proc.stderr


def test_same_lock_gives_byte_identical_tree_elsewhere(built: Built, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    shutil.copyfile(built.workspace / "mirror.toml", other / "mirror.toml")
    shutil.copyfile(built.workspace / "mirror.lock", other / "mirror.lock")
    proc = morgan(other, "build")
    assert proc.returncode == 0, proc.stderr
    a = _tree(built.mirror / "index")
    b = _tree(other / "mirror" / "index")
    assert a == b
    digest = re.findall(r"generation digest (\S+)", proc.stderr)
    assert digest == re.findall(r"generation digest (\S+)", built.first_output)


def _tree(root: Path) -> dict[str, tuple[str, bytes]]:
    out = {}
    for dirpath, _dirs, files in os.walk(root, followlinks=True):
        for f in files:
            p = Path(dirpath) / f
            out[str(p.relative_to(root))] = (str(p.readlink()), p.read_bytes())
    return out
