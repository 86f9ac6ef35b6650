"""Which targets must build a project from its sdist, and what that takes.

When no wheel of a selected release fits an environment (a scientific package without a
musllinux wheel, a project that only publishes sdists), that environment's installers build
it from the sdist: they need its build requirements (mirrored) and, when it has native code,
a compiler. :func:`source_builds` reads that from the lock alone (so ``morgan build`` and
``morgan verify`` say the same), without running any package code. The toolchain is inferred:

- the build requirements name a compiling backend or tool (meson-python, scikit-build-core,
  cmake, Cython, pybind11, … → a C/C++ compiler; maturin, setuptools-rust → Rust);
- else the release has platform-specific wheels for other targets (native code) → a C/C++
  compiler;
- else no evidence of native code: "a compiler only if it has native code".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from morgan.environments import Environment
from morgan.lock import Lock, Role
from morgan.resolve import F
from morgan.universal import UniversalTarget

_RUST = frozenset({"maturin", "setuptools-rust", "puccinialin"})
_C = frozenset(
    {
        "meson-python",
        "scikit-build-core",
        "scikit-build",
        "cmake",
        "cython",
        "pybind11",
        "nanobind",
        "cffi",
        "numpy",
        "oldest-supported-numpy",
        "pythran",
    }
)
C_TOOLCHAIN = "a C/C++ compiler"
RUST_TOOLCHAIN = "a Rust toolchain"
MAYBE = "a compiler only if it has native code"


@dataclass(frozen=True, slots=True)
class SourceBuild:
    """One release an environment gets only as an sdist."""

    env: str
    name: str
    version: str
    sdist: str
    role: Role
    toolchain: str
    build_requires: tuple[str, ...]

    def __str__(self) -> str:
        needs = f"needs {self.toolchain}" if self.toolchain != MAYBE else f"needs {MAYBE}"
        reqs = ", ".join(self.build_requires) or "setuptools>=40.8.0"
        return (
            f"{self.env}: {self.name} {self.version} only as sdist ({self.sdist}) — {needs} "
            f"and its build requirements ({reqs}), mirrored"
        )

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SourceBuild:
        """Read back what :meth:`to_json` gave."""
        return cls(
            env=str(data["environment"]),
            name=str(data["name"]),
            version=str(data["version"]),
            sdist=str(data["sdist"]),
            role=data["role"],
            toolchain=str(data["toolchain"]),
            build_requires=tuple(str(r) for r in data["build-requires"]),
        )

    def to_json(self) -> dict[str, object]:
        return {
            "environment": self.env,
            "name": self.name,
            "version": self.version,
            "sdist": self.sdist,
            "role": self.role,
            "toolchain": self.toolchain,
            "build-requires": list(self.build_requires),
        }


def _names(requirements: Sequence[str]) -> set[str]:
    out: set[str] = set()
    for text in requirements:
        try:
            out.add(canonicalize_name(Requirement(text).name))
        except InvalidRequirement:
            continue
    return out


def toolchain(build_requires: Sequence[str], filenames: Sequence[str]) -> str:
    """What building this sdist needs besides Python (see the module docstring)."""
    names = _names(build_requires)
    if names & _RUST:
        return RUST_TOOLCHAIN
    if names & _C:
        return C_TOOLCHAIN
    if any(f.endswith(".whl") and not f.endswith("-any.whl") for f in filenames):
        return C_TOOLCHAIN
    return MAYBE


def _only_sdist(files: Sequence[F], env: Environment) -> F | None:
    """The sdist ``env`` builds ``files``' release from: the first of ``usable_among(files,
    env, allow_yanked=True)``'s sdists when it gives no wheel, else None. The files are not
    ranked: the first usable wheel ends it (a lock's every pin in each environment, 24 000
    at 5 000 projects, nearly all with a wheel that fits)."""
    rank_of, fits = env.wheel_rank, env.accepts_requires_python
    # (a universal target's wheels all count: usable_among keeps one that fits no member)
    universal = isinstance(env, UniversalTarget)
    sdist = None
    for f in files:
        requires = f.requires_python
        if requires and not fits(requires):
            continue
        if f.filename.endswith(".whl"):  # (is_wheel, as usable_among)
            if universal or rank_of(f.filename) is not None:
                return None
        elif sdist is None:
            sdist = f
    return sdist


def source_builds(lock: Lock, envs: Sequence[Environment]) -> list[SourceBuild]:
    """Every (environment, release) that must be built from its sdist, sorted."""
    out: list[SourceBuild] = []
    for env in envs:
        locked = lock.environment(env.name)
        if locked is None:
            continue
        for pin in locked.pins:
            rel = lock.release(pin.name, pin.version)
            if rel is None:
                continue
            # (the locked files as they are: no upstream file made of each, for each build)
            sdist = _only_sdist(rel.files, env)
            if sdist is None:
                continue
            out.append(
                SourceBuild(
                    env=env.name,
                    name=pin.name,
                    version=pin.version,
                    sdist=sdist.filename,
                    role=pin.role,
                    toolchain=toolchain(rel.build_requires, [f.filename for f in rel.files]),
                    build_requires=rel.build_requires,
                )
            )
    return sorted(set(out), key=lambda s: (s.env, s.name, s.version, s.role))
