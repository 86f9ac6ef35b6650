"""``[build] wheels``: wheels built from mirrored sdists for an environment like this host,
offline from the mirror, stored, served in that view, marked in the lock; a fresh venv then
installs with ``--only-binary=:all:`` from the mirror (real pip, real C compiler)."""

from __future__ import annotations

import json
import subprocess
import tomllib
from pathlib import Path

import pytest

from morgan.environments import current_environment
from store.actions import ActionCache
from store.digest import blake3_hex
from store.objects import Store
from tests import clients
from tests import morgan_test_backend as backend
from tests.build_scenario import morgan
from tests.server_fixtures import running_server
from tests.upstream import FakeUpstream

HOST = current_environment("host")
ABI = "cp" + "".join(HOST.python.split(".")[:2])
C_SOURCE = """\
#include <Python.h>
static PyObject *answer(PyObject *self, PyObject *args) { return PyLong_FromLong(42); }
static PyMethodDef methods[] = {{"answer", answer, METH_NOARGS, ""}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "cext", NULL, -1, methods};
PyMODINIT_FUNC PyInit_cext(void) { return PyModule_Create(&module); }
"""


def c_sdist(out: Path, name: str, source: str, **info: object) -> Path:
    """An sdist with a C extension module ``name`` (built by morgan-test-backend with the
    system compiler, as setuptools would)."""
    top = f"{name}-1.0"
    build_info = {
        "name": name,
        "version": "1.0",
        "requires_dist": [],
        "requires_python": None,
        "provides_extra": [],
        "files": [],
        "c_extensions": {name: f"{name}.c"},
        **info,
    }
    files = {
        "PKG-INFO": backend.metadata_text(name, "1.0", metadata_version="2.2").encode(),
        "pyproject.toml": (
            b'[build-system]\nrequires = ["morgan-test-backend"]\n'
            b'build-backend = "morgan_test_backend"\n'
        ),
        backend.BUILD_INFO: json.dumps(build_info).encode(),
        f"{name}.c": source.encode(),
    }
    out.mkdir(parents=True, exist_ok=True)
    return backend.write_sdist(out / f"{top}.tar.gz", top, files)


def write_spec(ws: Path, url: str, requirements: list[str], build: str) -> None:
    ws.mkdir(parents=True, exist_ok=True)
    reqs = ", ".join(f'"{r}"' for r in requirements)
    (ws / "mirror.toml").write_text(
        f'requirements = [{reqs}]\n\n[upstream]\nindex-url = "{url}"\n\n'
        f'[environments.host]\npython = "{HOST.python}"\nplatform = "{HOST.platform}"\n\n'
        '[environments.windows]\npython = "3.12"\nplatform = "win_amd64"\n\n'
        f"[build]\n{build}\n"
    )


def lock_files(ws: Path) -> dict[str, dict[str, object]]:
    data = tomllib.loads((ws / "mirror.lock").read_text())
    return {f["filename"]: f for r in data["release"] for f in r["files"]}


def view_files(ws: Path, view: str, project: str) -> list[str]:
    page = ws / "mirror" / "index" / view / "simple" / project / "index.json"
    return sorted(f["filename"] for f in json.loads(page.read_text())["files"])


@pytest.fixture
def sdist_only(upstream: FakeUpstream) -> FakeUpstream:
    upstream.add_backend()
    upstream.add_release("pureonly", "1.0", wheels=[])
    upstream.add_dist(c_sdist(upstream.build_dir, "cext", C_SOURCE))
    upstream.add_release("demo", "1.0")
    return upstream


def test_wheels_are_built_served_locked_and_installed_without_a_compiler(
    sdist_only: FakeUpstream, tmp_path: Path
) -> None:
    ws = tmp_path / "ws"
    write_spec(ws, sdist_only.url, ["pureonly", "cext", "demo"], 'wheels = ["host"]')
    proc = morgan(ws, "build")
    assert proc.returncode == 0, proc.stderr
    assert "morgan: built a wheel from cext-1.0.tar.gz ([build] wheels)" in proc.stderr
    assert "morgan: built a wheel from pureonly-1.0.tar.gz ([build] wheels)" in proc.stderr
    cwheel = f"cext-1.0-{ABI}-{ABI}-{HOST.platform}.whl"
    files = lock_files(ws)
    builder = f"CPython {HOST.python} on {HOST.platform}"
    pure = "pureonly-1.0-py3-none-any.whl"
    for wheel, sdist in ((cwheel, "cext-1.0.tar.gz"), (pure, "pureonly-1.0.tar.gz")):
        assert files[wheel]["built-from"] == files[sdist]["sha256"]
        assert files[wheel]["built-with"] == builder
    assert "built-from" not in files["demo-1.0-py3-none-any.whl"]
    # `graph --build` draws the plan the build ran: its lock node's key (which counts the
    # built wheels) is the one under which the build stored this very lock.
    drawn = morgan(ws, "graph", "--build", "--format", "json")
    assert drawn.returncode == 0, drawn.stderr
    lock_node = next(n for n in json.loads(drawn.stdout)["nodes"] if n["id"] == "lock")
    stored = ActionCache(Store(ws / "mirror" / "store")).get(lock_node["key"])
    assert stored is not None, lock_node
    assert stored["blob"] == "blake3:" + blake3_hex((ws / "mirror.lock").read_bytes())
    # Served in the host's view (and the union), not to the Windows target it does not fit.
    assert view_files(ws, "env/host", "cext") == [cwheel, "cext-1.0.tar.gz"]
    assert view_files(ws, "", "cext") == [cwheel, "cext-1.0.tar.gz"]
    assert view_files(ws, "env/windows", "cext") == ["cext-1.0.tar.gz"]
    verify = morgan(ws, "verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    # A fresh venv installs binaries only from the served mirror, the upstream gone.
    sdist_only.stop()
    venv = clients.make_venv(tmp_path / "venv")
    with running_server(ws / "mirror") as (server, _log):
        url = f"http://127.0.0.1:{server.server_address[1]}/env/host/simple/"
        install = clients.run(
            clients.pip_command(
                "install", url, "--only-binary=:all:", "pureonly", "cext", "demo", python=venv
            ),
            clients.pip_env(tmp_path),
        )
        assert install.returncode == 0, install.stderr
    run = subprocess.run(
        [str(venv), "-c", "import cext, pureonly; print(cext.answer())"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (run.returncode, run.stdout) == (0, "42\n"), run.stderr
    # The next build (upstream still gone; --json skips the no-op short cut) goes through
    # selection again and finds the wheels in the action cache: nothing built, same tree.
    before = (ws / "mirror.lock").read_text()
    again = morgan(ws, "build", "--json")
    assert again.returncode == 0, again.stderr
    assert "built a wheel" not in again.stderr
    assert json.loads(again.stdout)["changed"] is False
    assert (ws / "mirror.lock").read_text() == before


def test_a_failed_or_slow_build_is_a_warning_and_the_sdist_stays(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    upstream.add_backend()
    upstream.add_dist(c_sdist(upstream.build_dir, "broken", "this is not C\n"))
    upstream.add_dist(c_sdist(upstream.build_dir, "slow", C_SOURCE, build_seconds=3600))
    ws = tmp_path / "ws"
    write_spec(ws, upstream.url, ["broken"], 'wheels = ["host"]')
    proc = morgan(ws, "build")
    assert proc.returncode == 0, proc.stderr
    prefix = "morgan: warning: no wheel built: host: broken-1.0.tar.gz: pip wheel failed: "
    assert any(line.startswith(prefix) for line in proc.stderr.splitlines()), proc.stderr
    assert view_files(ws, "env/host", "broken") == ["broken-1.0.tar.gz"]
    # The time limit covers the whole pip run, its build backend and compiler included.
    write_spec(ws, upstream.url, ["slow"], 'wheels = ["host"]\ntimeout = 2')
    proc = morgan(ws, "build")
    assert proc.returncode == 0, proc.stderr
    assert (
        "morgan: warning: no wheel built: host: slow-1.0.tar.gz: building a wheel took longer "
        "than 2 s: killed (raise [build] timeout if it needs longer)"
    ) in proc.stderr.splitlines()
    assert view_files(ws, "env/host", "slow") == ["slow-1.0.tar.gz"]


def test_an_environment_unlike_the_host_is_refused(upstream: FakeUpstream, tmp_path: Path) -> None:
    upstream.add_release("demo", "1.0")
    ws = tmp_path / "ws"
    write_spec(ws, upstream.url, ["demo"], 'wheels = ["windows"]')
    proc = morgan(ws, "build")
    assert proc.returncode == 1
    assert (
        "[build] wheels: environment 'windows' (Python 3.12, win_amd64) does not match this "
        f"build host (Python {HOST.python}, {HOST.platform})"
    ) in proc.stderr
    assert not (ws / "mirror" / "index").exists()
    write_spec(ws, upstream.url, ["demo"], 'wheels = ["nope"]')
    bad = morgan(ws, "build")
    assert bad.returncode == 2
    assert "build.wheels[0]: 'nope' is not an environment of this spec" in bad.stderr
