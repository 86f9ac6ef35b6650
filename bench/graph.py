"""A synthetic upstream shaped like real ones, published on the fake upstream.

Seeded and deterministic: the same `size` gives the same projects, versions, dependency
edges and file bytes every run, so runs compare. The shape:

- a few **hubs** (pure Python, several releases) that most projects depend on;
- **deep chains** (`chain-a-00 → chain-a-01 → …`), the worst case for a breadth-first walker;
- **native** projects with a wheel per CPython × platform (manylinux2014 and _2_28, musllinux,
  Windows 64/32, macOS arm64/x86_64) plus an sdist, some with abi3 wheels instead, two whose
  latest release dropped old-glibc wheels (old-glibc targets must take the previous release);
- **pure libraries** with 1–4 releases, a newest release needing Python ≥ 3.10 for some, a
  DAG of dependencies among them, environment markers and extras;
- **large** wheels (one per platform, up to 50 MB) for the streaming and bandwidth figures;
- **orphans** nobody requires (a mirror must not touch them);
- an **extra application** that only the add-one-requirement rebuild asks for, with two
  projects only it needs.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

from tests import dists
from tests.upstream import FakeUpstream

PYTHONS = ("cp39", "cp310", "cp311", "cp312", "cp313")
PLATFORMS = (
    "manylinux_2_17_x86_64.manylinux2014_x86_64",
    "manylinux_2_28_x86_64",
    "musllinux_1_2_x86_64",
    "win_amd64",
    "win32",
    "macosx_11_0_arm64",
    "macosx_10_12_x86_64",
)
NEW_GLIBC_ONLY = tuple(p for p in PLATFORMS if "2014" not in p)
ABI3_PLATFORMS = ("manylinux_2_17_x86_64.manylinux2014_x86_64", "win_amd64", "macosx_11_0_arm64")
MB = 1 << 20

# The project the add-one-requirement rebuild adds to the spec.
EXTRA_REQUIREMENT = "extra-app"


@dataclass(frozen=True, slots=True)
class Release:
    """One release to publish: wheel tags, an sdist, its metadata, large payloads per tag."""

    name: str
    version: str
    wheels: tuple[str, ...]
    requires_dist: tuple[str, ...] = ()
    requires_python: str | None = None
    provides_extra: tuple[str, ...] = ()
    payload: dict[str, int] = field(default_factory=dict)  # wheel tag -> payload bytes


@dataclass(frozen=True, slots=True)
class Graph:
    """The whole synthetic upstream and the spec's requirements for it."""

    releases: tuple[Release, ...]
    requirements: tuple[str, ...]

    @property
    def projects(self) -> int:
        return len({r.name for r in self.releases})

    @property
    def files(self) -> int:
        return sum(len(r.wheels) + 1 for r in self.releases)


def make_graph(
    size: int = 150, *, large: bool = True, seed: int = 7, max_depth: int | None = None
) -> Graph:
    """A graph of about `size` projects (at least 12) and ~10 files per project.

    `large` adds the big wheels (50, 30 and 20 MB); without it the graph is all small files.
    The chains hold about a fifth of the projects: three chains `size // 15` deep by default
    (the bench's historical shape), or, with `max_depth`, chains at most that deep and as many
    of them as it takes (real dependency graphs are 10-20 levels deep whatever their size).
    """
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not cryptography
    size = max(size, 12)
    n_hubs = max(2, size // 30)
    n_chains, depth = (3, max(2, size // 15)) if size >= 45 else (1, 3)
    if max_depth is not None and depth > max_depth:
        n_chains, depth = -(-n_chains * depth // max_depth), max_depth
    n_native = max(2, size // 7)
    n_orphans = max(1, size // 15)
    n_apps = max(2, size // 15)
    fixed = n_hubs + n_chains * depth + n_native + n_orphans + n_apps + 3 + int(large)
    n_libs = max(3, size - fixed)

    hubs = [f"hub-{i}" for i in range(n_hubs)]
    libs = [f"lib-{i:03d}" for i in range(n_libs)]
    natives = [f"native-{i:02d}" for i in range(n_native)]
    releases: list[Release] = []

    for hub in hubs:
        for version in ("1.0", "1.1", "2.0"):
            releases.append(Release(hub, version, ("py3-none-any",)))

    chain_heads = []
    for c in range(n_chains):
        names = [f"chain-{'abc'[c % 3]}{c // 3 or ''}-{i:02d}" for i in range(depth)]
        chain_heads.append(names[0])
        for i, name in enumerate(names):
            deps: list[str] = [f"{names[i + 1]}>=1"] if i + 1 < depth else []
            deps.append(rng.choice(hubs))
            for version in ("1.0", "1.1"):
                releases.append(Release(name, version, ("py3-none-any",), tuple(deps)))

    for i, name in enumerate(natives):
        hub_dep = (rng.choice(hubs),)
        if i % 5 == 4:  # abi3: one wheel per platform covers every Python
            abi3 = tuple(f"cp38-abi3-{p}" for p in ABI3_PLATFORMS)
            releases.append(Release(name, "1.0", abi3, hub_dep))
            releases.append(Release(name, "1.1", abi3, hub_dep))
            continue
        old_platforms = PLATFORMS[:4] + PLATFORMS[5:6]
        new_platforms = NEW_GLIBC_ONLY if i in (1, 2) else PLATFORMS
        old_tags = tuple(f"{py}-{py}-{p}" for py in PYTHONS[:3] for p in old_platforms)
        new_tags = tuple(f"{py}-{py}-{p}" for py in PYTHONS for p in new_platforms)
        releases.append(Release(name, "1.0", old_tags, hub_dep))
        releases.append(Release(name, "2.0", new_tags, hub_dep))

    for i, name in enumerate(libs):
        # Dependencies only point to later libraries (a DAG), plus hubs.
        later = libs[i + 1 :]
        deps = rng.sample(later, k=min(len(later), rng.choice((0, 1, 1, 2, 3))))
        deps += rng.sample(hubs, k=rng.choice((0, 1, 1, 2)))
        n_rel = rng.choice((1, 2, 2, 3, 4))
        for r in range(n_rel):
            newest = r == n_rel - 1
            releases.append(
                Release(
                    name,
                    f"{r + 1}.0",
                    ("py3-none-any",),
                    tuple(deps),
                    requires_python=">=3.10" if newest and n_rel > 1 and i % 4 == 0 else None,
                )
            )

    # Environment-specific projects, reached only through markers.
    releases.append(Release("winutil", "1.0", ("py3-none-any",)))
    releases.append(Release("backport-3-9", "1.0", ("py3-none-any",)))
    releases.append(Release("docs-only", "1.0", ("py3-none-any",)))
    if large:
        payload = {
            "cp38-abi3-manylinux_2_17_x86_64.manylinux2014_x86_64": 50 * MB,
            "cp38-abi3-win_amd64": 30 * MB,
            "cp38-abi3-macosx_11_0_arm64": 20 * MB,
        }
        releases.append(Release("bigmodel", "1.0", tuple(payload), payload=payload))

    for i in range(n_orphans):
        releases.append(Release(f"orphan-{i:02d}", "1.0", ("py3-none-any",)))

    requirements = []
    for i in range(n_apps):
        name = f"app-{i:02d}"
        deps = [chain_heads[i % len(chain_heads)], *rng.sample(hubs, k=min(2, len(hubs)))]
        deps += rng.sample(natives, k=min(len(natives), 2 + i % 3))
        deps += rng.sample(libs[: max(3, len(libs) // 2)], k=min(len(libs), 3 + i % 4))
        deps += [
            "winutil; sys_platform == 'win32'",
            "backport-3-9; python_version < '3.10'",
            "docs-only; extra == 'docs'",
        ]
        if large and i == 0:
            deps.append("bigmodel")
        releases.append(
            Release(name, "1.0", ("py3-none-any",), tuple(deps), provides_extra=("docs",))
        )
        requirements.append(name)

    extra_deps = ("extra-dep-0", "extra-dep-1")
    releases.append(Release(EXTRA_REQUIREMENT, "1.0", ("py3-none-any",), (*extra_deps, hubs[0])))
    for name in extra_deps:
        releases.append(Release(name, "1.0", ("py3-none-any",), (hubs[-1],)))
    return Graph(tuple(releases), tuple(sorted(requirements)))


def publish(up: FakeUpstream, graph: Graph, cache: Path) -> None:
    """Serve every release of `graph` on `up` (and the sdist build backend).

    Files are built once into `cache` and reused by later runs: the dists are reproducible,
    so a file already there has the right bytes.
    """
    cache.mkdir(parents=True, exist_ok=True)
    for path in (dists.build_backend_wheel(cache), dists.build_backend_sdist(cache)):
        up.add_dist(path)
    for rel in graph.releases:
        for tag in rel.wheels:
            stem = f"{rel.name.replace('-', '_')}-{rel.version}-{tag}.whl"
            path = cache / stem
            if not path.exists():
                path = dists.build_wheel(
                    cache,
                    rel.name,
                    rel.version,
                    tag=tag,
                    requires_dist=rel.requires_dist,
                    requires_python=rel.requires_python,
                    provides_extra=rel.provides_extra,
                    payload_size=rel.payload.get(tag, 0),
                )
            up.add_dist(path, requires_python=rel.requires_python)
        sdist = cache / f"{rel.name.replace('-', '_')}-{rel.version}.tar.gz"
        if not sdist.exists():
            sdist = dists.build_sdist(
                cache,
                rel.name,
                rel.version,
                requires_dist=rel.requires_dist,
                requires_python=rel.requires_python,
                provides_extra=rel.provides_extra,
            )
        up.add_dist(sdist, requires_python=rel.requires_python)
