"""What the reliability tests check after a build fails, is killed or races another one.

The promise (docs/reliability.md): the store never holds a blob whose content does not match
its name, and `<mirror>/index` is always absent or a complete generation.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from blake3 import blake3

from store.digest import Digest
from store.objects import Store

ROOT = Path(__file__).resolve().parent.parent

# Retries stay on (5 attempts) but never wait long: the fault tests would otherwise sleep
# through the real backoff (0.5 s doubling).
FAST_RETRIES = {"MORGAN_HTTP_BACKOFF": "0.01", "MORGAN_HTTP_TIMEOUT": "10"}

HOST_ENV = '[environments.host]\npython = "3.11"\nplatform = "manylinux_2_28_x86_64"\n'


def write_spec(workspace: Path, index_url: str, requirements: list[str]) -> None:
    """A one-environment spec (this machine's kind of target)."""
    workspace.mkdir(parents=True, exist_ok=True)
    reqs = ", ".join(f'"{r}"' for r in requirements)
    text = f'requirements = [{reqs}]\n\n[upstream]\nindex-url = "{index_url}"\n\n{HOST_ENV}'
    (workspace / "mirror.toml").write_text(text, encoding="utf-8")


def morgan_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a `morgan` subprocess: this checkout first, fast retries."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MORGAN_")}
    return {**env, "PYTHONPATH": str(ROOT), **FAST_RETRIES, **(extra or {})}


def morgan_command(workspace: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "morgan", *args, "-C", str(workspace)]


def run_morgan(
    workspace: Path, *args: str, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the real CLI in a subprocess and wait for it."""
    return subprocess.run(
        morgan_command(workspace, *args),
        capture_output=True,
        text=True,
        env=morgan_env(env),
        check=False,
        timeout=120,
    )


@dataclass(frozen=True)
class Served:
    """The generation `<mirror>/index` points at, and its tree manifest entries."""

    number: int
    entries: dict[str, str]  # relative path -> "blake3:<hex>"


def served(mirror: Path) -> Served | None:
    """The served generation after checking it is complete; None when nothing is served yet.

    Complete: `index` is a relative link to `generations/<n>`; every manifest entry exists
    there and its bytes hash to the digest the manifest names; nothing else is in the tree.
    """
    index = mirror / "index"
    if not index.is_symlink():
        assert not index.exists(), f"{index} exists but is not a symlink"
        return None
    link = index.readlink()
    assert link.parent == Path("generations"), link
    assert link.name.isdigit(), link
    gen = mirror / link
    manifest = json.loads((gen / "manifest.json").read_bytes())
    entries: dict[str, str] = manifest["entries"]
    assert entries, "a generation with no entries"
    for rel, digest in entries.items():
        data = (gen / rel).read_bytes()
        assert f"blake3:{blake3(data).hexdigest()}" == digest, rel
    on_disk = {
        str((Path(d) / f).relative_to(gen))
        for d, _dirs, files in os.walk(gen, followlinks=True)
        for f in files
    }
    assert on_disk == {*entries, "manifest.json"}
    return Served(int(link.name), entries)


def verify_store(mirror: Path) -> int:
    """Re-hash every object in the mirror's store (raises on a mismatch); return the count."""
    store = Store(mirror / "store")
    count = 0
    for digest in store:
        store.verify(digest)
        count += 1
    return count


def assert_consistent(mirror: Path) -> Served | None:
    """Every object matches its name and the served index (if any) is complete."""
    verify_store(mirror)
    return served(mirror)


def object_digests(mirror: Path) -> set[Digest]:
    return set(Store(mirror / "store"))
