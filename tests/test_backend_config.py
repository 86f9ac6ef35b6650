"""What backends read from a project's own pyproject.toml (rules/lib/backend_config.py), for
the cases the lock-level tests (tests/test_backends.py) do not reach."""

from __future__ import annotations

import tomllib

import pytest

from rules.errors import MetadataError
from rules.lib.backend_config import backend_config_requires


def _read(text: str, backend: str = "hatchling.build") -> tuple[str, ...]:
    return backend_config_requires(tomllib.loads(text), backend, "demo-1.0.tar.gz")


def test_a_wheel_target_hook_replaces_the_global_hook_of_its_name() -> None:
    text = """
[tool.hatch.build]
dependencies = ["global-dep"]
require-runtime-dependencies = true
[tool.hatch.build.hooks.x]
dependencies = ["global-hook-dep"]
[tool.hatch.build.targets.wheel]
dependencies = ["target-dep"]
[tool.hatch.build.targets.wheel.hooks.x]
dependencies = ["target-hook-dep"]
[project]
dependencies = ["rt-dep", "target-dep"]
"""
    # hatchling's order, each once
    assert _read(text) == ("target-dep", "global-dep", "target-hook-dep", "rt-dep")


def test_other_backends_and_no_configuration_add_nothing() -> None:
    hooks = '[tool.hatch.build.hooks.x]\ndependencies = ["a"]\n'
    assert _read(hooks, "flit_core.buildapi") == ()
    assert backend_config_requires(None, "hatchling.build", "demo-1.0.tar.gz") == ()
    assert _read('[tool.maturin]\nbindings = "pyo3"\n', "maturin") == ()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[tool.hatch.build.hooks.x]\ndependencies = "a"\n',
            "demo-1.0.tar.gz: pyproject.toml build hook 'x' dependencies must be a list of strings",
        ),
        (
            '[tool.hatch.build.hooks.x]\ndependencies = ["not a requirement!"]\n',
            "demo-1.0.tar.gz: build requirement 'not a requirement!' is not PEP 508",
        ),
    ],
)
def test_a_configuration_the_backend_would_refuse_is_named(text: str, message: str) -> None:
    with pytest.raises(MetadataError) as caught:
        _read(text)
    assert str(caught.value) == message
