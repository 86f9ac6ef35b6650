"""``mirror.toml`` -> a frozen, validated :class:`Spec`.

Every mistake becomes one :class:`~morgan.errors.SpecError` of the form
``FILE:LINE: context.path: what is wrong — how to fix it``. ``FILE`` is the spec's path
relative to the current directory when it lies below it, else as given. Nothing is read
besides the spec itself and the existence of its ``private`` paths.
"""

from __future__ import annotations

import datetime
import difflib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar, cast
from urllib.parse import urlsplit

import blake3
from packaging.markers import UndefinedEnvironmentName
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion

from morgan.cooldown import ExcludeNewer, parse_exclude_newer
from morgan.credentials import redact_url, split_userinfo
from morgan.environments import (
    ENV_NAME_RE,
    Environment,
    InvalidEnvironmentError,
    folder_name_problem,
)
from morgan.errors import SpecError
from morgan.indexes import NamedIndex, digest_data, parse_indexes
from morgan.spec_paths import SpecPaths
from morgan.toml_reader import KeyPath, display_path, kind, short
from morgan.universal import UniversalTarget, parse_groups
from rules.model import NormalizedName

__all__ = ["DEFAULT_INDEX_URL", "Policy", "Spec", "Upstream", "load_spec", "parse_spec"]

DEFAULT_INDEX_URL = "https://pypi.org/simple/"
_PROJECT_NAME_RE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?")

_TOP_KEYS = (
    "requirements",
    "locks",
    "private",
    "upstream",
    "upstreams",
    "environments",
    "policy",
    "output",
    "build",
    "universal",
    "indexes",
)
_ENV_KEYS = ("python", "platform", "implementation", "free-threaded", "markers")
MAX_URL_LENGTH = 2000
MAX_REQUIREMENTS = 10_000  # different requirement strings; repeats cost nothing
# Whitespace and control characters (C0, DEL, C1): never part of a URL a user means.
_URL_FORBIDDEN = re.compile(r"[\x00-\x20\x7f-\x9f]")
# Every PEP 508 variable, to find markers that name none (their values do not matter).
_PROBE_MARKERS = dict.fromkeys(
    [
        "os_name",
        "sys_platform",
        "platform_machine",
        "platform_python_implementation",
        "platform_system",
        "platform_release",
        "platform_version",
        "python_version",
        "python_full_version",
        "implementation_name",
        "implementation_version",
    ],
    "0",
)
_POLICY_KEYS = (
    "prereleases",
    "yanked",
    "sdists",
    "build-dependencies",
    "versions",
    "exclude-newer",
    "advisories",
    "vulnerable",
    "allow-quarantined",
    "require-provenance",
)
_PRERELEASES = ("if-needed", "allow", "never")
_YANKED = ("skip", "pinned")
_VULNERABLE = ("warn", "refuse")


@dataclass(frozen=True, slots=True)
class Upstream:
    """An index to mirror from; ``projects`` pins those projects to it (empty: any)."""

    name: str
    index_url: str  # normalized to end with "/"; never holds credentials
    projects: frozenset[NormalizedName] = frozenset()
    # From user:password@ in index-url; kept in memory only (see morgan.credentials).
    credentials: tuple[str, str] | None = field(default=None, repr=False, compare=False)
    exclude_newer: ExcludeNewer | None = None  # overrides [policy] exclude-newer


class _Routable(Protocol):
    @property
    def projects(self) -> frozenset[str]: ...


_U = TypeVar("_U", bound=_Routable)


def routed(upstreams: Sequence[_U], name: str) -> list[_U]:
    """The upstreams a build asks about ``name``, in spec order: those that pin it, else
    every one that pins nothing. The one routing rule: the catalog and the early root
    pages (morgan.commands.build) both call it."""
    pinned = [u for u in upstreams if name in u.projects]
    return pinned or [u for u in upstreams if not u.projects]


@dataclass(frozen=True, slots=True)
class Policy:
    """What to mirror beyond the files resolution needs (see docs/mirror-toml.md)."""

    prereleases: Literal["if-needed", "allow", "never"] = "if-needed"
    yanked: Literal["skip", "pinned"] = "pinned"
    sdists: bool = True
    build_dependencies: bool = True
    versions: Literal["needed", "all"] | int = "needed"
    exclude_newer: ExcludeNewer | None = None
    advisories: Path | None = None  # an OSV export (zip) checked against every selection
    vulnerable: Literal["warn", "refuse"] = "warn"
    allow_quarantined: frozenset[NormalizedName] = frozenset()  # PEP 792 quarantine waived
    require_provenance: frozenset[NormalizedName] = frozenset()  # PEP 740 provenance needed


@dataclass(frozen=True, slots=True)
class WheelBuilds:
    """``[build]``: the environments to build wheels for from sdists (opt-in; the one place
    Morgan runs package code — see docs/wheel-building.md)."""

    wheels: tuple[str, ...] = ()
    timeout: int = 900  # seconds per sdist


@dataclass(frozen=True, slots=True)
class Spec:
    """A loaded ``mirror.toml``; all paths absolute."""

    path: Path
    requirements: tuple[Requirement, ...]
    upstreams: tuple[Upstream, ...]
    environments: tuple[Environment, ...]
    policy: Policy
    private: tuple[Path, ...]
    output: Path
    locks: tuple[Path, ...] = ()  # pylock.toml / uv.lock files mirrored exactly
    build: WheelBuilds = WheelBuilds()
    # [universal.NAME]: groups of environments resolved as one, for lock-file tools
    universal: tuple[UniversalTarget, ...] = ()
    # [indexes.NAME]: named indexes beside the default one (morgan/indexes.py)
    indexes: tuple[NamedIndex, ...] = ()

    @property
    def targets(self) -> tuple[Environment, ...]:
        """What the build resolves: the environments, then the universal views."""
        return (*self.environments, *self.universal)

    @property
    def all_private(self) -> tuple[Path, ...]:
        """Every private path of the default index and the named ones: names no index
        ever asks an upstream for."""
        return tuple(dict.fromkeys([*self.private, *(p for i in self.indexes for p in i.private)]))

    @property
    def all_requirements(self) -> tuple[Requirement, ...]:
        """The default index's requirements, then each named index's: every root."""
        return (*self.requirements, *(r for i in self.indexes for r in i.requirements))

    def index(self, name: str) -> NamedIndex | None:
        return next((i for i in self.indexes if i.name == name), None)

    def digest(self) -> str:
        """blake3 hex of canonical JSON of everything but ``path`` and ``output``.

        ``private`` paths count relative to the spec's folder, so the digest does not
        change when the workspace moves.
        """
        base = self.path.parent
        data = {
            "requirements": [str(r) for r in self.requirements],
            "upstreams": [
                {"name": u.name, "index-url": u.index_url, "projects": sorted(u.projects)}
                | ({"exclude-newer": u.exclude_newer.text} if u.exclude_newer else {})
                for u in self.upstreams
            ],
            "environments": [
                {
                    "name": e.name,
                    "python": e.python,
                    "platform": e.platform,
                    "implementation": e.implementation,
                    "free-threaded": e.free_threaded,
                    "markers": dict(sorted(e.marker_overrides)),
                }
                for e in self.environments
            ],
            "policy": {
                "prereleases": self.policy.prereleases,
                "yanked": self.policy.yanked,
                "sdists": self.policy.sdists,
                "build-dependencies": self.policy.build_dependencies,
                "versions": self.policy.versions,
            }
            # Only when set: specs without it keep the digest (and the lock) they had.
            | ({"exclude-newer": p.text} if (p := self.policy.exclude_newer) else {})
            | (
                {
                    "advisories": _relative_posix(self.policy.advisories, base),
                    "vulnerable": self.policy.vulnerable,
                }
                if self.policy.advisories
                else {}
            )
            | (
                {"allow-quarantined": sorted(self.policy.allow_quarantined)}
                if self.policy.allow_quarantined
                else {}
            )
            | (
                {"require-provenance": sorted(self.policy.require_provenance)}
                if self.policy.require_provenance
                else {}
            ),
            "private": [_relative_posix(p, base) for p in self.private],
            # What private folders and input locks hold is part of the spec: a new wheel
            # dropped into a private folder or an edited lock must not be ignored.
            "private-files": _content_digests(self.private, base),
            "locks": _content_digests(self.locks, base),
        }
        if self.build.wheels:  # absent otherwise: locks written before [build] stay fresh
            data["build"] = {"wheels": list(self.build.wheels), "timeout": self.build.timeout}
        if self.universal:  # only when present: older specs keep their digest (and lock)
            data["universal"] = [
                {"name": u.name, "environments": [m.name for m in u.members]}
                for u in self.universal
            ]
        if self.indexes:  # only when present: specs without [indexes] keep their digest
            data["indexes"] = digest_data(
                self.indexes,
                lambda p: _relative_posix(p, base),
                lambda ps: _content_digests(ps, base),
            )
        canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return str(blake3.blake3(canonical.encode()).hexdigest())


def listed_files(paths: tuple[Path, ...]) -> list[Path]:
    """The files ``paths`` name: files themselves, folders searched recursively (sorted)."""
    files: list[Path] = []
    for path in paths:
        files.extend(sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path])
    return files


def _content_digests(paths: tuple[Path, ...], base: Path) -> list[list[str]]:
    out = []
    for f in listed_files(paths):
        try:
            hasher = blake3.blake3()
            with f.open("rb") as handle:
                while chunk := handle.read(1 << 20):
                    hasher.update(chunk)
            digest = hasher.hexdigest()
        except OSError as exc:
            digest = f"unreadable: {exc.strerror}"
        out.append([_relative_posix(f, base), str(digest)])
    return out


def load_spec(path: Path) -> Spec:
    """Read and validate the spec at ``path``; raise :class:`SpecError` on any mistake."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(
            f"{display_path(path)}: no such file — run 'morgan init' or pass -C DIR "
            "to the workspace that holds mirror.toml"
        ) from None
    except UnicodeDecodeError as exc:
        raise SpecError(
            f"{display_path(path)}: not UTF-8 text ({exc.reason}) — save it as UTF-8"
        ) from None
    except OSError as exc:
        raise SpecError(
            f"{display_path(path)}: cannot read: {exc.strerror} — check the path"
        ) from None
    return parse_spec(text, path)


def parse_spec(text: str, path: Path) -> Spec:
    """Validate spec ``text`` read from ``path`` (used for messages and relative paths)."""
    return _Parser(text, path).spec()


def _relative_posix(path: Path, base: Path) -> str:
    try:
        return path.relative_to(base).as_posix()
    except ValueError:
        return path.as_posix()


class _Parser(SpecPaths):
    def spec(self) -> Spec:
        data = self.load()
        self.check_keys(data, _TOP_KEYS, ())
        environments = self.environments(data)
        return Spec(
            path=self.path.absolute(),
            requirements=self.requirements(data),
            upstreams=self.upstreams(data),
            environments=environments,
            policy=self.policy(data),
            private=self.private(data),
            output=self.output(data),
            locks=self.locks(data),
            build=self.wheel_builds(data),
            universal=parse_groups(self, data, environments),
            indexes=parse_indexes(self, data),
        )

    # -- sections -----------------------------------------------------------------------------
    def requirements(self, data: dict[str, Any]) -> tuple[Requirement, ...]:
        example = 'requirements = ["requests>=2.24"]'
        # With input locks or named indexes, the default index may be empty.
        optional = bool(data.get("locks") or data.get("indexes"))
        if "requirements" not in data:
            if optional:
                return ()
            self.fail((), f"no requirements — add {example} at the top of the file")
        items = self.strings(data["requirements"], ("requirements",), example)
        if not items and not optional:
            self.fail(("requirements",), f"the list is empty — add at least one, e.g. {example}")
        # Each distinct text is parsed once and each distinct requirement kept once (in
        # first-seen order): a list repeating one line 100 000 times loads in linear time.
        parsed: dict[str, Requirement] = {}
        unique: dict[str, Requirement] = {}
        for index, item in enumerate(items):
            if item not in parsed:
                if len(parsed) >= MAX_REQUIREMENTS:
                    self.fail(
                        ("requirements", index),
                        f"more than {MAX_REQUIREMENTS} different requirements — split them over "
                        "several specs (each with its own mirror)",
                    )
                requirement = parsed[item] = self.requirement(item, ("requirements", index))
                unique.setdefault(str(requirement), requirement)
        return tuple(unique.values())

    def requirement(self, text: str, at: KeyPath) -> Requirement:
        try:
            requirement = Requirement(text)
        except InvalidRequirement as exc:
            lines = str(exc).splitlines()
            what = lines[0][0].lower() + lines[0][1:]
            column = lines[-1].find("^") - 3 if len(lines) >= 3 else 0
            semicolon = text.find(";")
            if 0 <= semicolon < column - 1:
                self.fail(
                    at,
                    f"invalid marker in {short(text)}: {what} at column {column} — "
                    "write markers like \"sys_platform == 'win32'\" (PEP 508)",
                )
            self.fail(
                at,
                f"{short(text)} is not a valid requirement: {what} at column {column} — "
                "write it like 'requests>=2.24' or 'xonsh[full]~=0.11.0' (PEP 508)",
            )
        if requirement.url is not None:
            self.fail(
                at,
                f"{short(text)} is a direct URL requirement, which no index can serve — "
                "use a name and version, or put the file in private",
            )
        if requirement.marker is not None:
            try:
                requirement.marker.evaluate(environment={**_PROBE_MARKERS, "extra": ""})
            except UndefinedEnvironmentName as exc:
                self.fail(
                    at,
                    f"invalid marker in {short(text)}: {exc} is not a marker variable — "
                    "compare a variable such as python_version or sys_platform (PEP 508)",
                )
            except (InvalidVersion, ValueError, TypeError):
                pass  # depends on the values of each environment: decided when building
        return requirement

    def upstreams(self, data: dict[str, Any]) -> tuple[Upstream, ...]:
        if "upstream" in data and "upstreams" in data:
            self.fail(
                ("upstreams",),
                "both [upstream] and [[upstreams]] are given — keep one form: [upstream] for a "
                "single index, [[upstreams]] for several",
            )
        if "upstream" in data:
            table = self.table(
                data["upstream"], ("upstream",), f'[upstream] index-url = "{DEFAULT_INDEX_URL}"'
            )
            self.check_keys(table, ("index-url", "exclude-newer"), ("upstream",))
            url, credentials = self.index_url(table, ("upstream",))
            cutoff = self.exclude_newer(table, ("upstream",))
            return (Upstream("default", url, credentials=credentials, exclude_newer=cutoff),)
        if "upstreams" not in data:
            return (Upstream("pypi", DEFAULT_INDEX_URL),)
        items = data["upstreams"]
        example = f'[[upstreams]] name = "pypi" index-url = "{DEFAULT_INDEX_URL}"'
        if not isinstance(items, list) or not items:
            self.fail(
                ("upstreams",), f"expected one or more [[upstreams]] tables — write {example}"
            )
        result: list[Upstream] = []
        owner: dict[NormalizedName, str] = {}
        for index, item in enumerate(items):
            at: KeyPath = ("upstreams", index)
            table = self.table(item, at, example)
            self.check_keys(table, ("name", "index-url", "projects", "exclude-newer"), at)
            if "name" not in table:
                self.fail(at, 'missing name — add name = "pypi" (any short label)')
            name = self.string(table["name"], (*at, "name"), 'name = "pypi"')
            if not ENV_NAME_RE.fullmatch(name):
                self.fail(
                    (*at, "name"),
                    f"{short(name)} is not a valid upstream name — use letters, digits, "
                    "'.', '_', '-', starting with a letter or digit, at most 64 characters",
                )
            if any(u.name == name for u in result):
                self.fail((*at, "name"), f"{name!r} names two upstreams — give each its own name")
            url, credentials = self.index_url(table, at)
            projects = self.projects(table.get("projects", []), (*at, "projects"), name, owner)
            cutoff = self.exclude_newer(table, at)
            result.append(Upstream(name, url, projects, credentials, exclude_newer=cutoff))
        return tuple(result)

    def index_url(self, table: dict[str, Any], at: KeyPath) -> tuple[str, tuple[str, str] | None]:
        """The index URL without userinfo (ending in "/"), and the credentials it held."""
        if "index-url" not in table:
            self.fail(at, f'missing index-url — add index-url = "{DEFAULT_INDEX_URL}"')
        at = (*at, "index-url")
        url = self.string(table["index-url"], at, f'index-url = "{DEFAULT_INDEX_URL}"')
        shown = short(redact_url(url))
        if len(url) > MAX_URL_LENGTH:
            self.fail(
                at, f"{shown} is longer than {MAX_URL_LENGTH} characters — give a shorter URL"
            )
        if _URL_FORBIDDEN.search(url):
            self.fail(
                at,
                f"{shown} contains a space or control character — remove it (percent-encode it "
                "if the index really needs it)",
            )
        try:
            clean, credentials = split_userinfo(url)
            parts = urlsplit(clean)
            parts.port  # noqa: B018 - parsing the port validates it (ValueError when bad)
            host = parts.hostname or ""
            host.encode("idna")
        except (ValueError, UnicodeError) as exc:
            self.fail(
                at,
                f"{shown} is not a valid URL ({exc}) — give the index's Simple API root, "
                f"e.g. {DEFAULT_INDEX_URL!r}",
            )
        if parts.scheme not in ("http", "https") or not host:
            self.fail(
                at,
                f"{shown} is not an http(s) URL — use the index's Simple API root, "
                f"e.g. {DEFAULT_INDEX_URL!r}",
            )
        if parts.query or parts.fragment:
            self.fail(
                at,
                f"{shown} has a query or fragment, which project URLs cannot carry — "
                "give the Simple API root alone",
            )
        return (clean if clean.endswith("/") else clean + "/"), credentials

    def projects(
        self, value: object, at: KeyPath, upstream: str, owner: dict[NormalizedName, str]
    ) -> frozenset[NormalizedName]:
        names: set[NormalizedName] = set()
        for index, item in enumerate(self.strings(value, at, 'projects = ["internal-lib"]')):
            if not _PROJECT_NAME_RE.fullmatch(item):
                self.fail(
                    (*at, index),
                    f"{short(item)} is not a project name — write only the name, "
                    "e.g. 'internal-lib'",
                )
            name = NormalizedName(canonicalize_name(item))
            if name in owner:
                self.fail(
                    (*at, index),
                    f"{item!r} is already pinned to upstream {owner[name]!r} — "
                    "pin each project to one upstream",
                )
            owner[name] = upstream
            names.add(name)
        return frozenset(names)

    def environments(self, data: dict[str, Any]) -> tuple[Environment, ...]:
        example = '[environments.linux] python = "3.12" platform = "manylinux_2_28_x86_64"'
        if "environments" not in data:
            self.fail((), f"no environments — add a target, e.g. {example}")
        tables = self.table(data["environments"], ("environments",), example)
        if not tables:
            self.fail(("environments",), f"no environments — add a target, e.g. {example}")
        seen: dict[str, str] = {}
        result: list[Environment] = []
        for name, value in tables.items():
            at: KeyPath = ("environments", name)
            problem = folder_name_problem(name, "an environment name", "env/<name>/")
            if problem is not None:
                self.fail(at, problem)
            if name.lower() in seen:
                self.fail(
                    at,
                    f"{name!r} and {seen[name.lower()]!r} differ only by case, and environment "
                    "names become folder names — rename one of them",
                )
            seen[name.lower()] = name
            result.append(self.environment(name, self.table(value, at, example), at))
        return tuple(sorted(result, key=lambda e: e.name))

    def environment(self, name: str, table: dict[str, Any], at: KeyPath) -> Environment:
        self.check_keys(table, _ENV_KEYS, at)
        for key, example in (("python", '"3.12"'), ("platform", '"manylinux_2_28_x86_64"')):
            if key not in table:
                self.fail(at, f"missing {key} — add {key} = {example}")
        python = self.string(table["python"], (*at, "python"), 'python = "3.12"')
        platform = self.string(table["platform"], (*at, "platform"), 'platform = "win_amd64"')
        implementation = self.string(
            table.get("implementation", "cp"), (*at, "implementation"), 'implementation = "cp"'
        )
        free = self.boolean(
            table.get("free-threaded", False), (*at, "free-threaded"), "free-threaded"
        )
        markers = self.table(
            table.get("markers", {}), (*at, "markers"), 'markers = { platform_release = "23.0" }'
        )
        overrides: list[tuple[str, str]] = []
        for key, value in sorted(markers.items()):
            text = self.string(value, (*at, "markers", key), f'{key} = "..."')
            overrides.append((key, text))
        try:
            return Environment(name, python, platform, implementation, free, tuple(overrides))
        except InvalidEnvironmentError as exc:
            # A bad name is the table's own fault: point at the table, not a "name" key.
            where: KeyPath = at if exc.field == "name" else (*at, exc.field)
            if exc.field == "markers":
                bad = next((k for k, _ in overrides if str(exc).startswith(repr(k))), None)
                where = (*where, bad) if bad is not None else where
            self.fail(where, str(exc))

    def policy(self, data: dict[str, Any]) -> Policy:
        at: KeyPath = ("policy",)
        table = self.table(data.get("policy", {}), at, "[policy] sdists = true")
        self.check_keys(table, _POLICY_KEYS, at)
        prereleases = self.choice(table, "prereleases", _PRERELEASES, "if-needed")
        yanked = self.choice(table, "yanked", _YANKED, "pinned")
        sdists = self.boolean(table.get("sdists", True), (*at, "sdists"), "sdists")
        build = table.get("build-dependencies", True)
        build_deps = self.boolean(build, (*at, "build-dependencies"), "build-dependencies")
        versions = table.get("versions", "needed")
        if not (versions in ("needed", "all") or (type(versions) is int and versions >= 1)):
            shown = short(versions) if isinstance(versions, str) else str(versions)
            if isinstance(versions, (bool, list, dict)) or not isinstance(versions, (str, int)):
                shown = kind(versions)
            self.fail(
                (*at, "versions"),
                f'{shown} is not a versions policy — use "needed" (what resolution needs), '
                '"all", or a whole number N >= 1 (the latest N per requirement)',
            )
        return Policy(
            prereleases=cast("Literal['if-needed', 'allow', 'never']", prereleases),
            yanked=cast("Literal['skip', 'pinned']", yanked),
            sdists=sdists,
            build_dependencies=build_deps,
            versions=cast("Literal['needed', 'all'] | int", versions),
            exclude_newer=self.exclude_newer(table, at),
            advisories=self.advisories(table),
            allow_quarantined=self.projects(
                table.get("allow-quarantined", []), (*at, "allow-quarantined"), "", {}
            ),
            require_provenance=self.projects(
                table.get("require-provenance", []), (*at, "require-provenance"), "", {}
            ),
            vulnerable=cast(
                "Literal['warn', 'refuse']", self.choice(table, "vulnerable", _VULNERABLE, "warn")
            ),
        )

    def advisories(self, table: dict[str, Any]) -> Path | None:
        if "advisories" not in table:
            return None
        at: KeyPath = ("policy", "advisories")
        text = self.string(table["advisories"], at, 'advisories = "osv-pypi.zip"')
        path = self.path_value(text, at, "the OSV export")
        if not path.is_file():
            self.fail(
                at,
                f"{short(text)} is not a file (looked for {path}) — give the path of the OSV "
                "export for PyPI (all.zip), relative to the folder of mirror.toml",
            )
        return path

    def exclude_newer(self, table: dict[str, Any], at: KeyPath) -> ExcludeNewer | None:
        if "exclude-newer" not in table:
            return None
        where: KeyPath = (*at, "exclude-newer")
        value = table["exclude-newer"]
        if isinstance(value, datetime.date):  # unquoted TOML date or date-time
            value = value.isoformat()  # a local (offset-less) time is refused below
        text = self.string(value, where, 'exclude-newer = "7 days"')
        try:
            return parse_exclude_newer(text)
        except ValueError as exc:
            self.fail(where, str(exc))

    def wheel_builds(self, data: dict[str, Any]) -> WheelBuilds:
        at: KeyPath = ("build",)
        example = '[build] wheels = ["linux"]'
        table = self.table(data.get("build", {}), at, example)
        self.check_keys(table, ("wheels", "timeout"), at)
        wheels = self.strings(table.get("wheels", []), (*at, "wheels"), example)
        names = [e.name for e in self.environments(data)]
        for index, name in enumerate(wheels):
            if name not in names:
                self.fail(
                    (*at, "wheels", index),
                    f"{short(name)} is not an environment of this spec — use one of "
                    + ", ".join(map(repr, names)),
                )
        timeout = table.get("timeout", 900)
        if type(timeout) is not int or timeout < 1:
            self.fail((*at, "timeout"), f"{short(str(timeout))} is not a number of seconds >= 1")
        return WheelBuilds(tuple(dict.fromkeys(wheels)), timeout)

    def choice(
        self, table: dict[str, Any], key: str, allowed: tuple[str, ...], default: str
    ) -> str:
        at: KeyPath = ("policy", key)
        value = self.string(table.get(key, default), at, f'{key} = "{default}"')
        if value not in allowed:
            close = difflib.get_close_matches(value, allowed, 1, 0.6)
            hint = (
                f"did you mean {close[0]!r}?"
                if close
                else "use one of " + ", ".join(map(repr, allowed))
            )
            self.fail(at, f"{short(value)} is not a {key} policy — {hint}")
        return value
