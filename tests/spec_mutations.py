"""Seeded mutations of valid ``mirror.toml`` specs: the hostile-spec corpus.

:func:`mutations` gives a reproducible list of :class:`Mutation` (an id naming the operator,
and the spec text). Each operator class is applied in turn to one of a few valid base specs,
so every class appears as often as every other. The texts are meant to be loaded and built:
the only absolute paths they name are on kernel pseudo-filesystems or not writable, and
relative ones climb at most two folders.
"""

from __future__ import annotations

import copy
import json
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

SEED = 14

BASES: list[dict[str, Any]] = [
    {
        "requirements": [
            "requests>=2.24",
            "xonsh[full]~=0.11.0",
            "pywin32; sys_platform == 'win32'",
        ],
        "upstream": {"index-url": "https://pypi.org/simple/"},
        "environments": {"linux": {"python": "3.12", "platform": "manylinux_2_28_x86_64"}},
    },
    {
        "requirements": ["attrs", "internal-lib>=1"],
        "upstreams": [
            {
                "name": "corp",
                "index-url": "https://pypi.corp.example/simple/",
                "projects": ["internal-lib"],
            },
            {"name": "pypi", "index-url": "https://pypi.org/simple/"},
        ],
        "environments": {
            "mac": {
                "python": "3.13",
                "platform": "macosx_14_0_arm64",
                "markers": {"platform_release": "23.0"},
            },
            "windows": {"python": "3.12", "platform": "win_amd64"},
        },
        "policy": {"prereleases": "allow", "yanked": "skip", "sdists": False, "versions": 3},
        "output": {"path": "out/mirror"},
    },
    {
        "requirements": ["demo==1.0; python_version >= '3.8'"],
        "private": ["wheels"],
        "environments": {
            "musl": {
                "python": "3.11.4",
                "platform": "musllinux_1_2_aarch64",
                "free-threaded": False,
            },
        },
        "policy": {"build-dependencies": False, "versions": "all"},
    },
]

UNICODE = [
    "\u202e",
    "\u200b",
    "é",
    "😀",
    "\x00",
    "\x1b",
    "\r",
    "\n",
    "\u2028",
    "\ufeff",
    "\x7f",
    "ＡＢ",
    "ß",
    "e\u0301",
    "\t",
    "\\",
    '"',
    "'",
    "\U0010ffff",
    "İ",
]
OTHER_VALUES: list[object] = [
    42,
    -1,
    0,
    3.5,
    math.inf,
    math.nan,
    True,
    False,
    [],
    {},
    "x",
    "",
    [1, "a"],
    {"a": 1},
    datetime(2020, 1, 1, 12),
    date(1999, 12, 31),
    2**63 - 1,
    -(2**63),
    [[]],
    {"": ""},
]
MARKERS = [
    "demo; python_version >= '3' and",
    "demo; extra == '\u0000'",
    "demo; os_name == ",
    "demo; platform_release >= '1.0'",
    "demo; python_full_version < '3.8.0rc1'",
    "demo; implementation_version == 'x'",
    "demo;",
    "demo; (((((python_version > '3')))))",
    "demo; unknown_marker == '1'",
    "demo; python_version ~= '3'",
    "demo; 'a' in 'abc'",
    "demo; python_version >= '3' or" * 50,
    "demo[" + "x," * 300 + "y]",
    "demo ; sys_platform == 'win32'",
]
URLS = [
    "https://[::1",
    "https://[::1]:8080/simple/",
    "https://u:p@h:99999/",
    "http://h\u0000x/",
    "https://h/\r\nX-Injected: 1",
    "ftp://h/simple/",
    "file:///etc/passwd",
    "https://",
    "//h/simple",
    "https://h/simple/?q=1",
    "https://h/simple/#frag",
    "https://user:pa%40ss@h/simple/",
    "https://tok@h/",
    "https://ex\u00e4mple.org/simple/",
    "https://a..b/",
    "http://h:0/",
    "https://" + "a" * 3000 + "/",
    "https://h/ simple",
    "https://h:-1/",
    "javascript:alert(1)",
    "https://h/%00/",
    "HTTPS://H/SIMPLE",
    "https://h\t/",
]
DIRECT = [
    "demo @ file:///etc/passwd",
    "demo @ https://h/demo-1.0-py3-none-any.whl",
    "demo@git+https://h/r.git",
    "demo @ ./local",
    "demo @ " + "x" * 500,
    "@ https://h/x.whl",
]
ENV_NAMES = [
    "..",
    "../../x",
    "a/b",
    "CON",
    "",
    " ",
    "é",
    "x" * 100,
    "a\\b",
    ".hidden",
    "-x",
    "nul",
    "a\u0000b",
    "Linux",
    "con.txt",
    "a" * 64,
]
PATHS = [
    "\u0000",
    "d/" * 2000,
    "/proc/self/x",
    "/dev/null",
    "/dev/zero",
    "/sys/x",
    "/",
    ".",
    "..",
    "../..",
    "../out",
    "../../out",
    "mirror.toml",
    "wheels/../mirror.toml",
    "x" * 300,
    "a\nb",
    "out/\u202emirror",
    "~/mirror",
    "out//mirror/",
    " ",
    "mirror.toml/sub",
    "wheels",
]
PRIVATE = [
    "/dev/zero",
    "/dev/null",
    "/proc/self/mem",
    "/proc/self/fd/0",
    "missing",
    "\u0000",
    "wheels",
    "mirror.toml",
    "../..",
    "x" * 5000,
    "/sys/kernel",
]


@dataclass(frozen=True)
class Mutation:
    """One hostile spec: ``id`` is ``NNN-operator``."""

    id: str
    text: str


# -- a small TOML writer (tables last, inline tables inside values) --------------------------


def _value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return (
            "nan"
            if math.isnan(value)
            else ("inf" if value > 0 else "-inf")
            if math.isinf(value)
            else repr(value)
        )
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(value)


def emit(data: dict[str, Any], prefix: str = "") -> str:
    """``data`` as TOML: plain keys first, then ``[tables]`` and ``[[arrays of tables]]``."""
    lines = []
    tables: list[tuple[str, dict[str, Any]]] = []
    for key, value in data.items():
        name = json.dumps(key)
        if (
            isinstance(value, dict)
            and value
            and all(isinstance(v, dict) for v in value.values())
            and key == "environments"
        ):
            tables.extend((f"{prefix}{name}.{json.dumps(k)}", v) for k, v in value.items())
        elif isinstance(value, dict):
            tables.append((f"{prefix}{name}", value))
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            tables.extend((f"[{prefix}{name}]", v) for v in value)
        else:
            lines.append(f"{name} = {_value(value)}")
    out = "\n".join(lines) + "\n"
    for header, table in tables:
        inner = dict(table.items())
        out += (
            f"\n[{header}]\n"
            + "\n".join(f"{json.dumps(k)} = {_value(v)}" for k, v in inner.items())
            + "\n"
        )
    return out


# -- helpers ---------------------------------------------------------------------------------


def _leaves(data: object, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path in ``data`` (tables, arrays and their items)."""
    found = [path] if path else []
    if isinstance(data, dict):
        for key, value in data.items():
            found.extend(_leaves(value, (*path, key)))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            found.extend(_leaves(value, (*path, index)))
    return found


def _set(data: dict[str, Any], path: tuple[Any, ...], value: object) -> None:
    target: Any = data
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value


def _get(data: dict[str, Any], path: tuple[Any, ...]) -> object:
    target: Any = data
    for part in path:
        target = target[part]
    return target


def _string_paths(data: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [p for p in _leaves(data) if isinstance(_get(data, p), str)]


# -- the operators ---------------------------------------------------------------------------


def truncation(rng: random.Random, base: dict[str, Any]) -> str:
    text = emit(base)
    return text[: rng.randrange(len(text))]


def wrong_type(rng: random.Random, base: dict[str, Any]) -> str:
    for _ in range(rng.randint(1, 2)):
        _set(base, rng.choice(_leaves(base)), copy.deepcopy(rng.choice(OTHER_VALUES)))
    return emit(base)


def unicode(rng: random.Random, base: dict[str, Any]) -> str:
    path = rng.choice(_string_paths(base))
    text = str(_get(base, path))
    at = rng.randint(0, len(text))
    _set(base, path, text[:at] + rng.choice(UNICODE) + text[at:])
    return emit(base)


def huge_value(rng: random.Random, base: dict[str, Any]) -> str:
    huge = rng.choice(
        ["x" * 100_000, "3." + "9" * 5000, "d/" * 2000, 10**30, -(10**30), 1e308, "é" * 20_000]
    )
    _set(base, rng.choice(_leaves(base)), huge)
    return emit(base)


def deep_nesting(rng: random.Random, base: dict[str, Any]) -> str:
    depth = rng.choice([5, 31, 33, 100, 500, 2000])
    opening, closing = rng.choice([("[", "]"), ("{a = ", "}")])
    key = rng.choice(["requirements", "private", "junk", "output"])
    return emit(base) + f"\n[deep]\n{key} = " + opening * depth + "1" + closing * depth + "\n"


def duplicate_key(rng: random.Random, base: dict[str, Any]) -> str:
    text = emit(base)
    lines = [line for line in text.splitlines() if line.strip()]
    return text + "\n" + rng.choice(lines) + "\n"


def odd_marker(rng: random.Random, base: dict[str, Any]) -> str:
    base["requirements"] = [*base["requirements"], rng.choice(MARKERS)]
    return emit(base)


def odd_url(rng: random.Random, base: dict[str, Any]) -> str:
    url = rng.choice(URLS)
    if "upstreams" in base and rng.random() < 0.5:
        base["upstreams"][0]["index-url"] = url
    else:
        base.pop("upstreams", None)
        base["upstream"] = {"index-url": url}
    return emit(base)


def direct_reference(rng: random.Random, base: dict[str, Any]) -> str:
    base["requirements"] = [rng.choice(DIRECT), *base["requirements"]]
    return emit(base)


def escaping_env_name(rng: random.Random, base: dict[str, Any]) -> str:
    envs = base["environments"]
    first = next(iter(envs))
    envs[rng.choice(ENV_NAMES)] = envs.pop(first)
    return emit(base)


def odd_path(rng: random.Random, base: dict[str, Any]) -> str:
    choice = rng.random()
    if choice < 0.5:
        base["output"] = {"path": rng.choice(PATHS)}
    elif choice < 0.8:
        base["private"] = [rng.choice(PRIVATE)]
    else:
        base["locks"] = [rng.choice([*PRIVATE, "pylock.toml", "../pylock.toml"])]
    return emit(base)


def duplicated_requirements(rng: random.Random, base: dict[str, Any]) -> str:
    base["requirements"] = base["requirements"] * rng.choice([2, 100, 3000])
    return emit(base)


def byte_flips(rng: random.Random, base: dict[str, Any]) -> str:
    chars = list(emit(base))
    for _ in range(rng.randint(1, 4)):
        chars[rng.randrange(len(chars))] = rng.choice("[]{}=\"'#\n\\.,:xé\x00 ")
    return "".join(chars)


OPERATORS: list[Callable[[random.Random, dict[str, Any]], str]] = [
    truncation,
    wrong_type,
    unicode,
    huge_value,
    deep_nesting,
    duplicate_key,
    odd_marker,
    odd_url,
    direct_reference,
    escaping_env_name,
    odd_path,
    duplicated_requirements,
    byte_flips,
]


def mutations(count: int = 325, seed: int = SEED) -> list[Mutation]:
    """``count`` hostile specs, the same for the same seed."""
    rng = random.Random(seed)  # noqa: S311 - a reproducible corpus, not a secret
    out = []
    for index in range(count):
        operator = OPERATORS[index % len(OPERATORS)]
        base = copy.deepcopy(rng.choice(BASES))
        out.append(Mutation(f"{index:03d}-{operator.__name__}", operator(rng, base)))
    return out
