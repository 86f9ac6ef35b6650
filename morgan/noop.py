"""The no-op rebuild, decided without loading the build engine.

A build whose spec digest equals the lock's, whose lock is the one the current generation
was built from, and whose store still holds every blob that generation names, would change
nothing: `morgan build` says so and stops. This check reads three small files and stats the
blobs; it imports neither the resolver nor networkx.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import blake3

from morgan.spec import Spec

_SPEC_DIGEST = re.compile(r'^spec-digest = "([0-9a-f]{64})"$', re.MULTILINE)


@dataclass(frozen=True, slots=True)
class UpToDate:
    mirror: Path
    generation: int
    digest: str
    files: int
    bytes_total: int


def up_to_date(spec: Spec, mirror: Path) -> UpToDate | None:
    """The current generation if rebuilding would change nothing, else None."""
    try:
        lock = (spec.path.parent / "mirror.lock").read_bytes()
        match = _SPEC_DIGEST.search(lock[:4096].decode("utf-8", "replace"))
        if match is None or match.group(1) != spec.digest():
            return None
        generation = (mirror / "index").readlink()
        manifest_bytes = (mirror / generation / "manifest.json").read_bytes()
        manifest = json.loads(manifest_bytes)
    except (OSError, ValueError):
        return None
    if manifest.get("lock") != blake3.blake3(lock).hexdigest():
        return None
    objects = mirror / "store" / "objects"
    files = total = 0
    for digest in manifest.get("objects", ()):
        hexd = str(digest).removeprefix("blake3:")
        try:
            size = (objects / hexd[:2] / hexd).stat().st_size
        except OSError:
            return None  # a blob is missing: the full build fetches it
        files += 1
        total += size
    if not generation.name.isdigit():
        return None
    return UpToDate(
        mirror=mirror,
        generation=int(generation.name),
        digest="blake3:" + blake3.blake3(manifest_bytes).hexdigest(),
        files=files,
        bytes_total=total,
    )
