"""The one owner of a mirror's generations: numbers, GC roots, the switch, retention,
leftovers of dead builds, rollback, and the lock each generation was built from.

A generation is ``generations/<n>/``: a plain folder whose every entry (pages, files,
``.metadata``, ``manifest.json`` and ``mirror.lock``) is a relative link into
``store/objects`` (or a copy). ``index`` is a symlink to the served one. Publishing a
generation is always the same steps, in this order, whoever calls (a build, a bundle
import):

0. ``server.py`` in the mirror root (it describes no generation; a full disk here leaves
   nothing half-made behind);
1. the GC root ``store/roots/generation-<n>`` (nothing can sweep its blobs from now on);
2. the tree, made under a temporary name and renamed into place whole;
3. the other side files in the mirror root (the copies of ``mirror.toml`` and
   ``mirror.lock``);
4. the switch: a new ``index`` symlink renamed over the old one.

An error in steps 1-4 removes the generation and its root again (it was never served). A
crash between any two steps leaves the previous generation served; the next build removes
what the dead one left (:func:`remove_leftovers`) and reuses nothing of it but blobs.

Dropping a generation (``gc``, :func:`drop`) is three steps, each safe to interrupt: its
folder is renamed to ``generations/.gc-<n>-<pid>`` (from then on it is no generation: not
listed, never a rollback target), its GC root is removed, the renamed folder is deleted. The
next gc or build finishes what a killed gc left (:func:`finish_interrupted`); a generation
folder without its root is given the root back by gc when kept and whole, else dropped.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from morgan.errors import UsageError
from morgan.lock import Lock
from morgan.lock import load as load_lock
from rules.lib.materialize import Mode, TreeWriter, materialize
from store import fsio
from store.digest import Digest, blake3_hex
from store.errors import StoreError
from store.manifests import manifest_digests
from store.objects import Store
from store.roots import remove_root, roots, set_root

ROOT_PREFIX = "generation-"
MANIFEST = "manifest.json"
LOCK = "mirror.lock"  # the lock the generation was built from, an entry of its own tree
FOLDER = "generations"
INDEX = "index"
SERVER = "server.py"  # installed before a generation is made (step 0)
CONDEMNED = ".gc-"  # generations/.gc-<n>-<pid>: a generation gc has begun to delete
UNFINISHED = ".tmp-"  # generations/.tmp-<n>-<pid>: a generation a build did not finish

# Temp names of what builds write outside the store (fsio.temp_beside: ".<name>.tmp-<pid>")
# and of half-made generation trees (".tmp-<n>-<pid>"); the last number is the writer's pid.
_LEFTOVER = re.compile(
    r"\.(?:(?:index|server\.py|mirror\.toml|mirror\.lock|build-stamp\.json|last-build\.json)"
    r"\.tmp|tmp-\d+)-(\d+)"
)


def root_name(n: int) -> str:
    """The GC root that keeps generation ``n``'s blobs alive."""
    return f"{ROOT_PREFIX}{n}"


def root_number(name: str) -> int | None:
    """``n`` for a root named ``generation-<n>``; None for any other root."""
    rest = name.removeprefix(ROOT_PREFIX)
    return int(rest) if rest != name and rest.isdigit() else None


def current_generation(mirror: Path) -> int | None:
    """The generation number ``mirror/index`` points to; None before the first build."""
    try:
        name = (mirror / INDEX).readlink().name
    except OSError:
        return None
    return int(name) if name.isdigit() else None


def generation_numbers(mirror: Path) -> list[int]:
    """Every complete generation folder, oldest first (``.tmp-*`` folders are not)."""
    try:
        entries = list((mirror / FOLDER).iterdir())
    except FileNotFoundError:
        return []
    return sorted(int(p.name) for p in entries if p.name.isdigit() and p.is_dir())


def generation_path(mirror: Path, n: int) -> Path:
    return mirror / FOLDER / str(n)


def next_number(mirror: Path) -> int:
    """The number the next generation gets: one past every folder (complete or not)."""
    try:
        names = [p.name for p in (mirror / FOLDER).iterdir()]
    except FileNotFoundError:
        return 1
    return max((int(n) for n in names if n.isdigit()), default=0) + 1


def manifest_digest(mirror: Path, n: int) -> Digest | None:
    """The content address of generation ``n``'s manifest; None if it is unreadable."""
    try:
        data = (generation_path(mirror, n) / MANIFEST).read_bytes()
    except OSError:
        return None
    return Digest("blake3", blake3_hex(data))


def generation_lock(mirror: Path, n: int) -> Lock | None:
    """The lock generation ``n`` was built from; None for a generation that holds none
    (made before generations recorded it)."""
    return load_lock(generation_path(mirror, n) / LOCK)


def start_tree(store: Store, mirror: Path, *, mode: Mode) -> TreeWriter:
    """A tree for the next generation, filled entry by entry and published by :func:`publish`."""
    folder = mirror / FOLDER
    fsio.make_dir(folder)
    served = current_generation(mirror)
    return TreeWriter(
        store,
        folder / f".tmp-{next_number(mirror)}-{os.getpid()}",
        mode=mode,
        previous=generation_path(mirror, served) if served is not None else None,
    )


def publish(
    store: Store,
    mirror: Path,
    manifest: Digest,
    entries: Mapping[str, Digest],
    *,
    mode: Mode,
    tree: TreeWriter | None = None,
    sides: Mapping[str, bytes | Iterable[bytes]] = {},
) -> int:
    """Make ``entries`` (plus ``manifest.json``) the next generation and serve it; its number.

    The steps and their order are the module's (server.py, root, tree, side files, switch);
    a generation that could not be served is removed with its root. ``tree``: a tree begun
    by :func:`start_tree`, completed here (or removed on an error). ``sides``: each side
    file's bytes, or runs of them (a large lock copied a run at a time, never whole).
    """
    n = next_number(mirror)
    # (the build's generation node gives manifest.json among the entries: no copy then)
    full = entries if entries.get(MANIFEST) == manifest else {**entries, MANIFEST: manifest}
    final = generation_path(mirror, n)
    try:
        if SERVER in sides:
            fsio.replace_file(mirror / SERVER, sides[SERVER])
        set_root(store, root_name(n), manifest)
        if tree is not None:
            tree.commit(final, full)
        else:
            materialize(store, full, final, mode=mode)
        for name, data in sides.items():
            if name != SERVER:
                fsio.replace_file(mirror / name, data)
        switch(mirror, n)
    except BaseException:
        if tree is not None:
            tree.discard()
        if current_generation(mirror) != n:
            # Never served: nothing of it stays (else the next build's leftovers pass or
            # gc removes it).
            shutil.rmtree(final, ignore_errors=True)
            with contextlib.suppress(OSError, StoreError):
                remove_root(store, root_name(n))
        raise
    return n


def switch_to(
    store: Store,
    mirror: Path,
    manifest: Digest,
    entries: Mapping[str, Digest],
    *,
    mode: Mode,
    tree: TreeWriter | None = None,
    sides: Mapping[str, bytes | Iterable[bytes]] = {},
) -> tuple[int, bool]:
    """Serve the tree of ``manifest``: (its generation number, whether it is new). When the
    served generation already has that manifest, only the side files are written (and
    ``tree`` is thrown away); else :func:`publish` makes the next generation."""
    current = current_generation(mirror)
    if current is not None and manifest_digest(mirror, current) == manifest:
        if tree is not None:
            tree.discard()
        for name, data in sides.items():
            fsio.replace_file(mirror / name, data)
        return current, False
    return publish(store, mirror, manifest, entries, mode=mode, tree=tree, sides=sides), True


def switch(mirror: Path, n: int) -> None:
    """Point ``mirror/index`` at generation ``n`` atomically (a new symlink renamed over it)."""
    fsio.replace_symlink(mirror / INDEX, os.path.relpath(generation_path(mirror, n), mirror))


@dataclass(frozen=True, slots=True)
class Retention:
    """Which generations stay and which go."""

    current: int | None
    kept: tuple[int, ...]
    dropped: tuple[int, ...]
    stale_dirs: tuple[str, ...]  # .tmp-* of interrupted builds, .gc-* of interrupted gcs
    rerooted: tuple[int, ...] = ()  # kept generations whose lost GC root is written again
    stale_roots: tuple[str, ...] = ()  # generation roots whose folder is gone


def whole_manifest(store: Store, mirror: Path, n: int) -> Digest | None:
    """Generation ``n``'s manifest digest when the store holds it and every blob it names."""
    digest = manifest_digest(mirror, n)
    if digest is None:
        return None
    with contextlib.suppress(StoreError, ValueError):
        if all(store.has(d) for d in manifest_digests(store, digest)):
            return digest
    return None


def retention(mirror: Path, keep: int) -> Retention:
    """Keep the current generation and the ``keep - 1`` newest ones before it."""
    store = Store(mirror / "store")
    numbers = generation_numbers(mirror)
    current = current_generation(mirror)
    all_roots = roots(store)
    rooted = {k for k in map(root_number, all_roots) if k is not None}
    if current is None:
        kept = numbers[-keep:]
    else:
        # Generations newer than the current one were never switched to (a build died
        # between materializing and switching) or were rolled back from: not kept.
        older = [n for n in numbers if n < current]
        kept = [*(older[-(keep - 1) :] if keep > 1 else []), current]
    # A kept generation without a root gets it back only if it is whole (or current).
    rerooted = []
    for n in list(kept):
        if n not in rooted:
            if n == current or whole_manifest(store, mirror, n) is not None:
                rerooted.append(n)
            else:
                kept.remove(n)
    dropped = [n for n in numbers if n not in kept]
    try:
        stale = sorted(
            p.name
            for p in (mirror / FOLDER).iterdir()
            if p.name.startswith((UNFINISHED, CONDEMNED))
        )
    except FileNotFoundError:
        stale = []
    stale_roots = sorted(
        r for r in all_roots if (k := root_number(r)) is not None and k not in numbers
    )
    return Retention(
        current, tuple(kept), tuple(dropped), tuple(stale), tuple(rerooted), tuple(stale_roots)
    )


def dropped_roots(store: Store, plan: Retention) -> list[str]:
    """The generation roots of ``plan``'s dropped generations (and of vanished folders)."""
    return [r for r in roots(store) if (k := root_number(r)) is not None and k not in plan.kept]


def drop(store: Store, mirror: Path, plan: Retention) -> None:
    """Carry out ``plan`` so that a kill at any point is harmless: lost roots of kept whole
    generations written again; each dropped folder renamed aside (condemned), then the
    roots removed (once a root is gone its generation is promised to no one), then the
    condemned and stale folders deleted."""
    folder = mirror / FOLDER
    for n in plan.rerooted:
        manifest = whole_manifest(store, mirror, n)
        if manifest is not None:
            set_root(store, root_name(n), manifest)
    condemned = []
    for n in plan.dropped:
        target = folder / f"{CONDEMNED}{n}-{os.getpid()}"
        try:
            generation_path(mirror, n).rename(target)
        except OSError as exc:
            raise fsio.write_error(exc, target) from exc
        condemned.append(target)
    if condemned:
        fsio.fsync_dir(folder)
    for r in dropped_roots(store, plan):
        remove_root(store, r)
    for path in [*condemned, *(folder / s for s in plan.stale_dirs)]:
        # Links and 0444 copies sit in writable folders: plain unlinks remove them.
        fsio.remove_tree(path)


def finish_interrupted(store: Store, mirror: Path) -> None:
    """What a killed gc left, completed (under the store lock): the roots of generations
    whose folder is gone removed, then its condemned folders deleted."""
    try:
        condemned = [p for p in (mirror / FOLDER).iterdir() if p.name.startswith(CONDEMNED)]
    except FileNotFoundError:
        return
    numbers = set(generation_numbers(mirror))
    for r in roots(store):
        k = root_number(r)
        if k is not None and k not in numbers:
            remove_root(store, r)
    for path in condemned:
        fsio.remove_tree(path)


def remove_leftovers(mirror: Path, workspace: Path) -> None:
    """Delete temp files and half-made generations of builds that died (killed, power cut),
    and finish what a killed gc left.

    Only temp files whose pid is no running process: nothing another live build is writing.
    """
    finish_interrupted(Store(mirror / "store"), mirror)
    for folder in (mirror, mirror / FOLDER, workspace):
        try:
            entries = list(folder.iterdir())
        except FileNotFoundError:
            continue
        for path in entries:
            match = _LEFTOVER.fullmatch(path.name)
            if match is None or _alive(int(match.group(1))):
                continue
            if path.is_dir() and not path.is_symlink():
                fsio.remove_tree(path)
            else:
                path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def rollback(store: Store, mirror: Path, n: int | None) -> tuple[int, int]:
    """Serve generation ``n`` (default: the newest one before the current); (from, to).

    The generation must be complete and still rooted (``gc`` has not dropped it). The
    mirror's copy of ``mirror.lock`` becomes the lock that generation was built from, so
    ``graph`` and ``verify`` describe what is served. The caller holds the store lock.
    """
    current = current_generation(mirror)
    numbers = generation_numbers(mirror)
    if n is None:
        older = [k for k in numbers if current is None or k < current]
        if not older:
            raise UsageError(
                f"{mirror}: no generation before {current} to roll back to"
                " (gc keeps the current one and --keep N-1 before it)"
            )
        n = older[-1]
    if n not in numbers:
        have = ", ".join(str(k) for k in numbers) or "none"
        raise UsageError(f"rollback {n}: no such generation (generations: {have})")
    rooted = roots(store).get(root_name(n))
    digest = manifest_digest(mirror, n)
    if rooted is None or digest is None or rooted != digest:
        raise UsageError(
            f"rollback {n}: generation {n} is incomplete or no longer kept by a GC root;"
            " pick another one or rebuild"
        )
    missing = _missing_blobs(store, mirror, n)
    if missing:
        raise UsageError(
            f"rollback {n}: {missing} of its blobs are missing from the store;"
            " run 'morgan verify --repair' first"
        )
    lock_file = generation_path(mirror, n) / LOCK
    if lock_file.exists():
        fsio.replace_file(mirror / LOCK, lock_file.read_bytes())
    switch(mirror, n)
    return (current or 0), n


def _missing_blobs(store: Store, mirror: Path, n: int) -> int:
    try:
        data = json.loads((generation_path(mirror, n) / MANIFEST).read_bytes())
        digests = [Digest.parse(d) for d in data.get("objects", ())]
    except (OSError, ValueError, StoreError):
        return 1
    return sum(1 for d in digests if not store.has(d))
