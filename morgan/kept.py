"""Files that upstream removed are kept: the lock's releases merged back into a fresh page.

An air-gapped mirror is often the only copy a site has of what it runs. When upstream
deletes a locked file, a whole release or the whole project, the next build that reads the
project's page would otherwise drop it (or fail: "project not found"). Instead the locked
files are put back next to what the page lists, exactly as they were locked (url, hashes,
upload time, yanked mark); their blobs are already in the store, so nothing is fetched.

The resolver then chooses as usual among the page's releases and the kept ones: a kept
release stays pinned unless something better fits (``--upgrade`` moves to a newer release
when upstream has one, never to an older one because the newer was deleted). A file the page
lists under the same name wins over the kept copy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from packaging.version import Version

from morgan.lock import BUILT_URL, Lock, LockedRelease
from morgan.resolve import Release
from rules.model import NormalizedName, UpstreamFile


@dataclass(frozen=True, slots=True)
class Kept:
    """What a page no longer lists and the build kept: the filenames, and one line to say."""

    filenames: tuple[str, ...]
    note: str


def locked_files(rel: LockedRelease) -> tuple[UpstreamFile, ...]:
    """The files of a locked release, as the resolver and the fetcher see files."""
    return tuple(
        UpstreamFile(
            filename=f.filename,
            url=f.url,
            sha256=f.sha256,
            size=f.size,
            upload_time=f.upload_time,
            requires_python=f.requires_python,
            yanked=f.yanked,
            yanked_reason=f.yanked_reason,
            core_metadata=False,
            core_metadata_sha256=None,
            provenance_url=f.provenance_url,
        )
        for f in rel.files
    )


def with_kept(
    name: NormalizedName, listed: Sequence[Release] | None, lock: Lock | None
) -> tuple[list[Release], list[Kept]]:
    """``listed`` (None: upstream has no such project) plus every locked file it lacks."""
    releases = list(listed or ())
    if lock is None:
        return releases, []
    locked = [r for r in lock.releases if r.name == name]
    if not locked:
        return releases, []
    by_version = {r.version: i for i, r in enumerate(releases)}
    kept: list[Kept] = []
    for rel in sorted(locked, key=lambda r: Version(r.version)):
        version = Version(rel.version)
        # Wheels built here are not upstream's to remove: morgan/wheels.py makes them again.
        files = tuple(f for f in locked_files(rel) if not f.url.startswith(BUILT_URL))
        if not files:
            continue
        at = by_version.get(version)
        if at is None:
            releases.append(Release(name, version, files))
            what = f"{name} {rel.version}" if listed is not None else f"project {name}"
            kept.append(Kept(tuple(f.filename for f in files), _note(what, rel.version, files)))
            continue
        present = {f.filename for f in releases[at].files}
        missing = tuple(f for f in files if f.filename not in present)
        if missing:
            merged = tuple(sorted(releases[at].files + missing, key=lambda f: f.filename))
            releases[at] = Release(name, version, merged)
            for f in missing:
                kept.append(Kept((f.filename,), f"upstream no longer lists {f.filename}; kept"))
    releases.sort(key=lambda r: r.version)
    return releases, kept


def _note(what: str, version: str, files: Sequence[UpstreamFile]) -> str:
    if what.startswith("project "):
        return f"upstream no longer lists {what}; kept {version} ({_count(files)})"
    return f"upstream no longer lists {what}; kept ({_count(files)})"


def _count(files: Sequence[UpstreamFile]) -> str:
    return f"{len(files)} file" + ("" if len(files) == 1 else "s")
