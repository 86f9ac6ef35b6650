"""Requirements from files people already have: requirements.txt, pyproject.toml, an
installed Python environment, a PEP 751 ``pylock.toml`` and a ``uv.lock``.

Each reader returns PEP 508 requirement strings (and, for what it had to leave out, one-line
notes), never touching the network and never running code from the packages named. Errors
are :class:`~morgan.errors.UsageError` naming the file, the line where there is one, and the
fix.
"""

from __future__ import annotations

import json
import re
import subprocess
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from morgan.errors import UsageError

__all__ = [
    "Inputs",
    "from_environment",
    "from_lock_file",
    "from_pyproject",
    "from_requirements_file",
]

# pip freeze leaves these out too: they belong to the installer, not the application.
_INSTALLER_PACKAGES = frozenset({"pip"})
# pip options a requirements file may hold, and why Morgan does not take them over.
_INDEX_OPTION = re.compile(
    r"^(-i|--index-url|--extra-index-url|-f|--find-links|--trusted-host|--no-index)\b"
)
_BINARY_OPTION = re.compile(r"^(--no-binary|--only-binary|--prefer-binary)\b")
_PRE_OPTION = re.compile(r"^--pre\s*$")
_HASH_OPTION = re.compile(r"\s--hash\b")


def _option_note(where: str, line: str) -> str:
    """The note for a pip option line that ``morgan add`` does not copy into the spec."""
    option = line.split(maxsplit=1)[0].split("=", 1)[0]
    if _INDEX_OPTION.match(line):
        return (
            f"{where}: ignored {option!r}: the mirror's upstreams are the spec's [upstream] "
            "tables — set index-url there if this index should be mirrored"
        )
    if _BINARY_OPTION.match(line):
        return (
            f"{where}: ignored {option!r}: the mirror keeps every fitting wheel and the sdist "
            "([policy] sdists); clients choose with their own --no-binary/--only-binary"
        )
    return f"{where}: ignored option {option!r}: it does not change what is mirrored"


@dataclass
class Inputs:
    """Requirements gathered from one source, plus notes about what was skipped and why.

    ``prereleases`` names where a requirements file said ``--pre`` (pip then lets every
    requirement match prereleases): ``morgan add`` maps it to ``[policy] prereleases``."""

    requirements: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    prereleases: list[str] = field(default_factory=list)


# -- requirements.txt -----------------------------------------------------------------------


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """(first line number, line) with ``\\`` continuations joined and comments removed."""
    out: list[tuple[int, str]] = []
    pending = ""
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        # A comment starts at '#' at the line start or after whitespace (pip's rule).
        line = re.sub(r"(^|\s+)#.*$", "", raw)
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        joined = (pending + line).strip()
        pending = ""
        if joined:
            out.append((start, joined))
    if pending.strip():
        out.append((start, pending.strip()))
    return out


def from_requirements_file(path: Path, _seen: frozenset[Path] = frozenset()) -> Inputs:
    """Requirements of a pip requirements file, following ``-r`` includes.

    Index options (``--index-url``, ``--find-links`` …), binary options and per-requirement
    ``--hash`` options are dropped with a note each (Morgan's upstreams are set in the
    spec); ``--pre`` is returned in ``prereleases``; constraints files (``-c``) are noted
    and skipped; editable (``-e``), path and URL requirements cannot be
    served by an index and are an error naming the line.
    """
    resolved = path.resolve()
    if resolved in _seen:
        raise UsageError(f"{path}: includes itself through -r — remove the cycle")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{path}: no such requirements file — check the path") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read ({exc}) — pass a UTF-8 text file") from None
    result = Inputs()
    for number, line in _logical_lines(text):
        where = f"{path}:{number}"
        include = re.match(r"^(-r|--requirement)(\s*=?\s*)(\S+)$", line)
        if include:
            inner = from_requirements_file(path.parent / include.group(3), _seen | {resolved})
            result.requirements += inner.requirements
            result.notes += inner.notes
            result.prereleases += inner.prereleases
            continue
        if re.match(r"^(-c|--constraint)\b", line):
            result.notes.append(f"{where}: skipped constraints file {line.split()[-1]!r}")
            continue
        if re.match(r"^(-e|--editable)\b", line):
            raise UsageError(
                f"{where}: {line!r} is an editable install, which no index can serve — "
                "remove it (or build its wheel and list it in the spec's private list)"
            )
        if _PRE_OPTION.match(line):
            result.prereleases.append(where)
            continue
        if line.startswith("-"):
            result.notes.append(_option_note(where, line))
            continue
        # "name>=1 --hash=sha256:…": per-requirement options follow the requirement.
        requirement_text = re.split(r"\s+--?[a-z]", line, maxsplit=1)[0].strip()
        if _HASH_OPTION.search(line):
            result.notes.append(
                f"{where}: ignored --hash of {requirement_text!r}: morgan build checks every "
                "file against its upstream sha256 (pin the version to keep the same files)"
            )
        elif requirement_text != line:
            result.notes.append(f"{where}: ignored the options after {requirement_text!r}")
        result.requirements.append(_requirement(requirement_text, where))
    return result


def _requirement(text: str, where: str) -> str:
    try:
        requirement = Requirement(text)
    except InvalidRequirement as exc:
        first = str(exc).splitlines()[0]
        raise UsageError(
            f"{where}: {text!r} is not a PEP 508 requirement ({first}) — fix or remove the line"
        ) from None
    if requirement.url is not None:
        raise UsageError(
            f"{where}: {text!r} is a direct URL requirement, which no index can serve — "
            "use a name and version, or put the file in the spec's private list"
        )
    return str(requirement)


# -- pyproject.toml -------------------------------------------------------------------------


def from_pyproject(path: Path, extras: Sequence[str] = ()) -> Inputs:
    """``[project].dependencies`` plus the ``optional-dependencies`` of ``extras``.

    ``extras`` may hold ``"*"`` for all of them. Dynamic dependencies are an error: they
    can only be known by running the project's build backend, which Morgan never does.
    """
    data = _load_toml(path)
    project = data.get("project")
    if not isinstance(project, dict):
        raise UsageError(f"{path}: no [project] table — only PEP 621 metadata can be read")
    dynamic = project.get("dynamic", [])
    where = f"{path}: project"
    result = Inputs()
    if "dependencies" in dynamic:
        raise UsageError(
            f"{where}.dependencies is dynamic (computed by the build backend) — list the "
            "requirements with 'morgan add REQ…' or from a requirements file instead"
        )
    result.requirements += [
        _requirement(str(r), f"{where}.dependencies") for r in project.get("dependencies", [])
    ]
    optional = project.get("optional-dependencies", {})
    if extras and "optional-dependencies" in dynamic:
        raise UsageError(f"{where}.optional-dependencies is dynamic — list the extras' needs")
    names = {canonicalize_name(k): k for k in optional}
    wanted = sorted(names) if "*" in extras else [canonicalize_name(e) for e in extras]
    for extra in wanted:
        if extra not in names:
            known = ", ".join(sorted(names)) or "none"
            raise UsageError(
                f"{where}: no extra {extra!r} in optional-dependencies (known: {known})"
            )
        key = names[extra]
        result.requirements += [
            _requirement(str(r), f"{where}.optional-dependencies.{key}") for r in optional[key]
        ]
    return result


def _load_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file — check the path") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: not valid TOML ({exc}) — fix the file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read ({exc}) — pass a UTF-8 TOML file") from None


# -- an installed environment ---------------------------------------------------------------

# Run by the *target* interpreter with -I (isolated: no site dir of the cwd, no PYTHON*
# variables). It only reads installed metadata; it imports nothing from those packages.
_LIST_SCRIPT = """
import json, importlib.metadata as m
out = []
for d in m.distributions():
    name = d.metadata["Name"]
    if not name:
        continue
    try:
        direct = json.loads(d.read_text("direct_url.json") or "{}")
    except ValueError:
        direct = {"url": "?"}
    kind = "vcs" if "vcs_info" in direct else "dir" if "dir_info" in direct else (
        "archive" if direct else "index")
    out.append([name, d.version, kind])
print(json.dumps(out))
"""


def from_environment(python: str) -> Inputs:
    """``name==version`` for every distribution installed in the environment of ``python``.

    Like ``pip freeze``: pip itself is left out. Distributions installed from a local
    folder (editable installs included) or version control cannot come from an index and
    are noted; those installed from a wheel or sdist file are pinned by name and version.
    """
    try:
        proc = subprocess.run(
            [python, "-I", "-c", _LIST_SCRIPT],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    except FileNotFoundError:
        raise UsageError(
            f"--from-env {python}: no such interpreter — pass the path of the environment's "
            "python, e.g. .venv/bin/python"
        ) from None
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UsageError(f"--from-env {python}: cannot run it ({exc})") from None
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise UsageError(f"--from-env {python}: listing packages failed: {last}")
    try:
        rows = json.loads(proc.stdout)
    except json.JSONDecodeError:
        raise UsageError(f"--from-env {python}: unexpected output from the interpreter") from None
    result = Inputs()
    seen: set[str] = set()
    for name, version, kind in sorted(rows, key=lambda r: canonicalize_name(r[0])):
        key = canonicalize_name(name)
        if key in _INSTALLER_PACKAGES or key in seen:
            continue
        seen.add(key)
        if kind in ("vcs", "dir"):
            result.notes.append(
                f"skipped {name} {version}: installed from a local folder or version control"
            )
            continue
        result.requirements.append(f"{key}=={version}")
    return result


# -- lock files -----------------------------------------------------------------------------


def from_lock_file(path: Path) -> Inputs:
    """``name==version`` for every package pinned by a ``pylock.toml`` or a ``uv.lock``.

    Packages without a version (directories, VCS, direct archives, the project itself in a
    uv.lock) cannot come from an index and are noted.
    """
    data = _load_toml(path)
    result = Inputs()
    if path.name == "uv.lock" or "package" in data:
        packages = data.get("package", [])
        kind = "uv.lock"
    elif "packages" in data and "lock-version" in data:
        packages = data["packages"]
        kind = "pylock.toml"
    else:
        raise UsageError(
            f"{path}: neither a pylock.toml (PEP 751) nor a uv.lock — pass one of those"
        )
    if not isinstance(packages, list):
        raise UsageError(f"{path}: packages is not a list of tables — is it a {kind}?")
    pins: dict[str, str] = {}
    for index, package in enumerate(packages):
        if not isinstance(package, dict) or not isinstance(package.get("name"), str):
            raise UsageError(f"{path}: package #{index + 1} has no name — is it a {kind}?")
        name = canonicalize_name(package["name"])
        version = package.get("version")
        source = package.get("source", {})
        from_index = (
            "registry" in source
            if kind == "uv.lock" and isinstance(source, dict)
            else not any(k in package for k in ("vcs", "directory", "archive"))
        )
        if not isinstance(version, str) or not from_index:
            result.notes.append(f"skipped {name}: not pinned to an index release in {path.name}")
            continue
        previous = pins.setdefault(name, version)
        if previous != version:
            # A lock may pin two versions under different markers; one spec requirement
            # per project cannot say that, so the first one wins and the user is told.
            result.notes.append(
                f"{name}: {path.name} also pins {version}; only {previous} is added — add "
                "the other with a marker if a target needs it"
            )
    result.requirements = [f"{n}=={v}" for n, v in sorted(pins.items())]
    return result
