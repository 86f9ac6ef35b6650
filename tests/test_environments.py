"""Environment tags and markers, checked against independent oracles.

Oracle 1 is real pip (``pip debug --verbose --platform … --python-version … --abi …``) run as
a subprocess. pip does not expand glibc or musl versions, so the test gives it every
manylinux/musllinux level itself (``_oracle_platforms``); pip expands macOS versions on its
own, so it gets the single macOS tag. What is asserted:

- the SAME SET of tags as pip, always;
- the SAME ORDER as pip, except that pip, given ``manylinux2014_*`` among custom platforms,
  inserts ``manylinux2010_*`` and ``manylinux1_*`` right after it (ahead of
  ``manylinux_2_16`` … ``_2_6``). Morgan follows what pip does on a real Linux host (each
  alias right after its glibc equivalent), so for x86 manylinux targets the order is
  compared with those two aliases left out on both sides. pip's order is meaningful: it
  ranks a wheel by the position of its best tag.

Oracle 2 is ``packaging``'s own host code (``packaging._manylinux`` / ``_musllinux``) told
that the host has a given glibc/musl: Morgan's platform list must equal it exactly.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from packaging import _manylinux, _musllinux
from packaging.tags import Tag, sys_tags
from packaging.version import Version

from morgan.environments import (
    MARKER_KEYS,
    Environment,
    InvalidEnvironmentError,
    InvalidPlatformError,
    InvalidPythonError,
    current_environment,
)
from tests.pythons import require_python

# (id, python, platform, implementation, free_threaded)
MATRIX = [
    ("cp38-manylinux_2_5_x86_64", "3.8", "manylinux_2_5_x86_64", "cp", False),
    ("cp38-manylinux_2_17_x86_64", "3.8.18", "manylinux_2_17_x86_64", "cp", False),
    ("cp39-manylinux_2_17_aarch64", "3.9", "manylinux_2_17_aarch64", "cp", False),
    ("cp310-manylinux_2_28_x86_64", "3.10", "manylinux_2_28_x86_64", "cp", False),
    ("cp311-manylinux_2_28_aarch64", "3.11", "manylinux_2_28_aarch64", "cp", False),
    ("cp312-manylinux_2_34_x86_64", "3.12", "manylinux_2_34_x86_64", "cp", False),
    ("cp314-manylinux_2_34_aarch64", "3.14", "manylinux_2_34_aarch64", "cp", False),
    ("cp312-musllinux_1_2_x86_64", "3.12", "musllinux_1_2_x86_64", "cp", False),
    ("cp313-musllinux_1_1_aarch64", "3.13", "musllinux_1_1_aarch64", "cp", False),
    ("cp39-macosx_10_15_x86_64", "3.9", "macosx_10_15_x86_64", "cp", False),
    ("cp310-macosx_11_0_x86_64", "3.10", "macosx_11_0_x86_64", "cp", False),
    ("cp310-macosx_11_0_arm64", "3.10", "macosx_11_0_arm64", "cp", False),
    ("cp312-macosx_14_0_x86_64", "3.12", "macosx_14_0_x86_64", "cp", False),
    ("cp314-macosx_14_0_arm64", "3.14", "macosx_14_0_arm64", "cp", False),
    ("cp38-win32", "3.8", "win32", "cp", False),
    ("cp311-win_amd64", "3.11.9", "win_amd64", "cp", False),
    ("cp314-win_arm64", "3.14", "win_arm64", "cp", False),
    ("cp313t-manylinux_2_28_x86_64", "3.13", "manylinux_2_28_x86_64", "cp", True),
    ("cp37m-win_amd64", "3.7", "win_amd64", "cp", False),
    ("pp310-manylinux_2_17_x86_64", "3.10", "manylinux_2_17_x86_64", "pp", False),
    # Old fleets: Python 2.7 (cp27mu on Linux, cp27m elsewhere) and 3.5-3.7.
    ("cp27mu-manylinux1_x86_64", "2.7.18", "manylinux1_x86_64", "cp", False),
    ("cp27mu-manylinux2010_i686", "2.7", "manylinux2010_i686", "cp", False),
    ("cp27mu-manylinux_2_17_x86_64", "2.7.18", "manylinux_2_17_x86_64", "cp", False),
    ("cp27m-win32", "2.7.18", "win32", "cp", False),
    ("cp27m-win_amd64", "2.7.18", "win_amd64", "cp", False),
    ("cp27m-macosx_10_9_x86_64", "2.7.18", "macosx_10_9_x86_64", "cp", False),
    ("cp35m-manylinux1_x86_64", "3.5.10", "manylinux1_x86_64", "cp", False),
    ("cp36m-manylinux2010_x86_64", "3.6.15", "manylinux2010_x86_64", "cp", False),
    ("cp37m-macosx_10_9_x86_64", "3.7", "macosx_10_9_x86_64", "cp", False),
]

_ALIASES = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}


def _oracle_platforms(platform: str) -> list[str]:
    """What to pass pip as repeated --platform: every glibc/musl level, written out here."""
    legacy = {alias: glibc for glibc, alias in _ALIASES.items()}
    parts = platform.split("_")
    if parts[0] in legacy:
        parts = ["manylinux", "2", str(legacy[parts[0]]), *parts[1:]]
    if parts[0] == "manylinux":
        newest, arch = int(parts[2]), "_".join(parts[3:])
        oldest = 5 if arch in ("x86_64", "i686") else 17
        result = []
        for minor in range(newest, oldest - 1, -1):
            result.append(f"manylinux_2_{minor}_{arch}")
            if minor in _ALIASES:
                result.append(f"{_ALIASES[minor]}_{arch}")
        return result
    if parts[0] == "musllinux":
        arch = "_".join(parts[3:])
        return [f"musllinux_1_{minor}_{arch}" for minor in range(int(parts[2]), -1, -1)]
    return [platform]


def _pip_tags(python: str, platform: str, implementation: str, free_threaded: bool) -> list[str]:
    major, minor = python.split(".")[:2]
    nodot = f"{major}{minor}"
    if implementation == "pp":
        abi = f"pypy{nodot}_pp73"
    elif major == "2":
        abi = f"cp{nodot}" + ("m" if platform.startswith(("win", "macosx")) else "mu")
    else:
        abi = f"cp{nodot}" + ("t" if free_threaded else "") + ("m" if int(minor) < 8 else "")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    cmd = [sys.executable, "-m", "pip", "debug", "--isolated", "--verbose"]
    for p in _oracle_platforms(platform):
        cmd += ["--platform", p]
    cmd += ["--python-version", f"{major}.{minor}", "--implementation", implementation]
    cmd += ["--abi", abi]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    lines = proc.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Compatible tags: "))
    count = int(lines[start].split()[2])
    tags = [line.strip() for line in lines[start + 1 : start + 1 + count]]
    assert all(line.startswith("  ") for line in lines[start + 1 : start + 1 + count])
    return tags


def _without_pip_alias_quirk(tags: list[str]) -> list[str]:
    return [t for t in tags if "-manylinux2010_" not in t and "-manylinux1_" not in t]


@pytest.mark.parametrize(
    ("python", "platform", "implementation", "free_threaded"),
    [pytest.param(*row[1:], id=row[0]) for row in MATRIX],
)
def test_tags_agree_with_pip(
    python: str, platform: str, implementation: str, free_threaded: bool
) -> None:
    env = Environment("t", python, platform, implementation, free_threaded)
    ours = [str(t) for t in env.tags()]
    pips = _pip_tags(python, platform, implementation, free_threaded)
    assert len(ours) == len(set(ours))
    assert set(ours) == set(pips)
    assert _without_pip_alias_quirk(ours) == _without_pip_alias_quirk(pips)
    if not platform.startswith("manylinux") or not platform.endswith(("x86_64", "i686")):
        assert ours == pips


@pytest.fixture
def fake_host(monkeypatch: pytest.MonkeyPatch) -> None:
    # Pretend the host runs any architecture, so packaging's host code lists its tags.
    monkeypatch.setattr(_manylinux, "_have_compatible_abi", lambda _exe, _archs: True)


@pytest.mark.usefixtures("fake_host")
@pytest.mark.parametrize(
    ("glibc", "arch"),
    [((2, 5), "x86_64"), ((2, 17), "aarch64"), ((2, 28), "x86_64"), ((2, 34), "i686")],
    ids=["2_5-x86_64", "2_17-aarch64", "2_28-x86_64", "2_34-i686"],
)
def test_manylinux_order_equals_packaging_on_such_a_host(
    monkeypatch: pytest.MonkeyPatch, glibc: tuple[int, int], arch: str
) -> None:
    monkeypatch.setattr(_manylinux, "_get_glibc_version", lambda: glibc)
    host = list(_manylinux.platform_tags([arch]))
    env = Environment("t", "3.12", f"manylinux_{glibc[0]}_{glibc[1]}_{arch}")
    ours = list(dict.fromkeys(str(t.platform) for t in env.tags() if t.platform != "any"))
    assert ours == host


def test_musllinux_order_equals_packaging_on_such_a_host(monkeypatch: pytest.MonkeyPatch) -> None:
    version = _musllinux._MuslVersion(1, 2)
    monkeypatch.setattr(_musllinux, "_get_musl_version", lambda _exe: version)
    host = list(_musllinux.platform_tags(["aarch64"]))
    env = Environment("t", "3.12", "musllinux_1_2_aarch64")
    ours = list(dict.fromkeys(str(t.platform) for t in env.tags() if t.platform != "any"))
    assert (
        ours == host == ["musllinux_1_2_aarch64", "musllinux_1_1_aarch64", "musllinux_1_0_aarch64"]
    )


def test_legacy_alias_platform_is_its_glibc_equivalent() -> None:
    alias = Environment("t", "3.12", "manylinux2014_x86_64")
    modern = Environment("t", "3.12", "manylinux_2_17_x86_64")
    assert alias.tags() == modern.tags()


def test_free_threaded_accepts_no_abi3() -> None:
    env = Environment("t", "3.13", "win_amd64", free_threaded=True)
    abis = {t.abi for t in env.tags()}
    assert "abi3" not in abis
    assert env.wheel_rank("x-1.0-cp313-abi3-win_amd64.whl") is None
    assert env.wheel_rank("x-1.0-cp313-cp313t-win_amd64.whl") == 0
    assert env.wheel_rank("x-1.0-cp313-cp313-win_amd64.whl") is None


def test_abi3_back_to_cp32() -> None:
    env = Environment("t", "3.12", "win_amd64")
    assert env.wheel_rank("x-1.0-cp32-abi3-win_amd64.whl") is not None
    assert env.wheel_rank("x-1.0-cp313-abi3-win_amd64.whl") is None


def test_wheel_rank_prefers_the_more_specific_tag() -> None:
    env = Environment("t", "3.12", "manylinux_2_28_x86_64")
    native = env.wheel_rank("x-1.0-cp312-cp312-manylinux_2_28_x86_64.whl")
    old = env.wheel_rank("x-1.0-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl")
    pure = env.wheel_rank("x-1.0-py3-none-any.whl")
    assert native == 0
    assert old is not None
    assert pure == env.tags().index(Tag("py3", "none", "any"))
    assert env.tags()[-1] == Tag("py30", "none", "any")
    assert native < old < pure
    assert env.wheel_rank("x-1.0-cp312-cp312-manylinux_2_31_x86_64.whl") is None
    assert env.wheel_rank("x-1.0-cp312-cp312-musllinux_1_2_x86_64.whl") is None
    assert env.wheel_rank("x-1.0-cp312-cp312-linux_x86_64.whl") is None
    assert env.wheel_rank("not-a-wheel.tar.gz") is None


def test_mac_arm64_accepts_universal2_but_not_x86_64() -> None:
    env = Environment("t", "3.12", "macosx_14_0_arm64")
    assert env.wheel_rank("x-1.0-cp312-cp312-macosx_10_9_universal2.whl") is not None
    assert env.wheel_rank("x-1.0-cp312-cp312-macosx_11_0_arm64.whl") is not None
    assert env.wheel_rank("x-1.0-cp312-cp312-macosx_10_9_x86_64.whl") is None
    assert env.wheel_rank("x-1.0-cp312-cp312-macosx_15_0_arm64.whl") is None


def _markers(**values: str) -> dict[str, str]:
    assert set(values) == set(MARKER_KEYS)
    return values


def test_markers_linux() -> None:
    env = Environment("t", "3.9.18", "manylinux_2_17_aarch64")
    assert env.markers() == _markers(
        implementation_name="cpython",
        implementation_version="3.9.18",
        os_name="posix",
        platform_machine="aarch64",
        platform_python_implementation="CPython",
        platform_release="",
        platform_system="Linux",
        platform_version="",
        python_full_version="3.9.18",
        python_version="3.9",
        sys_platform="linux",
    )


def test_markers_musl() -> None:
    env = Environment("t", "3.12", "musllinux_1_2_x86_64")
    assert env.markers()["platform_machine"] == "x86_64"
    assert env.markers()["sys_platform"] == "linux"
    assert env.markers()["python_full_version"] == "3.12.0"


def test_markers_windows() -> None:
    machines = {"win32": "x86", "win_amd64": "AMD64", "win_arm64": "ARM64"}
    for platform, machine in machines.items():
        env = Environment("t", "3.12", platform)
        assert env.markers() == _markers(
            implementation_name="cpython",
            implementation_version="3.12.0",
            os_name="nt",
            platform_machine=machine,
            platform_python_implementation="CPython",
            platform_release="",
            platform_system="Windows",
            platform_version="",
            python_full_version="3.12.0",
            python_version="3.12",
            sys_platform="win32",
        )


def test_markers_macos_with_overrides() -> None:
    env = Environment(
        "t", "3.13.1", "macosx_14_0_arm64", marker_overrides=(("platform_release", "23.0"),)
    )
    assert env.markers() == _markers(
        implementation_name="cpython",
        implementation_version="3.13.1",
        os_name="posix",
        platform_machine="arm64",
        platform_python_implementation="CPython",
        platform_release="23.0",
        platform_system="Darwin",
        platform_version="",
        python_full_version="3.13.1",
        python_version="3.13",
        sys_platform="darwin",
    )


def test_markers_pypy() -> None:
    env = Environment("t", "3.10", "manylinux_2_17_x86_64", implementation="pp")
    markers = env.markers()
    assert markers["implementation_name"] == "pypy"
    assert markers["platform_python_implementation"] == "PyPy"
    assert markers["implementation_version"] == "7.3.0"
    assert markers["python_full_version"] == "3.10.0"


def test_python_version_and_requires_python() -> None:
    env = Environment("t", "3.12", "win_amd64")
    assert env.python_version() == Version("3.12")
    assert env.accepts_requires_python(">=3.8")
    assert env.accepts_requires_python(">=3.12.0")
    assert not env.accepts_requires_python(">=3.12.1")
    assert not env.accepts_requires_python("<3.12")
    assert env.accepts_requires_python(None)
    assert env.accepts_requires_python("")
    assert env.accepts_requires_python("not a specifier")
    assert Environment("t", "3.9.18", "win32").python_version() == Version("3.9.18")


@pytest.mark.parametrize(
    ("platform", "message"),
    [
        (
            "macos-arm64",
            "'macos-arm64' is not a wheel platform tag — did you mean 'macosx_14_0_arm64'?",
        ),
        (
            "linux_x86_64",
            (
                "'linux_x86_64' is a build-host-only tag that indexes do not serve — "
                "use the newest manylinux tag the target's glibc allows, "
                "e.g. 'manylinux_2_28_x86_64'"
            ),
        ),
        (
            "manylinux-2-28-aarch64",
            (
                "'manylinux-2-28-aarch64' is not a wheel platform tag — "
                "did you mean 'manylinux_2_28_aarch64'?"
            ),
        ),
        (
            "manylinux_2_28_amd64",
            (
                "'manylinux_2_28_amd64' has an unknown architecture 'amd64' — "
                "did you mean 'manylinux_2_28_x86_64'?"
            ),
        ),
        ("windows-x64", "'windows-x64' is not a wheel platform tag — did you mean 'win_amd64'?"),
        (
            "alpine-arm",
            "'alpine-arm' is not a wheel platform tag — did you mean 'musllinux_1_2_aarch64'?",
        ),
        (
            "manylinux2010_aarch64",
            (
                "manylinux2010 exists for x86_64 and i686 only, not 'aarch64' — "
                "did you mean 'manylinux2014_aarch64'?"
            ),
        ),
        (
            "manylinux_2_12_aarch64",
            (
                "'manylinux_2_12_aarch64' is older than any aarch64 manylinux (glibc 2.17) — "
                "did you mean 'manylinux_2_17_aarch64'?"
            ),
        ),
        (
            "macosx_10_15_arm64",
            "macOS on arm64 starts at 11.0, not 10.15 — did you mean 'macosx_11_0_arm64'?",
        ),
        (
            "any",
            (
                "'any' is not a target platform (pure-Python wheels fit every target) — "
                "name the target's newest tag, e.g. 'manylinux_2_28_x86_64'"
            ),
        ),
        (
            "solaris",
            (
                "'solaris' is not a wheel platform tag — use the target's newest tag, e.g. "
                "'manylinux_2_28_x86_64', 'musllinux_1_2_x86_64', 'macosx_14_0_arm64', 'win_amd64'"
            ),
        ),
    ],
    ids=lambda v: v if " " not in v else "",
)
def test_bad_platform_messages(platform: str, message: str) -> None:
    with pytest.raises(InvalidPlatformError) as exc:
        Environment("t", "3.12", platform)
    assert str(exc.value) == message
    assert exc.value.field == "platform"


@pytest.mark.parametrize(
    "python", ["3", "2.6", "3.4", "2.7.x", "3.12.1.1", "3.123", "3.12rc1", "3." + "1" * 50]
)
def test_bad_python_is_rejected(python: str) -> None:
    with pytest.raises(InvalidPythonError) as exc:
        Environment("t", python, "win_amd64")
    shown = python if len(python) <= 40 else python[:40] + "…"
    assert str(exc.value) == (
        f"{shown!r} is not a Python version — write '3.Y' or '3.Y.Z' (3.5 or newer) or "
        "'2.7.Z', e.g. '3.12', '3.9.18' or '2.7.18'"
    )


def test_free_threaded_needs_cpython_313() -> None:
    with pytest.raises(InvalidEnvironmentError) as exc:
        Environment("t", "3.12", "win_amd64", free_threaded=True)
    assert str(exc.value) == (
        "free-threaded builds exist for CPython 3.13 and newer, not cp 3.12 — "
        "remove free-threaded or use python = '3.13' or newer"
    )
    assert exc.value.field == "free-threaded"


def test_unknown_marker_override() -> None:
    with pytest.raises(InvalidEnvironmentError) as exc:
        Environment("t", "3.12", "win_amd64", marker_overrides=(("platform_relase", "1"),))
    assert (
        str(exc.value)
        == "'platform_relase' is not a PEP 508 marker — did you mean 'platform_release'?"
    )


def test_current_environment_describes_this_interpreter() -> None:
    env = current_environment("here")
    assert env.name == "here"
    assert env.python == ".".join(map(str, sys.version_info[:3]))
    assert env.implementation == "cp"
    assert not env.platform.startswith("linux_")
    # This very interpreter's own top tag must be among the target's tags.
    best_host = next(t for t in sys_tags() if not t.platform.startswith("linux_"))
    assert best_host in env.tags()


@pytest.mark.parametrize("name", ["", "../x", ".hidden", "a/b", "x" * 65, "sp ace"])
def test_bad_environment_name(name: str) -> None:
    with pytest.raises(InvalidEnvironmentError) as exc:
        Environment(name, "3.12", "win_amd64")
    assert str(exc.value) == (
        f"{name[:64]!r} cannot be an environment name (it becomes the folder env/<name>/) — "
        "use letters, digits, '.', '_', '-', starting with a letter or digit, at most 64 characters"
    )
    assert exc.value.field == "name"


def test_markers_python27_equal_its_own_pip() -> None:
    """Oracle: the marker values the real Python 2.7.18's pip evaluates on this Linux host."""
    python27 = require_python("2.7")
    proc = subprocess.run(
        [
            str(python27),
            "-c",
            (
                "import json; from pip._vendor.packaging.markers import default_environment as d;"
                " print(json.dumps(d()))"
            ),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    real = json.loads(proc.stdout)
    env = Environment("t", real["python_full_version"], "manylinux_2_17_x86_64")
    ours = env.markers()
    # platform_release/platform_version name the host's kernel: unknowable for a target.
    for key in ("platform_release", "platform_version"):
        del real[key], ours[key]
    assert ours == real
    assert ours["sys_platform"] == "linux2"
    assert ours["implementation_name"] == ""


def test_markers_python27_windows_and_macos() -> None:
    win = Environment("t", "2.7.18", "win_amd64").markers()
    assert (win["sys_platform"], win["os_name"], win["platform_machine"]) == (
        "win32",
        "nt",
        "AMD64",
    )
    mac = Environment("t", "2.7.18", "macosx_10_9_x86_64").markers()
    assert (mac["sys_platform"], mac["platform_system"]) == ("darwin", "Darwin")


def test_python27_abi_and_requires_python() -> None:
    linux = Environment("t", "2.7.18", "manylinux1_x86_64")
    native = linux.wheel_rank("x-1.0-cp27-cp27mu-manylinux1_x86_64.whl")
    pure = linux.wheel_rank("six-1.16.0-py2.py3-none-any.whl")
    assert native is not None
    assert pure is not None
    assert native < pure
    assert linux.wheel_rank("x-1.0-cp27-cp27m-manylinux1_x86_64.whl") is None
    assert linux.wheel_rank("x-1.0-py3-none-any.whl") is None
    assert Environment("t", "2.7", "win32").wheel_rank("x-1.0-cp27-cp27m-win32.whl") == 0
    assert linux.accepts_requires_python(">=2.7, !=3.0.*, !=3.1.*, !=3.2.*, !=3.3.*, !=3.4.*")
    assert not linux.accepts_requires_python(">=3.7")


def test_pypy_python2_is_refused() -> None:
    with pytest.raises(InvalidEnvironmentError) as exc:
        Environment("t", "2.7.18", "manylinux1_x86_64", "pp")
    assert str(exc.value) == (
        "PyPy targets are Python 3 here, not 2.7.18 — use implementation = 'cp' for a "
        "Python 2.7 target"
    )


def test_wheel_rank_ranks_a_tag_set_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """A rebuild ranks every kept pin's wheels in each environment, twice; wheels of many
    projects share a tag set, whose tags are looked up once per environment. An invalid
    name is still None, and each name's rank is its own tag set's."""
    from morgan import environments

    env = Environment("t", "3.12", "manylinux_2_17_x86_64")
    first = env.wheel_rank("a-1.0-cp312-cp312-manylinux_2_17_x86_64.whl")
    pure = env.wheel_rank("a-1.0-py3-none-any.whl")
    assert first is not None
    assert pure is not None
    assert first < pure
    looked_up: list[str] = []
    ranks = environments._ranks(env)

    class Counting(dict[Tag, int]):
        def __contains__(self, tag: object) -> bool:
            looked_up.append(str(tag))
            return super().__contains__(tag)

    monkeypatch.setitem(
        environments._RANKS_SEEN,
        id(env),
        (env, Counting(ranks), environments._RANKS_SEEN[id(env)][2]),
    )
    # Other projects' wheels of the same tag sets (a build tag too): no tag looked up.
    assert env.wheel_rank("b_c-2.0-1-cp312-cp312-manylinux_2_17_x86_64.whl") == first
    assert env.wheel_rank("zz-0.1-py3-none-any.whl") == pure
    assert looked_up == []
    assert env.wheel_rank("not-a-wheel.whl") is None
    assert env.wheel_rank("b-2.0-cp312-cp312-win_amd64.whl") is None
    assert looked_up  # a new tag set is ranked
    other = Environment("u", "3.12", "win_amd64")
    assert other.wheel_rank("b-2.0-cp312-cp312-win_amd64.whl") is not None
    assert other.wheel_rank("a-1.0-cp312-cp312-manylinux_2_17_x86_64.whl") is None
