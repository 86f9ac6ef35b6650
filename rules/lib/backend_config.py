"""Build requirements that a backend reads from the project's own ``pyproject.toml``.

Some backends answer PEP 517's ``get_requires_for_build_wheel`` from the project's
configuration, not from code: hatchling with its build hooks' and build targets'
``dependencies``, maturin with its ``bindings``. Those answers are data in the sdist, so
Morgan reads them (never running the backend) and carries them in the build closure, like
the per-backend rules of morgan/backends.py. Each function mirrors the backend's own code
(hatchling 1.x ``BuilderConfig.dependencies`` for the wheel target; maturin's
``get_requires_for_build_wheel``); requirements keep their markers, evaluated per target.
"""

from __future__ import annotations

from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from rules.errors import MetadataError

HATCHLING = "hatchling.build"
MATURIN = "maturin"


def backend_config_requires(
    pyproject: dict[str, Any] | None, backend: str | None, filename: str
) -> tuple[str, ...]:
    """What ``backend`` asks for because of the project's configuration, in order, no repeats.

    A value of the wrong type (which the backend itself would refuse) raises
    :class:`MetadataError` naming the sdist and the key.
    """
    if pyproject is None:
        return ()
    if backend == HATCHLING:
        found = _hatchling(pyproject, f"{filename}: pyproject.toml")
    elif backend == MATURIN:
        found = _maturin(pyproject, f"{filename}: pyproject.toml")
    else:
        return ()
    for entry in found:
        try:
            Requirement(entry)
        except InvalidRequirement as exc:
            raise MetadataError(f"{filename}: build requirement {entry!r} is not PEP 508") from exc
    return tuple(dict.fromkeys(found))


def _table(value: object, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise MetadataError(f"{where} is not a table")
    return value


def _strings(value: object, where: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise MetadataError(f"{where} must be a list of strings")
    return list(value)


def _flag(value: object, where: str) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise MetadataError(f"{where} must be true or false")
    return value


def _hatchling(pyproject: dict[str, Any], where: str) -> list[str]:
    """hatchling's wheel-target ``dependencies``: the target's and the global build
    ``dependencies``, each enabled build hook's ``dependencies`` (global hooks, overridden
    by the wheel target's hooks of the same name; ``enable-by-default = false`` hooks are
    off unless an environment variable switches them on), and the project's runtime
    dependencies or extras when the build or a hook sets ``require-runtime-*``."""
    tool = _table(pyproject.get("tool"), f"{where} [tool]")
    build = _table(_table(tool.get("hatch"), f"{where} [tool.hatch]").get("build"), where)
    targets = _table(build.get("targets"), f"{where} [tool.hatch.build.targets]")
    wheel = _table(targets.get("wheel"), f"{where} [tool.hatch.build.targets.wheel]")
    out = _strings(wheel.get("dependencies"), f"{where} tool.hatch.build.targets.wheel")
    out += _strings(build.get("dependencies"), f"{where} tool.hatch.build.dependencies")
    place = wheel if "require-runtime-dependencies" in wheel else build
    runtime = _flag(place.get("require-runtime-dependencies"), f"{where} require-runtime-*")
    place = wheel if "require-runtime-features" in wheel else build
    features = _strings(place.get("require-runtime-features"), f"{where} require-runtime-*")
    hooks = dict(_table(build.get("hooks"), f"{where} [tool.hatch.build.hooks]"))
    hooks.update(_table(wheel.get("hooks"), f"{where} [tool.hatch.build.targets.wheel.hooks]"))
    for name, raw in hooks.items():
        config = _table(raw, f"{where} build hook {name!r}")
        if not config.get("enable-by-default", True):
            continue
        hook_where = f"{where} build hook {name!r}"
        out += _strings(config.get("dependencies"), f"{hook_where} dependencies")
        runtime |= _flag(config.get("require-runtime-dependencies"), hook_where)
        features += _strings(config.get("require-runtime-features"), hook_where)
    project = _table(pyproject.get("project"), f"{where} [project]")
    if runtime:
        out += _strings(project.get("dependencies"), f"{where} [project] dependencies")
    optional = {
        canonicalize_name(extra): entries
        for extra, entries in _table(
            project.get("optional-dependencies"), f"{where} optional-dependencies"
        ).items()
    }
    for feature in features:
        entries = optional.get(canonicalize_name(feature))
        out += _strings(entries, f"{where} optional-dependencies {feature!r}")
    return out


def _maturin(pyproject: dict[str, Any], where: str) -> list[str]:
    """maturin asks for ``cffi`` (outside PyPy) when ``[tool.maturin] bindings = "cffi"``.
    It also asks for ``puccinialin`` when no ``cargo`` is on PATH: a helper that downloads
    a Rust toolchain from the Internet, of no use on an air-gapped host, so not mirrored."""
    tool = _table(pyproject.get("tool"), f"{where} [tool]")
    maturin = _table(tool.get("maturin"), f"{where} [tool.maturin]")
    if maturin.get("bindings") == "cffi":
        return ["cffi; platform_python_implementation != 'PyPy'"]
    return []


__all__ = ["HATCHLING", "MATURIN", "backend_config_requires"]
