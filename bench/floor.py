"""The least time any client can take to fetch what the bench's environments need.

Two things bound a cold build from below on the fake upstream, and neither alone is the floor:

- **bytes**: every needed file crosses the shared link at the bandwidth cap;
- **round trips**: a project's files are known only from its page, and the project only from
  its parent's metadata. With ``d`` the project's dependency depth (the spec's requirements
  are 0), its page can be asked for no sooner than ``2d`` latencies after the start (each
  level above it is a page then a ``.metadata``), so the first byte of its files arrives
  ``(2d + 2)`` latencies after the start at best.

So the bytes of the files at depth ``d`` or deeper cannot start before ``(2d + 2) × latency``,
and the floor is ``max over d of (2d + 2) × latency + bytes(depth ≥ d) / bandwidth``: at
``d = 0`` the bandwidth floor plus two round trips, at the deepest level the dependency
chain's round trips plus its files. Startup, CPU and disk are the client's own and not in it.

Which files are needed comes from the graph (bench/graph.py), for each environment: from the
requirements down, each project reached (markers evaluated) takes the newest release with a
wheel the environment accepts and its best wheel, the choice pip and Morgan make on this
graph (it has no conflicting specifiers); the union over environments is the needed set,
each file at the least depth any environment reaches it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from bench.graph import Graph, Release
from morgan.environments import Environment


@dataclass(frozen=True, slots=True)
class Floor:
    """The floor of a cold build and what it is made of."""

    seconds: float
    needed_bytes: int
    files: int
    depth: int  # the deepest dependency level reached (the requirements are 0)
    bytes_only: float  # needed bytes / bandwidth: the floor without round trips


def _wheel_name(rel: Release, tag: str) -> str:
    return f"{rel.name.replace('-', '_')}-{rel.version}-{tag}.whl"


def needed_files(graph: Graph, environments: Sequence[Environment]) -> dict[str, int]:
    """filename → least dependency depth, for every file some environment needs."""
    releases: dict[str, list[Release]] = {}
    for rel in graph.releases:
        releases.setdefault(canonicalize_name(rel.name), []).append(rel)
    for rels in releases.values():
        rels.sort(key=lambda r: Version(r.version), reverse=True)
    needed: dict[str, int] = {}
    for env in environments:
        markers = {**env.markers(), "extra": ""}
        seen: set[str] = set()
        todo = deque((canonicalize_name(r), 0) for r in graph.requirements)
        while todo:
            name, depth = todo.popleft()
            if name in seen:
                continue
            seen.add(name)
            for rel in releases.get(name, ()):
                if not env.accepts_requires_python(rel.requires_python):
                    continue
                ranked = [
                    (rank, tag)
                    for tag in rel.wheels
                    if (rank := env.wheel_rank(_wheel_name(rel, tag))) is not None
                ]
                if not ranked:
                    continue
                filename = _wheel_name(rel, min(ranked)[1])
                needed[filename] = min(depth, needed.get(filename, depth))
                for text in rel.requires_dist:
                    req = Requirement(text)
                    if req.marker is None or req.marker.evaluate(markers):
                        todo.append((canonicalize_name(req.name), depth + 1))
                break
    return needed


def cold_floor(
    graph: Graph,
    environments: Sequence[Environment],
    files_dir: Path,
    *,
    latency: float,
    bandwidth: float,
) -> Floor:
    """The floor of a cold build of ``graph`` (files served from ``files_dir``) at
    ``latency`` seconds per request and ``bandwidth`` bytes/s (0: no cap)."""
    needed = needed_files(graph, environments)
    sizes = {name: (files_dir / name).stat().st_size for name in needed}
    depth = max(needed.values(), default=0)
    total = sum(sizes.values())
    seconds = 0.0
    for d in range(depth + 1):
        deeper = sum(size for name, size in sizes.items() if needed[name] >= d)
        transfer = deeper / bandwidth if bandwidth else 0.0
        seconds = max(seconds, (2 * d + 2) * latency + transfer)
    return Floor(
        seconds=seconds,
        needed_bytes=total,
        files=len(needed),
        depth=depth,
        bytes_only=total / bandwidth if bandwidth else 0.0,
    )
