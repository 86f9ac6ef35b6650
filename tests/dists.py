"""Real wheels and sdists for tests, built in Python: no setuptools, no network, no subprocess.

Every archive is reproducible: the same arguments give byte-identical files (fixed
timestamps, sorted members, seeded payloads), so tests may compare digests across builds.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Literal

from packaging.tags import parse_tag
from packaging.utils import parse_sdist_filename, parse_wheel_filename
from packaging.version import Version

from tests import morgan_test_backend as backend

SdistMetadata = Literal["pkg-info", "dynamic", "pyproject", "egg-info", "none"]

BACKEND_NAME = "morgan-test-backend"
BACKEND_VERSION = "1.0"
DEFAULT_BUILD_REQUIRES: tuple[str, ...] = (BACKEND_NAME,)
DEFAULT_BUILD_BACKEND = "morgan_test_backend"

_PAYLOAD_CHUNK = 1 << 20
# `<requirement>; <marker>`: the marker clause `extra == "x"` (with its `and`) is what a
# pyproject optional-dependencies table or an egg-info `[x]` section expresses by position.
_EXTRA_CLAUSE = re.compile(
    r"""(?:\s+and\s+)?\(?\s*extra\s*==\s*["']([^"']+)["']\s*\)?(?:\s+and\s+)?"""
)


def _version(version: str) -> str:
    return str(Version(version))


def _module_name(name: str) -> str:
    return backend.escape_name(name)


def _default_modules(name: str, version: str) -> dict[str, str]:
    return {f"{_module_name(name)}/__init__.py": f'__version__ = "{version}"\n'}


def _payload_chunks(seed: str, size: int) -> Iterator[bytes]:
    # Seeded random bytes: incompressible, yet the same wheel every time.
    rng = random.Random(seed)  # noqa: S311 - test data, not cryptography
    left = size
    while left > 0:
        n = min(left, _PAYLOAD_CHUNK)
        yield rng.randbytes(n)
        left -= n


def build_wheel(
    out_dir: Path,
    name: str,
    version: str,
    *,
    tag: str = "py3-none-any",
    requires_dist: Sequence[str] = (),
    requires_python: str | None = None,
    provides_extra: Sequence[str] = (),
    modules: Mapping[str, str] | None = None,
    metadata_name: str | None = None,
    payload_size: int = 0,
) -> Path:
    """Build a valid wheel in `out_dir` and return its path.

    The filename follows PEP 427 with the normalized name and version; `tag` may be a
    compressed tag set. `modules` maps archive paths to source text (default: `<pkg>/__init__.py`
    setting `__version__`). `metadata_name` puts another `Name:` in METADATA than the filename
    says (for hostile-input tests). `payload_size` adds `<pkg>/payload.bin` of that many
    incompressible bytes, streamed, for large-file tests.
    """
    version = _version(version)
    tags = sorted(str(t) for t in parse_tag(tag))
    purelib = all(t.endswith("-none-any") for t in tags)
    stem = f"{backend.escape_name(name)}-{version}"
    sources = _default_modules(name, version) if modules is None else dict(modules)
    files: list[tuple[str, Iterator[bytes] | list[bytes]]] = [
        (arcname, [text.encode("utf-8")]) for arcname, text in sorted(sources.items())
    ]
    if payload_size:
        files.append(
            (
                f"{_module_name(name)}/payload.bin",
                _payload_chunks(f"{stem}-{tag}", payload_size),
            )
        )
    metadata = backend.metadata_text(
        metadata_name if metadata_name is not None else name,
        version,
        requires_dist=requires_dist,
        requires_python=requires_python,
        provides_extra=provides_extra,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    return backend.write_wheel(
        out_dir / f"{stem}-{tag}.whl",
        f"{stem}.dist-info",
        files,
        metadata=metadata,
        tags=tags,
        purelib=purelib,
    )


def split_extra(requirement: str) -> tuple[str | None, str]:
    """Split `req; extra == "x"` into ("x", "req"); other markers stay on the requirement.

    Only the forms tests write are understood: one `extra == "..."` clause joined to the rest
    of the marker by `and`.
    """
    head, sep, marker = requirement.partition(";")
    if not sep:
        return None, requirement.strip()
    found = _EXTRA_CLAUSE.search(marker)
    if found is None:
        return None, requirement.strip()
    rest = (marker[: found.start()] + " " + marker[found.end() :]).strip()
    rest = re.sub(r"^\s*and\s+|\s+and\s*$", "", rest).strip()
    return found.group(1), f"{head.strip()}; {rest}" if rest else head.strip()


def _toml_list(items: Sequence[str]) -> str:
    return "[" + ", ".join(json.dumps(item) for item in items) + "]"


def _pyproject(
    name: str,
    version: str,
    *,
    requires_dist: Sequence[str],
    requires_python: str | None,
    build_requires: Sequence[str] | None,
    build_backend: str | None,
    project_table: bool,
) -> str:
    out: list[str] = []
    if build_requires is not None:
        out += ["[build-system]", f"requires = {_toml_list(build_requires)}"]
        if build_backend is not None:
            out.append(f"build-backend = {json.dumps(build_backend)}")
        out.append("")
    if project_table:
        required = [req for extra, req in map(split_extra, requires_dist) if extra is None]
        out += [
            "[project]",
            f"name = {json.dumps(name)}",
            f"version = {json.dumps(version)}",
            f"dependencies = {_toml_list(required)}",
        ]
        if requires_python is not None:
            out.append(f"requires-python = {json.dumps(requires_python)}")
        optional: dict[str, list[str]] = {}
        for extra, req in map(split_extra, requires_dist):
            if extra is not None:
                optional.setdefault(extra, []).append(req)
        if optional:
            out += ["", "[project.optional-dependencies]"]
            out += [f"{json.dumps(k)} = {_toml_list(v)}" for k, v in sorted(optional.items())]
        out.append("")
    return "\n".join(out)


def _egg_info_requires(requires_dist: Sequence[str]) -> str:
    sections: dict[str, list[str]] = {}
    for extra, req in map(split_extra, requires_dist):
        head, _, marker = req.partition(";")
        key = extra or ""
        if marker.strip():
            key = f"{key}:{marker.strip()}"
        sections.setdefault(key, []).append(head.strip())
    out: list[str] = []
    for key in sorted(sections, key=lambda k: (k != "", k)):
        if key:
            out.append(f"\n[{key}]")
        out += sections[key]
    return "\n".join(out).lstrip("\n") + "\n"


def build_sdist(
    out_dir: Path,
    name: str,
    version: str,
    *,
    requires_dist: Sequence[str] = (),
    requires_python: str | None = None,
    provides_extra: Sequence[str] = (),
    build_requires: Sequence[str] | None = DEFAULT_BUILD_REQUIRES,
    build_backend: str | None = DEFAULT_BUILD_BACKEND,
    metadata: SdistMetadata = "pkg-info",
) -> Path:
    """Build `<name_underscored>-<version>.tar.gz` in `out_dir` and return its path.

    `metadata` picks where the dependencies can be read without running code:
    "pkg-info" (PKG-INFO 2.2, static), "dynamic" (PKG-INFO 2.2 listing Requires-Dist,
    Requires-Python and Provides-Extra as Dynamic), "pyproject" (PKG-INFO 2.1 without
    dependencies + a `[project]` table), "egg-info" (PKG-INFO 1.2 +
    `<name>.egg-info/requires.txt`), "none" (nothing knowable). pyproject.toml has a
    `[build-system]` table unless `build_requires` is None. Whatever the style, the sdist
    builds with morgan-test-backend into a wheel with exactly these dependencies.
    """
    version = _version(version)
    escaped = backend.escape_name(name)
    top = f"{escaped}-{version}"
    sources = _default_modules(name, version)
    if metadata == "pkg-info":
        pkg_info = backend.metadata_text(
            name,
            version,
            metadata_version="2.2",
            requires_dist=requires_dist,
            requires_python=requires_python,
            provides_extra=provides_extra,
        )
    elif metadata == "dynamic":
        pkg_info = backend.metadata_text(
            name,
            version,
            metadata_version="2.2",
            dynamic=("Requires-Dist", "Requires-Python", "Provides-Extra"),
        )
    elif metadata == "egg-info":
        pkg_info = backend.metadata_text(
            name, version, metadata_version="1.2", requires_python=requires_python
        )
    else:  # "pyproject" and "none": PKG-INFO 2.1 says nothing about dependencies
        pkg_info = backend.metadata_text(name, version, metadata_version="2.1")
    files: dict[str, bytes] = {name_: text.encode("utf-8") for name_, text in sources.items()}
    files["PKG-INFO"] = pkg_info.encode("utf-8")
    pyproject = _pyproject(
        name,
        version,
        requires_dist=requires_dist,
        requires_python=requires_python,
        build_requires=build_requires,
        build_backend=build_backend,
        project_table=metadata == "pyproject",
    )
    if pyproject:
        files["pyproject.toml"] = pyproject.encode("utf-8")
    if metadata == "egg-info":
        egg = f"{escaped}.egg-info"
        files[f"{egg}/PKG-INFO"] = pkg_info.encode("utf-8")
        files[f"{egg}/requires.txt"] = _egg_info_requires(requires_dist).encode("utf-8")
        files[f"{egg}/top_level.txt"] = f"{_module_name(name)}\n".encode()
    build_info = {
        "name": name,
        "version": version,
        "requires_dist": list(requires_dist),
        "requires_python": requires_python,
        "provides_extra": list(provides_extra),
        "files": sorted(sources),
    }
    files[backend.BUILD_INFO] = (json.dumps(build_info, indent=2) + "\n").encode("utf-8")
    out_dir.mkdir(parents=True, exist_ok=True)
    return backend.write_sdist(out_dir / f"{top}.tar.gz", top, files)


def build_backend_wheel(out_dir: Path) -> Path:
    """Build the `morgan-test-backend` 1.0 py3-none-any wheel (the PEP 517 backend module)."""
    source = Path(backend.__file__).read_text(encoding="utf-8")
    return build_wheel(
        out_dir,
        BACKEND_NAME,
        BACKEND_VERSION,
        modules={"morgan_test_backend.py": source},
    )


def build_backend_sdist(out_dir: Path) -> Path:
    """Build the `morgan-test-backend` 1.0 sdist: an in-tree backend that builds itself.

    `pip wheel --no-binary :all:` refuses wheels for build dependencies too, so the backend
    must be buildable from source: its `[build-system]` has no requirement and
    `backend-path = ["."]` (PEP 517), naming its own module.
    """
    source = Path(backend.__file__).read_text(encoding="utf-8")
    top = f"{backend.escape_name(BACKEND_NAME)}-{BACKEND_VERSION}"
    pkg_info = backend.metadata_text(BACKEND_NAME, BACKEND_VERSION, metadata_version="2.2")
    pyproject = (
        "[build-system]\nrequires = []\n"
        f'build-backend = {json.dumps(DEFAULT_BUILD_BACKEND)}\nbackend-path = ["."]\n'
    )
    build_info = {
        "name": BACKEND_NAME,
        "version": BACKEND_VERSION,
        "requires_dist": [],
        "requires_python": None,
        "provides_extra": [],
        "files": ["morgan_test_backend.py"],
    }
    files = {
        "PKG-INFO": pkg_info.encode("utf-8"),
        "pyproject.toml": pyproject.encode("utf-8"),
        "morgan_test_backend.py": source.encode("utf-8"),
        backend.BUILD_INFO: (json.dumps(build_info, indent=2) + "\n").encode("utf-8"),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    return backend.write_sdist(out_dir / f"{top}.tar.gz", top, files)


def project_name(path: Path) -> str:
    """The normalized project name a wheel or sdist filename carries."""
    if path.name.endswith(".whl"):
        return str(parse_wheel_filename(path.name)[0])
    return str(parse_sdist_filename(path.name)[0])


__all__ = [
    "BACKEND_NAME",
    "SdistMetadata",
    "build_backend_sdist",
    "build_backend_wheel",
    "build_sdist",
    "build_wheel",
    "project_name",
    "split_extra",
]
