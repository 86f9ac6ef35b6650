"""Universal views (``[universal.NAME]``) and "which index for which client", with real tools.

One mirror is built from the fake upstream and served by its own ``server.py``, with the
upstream stopped first (nothing can come from anywhere else). Its spec has two
environments (Linux 3.11 — this machine — and macOS 3.12) and one universal view over both.
``app`` needs ``tzdata`` and a wheel-only ``pywinonly`` on Windows, ``pypyhelper`` on PyPy,
``oldcompat`` (which upstream does not even have) on Python < 3.10, and ``util``, whose
newest release needs Python 3.12.

Each row of the table "Which index for which client" in docs/guide.md is run by the test
named in ``ROWS``; a test checks the table and ``ROWS`` list the same clients.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.markers import Marker

from morgan.environments import Environment
from morgan.errors import SpecError
from morgan.spec import parse_spec
from morgan.universal import UniversalTarget
from tests import clients
from tests.build_scenario import ROOT, morgan
from tests.server_process import server_process
from tests.upstream import FakeUpstream

GUIDE = ROOT / "docs" / "guide.md"
REQUIRES_PYTHON = ">=3.11,<3.13"  # the group's Pythons: 3.11 (linux) to 3.12 (mac)

SPEC = """\
requirements = ["app"]

[upstream]
index-url = "{url}"

[environments.linux]
python = "3.11"
platform = "manylinux_2_28_x86_64"

[environments.mac]
python = "3.12"
platform = "macosx_14_0_arm64"

[universal.lockers]
environments = ["linux", "mac"]
"""


def populate(up: FakeUpstream) -> None:
    up.add_release(
        "app",
        "1.0",
        requires_dist=[
            "util>=1",
            "native",
            'tzdata; sys_platform == "win32"',
            'pywinonly; sys_platform == "win32"',
            'pypyhelper; implementation_name == "pypy"',
            'oldcompat; python_version < "3.10"',
        ],
    )
    up.add_release("util", "1.0")
    up.add_release("util", "2.0", requires_python=">=3.12")
    up.add_release("tzdata", "2025.1", wheels=["py2.py3-none-any"])
    up.add_release(
        "pywinonly", "311", wheels=["cp311-cp311-win_amd64", "cp312-cp312-win_amd64"], sdist=False
    )
    up.add_release("pypyhelper", "1.0")
    up.add_release(
        "native",
        "1.0",
        wheels=[
            "py3-none-manylinux_2_17_x86_64",
            "py3-none-macosx_11_0_arm64",
            "py3-none-win_amd64",
        ],
        sdist=False,
    )


@dataclass
class Served:
    mirror: Path
    url: str  # "http://127.0.0.1:PORT/"
    log: Path

    def index(self, view: str) -> str:
        return f"{self.url}env/{view}/simple/"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("universal")
    workspace = root / "ws"
    workspace.mkdir()
    with FakeUpstream(root / "upstream").start() as up:
        populate(up)
        (workspace / "mirror.toml").write_text(SPEC.format(url=up.url), encoding="utf-8")
        proc = morgan(workspace, "build")
        assert proc.returncode == 0, proc.stderr
    mirror = workspace / "mirror"
    cmd = [sys.executable, str(mirror / "server.py"), "--port", "0"]
    with server_process(cmd, root / "server.log") as server:
        yield Served(mirror, server.url, server.log)


def _projects(served: Served, view: str) -> set[str]:
    simple = served.mirror / "index" / "env" / view / "simple"
    return {p.name for p in simple.iterdir() if p.is_dir()}


def _files(served: Served, view: str, project: str) -> set[str]:
    folder = served.mirror / "index" / "env" / view / "simple" / project
    return {p.name for p in folder.iterdir() if not p.name.startswith("index.")}


def _client_project(path: Path, extra: str = "") -> Path:
    """A fresh application project that depends on ``app`` (not itself a package)."""
    path.mkdir()
    (path / "pyproject.toml").write_text(
        "[project]\n"
        'name = "client"\n'
        'version = "0"\n'
        f'requires-python = "{REQUIRES_PYTHON}"\n'
        'dependencies = ["app"]\n' + extra,
        encoding="utf-8",
    )
    return path


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False, timeout=300
    )


def _tool_env(tmp: Path) -> dict[str, str]:
    """pip_env (no PIP_*/UV_* from outside, no pip config, UV_NO_CONFIG) plus Poetry's and
    PDM's own config, cache and data folders under ``tmp``: no user or global setting (an
    extra index, a PyPI source) reaches them. No active virtualenv either."""
    env = clients.pip_env(tmp)
    env = {k: v for k, v in env.items() if not k.startswith(("POETRY_", "PDM_", "VIRTUAL_ENV"))}
    env.update(
        {
            "POETRY_CONFIG_DIR": str(tmp / "poetry-config"),
            "POETRY_CACHE_DIR": str(tmp / "poetry-cache"),
            "POETRY_DATA_DIR": str(tmp / "poetry-data"),
            "POETRY_VIRTUALENVS_IN_PROJECT": "true",
            "POETRY_NO_INTERACTION": "1",
            "PDM_HOME": str(tmp / "pdm-home"),
            "PDM_CACHE_DIR": str(tmp / "pdm-cache"),
            "PDM_CONFIG_FILE": str(tmp / "pdm-config.toml"),
            "PDM_CHECK_UPDATE": "false",
            "PDM_IGNORE_ACTIVE_VENV": "1",
            "PDM_NON_INTERACTIVE": "1",
            "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring",
            "XDG_CONFIG_HOME": str(tmp / "xdg-config"),
            "XDG_DATA_HOME": str(tmp / "xdg-data"),
            "XDG_STATE_HOME": str(tmp / "xdg-state"),
        }
    )
    return env


def _tool(name: str) -> str:
    """The console script installed beside this interpreter (the test extra's version)."""
    return str(Path(sys.executable).with_name(name))


def _asked_mirror(served: Served, agent: str) -> bool:
    """Whether the mirror's access log shows ``agent`` reading the universal view's app page
    (the upstream was stopped before any client ran: the mirror is all there was)."""
    log = served.log.read_text(encoding="utf-8", errors="replace")
    return re.search(rf'"GET /env/lockers/simple/app/ [^"]*" 200 .*"{agent}/', log) is not None


def _installed(venv_python: Path) -> set[str]:
    proc = subprocess.run(
        [
            str(venv_python),
            "-I",  # not the current folder: this repository's own egg-info would show
            "-c",
            (
                "import importlib.metadata as m; print('\\n'.join(d.metadata['Name'] for d in "
                "m.distributions()))"
            ),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return set(proc.stdout.split()) - {"pip", "setuptools", "wheel"}


# -- what the universal view holds --------------------------------------------------------------


def test_universal_view_carries_every_branch_a_universal_resolver_explores(served: Served) -> None:
    assert _projects(served, "linux") == {"app", "native", "util"}
    assert _projects(served, "lockers") == {
        "app",
        "native",
        "util",
        "tzdata",  # sys_platform == "win32"
        "pywinonly",  # sys_platform == "win32", a wheel no member can install
        "pypyhelper",  # implementation_name == "pypy"
    }  # not oldcompat: python_version < "3.10" holds for no Python of the group
    # util 2.0 needs Python 3.12: the mac view has it, the group (3.11-3.12) cannot use it.
    assert _files(served, "mac", "util") == {
        "util-2.0-py3-none-any.whl",
        "util-2.0-py3-none-any.whl.metadata",
        "util-2.0.tar.gz",
    }
    assert {f for f in _files(served, "lockers", "util") if not f.endswith(".metadata")} == {
        "util-1.0-py3-none-any.whl",
        "util-1.0.tar.gz",
    }
    # Wheels for the members' platforms only; one wheel (for its metadata) where none fits.
    assert {f for f in _files(served, "lockers", "native") if f.endswith(".whl")} == {
        "native-1.0-py3-none-manylinux_2_17_x86_64.whl",
        "native-1.0-py3-none-macosx_11_0_arm64.whl",
    }
    assert {f for f in _files(served, "lockers", "pywinonly") if f.endswith(".whl")} == {
        "pywinonly-311-cp311-cp311-win_amd64.whl"
    }
    # The union index lists every file of the lock, the universal view's included.
    union = served.mirror / "index" / "simple"
    assert {p.name for p in union.iterdir() if p.is_dir()} == _projects(served, "lockers")


def test_verify_accepts_a_mirror_with_a_universal_view(served: Served) -> None:
    proc = morgan(served.mirror.parent, "verify")
    assert proc.returncode == 0, proc.stderr
    # The universal view is checked too: its pages against the lock, and the spec's
    # requirements resolved for the group from the view alone.
    assert "environment lockers: installable" in proc.stderr.splitlines()


# -- the rows of "Which index for which client" ----------------------------------------------


def test_pip_installs_from_the_environment_view(served: Served, tmp_path: Path) -> None:
    python = clients.make_venv(tmp_path / "venv")
    cmd = clients.pip_command("install", served.index("linux"), "app", python=python)
    proc = _run(cmd, tmp_path, clients.pip_env(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert _installed(python) == {"app", "native", "util"}


def test_uv_pip_compile_for_a_target_uses_the_environment_view(
    served: Served, tmp_path: Path
) -> None:
    (tmp_path / "in.txt").write_text("app\n", encoding="utf-8")
    cmd = clients.uv_pip_command(
        "compile",
        served.index("mac"),
        "in.txt",
        "--python-version",
        "3.12",
        "--python-platform",
        "aarch64-apple-darwin",
        "--no-header",
        "--no-annotate",
    )
    proc = _run(cmd, tmp_path, clients.pip_env(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["app==1.0", "native==1.0", "util==2.0"]


def test_uv_pip_compile_universal_needs_the_universal_view(served: Served, tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("app\n", encoding="utf-8")

    def compile_from(view: str) -> subprocess.CompletedProcess[str]:
        cmd = clients.uv_pip_command(
            "compile", served.index(view), "in.txt", "--universal", "--python-version", "3.11"
        )
        cmd += ["--no-header", "--no-annotate"]
        return _run(cmd, tmp_path, clients.pip_env(tmp_path))

    assert compile_from("linux").returncode != 0
    proc = compile_from("lockers")
    assert proc.returncode == 0, proc.stderr
    assert "tzdata==2025.1 ; sys_platform == 'win32'" in proc.stdout.splitlines()


def test_uv_project_locks_and_syncs_from_the_universal_view(served: Served, tmp_path: Path) -> None:
    env = _tool_env(tmp_path)
    uv = clients.uv_executable()
    # UV_NO_CONFIG also makes uv ignore the project's [tool.uv] tables, so the index is
    # given as UV_DEFAULT_INDEX (the guide shows both ways); nothing else is configured.
    on_linux_view = _client_project(tmp_path / "per-env")
    proc = _run([uv, "lock"], on_linux_view, {**env, "UV_DEFAULT_INDEX": served.index("linux")})
    assert proc.returncode != 0
    assert re.search(r"no versions of (tzdata|pywinonly|pypyhelper)\{", proc.stderr), proc.stderr

    project = _client_project(tmp_path / "project")
    env["UV_DEFAULT_INDEX"] = served.index("lockers")
    proc = _run([uv, "lock"], project, env)
    assert proc.returncode == 0, proc.stderr
    lock = tomllib.loads((project / "uv.lock").read_text(encoding="utf-8"))
    sources = {p["name"]: p["source"] for p in lock["package"]}
    assert sources.pop("client") == {"virtual": "."}
    assert set(sources) == {"app", "native", "util", "tzdata", "pywinonly", "pypyhelper"}
    assert all(s == {"registry": served.index("lockers")} for s in sources.values()), sources
    proc = _run([uv, "sync", "--python", sys.executable], project, env)
    assert proc.returncode == 0, proc.stderr
    assert _installed(project / ".venv" / "bin" / "python") == {"app", "native", "util"}
    assert _asked_mirror(served, "uv")


def test_poetry_locks_and_installs_from_the_universal_view(served: Served, tmp_path: Path) -> None:
    env = _tool_env(tmp_path)
    poetry = _tool("poetry")

    def project(name: str, view: str) -> Path:
        return _client_project(
            tmp_path / name,
            "\n[tool.poetry]\npackage-mode = false\n\n"
            "[[tool.poetry.source]]\n"
            'name = "mirror"\n'
            f'url = "{served.index(view)}"\n'
            'priority = "primary"\n',  # a primary source: Poetry then never asks PyPI
        )

    per_env = project("per-env", "linux")
    proc = _run([poetry, "lock"], per_env, env)
    assert proc.returncode != 0
    assert re.search(r"no versions of (tzdata|pywinonly|pypyhelper) match", proc.stderr), (
        proc.stdout + proc.stderr
    )

    universal = project("universal", "lockers")
    proc = _run([poetry, "lock"], universal, env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lock = tomllib.loads((universal / "poetry.lock").read_text(encoding="utf-8"))
    packages = {p["name"]: p for p in lock["package"]}
    assert set(packages) == {"app", "native", "util", "tzdata", "pywinonly", "pypyhelper"}
    # A package without a source table came from PyPI: every one names the mirror.
    mirror = served.index("lockers").rstrip("/")
    assert {p["name"]: p["source"]["url"] for p in lock["package"]} == dict.fromkeys(
        packages, mirror
    )
    proc = _run([poetry, "install"], universal, env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert _installed(universal / ".venv" / "bin" / "python") == {"app", "native", "util"}
    assert _asked_mirror(served, "poetry")


def test_pdm_locks_and_installs_from_the_universal_view(served: Served, tmp_path: Path) -> None:
    env = _tool_env(tmp_path)
    pdm = _tool("pdm")
    project = _client_project(
        tmp_path / "project",
        "\n[tool.pdm]\ndistribution = false\n\n"
        "[[tool.pdm.source]]\n"
        'name = "pypi"\n'  # the name "pypi" replaces PyPI itself
        f'url = "{served.index("lockers")}"\n',
    )
    proc = _run([pdm, "lock", "--static-urls"], project, env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lock = tomllib.loads((project / "pdm.lock").read_text(encoding="utf-8"))
    packages = {p["name"] for p in lock["package"]}
    assert packages == {"app", "native", "util", "tzdata", "pywinonly", "pypyhelper"}
    urls = [f["url"] for p in lock["package"] for f in p["files"]]
    assert urls
    assert all(u.startswith(served.index("lockers")) for u in urls), urls
    proc = _run([pdm, "install", "--frozen-lockfile"], project, env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert _installed(project / ".venv" / "bin" / "python") == {"app", "native", "util"}
    assert _asked_mirror(served, "pdm")


ROWS = {
    "pip": test_pip_installs_from_the_environment_view,
    "uv pip install / uv pip compile for a target": (
        test_uv_pip_compile_for_a_target_uses_the_environment_view
    ),
    "uv pip compile --universal": test_uv_pip_compile_universal_needs_the_universal_view,
    "uv project (uv lock, uv sync)": test_uv_project_locks_and_syncs_from_the_universal_view,
    "Poetry (poetry lock, poetry install)": test_poetry_locks_and_installs_from_the_universal_view,
    "PDM (pdm lock, pdm install)": test_pdm_locks_and_installs_from_the_universal_view,
}


def test_every_row_of_the_guides_client_table_has_its_test() -> None:
    text = GUIDE.read_text(encoding="utf-8")
    section = text.split("### Which index for which client", 1)[1]
    table = section[section.index("\n| ") :].split("\n\n", 1)[0]
    rows = [line for line in table.splitlines() if line.startswith("| ")][2:]  # not head, rule
    clients_in_guide = [row.split("|")[1].strip().replace("`", "") for row in rows]
    assert clients_in_guide == list(ROWS)


# -- the rules, exactly ------------------------------------------------------------------------


def _group() -> UniversalTarget:
    linux = Environment("linux", "3.11", "manylinux_2_28_x86_64")
    mac = Environment("mac", "3.13", "macosx_14_0_arm64")
    return UniversalTarget("lockers", "3.11", linux.platform, members=(linux, mac))


@pytest.mark.parametrize(
    ("marker", "extra", "follows"),
    [
        ('sys_platform == "win32"', "", True),
        ('sys_platform == "win32" and sys_platform == "linux"', "", False),
        ('platform_machine != "x86_64" and os_name == "nt"', "", True),
        ('python_version < "3.10"', "", False),
        ('python_version >= "3.12"', "", True),  # 3.12 lies between the members' Pythons
        ('python_version >= "3.14"', "", False),
        ('python_full_version >= "3.11.4" and python_version < "3.12"', "", True),
        ('implementation_name == "pypy" and python_version < "3.11"', "", False),
        ('extra == "cli"', "", False),
        ('extra == "cli" and sys_platform == "darwin"', "cli", True),
        ('"arm" in platform_machine', "", True),
    ],
)
def test_a_universal_view_follows_a_marker_when_some_target_value_makes_it_true(
    marker: str, extra: str, follows: bool
) -> None:
    assert _group().may_hold(Marker(marker), extra) is follows


def test_a_universal_view_needs_requires_python_for_every_member() -> None:
    group = _group()
    assert group.accepts_requires_python(">=3.11")
    assert not group.accepts_requires_python(">=3.12")
    assert group.wheel_rank("x-1-cp313-cp313-macosx_14_0_arm64.whl") is not None
    assert group.wheel_rank("x-1-cp311-cp311-win_amd64.whl") is None


@pytest.mark.parametrize(
    ("table", "error"),
    [
        (
            '[universal.lockers]\nenvironments = ["linux", "windows"]\n',
            (
                "mirror.toml:9: universal.lockers.environments[1]: 'windows' is not an environment "
                "of this spec — use one of linux"
            ),
        ),
        (
            "[universal.linux]\n",
            (
                "mirror.toml:8: universal.linux: 'linux' is already the name of environment "
                "'linux', and both would be served at env/<name>/ — rename the universal view"
            ),
        ),
        (
            "[universal.con]\n",
            (
                "mirror.toml:8: universal.con: 'con' cannot be a view name: Windows cannot create "
                "the folder env/<name>/ — choose another name"
            ),
        ),
        (
            '[universal."a b"]\n',
            (
                "mirror.toml:8: universal.\"a b\": 'a b' cannot be a view name (it becomes the "
                "folder env/<name>/) — use letters, digits, '.', '_', '-', starting with a letter "
                "or digit, at most 64 characters"
            ),
        ),
        (
            "[universal.lockers]\nenvironments = []\n",
            (
                "mirror.toml:9: universal.lockers.environments: is empty — list environments, or "
                "leave it out for all"
            ),
        ),
        (
            '[universal.lockers]\nenvs = ["linux"]\n',
            "mirror.toml:9: universal.lockers.envs: unknown key",
        ),
    ],
)
def test_universal_table_errors_name_the_line_and_the_fix(table: str, error: str) -> None:
    text = (
        'requirements = ["app"]\n\n[environments.linux]\npython = "3.11"\n'
        f'platform = "manylinux_2_28_x86_64"\n\n\n{table}'
    )
    with pytest.raises(SpecError) as info:
        parse_spec(text, Path("mirror.toml"))
    assert str(info.value).startswith(error), str(info.value)


def test_a_universal_table_without_environments_groups_them_all() -> None:
    text = (
        'requirements = ["app"]\n\n[environments.b]\npython = "3.12"\nplatform = "win_amd64"\n'
        '\n[environments.a]\npython = "3.11"\nplatform = "manylinux_2_28_x86_64"\n'
        "\n[universal.all]\n"
    )
    spec = parse_spec(text, Path("mirror.toml"))
    (group,) = spec.universal
    assert [m.name for m in group.members] == ["a", "b"]
    assert [t.name for t in spec.targets] == ["a", "b", "all"]
    without = parse_spec(text.replace("\n[universal.all]\n", ""), Path("mirror.toml"))
    assert without.digest() != spec.digest()
