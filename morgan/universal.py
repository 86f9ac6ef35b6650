"""Universal views: one index for the lock-file tools (``uv lock``, ``poetry lock``, ``pdm lock``).

pip and ``uv pip`` install for the machine they run on, so a per-environment view
(``env/<name>/simple/``) is exactly what they need. A lock-file tool resolves for every
platform at once: it follows each dependency whose marker *could* hold for some interpreter
within the project's Python range — ``tzdata; sys_platform == "win32"`` even when locking on
Linux — and reads that dependency's metadata, so a view without it fails the lock ("no
versions of tzdata match"). Where the tool installs, it then takes only what the machine's
markers select.

A ``[universal.NAME]`` table in ``mirror.toml`` names a group of environments; the build
resolves the spec once more for the group as a whole, as a universal resolver does:

- a dependency is followed when its marker may hold for some Python of the group (every
  minor version between the oldest and the newest, any patch level) with *any* value of
  the other markers (``sys_platform``, ``platform_machine``, ``implementation_name`` …);
- a release is acceptable only when its ``Requires-Python`` admits every Python of the group
  (Poetry and PDM refuse others for the project's whole range; uv for its lower bound);
- its files are every wheel that fits some member environment, and the sdist; a release
  that no member can install (``pywin32`` for a Linux-only group) still gets one wheel,
  whose ``.metadata`` the tools read to lock it, or its sdist.

The result is served as ``env/NAME/simple/``, beside the environments' own views, so every
server (``server.py``, nginx, object storage) serves it without change.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from packaging.markers import Marker, UndefinedEnvironmentName
from packaging.tags import Tag
from packaging.version import InvalidVersion

from morgan.environments import (
    MARKER_KEYS,
    Environment,
    InvalidEnvironmentError,
    folder_name_problem,
)
from morgan.toml_reader import KeyPath, TomlReader, short

PLATFORM = "universal"  # what the lock records as a universal view's platform

_KNOWN = frozenset({"python_version", "python_full_version", "extra"})
_ATOM = re.compile(
    r'(?P<var>[a-z_]+) (?:==|!=|<=|>=|<|>|~=|===|in|not in) "(?P<value>[^"]*)"'
    r'|"(?P<rvalue>[^"]*)" (?:==|!=|<=|>=|<|>|~=|===|in|not in) (?P<rvar>[a-z_]+)'
)
_OTHER = "\x00"  # a value unlike every value a marker names: "none of those"
_MAX_PROBES = 4096  # beyond this many assignments a marker is simply followed


@dataclass(frozen=True, slots=True)
class UniversalTarget(Environment):
    """A group of environments resolved as one, for lock-file tools.

    ``python`` and ``platform`` are the oldest member's (so the value is a valid
    Environment); the methods the resolver asks answer for the whole group.
    """

    members: tuple[Environment, ...] = ()

    def accepts_requires_python(self, requires_python: str | None) -> bool:
        """Whether ``Requires-Python`` admits every member's Python."""
        return all(m.accepts_requires_python(requires_python) for m in self.members)

    def wheel_rank(self, filename: str) -> int | None:
        """The best rank the wheel has for any member; None when it fits none."""
        ranks = [r for m in self.members if (r := m.wheel_rank(filename)) is not None]
        return min(ranks) if ranks else None

    def tags(self) -> tuple[Tag, ...]:
        """Every tag some member accepts (members in order, each best first)."""
        return tuple(dict.fromkeys(t for m in self.members for t in m.tags()))

    def pythons(self) -> tuple[tuple[str, str], ...]:
        """(python_version, python_full_version) probes: every minor version from the
        oldest member's to the newest's (per major version), at its first and a late patch
        level, and each member's own full version."""
        minors: dict[int, list[int]] = {}
        for m in self.members:
            major, minor = m.python_version().release[:2]
            minors.setdefault(major, []).append(minor)
        probes = {
            (f"{major}.{minor}", f"{major}.{minor}.{patch}")
            for major, seen in minors.items()  # 2.7 and 3.x: each line on its own
            for minor in range(min(seen), max(seen) + 1)
            for patch in (0, 99)
        }
        probes |= {(m.markers()["python_version"], m.python_full_version()) for m in self.members}
        return tuple(sorted(probes))

    def may_hold(self, marker: Marker, extra: str) -> bool:
        """Whether ``marker`` holds for some Python of the group with some value of every
        other marker variable (what a universal resolver follows)."""
        return _may_hold(str(marker), extra, self.pythons())


@functools.lru_cache(maxsize=1 << 14)
def _may_hold(text: str, extra: str, pythons: tuple[tuple[str, str], ...]) -> bool:
    """Try every assignment that can change the outcome: for each variable other than the
    Python version, each value the marker compares it with, plus one value unlike all of
    them. Exact for ==, !=, in and not in; a comparison packaging cannot make (a version
    operator on a non-version) counts as holding, which follows the dependency."""
    marker = Marker(text)
    values: dict[str, set[str]] = {}
    for match in _ATOM.finditer(text):
        var = match.group("var") or match.group("rvar")
        value = match.group("value") if match.group("var") else match.group("rvalue")
        if var not in _KNOWN:
            values.setdefault(var, set()).add(value)
    names = sorted(values)
    choices = [[*sorted(values[n]), _OTHER] for n in names]
    if len(pythons) * _count(choices) > _MAX_PROBES:
        return True
    base: dict[str, str] = dict.fromkeys(MARKER_KEYS, "")
    for python_version, full in pythons:
        for combo in itertools.product(*choices):
            env = {
                **base,
                "implementation_version": full,
                **dict(zip(names, combo, strict=True)),
                "python_version": python_version,
                "python_full_version": full,
                "extra": extra,
            }
            try:
                if marker.evaluate(environment=env):
                    return True
            except (InvalidVersion, ValueError, TypeError):
                return True
    return False


def _count(choices: Sequence[Sequence[str]]) -> int:
    total = 1
    for c in choices:
        total *= len(c)
    return total


# -- mirror.toml: [universal.NAME] ------------------------------------------------------------

_EXAMPLE = '[universal.lockers] environments = ["linux", "windows"]'


def parse_groups(
    reader: TomlReader, data: Mapping[str, Any], environments: Sequence[Environment]
) -> tuple[UniversalTarget, ...]:
    """The spec's ``[universal.NAME]`` tables (``environments``: member names, default all)."""
    if "universal" not in data:
        return ()
    tables = reader.table(data["universal"], ("universal",), _EXAMPLE)
    by_name = {e.name: e for e in environments}
    taken = {e.name.lower(): e.name for e in environments}
    out: list[UniversalTarget] = []
    for name, value in tables.items():
        at: KeyPath = ("universal", name)
        table = reader.table(value, at, _EXAMPLE)
        reader.check_keys(table, ("environments",), at)
        problem = folder_name_problem(name, "a view name", "env/<name>/")
        if problem is not None:
            reader.fail(at, problem)
        if name.lower() in taken:
            reader.fail(
                at,
                f"{name!r} is already the name of environment {taken[name.lower()]!r}, and both "
                "would be served at env/<name>/ — rename the universal view",
            )
        taken[name.lower()] = name
        members_at: KeyPath = (*at, "environments")
        listed = reader.strings(table.get("environments", list(by_name)), members_at, _EXAMPLE)
        if not listed:
            reader.fail(members_at, "is empty — list environments, or leave it out for all")
        for index, member in enumerate(listed):
            if member not in by_name:
                known = ", ".join(sorted(by_name))
                reader.fail(
                    (*members_at, index),
                    f"{short(member)} is not an environment of this spec — use one of {known}",
                )
        members = tuple(by_name[m] for m in sorted(set(listed)))
        oldest = min(members, key=lambda m: (m.python_version(), m.name))
        try:
            target = UniversalTarget(
                name=name, python=oldest.python, platform=oldest.platform, members=members
            )
        except InvalidEnvironmentError as exc:
            reader.fail(at, str(exc).replace("environment name", "view name"))
        out.append(target)
    return tuple(sorted(out, key=lambda t: t.name))


def evaluate_marker(marker: Marker | None, env: Environment, extra: str) -> bool:
    """Evaluate with all 11 values of ``env``; a value packaging cannot compare keeps the edge."""
    if marker is None:
        return True
    if isinstance(env, UniversalTarget):
        return env.may_hold(marker, extra)
    try:
        return bool(marker.evaluate(environment={**env.markers(), "extra": extra}))
    except (InvalidVersion, ValueError, TypeError, UndefinedEnvironmentName):
        # A marker naming no variable ('a' in 'abc' reads 'abc' as one) keeps it too.
        # platform_release/platform_version are "" for a described target: comparing them
        # as versions fails; keeping the dependency mirrors more rather than too little.
        return True
