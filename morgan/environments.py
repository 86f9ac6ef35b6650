"""Target environments: the 11 PEP 508 marker values and the ordered wheel tags of a target.

An :class:`Environment` describes a machine Morgan mirrors *for*, not the machine it runs
on: nothing here reads the host, except :func:`current_environment`. From a Python version
and the NEWEST platform tag the target accepts, it derives every tag the target's pip would
accept, best first, the way ``packaging.tags`` orders them on a real host (each legacy
``manylinux2014/2010/1`` alias right after its glibc equivalent), and the marker values
its resolver would see.
"""

from __future__ import annotations

import difflib
import functools
import re
import sys
import sysconfig
from dataclasses import dataclass

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.tags import (
    Tag,
    compatible_tags,
    cpython_tags,
    generic_tags,
    mac_platforms,
    parse_tag,
)
from packaging.tags import platform_tags as host_platform_tags
from packaging.utils import InvalidWheelFilename, parse_wheel_filename
from packaging.version import Version

__all__ = [
    "ENV_NAME_RE",
    "MARKER_KEYS",
    "Environment",
    "InvalidEnvironmentError",
    "InvalidPlatformError",
    "InvalidPythonError",
    "current_environment",
    "folder_name_problem",
]

MARKER_KEYS = (
    "implementation_name",
    "implementation_version",
    "os_name",
    "platform_machine",
    "platform_python_implementation",
    "platform_release",
    "platform_system",
    "platform_version",
    "python_full_version",
    "python_version",
    "sys_platform",
)

# Architectures that have manylinux/musllinux wheels on PyPI; x86 goes down to glibc 2.5.
LINUX_ARCHS = ("x86_64", "i686", "aarch64", "armv7l", "ppc64le", "ppc64", "s390x", "riscv64")
_X86 = frozenset({"x86_64", "i686"})
_LEGACY_MANYLINUX = {(2, 17): "manylinux2014", (2, 12): "manylinux2010", (2, 5): "manylinux1"}
_ALIAS_GLIBC = {alias: glibc for glibc, alias in _LEGACY_MANYLINUX.items()}
MAC_ARCHS = ("arm64", "x86_64")
_WINDOWS_MACHINE = {"win32": "x86", "win_amd64": "AMD64", "win_arm64": "ARM64"}
# Common wrong spellings of an architecture, per OS family.
_LINUX_ARCH_FIX = {"amd64": "x86_64", "x64": "x86_64", "arm64": "aarch64", "x86": "i686"}
_MAC_ARCH_FIX = {"aarch64": "arm64", "amd64": "x86_64", "intel": "x86_64", "arm": "arm64"}
_IMPLEMENTATIONS = {"cp": ("cpython", "CPython"), "pp": ("pypy", "PyPy")}
# PyPy's own version is unknowable from the Python version; every PyPy 3 since 2020 is 7.3.x.
_PYPY_VERSION = "7.3.0"

# Environment names become folder names (env/<name>/): no separators, no leading dot.
ENV_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_WINDOWS_RESERVED = frozenset(
    ["CON", "PRN", "AUX", "NUL"] + [f"{d}{i}" for d in ("COM", "LPT") for i in range(1, 10)]
)


def folder_name_problem(name: str, what: str, folder: str) -> str | None:
    """Why ``name`` cannot be ``what`` ("an index name") given that it becomes the folder
    ``folder`` ("indexes/<name>/"); None when it can. Environment, view and index names all
    become folders of a mirror that crosses to Windows machines too."""
    if not ENV_NAME_RE.fullmatch(name):
        return (
            f"{name[:64]!r} cannot be {what} (it becomes the folder {folder}) — use letters, "
            "digits, '.', '_', '-', starting with a letter or digit, at most 64 characters"
        )
    if name.split(".", maxsplit=1)[0].upper() in _WINDOWS_RESERVED or name.endswith("."):
        return (
            f"{name!r} cannot be {what}: Windows cannot create the folder {folder} — choose "
            "another name"
        )
    return None


_PYTHON_RE = re.compile(r"(2\.7|3\.(?:[5-9]|[1-9][0-9]))(?:\.(0|[1-9][0-9]{0,2}))?")
_MANYLINUX_RE = re.compile(r"manylinux_2_(\d{1,3})_([a-z0-9_]+)")
_LEGACY_RE = re.compile(r"(manylinux2014|manylinux2010|manylinux1)_([a-z0-9_]+)")
_MUSL_RE = re.compile(r"musllinux_1_(\d{1,3})_([a-z0-9_]+)")
_MAC_RE = re.compile(r"macosx_(\d{1,2})_(\d{1,2})_([a-z0-9_]+)")


class InvalidEnvironmentError(ValueError):
    """An environment value that cannot describe a target; ``field`` names the key."""

    field = "python"

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        if field is not None:
            self.field = field


class InvalidPythonError(InvalidEnvironmentError):
    """``python`` is not ``2.7``, ``2.7.Z``, ``3.Y`` or ``3.Y.Z`` (Y ≥ 5)."""

    field = "python"


class InvalidPlatformError(InvalidEnvironmentError):
    """``platform`` is not a wheel platform tag a target can accept; the message suggests one."""

    field = "platform"


@dataclass(frozen=True, slots=True)
class Environment:
    """A described target: Python version, newest platform tag, implementation.

    Values are validated on construction (raising :class:`InvalidEnvironmentError`
    subclasses), so every ``Environment`` yields markers and tags.
    """

    name: str
    python: str  # as written: "3.9.18" or "3.12"
    platform: str  # the NEWEST platform tag the target accepts
    implementation: str = "cp"
    free_threaded: bool = False
    marker_overrides: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        problem = folder_name_problem(self.name, "an environment name", "env/<name>/")
        if problem is not None:
            raise InvalidEnvironmentError(problem, "name")
        _parse_python(self.python)
        _platforms(self.platform)
        if self.implementation not in _IMPLEMENTATIONS:
            raise InvalidEnvironmentError(
                f"{self.implementation!r} is not a supported implementation — "
                "use 'cp' (CPython) or 'pp' (PyPy)",
                "implementation",
            )
        if self.implementation == "pp" and _parse_python(self.python)[0] == 2:
            raise InvalidEnvironmentError(
                f"PyPy targets are Python 3 here, not {self.python} — use implementation = "
                "'cp' for a Python 2.7 target",
                "implementation",
            )
        if self.free_threaded and (
            self.implementation != "cp" or _parse_python(self.python)[:2] < (3, 13)
        ):
            raise InvalidEnvironmentError(
                f"free-threaded builds exist for CPython 3.13 and newer, not "
                f"{self.implementation} {self.python} — remove free-threaded or use "
                "python = '3.13' or newer",
                "free-threaded",
            )
        for key, _ in self.marker_overrides:
            if key not in MARKER_KEYS:
                hint = _did_you_mean(key, MARKER_KEYS) or " — use one of " + ", ".join(MARKER_KEYS)
                raise InvalidEnvironmentError(f"{key!r} is not a PEP 508 marker{hint}", "markers")

    def python_version(self) -> Version:
        """The target's Python version as written (``Version("3.12")`` for ``"3.12"``)."""
        return Version(self.python)

    def python_full_version(self) -> str:
        """``X.Y.Z``; a version written ``X.Y`` counts as ``X.Y.0`` (the oldest of its line)."""
        return _full_version(self.python)

    def markers(self) -> dict[str, str]:
        """All 11 PEP 508 marker values of the target, with ``marker_overrides`` applied."""
        return dict(_markers(self))

    def tags(self) -> tuple[Tag, ...]:
        """Every wheel tag the target accepts, best first (pip's preference order)."""
        return _tags(self)

    def wheel_rank(self, filename: str) -> int | None:
        """The best (lowest) rank of the wheel's tags in :meth:`tags`; None if none fits.

        A filename that is not a valid wheel name also gives None.
        """
        seen = _RANKS_SEEN.get(id(self))
        if seen is None or seen[0] is not self:
            seen = _seen_ranks(self)
        wheel_tags = _wheel_tags(filename)
        if wheel_tags is None:
            return None
        # The tags are those of the name's last three fields (parse_wheel_filename's
        # parse_tag of them): wheels of every project share a few such tag sets.
        # (a valid name has at least four dashes)
        cut = filename.rindex("-", 0, filename.rindex("-", 0, filename.rindex("-")))
        tag_set = filename[cut + 1 : -4]
        ranked = seen[2]
        if tag_set in ranked:
            return ranked[tag_set]
        ranks = seen[1]
        found = [ranks[t] for t in wheel_tags if t in ranks]
        rank = min(found) if found else None
        if len(ranked) >= _RANKED_MAX:
            ranked.clear()
        ranked[tag_set] = rank
        return rank

    def tag_set_rank(self, tag_set: str) -> int | None:
        """:meth:`wheel_rank` for the tag part of a wheel filename (``cp312-cp312-win_amd64``,
        compressed sets allowed); None if none fits or the tags are not valid."""
        wheel_tags = _tag_set(tag_set)
        if wheel_tags is None:
            return None
        ranks = _ranks(self)
        found = [ranks[t] for t in wheel_tags if t in ranks]
        return min(found) if found else None

    def accepts_requires_python(self, requires_python: str | None) -> bool:
        """Whether the target's full Python version satisfies ``Requires-Python``.

        None, empty, or an invalid specifier accepts (lenient, like pip).
        """
        if not requires_python or not requires_python.strip():
            return True
        return _python_fits(requires_python, self.python_full_version())


# A resolution asks these of the same few thousand filenames and specifiers again and
# again, for every environment: parsed once per process.


@functools.lru_cache(maxsize=1 << 12)
def _tag_set(tag_set: str) -> frozenset[Tag] | None:
    try:
        return parse_tag(tag_set)
    except ValueError:  # InvalidTag
        return None


@functools.lru_cache(maxsize=1 << 16)
def _wheel_tags(filename: str) -> frozenset[Tag] | None:
    try:
        return parse_wheel_filename(filename)[3]
    except InvalidWheelFilename:
        return None


@functools.lru_cache(maxsize=1 << 14)
def _python_fits(requires_python: str, version: str) -> bool:
    try:
        spec = SpecifierSet(requires_python)
    except InvalidSpecifier:
        return True
    return spec.contains(version, prereleases=True)


@functools.lru_cache(maxsize=256)
def _full_version(python: str) -> str:
    """``X.Y.Z`` of a valid Python version as written (every wheel and ``Requires-Python``
    check of a resolution asks for it)."""
    major, minor, micro = _parse_python(python)
    return f"{major}.{minor}.{micro}"


def _parse_python(python: str) -> tuple[int, int, int]:
    match = _PYTHON_RE.fullmatch(python)
    if match is None:
        shown = python if len(python) <= 40 else python[:40] + "…"
        raise InvalidPythonError(
            f"{shown!r} is not a Python version — write '3.Y' or '3.Y.Z' (3.5 or newer) "
            "or '2.7.Z', e.g. '3.12', '3.9.18' or '2.7.18'"
        )
    major, minor = match.group(1).split(".")
    return int(major), int(minor), int(match.group(2) or 0)


def _abi(env: Environment, major: int, minor: int) -> str:
    """The CPython ABI tag: ``cp27mu`` on Linux (UCS-4, as every Linux distribution built
    2.7), ``cp27m`` elsewhere, ``cpXYm`` before 3.8, ``cpXYt`` free-threaded."""
    nodot = f"{major}{minor}"
    if env.free_threaded:
        return f"cp{nodot}t"
    if major == 2:
        return f"cp{nodot}" + ("mu" if _family(env.platform) == "linux" else "m")
    return f"cp{nodot}" + ("m" if minor < 8 else "")


@functools.lru_cache(maxsize=256)
def _markers(env: Environment) -> tuple[tuple[str, str], ...]:
    family = _family(env.platform)
    impl_name, impl_python = _IMPLEMENTATIONS[env.implementation]
    full = env.python_full_version()
    impl_version = full if env.implementation == "cp" else _PYPY_VERSION
    if full.startswith("2."):
        # Python 2 has no sys.implementation: its pip (packaging) sees "" and "0".
        impl_name, impl_version = "", "0"
    values = {
        "implementation_name": impl_name,
        "implementation_version": impl_version,
        "os_name": "nt" if family == "windows" else "posix",
        "platform_machine": _machine(env.platform),
        "platform_python_implementation": impl_python,
        "platform_release": "",
        "platform_system": {"windows": "Windows", "macos": "Darwin"}.get(family, "Linux"),
        "platform_version": "",
        "python_full_version": full,
        "python_version": ".".join(full.split(".")[:2]),
        "sys_platform": {"windows": "win32", "macos": "darwin"}.get(family, "linux"),
    }
    if full.startswith("2.") and family == "linux":
        values["sys_platform"] = "linux2"  # Python 3.3 dropped the kernel major version
    values.update(env.marker_overrides)
    return tuple(sorted(values.items()))


def _family(platform: str) -> str:
    if platform in _WINDOWS_MACHINE:
        return "windows"
    if platform.startswith("macosx_"):
        return "macos"
    return "linux"


def _machine(platform: str) -> str:
    if platform in _WINDOWS_MACHINE:
        return _WINDOWS_MACHINE[platform]
    for pattern in (_MANYLINUX_RE, _LEGACY_RE, _MUSL_RE, _MAC_RE):
        match = pattern.fullmatch(platform)
        if match is not None:
            return match.group(match.lastindex or 0)
    raise AssertionError(platform)  # unreachable: validated in __post_init__


@functools.lru_cache(maxsize=256)
def _tags(env: Environment) -> tuple[Tag, ...]:
    major, minor, _ = _parse_python(env.python)
    version = (major, minor)
    nodot = f"{major}{minor}"
    platforms = _platforms(env.platform)
    if env.implementation == "cp":
        abi = _abi(env, major, minor)
        interpreter = f"cp{nodot}"
        specific = list(cpython_tags(version, abis=[abi], platforms=platforms))
    else:
        interpreter = f"pp{nodot}"
        abis = [f"pypy{nodot}_pp73"]
        specific = list(generic_tags(interpreter, abis=abis, platforms=platforms))
    generic = compatible_tags(version, interpreter=interpreter, platforms=platforms)
    return tuple(dict.fromkeys([*specific, *generic]))


@functools.lru_cache(maxsize=256)
def _ranks(env: Environment) -> dict[Tag, int]:
    return {tag: rank for rank, tag in enumerate(_tags(env))}


# id(env) -> (env, _ranks(env)): an Environment's hash (a dataclass's, over its fields) is
# made in Python on each call, and a rebuild ranks ~100 000 wheels for its environments
# (the entry holds the environment so that its id stays its own).
# The third member: a wheel name's tag set ("py3-none-any") -> its rank there (None
# included), as ranked before: a rebuild ranks each kept pin's wheels twice per environment
# (its resolution, then the lock's source builds: 47 000 calls at 5 000 projects), each
# rank looking the wheel's tags up in the environment's ranks (a hash made in Python per
# tag), while most wheels share a few tag sets.
_RANKS_SEEN: dict[int, tuple[Environment, dict[Tag, int], dict[str, int | None]]] = {}
_RANKED_MAX = 1 << 12  # tag sets remembered per environment (then forgotten at once)


def _seen_ranks(env: Environment) -> tuple[Environment, dict[Tag, int], dict[str, int | None]]:
    seen = _RANKS_SEEN.get(id(env))
    if seen is not None and seen[0] is env:
        return seen
    seen = (env, _ranks(env), {})
    if len(_RANKS_SEEN) >= 256:  # (as many as _ranks keeps)
        _RANKS_SEEN.clear()
    _RANKS_SEEN[id(env)] = seen
    return seen


@functools.lru_cache(maxsize=256)
def _platforms(platform: str) -> tuple[str, ...]:
    """Every platform tag a target whose newest tag is ``platform`` accepts, best first."""
    if platform in _WINDOWS_MACHINE:
        return (platform,)
    if match := _MANYLINUX_RE.fullmatch(platform):
        return _manylinux(int(match.group(1)), match.group(2), platform)
    if match := _LEGACY_RE.fullmatch(platform):
        alias, arch = match.groups()
        if arch not in _X86 and alias != "manylinux2014":
            raise InvalidPlatformError(
                f"{alias} exists for x86_64 and i686 only, not {arch!r} — "
                f"did you mean 'manylinux2014_{arch}'?"
            )
        return _manylinux(_ALIAS_GLIBC[alias][1], arch, platform)
    if match := _MUSL_RE.fullmatch(platform):
        arch = _check_arch(match.group(2), LINUX_ARCHS, _LINUX_ARCH_FIX, platform)
        return tuple(f"musllinux_1_{m}_{arch}" for m in range(int(match.group(1)), -1, -1))
    if match := _MAC_RE.fullmatch(platform):
        major, minor = int(match.group(1)), int(match.group(2))
        arch = _check_arch(match.group(3), MAC_ARCHS, _MAC_ARCH_FIX, platform)
        if not ((major == 10 and 4 <= minor <= 16) or (11 <= major <= 99 and minor == 0)):
            raise InvalidPlatformError(
                f"{platform!r} names no macOS release with wheels — macOS 11+ is "
                f"'macosx_X_0_{arch}' (e.g. 'macosx_14_0_{arch}'), older is 'macosx_10_Y_{arch}'"
            )
        if arch == "arm64" and major == 10:
            raise InvalidPlatformError(
                f"macOS on arm64 starts at 11.0, not {major}.{minor} — "
                "did you mean 'macosx_11_0_arm64'?"
            )
        return tuple(mac_platforms((major, minor), arch))
    raise InvalidPlatformError(_unknown_platform(platform))


def _manylinux(glibc_minor: int, arch: str, platform: str) -> tuple[str, ...]:
    arch = _check_arch(arch, LINUX_ARCHS, _LINUX_ARCH_FIX, platform)
    oldest = 5 if arch in _X86 else 17
    if glibc_minor < oldest:
        raise InvalidPlatformError(
            f"{platform!r} is older than any {arch} manylinux (glibc 2.{oldest}) — "
            f"did you mean 'manylinux_2_{oldest}_{arch}'?"
        )
    result: list[str] = []
    for minor in range(glibc_minor, oldest - 1, -1):
        result.append(f"manylinux_2_{minor}_{arch}")
        if alias := _LEGACY_MANYLINUX.get((2, minor)):
            result.append(f"{alias}_{arch}")
    return tuple(result)


def _check_arch(arch: str, known: tuple[str, ...], fixes: dict[str, str], platform: str) -> str:
    if arch in known:
        return arch
    fixed = fixes.get(arch) or next(iter(difflib.get_close_matches(arch, known, 1)), None)
    if fixed is not None:
        fix = platform[: len(platform) - len(arch)] + fixed
        raise InvalidPlatformError(
            f"{platform!r} has an unknown architecture {arch!r} — did you mean {fix!r}?"
        )
    raise InvalidPlatformError(
        f"{platform!r} has an unknown architecture {arch!r} — use one of {', '.join(known)}"
    )


def _unknown_platform(platform: str) -> str:
    """The message for a string that matches no platform tag form, with a suggestion."""
    shown = platform if len(platform) <= 60 else platform[:60] + "…"
    if platform.startswith("linux_"):
        arch = _LINUX_ARCH_FIX.get(platform[6:], platform[6:])
        arch = arch if arch in LINUX_ARCHS else "x86_64"
        return (
            f"{shown!r} is a build-host-only tag that indexes do not serve — use the newest "
            f"manylinux tag the target's glibc allows, e.g. 'manylinux_2_28_{arch}'"
        )
    if platform == "any":
        return (
            "'any' is not a target platform (pure-Python wheels fit every target) — "
            "name the target's newest tag, e.g. 'manylinux_2_28_x86_64'"
        )
    lowered = platform.lower().replace("-", "_").replace(".", "_")
    if lowered != platform:
        try:
            _platforms(lowered)
        except InvalidPlatformError:
            pass
        else:
            return f"{shown!r} is not a wheel platform tag — did you mean {lowered!r}?"
    guess = _guess(lowered)
    if guess is None:
        return (
            f"{shown!r} is not a wheel platform tag — use the target's newest tag, e.g. "
            "'manylinux_2_28_x86_64', 'musllinux_1_2_x86_64', 'macosx_14_0_arm64', 'win_amd64'"
        )
    return f"{shown!r} is not a wheel platform tag — did you mean {guess!r}?"


def _guess(text: str) -> str | None:
    arm = any(word in text for word in ("arm", "aarch", "m1", "m2", "apple"))
    if any(word in text for word in ("mac", "darwin", "osx", "apple")):
        return f"macosx_14_0_{'x86_64' if 'x86' in text or 'intel' in text else 'arm64'}"
    if "win" in text:
        if arm:
            return "win_arm64"
        return "win32" if ("32" in text or "x86" in text) and "64" not in text else "win_amd64"
    if not any(
        word in text for word in ("linux", "musl", "alpine", "x86", "amd64", "arm", "aarch")
    ):
        return None
    arch = "aarch64" if arm else "x86_64"
    if "musl" in text or "alpine" in text:
        return f"musllinux_1_2_{arch}"
    return f"manylinux_2_28_{arch}"


def _did_you_mean(word: str, choices: tuple[str, ...] | list[str]) -> str:
    close = difflib.get_close_matches(word, choices, 1)
    return f" — did you mean {close[0]!r}?" if close else ""


def current_environment(name: str) -> Environment:
    """This interpreter as a target: its Python, implementation and newest platform tag.

    The platform is the first tag ``packaging.tags.platform_tags()`` yields here (the newest
    manylinux/musllinux for this glibc/musl, the macOS version and arch, the Windows arch);
    build-host-only ``linux_*`` tags are skipped.
    """
    implementation = {"cpython": "cp", "pypy": "pp"}.get(sys.implementation.name)
    if implementation is None:
        raise InvalidEnvironmentError(
            f"{sys.implementation.name!r} is not supported — run morgan with CPython or PyPy",
            "implementation",
        )
    platform = next((p for p in host_platform_tags() if not p.startswith("linux_")), None)
    if platform is None:
        raise InvalidPlatformError(
            "this machine has no manylinux/musllinux/macOS/Windows platform tag — "
            "use 'morgan env add NAME --python V --platform TAG'"
        )
    version = ".".join(str(part) for part in sys.version_info[:3])
    free_threaded = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
    return Environment(name, version, platform, implementation, free_threaded)
