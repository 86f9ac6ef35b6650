"""Old releases of build tools, for the tests that build with the pips Python 3.6 and 3.7 ship.

The backends the suite repacks from the test venv (tests/installed_wheels.py) need Python
≥ 3.8–3.10, so a mirror for a 3.6 or 3.7 target must select older releases of them. Two
real sources, neither of them the Internet while the tests run:

- **setuptools**: the wheel each interpreter's ``ensurepip`` bundles (Python 3.6.15:
  setuptools 40.6.2, 3.7.16: 47.1.0), found with :func:`bundled`.
- **wheel 0.37.1 and flit-core 3.12.0**, the last releases for Python 3.6, which no
  interpreter ships: ``python -m tests.old_wheels`` downloads these pinned files (checked
  against the sha256 below) from the package index into :func:`cache_dir`; ``.ci/run`` does
  it before the tests. A test that needs them fails, naming that command, when one is missing
  or differs (:func:`pinned`).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

# filename -> sha256 of the file the package index serves
PINS = {
    "wheel-0.37.1-py2.py3-none-any.whl": (
        "4bdcd7d840138086126cd09254dc6195fb4fc6f01c050a1d7236f2630db1d22a"
    ),
    "flit_core-3.12.0-py3-none-any.whl": (
        "e7a0304069ea895172e3c7bb703292e992c5d1555dd1233ab7b5621b5b69e62c"
    ),
}


def cache_dir() -> Path:
    """``$MORGAN_TEST_WHEELS``, else ``~/.cache/morgan-tests/old-wheels`` (shared by every
    checkout on the machine, like pip's cache)."""
    configured = os.environ.get("MORGAN_TEST_WHEELS")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "morgan-tests" / "old-wheels"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def pinned() -> list[Path]:
    """The pinned wheels in the cache folder, each checked; fail the test, naming the fix,
    when one is missing or is not the pinned file."""
    folder = cache_dir()
    found = []
    for filename, sha256 in sorted(PINS.items()):
        path = folder / filename
        if not path.is_file() or _sha256(path) != sha256:
            state = "is missing" if not path.is_file() else "does not match its pinned sha256"
            pytest.fail(
                f"{path} {state}: run `python -m tests.old_wheels` once (it downloads the "
                "pinned old build tools from the package index; .ci/run does it)",
                pytrace=False,
            )
        found.append(path)
    return found


def bundled(python: Path, project: str) -> Path:
    """The ``project`` wheel (``setuptools``, ``pip``) that ``python``'s ensurepip bundles."""
    prefix = python.parent.parent
    found = sorted(prefix.glob(f"lib/python*/ensurepip/_bundled/{project}-*.whl"))
    if not found:
        raise FileNotFoundError(f"{python}: ensurepip bundles no {project} wheel")
    return found[-1]


def main() -> int:
    """Download the pinned wheels into the cache folder (with the machine's pip settings)."""
    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    lines = [
        f"{name.split('-')[0]}=={name.split('-')[1]} --hash=sha256:{sha256}\n"
        for name, sha256 in sorted(PINS.items())
    ]
    with tempfile.TemporaryDirectory() as tmp:
        requirements = Path(tmp) / "requirements.txt"
        requirements.write_text("".join(lines), encoding="utf-8")
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"]
        cmd += ["--only-binary=:all:", "--require-hashes", "-r", str(requirements)]
        proc = subprocess.run([*cmd, "-d", str(folder)], check=False)
    if proc.returncode != 0:
        return proc.returncode
    missing = [n for n, sha in PINS.items() if _sha256(folder / n) != sha]
    if missing:
        print(f"tests.old_wheels: not the pinned files: {', '.join(missing)}", file=sys.stderr)
        return 1
    print(f"tests.old_wheels: {len(PINS)} pinned wheels in {folder}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
