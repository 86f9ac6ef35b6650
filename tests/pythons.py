"""Real interpreters of other Python versions (pyenv's), for tests that need a shipped client.

pyenv's shim for an inactive version would only print an error, so the interpreter is looked
up in ``$PYENV_ROOT/versions`` directly. Each comes with the pip its ``ensurepip`` bundles
(2.7.18: pip 19.2.3; 3.9: 23.0.1; 3.11: 23.2.1; 3.13: 24.2).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def pyenv_python(version: str) -> Path | None:
    """The newest pyenv interpreter whose version starts with ``version`` ("2.7", "3.11")."""
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    major_minor = ".".join(version.split(".")[:2])
    found = sorted(root.glob(f"{version}*/bin/python{major_minor}"))
    return found[-1] if found else None


def require_python(version: str) -> Path:
    """``pyenv_python(version)``, or skip: the test needs that real interpreter."""
    found = pyenv_python(version)
    if found is None:
        pytest.skip(f"no Python {version} interpreter here (pyenv installs one)")
    return found
