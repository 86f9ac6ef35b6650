"""The server's miss record, read back: what clients asked for and the mirror lacks, and
which clients use the mirror at all (``morgan missing``, ``morgan clients``).

``server.py`` appends one JSON line per 404 for a project or file under a Simple index and
one per new User-Agent per day, to ``FILE`` and (after rotation) ``FILE.1`` — see
``MissRecord`` there. Lines that do not parse are skipped: the record is advice, written by
a server that may have been stopped mid-line.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from packaging.utils import canonicalize_name

from morgan.catalog import release_version
from morgan.clients import describe
from morgan.environments import Environment
from morgan.errors import UsageError


@dataclass(frozen=True, slots=True)
class Entry:
    time: datetime
    kind: str  # "project" | "file" | "client"
    agent: str
    project: str = ""
    file: str = ""
    view: str = ""  # "" (the union index), "env/NAME", "indexes/NAME[/env/NAME]"


@dataclass
class Want:
    """One project clients asked for, with what they asked and who asked."""

    project: str
    requests: int = 0
    versions: set[str] = field(default_factory=set)
    files: set[str] = field(default_factory=set)
    views: set[str] = field(default_factory=set)
    clients: dict[str, int] = field(default_factory=dict)  # label → requests
    environments: set[str] = field(default_factory=set)  # spec environments they match
    whole: bool = False  # the project page itself was asked for
    last: datetime | None = None

    @property
    def requirement(self) -> str:
        """``name``, or ``name==V`` when only files of one version were asked for."""
        if not self.whole and len(self.versions) == 1:
            return f"{self.project}=={next(iter(self.versions))}"
        return self.project


def parse_since(text: str) -> datetime:
    """``YYYY-MM-DD`` or an ISO 8601 time (UTC unless it says otherwise)."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"--since {text!r} is not a date: use YYYY-MM-DD or an ISO time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def read_record(path: Path, since: datetime | None = None) -> list[Entry]:
    """Every entry of ``path.1`` then ``path`` at or after ``since``; UsageError if neither
    exists."""
    files = [p for p in (path.with_name(path.name + ".1"), path) if p.is_file()]
    if not files:
        raise UsageError(
            f"no miss record at {path}: serve the mirror with server.py or 'morgan serve' "
            "first, or pass --record FILE (server.py prints where it records)"
        )
    out = []
    for p in files:
        with p.open(encoding="utf-8", errors="replace") as fh:
            for line in fh:
                entry = _entry(line)
                if entry is not None and (since is None or entry.time >= since):
                    out.append(entry)
    return out


def _entry(line: str) -> Entry | None:
    try:
        data = json.loads(line)
        moment = datetime.strptime(data["time"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        return Entry(
            moment,
            str(data["kind"]),
            str(data.get("agent", "-")),
            str(data.get("project", "")),
            str(data.get("file", "")),
            str(data.get("view", "")),
        )
    except (ValueError, KeyError, TypeError):
        return None


def wants(entries: Iterable[Entry], environments: Sequence[Environment]) -> list[Want]:
    """The projects asked for, most requested first."""
    by_name: dict[str, Want] = {}
    described: dict[str, tuple[str, list[str]]] = {}
    for e in entries:
        if e.kind not in ("project", "file") or not e.project:
            continue
        name = canonicalize_name(e.project)
        want = by_name.setdefault(name, Want(name))
        want.requests += 1
        if e.kind == "project":
            want.whole = True
        else:
            want.files.add(e.file)
            version = release_version(e.file.removesuffix(".metadata"))
            if version is not None:
                want.versions.add(str(version))
        if e.view:
            want.views.add(e.view)
        if e.agent not in described:
            described[e.agent] = describe(e.agent, environments)
        label, envs = described[e.agent]
        want.clients[label] = want.clients.get(label, 0) + 1
        want.environments.update(envs)
        want.last = e.time if want.last is None else max(want.last, e.time)
    return sorted(by_name.values(), key=lambda w: (-w.requests, w.project))


@dataclass
class Seen:
    """One kind of client (by environment label) and what it did."""

    label: str
    environments: list[str]
    agents: set[str] = field(default_factory=set)
    days: set[str] = field(default_factory=set)
    misses: int = 0
    last: datetime | None = None


def clients(entries: Iterable[Entry], environments: Sequence[Environment]) -> list[Seen]:
    """Clients grouped by what they are (Python, implementation, platform), busiest first."""
    by_label: dict[str, Seen] = {}
    for e in entries:
        label, envs = describe(e.agent, environments)
        seen = by_label.setdefault(label, Seen(label, envs))
        seen.agents.add(e.agent)
        seen.days.add(e.time.strftime("%Y-%m-%d"))
        if e.kind != "client":
            seen.misses += 1
        seen.last = e.time if seen.last is None else max(seen.last, e.time)
    return sorted(by_label.values(), key=lambda s: (-len(s.days), -s.misses, s.label))
