"""The no-op rebuild, decided without loading the build engine or even the spec parser.

Every successful build writes ``<mirror>/build-stamp.json``: the blake3 of the exact
``mirror.toml`` and ``mirror.lock`` bytes it built from, and the generation it made. When
the workspace still holds those exact bytes, ``index`` still points at that generation and
the store still holds every blob its manifest names, rebuilding would change nothing:
``morgan build`` says so and stops. The check reads a few small files and stats the blobs;
it imports neither packaging's parsers nor the resolver. A spec that names private folders
(its own or a named index's), input locks or an advisories file always takes the full path
(their contents count too).
"""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

import blake3

from store import fsio

STAMP = "build-stamp.json"


@dataclass(frozen=True, slots=True)
class UpToDate:
    mirror: Path
    generation: int
    digest: str
    files: int
    bytes_total: int


def stamp(mirror: Path, spec_bytes: bytes, lock_bytes: bytes, generation: int) -> None:
    """Record what the current generation was built from (atomically)."""
    data = {
        "spec": blake3.blake3(spec_bytes).hexdigest(),
        "lock": blake3.blake3(lock_bytes).hexdigest(),
        "generation": generation,
    }
    fsio.replace_file(mirror / STAMP, (json.dumps(data, sort_keys=True) + "\n").encode("utf-8"))


def up_to_date(workspace: Path, out: Path | None) -> UpToDate | None:
    """The current generation if rebuilding ``workspace`` would change nothing, else None."""
    try:
        spec_bytes = (workspace / "mirror.toml").read_bytes()
        table = tomllib.loads(spec_bytes.decode("utf-8"))
        if table.get("private") or table.get("locks") or table.get("policy", {}).get("advisories"):
            return None
        if any(t.get("private") for t in table.get("indexes", {}).values()):
            return None
        output = table.get("output", {}).get("path", "mirror")
        mirror = (out or workspace / output).resolve()
        lock_bytes = (workspace / "mirror.lock").read_bytes()
        recorded = json.loads((mirror / STAMP).read_bytes())
        generation = (mirror / "index").readlink()
        manifest_bytes = (mirror / generation / "manifest.json").read_bytes()
    except (OSError, ValueError, AttributeError, TypeError, RecursionError):
        return None  # anything unusual: the full build decides (and reports a bad spec)
    if (
        recorded.get("spec") != blake3.blake3(spec_bytes).hexdigest()
        or recorded.get("lock") != blake3.blake3(lock_bytes).hexdigest()
        or generation != Path("generations", str(recorded.get("generation")))
    ):
        return None
    # Plain strings, not Path objects: a mirror has thousands of blobs to stat.
    objects = f"{mirror}/store/objects"
    files = total = 0
    for digest in json.loads(manifest_bytes).get("objects", ()):
        hexd = str(digest).removeprefix("blake3:")
        try:
            total += os.stat(f"{objects}/{hexd[:2]}/{hexd}").st_size  # noqa: PTH116 - see above
        except OSError:
            return None  # a blob is missing: the full build fetches it
        files += 1
    return UpToDate(
        mirror=mirror,
        generation=int(generation.name),
        digest="blake3:" + blake3.blake3(manifest_bytes).hexdigest(),
        files=files,
        bytes_total=total,
    )
