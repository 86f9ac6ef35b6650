"""Real interpreters of other Python versions (pyenv's), for tests that need a shipped client.

pyenv's shim for an inactive version would only print an error, so the interpreter is looked
up in ``$PYENV_ROOT/versions`` directly. Each comes with the pip its ``ensurepip`` bundles
(2.7.18: pip 19.2.3; 3.6: 18.1; 3.7: 22.0.4; 3.9, 3.10: 23.0.1; 3.11, 3.12: 23.2.1; 3.13: 24.2).

In CI (``CI`` set, as CI services do) a missing interpreter fails the test: the CI machine
image carries them (.ci/run says so). Elsewhere the test is skipped.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest


def pyenv_root() -> Path:
    return Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))


def pyenv_python(version: str) -> Path | None:
    """The newest pyenv interpreter whose version starts with ``version`` ("2.7", "3.11")."""
    root = pyenv_root() / "versions"
    major_minor = ".".join(version.split(".")[:2])
    found = sorted(root.glob(f"{version}*/bin/python{major_minor}"))
    return found[-1] if found else None


def require_python(version: str) -> Path:
    """``pyenv_python(version)``; without it, fail in CI and skip elsewhere."""
    found = pyenv_python(version)
    if found is None:
        message = (
            f"no Python {version} interpreter in {pyenv_root() / 'versions'}, which this test "
            f"runs (with the pip it ships): install it with `pyenv install {version}`; the CI "
            "machine image carries every version .ci/run lists"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


def shipped_pip_venv(version: str, path: Path, pip: str) -> Path:
    """A fresh ``python -m venv path`` of pyenv's Python ``version``, with the pip its
    ``ensurepip`` bundles, never upgraded, as a user of that Python gets it; its python.
    ``pip`` is the expected version's start ("23.2.", "18.1 ")."""
    subprocess.run([str(require_python(version)), "-m", "venv", str(path)], check=True, timeout=300)
    python = path / "bin" / "python"
    shown = subprocess.run(
        [str(python), "-m", "pip", "--version"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_CONFIG_FILE": os.devnull},
    )
    assert shown.stdout.startswith(f"pip {pip}"), shown.stdout
    return python
