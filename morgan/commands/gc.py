"""``morgan gc``: drop old generations, then delete every blob no kept root reaches.

Kept: the generation ``index`` points to and the ``--keep N`` - 1 newest generations before
it, plus every root that is not a generation's (a running build's, an import's). Dropped
generations are renamed aside, lose their GC root, then their folder (crash-safe: see
:mod:`morgan.generations`, which also finishes what a killed gc left); then
:func:`store.gc.collect` sweeps objects, action cache entries naming deleted blobs and stale
temp files. All of it runs under the store's exclusive lock, which a build holds for its
whole run: gc and build exclude each other (``--wait SECONDS`` to queue behind a build
instead of failing).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

from morgan.commands import add_wait_option
from morgan.errors import UsageError
from morgan.generations import (
    FOLDER,
    Retention,
    drop,
    dropped_roots,
    generation_path,
    retention,
    root_number,
)
from morgan.human import count, size
from morgan.location import locate
from store.digest import Digest
from store.errors import StoreError
from store.folders import collect_folders, live_folders
from store.gc import DEFAULT_GRACE_SECONDS, GcReport, collect, live_from_roots
from store.lock import StoreLock
from store.manifests import manifest_digests
from store.objects import Store
from store.roots import roots


def configure(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument("--dry-run", action="store_true", help="list what would go; delete nothing")
    parser.add_argument(
        "--keep",
        type=int,
        default=2,
        metavar="N",
        help="generations to keep: the current one and the N-1 before it (default 2)",
    )
    parser.add_argument(
        "--grace",
        type=float,
        default=DEFAULT_GRACE_SECONDS,
        metavar="SECONDS",
        help="keep temp files younger than this (default 3600: a writer may still use them)",
    )
    add_wait_option(parser, "a build")


def _tree_bytes(path: Path) -> int:
    """Bytes of regular files under ``path`` (copied generations; links count as nothing).

    The entry types come from the directory listing: only regular files are stat-ed (a
    symlinked generation has tens of thousands of links and no file)."""
    total = 0
    pending = [str(path)]
    while pending:
        try:
            entries = list(os.scandir(pending.pop()))
        except FileNotFoundError:
            continue
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                pending.append(entry.path)
            elif entry.is_file(follow_symlinks=False):
                total += entry.stat(follow_symlinks=False).st_size
    return total


def _entry_names(store: Store, digest: Digest) -> dict[Digest, str]:
    """What a generation called each blob (for readable listings); empty if unreadable."""
    try:
        data = json.loads(store.read_bytes(digest))
    except (StoreError, ValueError):
        return {}
    entries = data.get("entries", {}) if isinstance(data, dict) else {}
    out: dict[Digest, str] = {}
    for rel, text in sorted(entries.items()):
        try:
            out.setdefault(Digest.parse(text), rel)
        except ValueError:
            continue
    return out


def collect_generations(
    mirror: Path, keep: int, *, dry_run: bool, grace: float
) -> tuple[Retention, GcReport, int, dict[Digest, str]]:
    """Drop generations beyond ``keep`` and sweep the store (the caller holds the lock).

    Returns the plan, the sweep report, the bytes of dropped generation folders and names
    for the deleted blobs.
    """
    store = Store(mirror / "store")
    p = retention(mirror, keep)
    all_roots = roots(store)
    names: dict[Digest, str] = {}
    for root, digest in all_roots.items():
        if root_number(root) is not None:
            names.update(_entry_names(store, digest))
    dropped = dropped_roots(store, p)
    folders = [generation_path(mirror, n) for n in p.dropped]
    folders += [mirror / FOLDER / s for s in p.stale_dirs]
    folder_bytes = sum(_tree_bytes(f) for f in folders)
    # The live set comes from the kept roots, read before anything is touched: a kept
    # root whose manifest is unreadable stops gc here, with nothing deleted.
    live: set[Digest] = set()
    for r, digest in all_roots.items():
        if r not in dropped:
            live |= manifest_digests(store, digest)
    if not dry_run:
        drop(store, mirror, p)
        # The sweep trusts only the roots left on disk (under the exclusive lock, the
        # same set as above).
        live = set(live_from_roots(store))
    report = collect(store, live, dry_run=dry_run, grace_seconds=grace)
    # Shared folders (store/folders): those a kept generation's manifest has, no others.
    kept = [d for r, d in roots(store).items() if r not in dropped]
    shared = collect_folders(store, live_folders(_entries(store, d) for d in kept), dry_run=dry_run)
    return p, dataclasses.replace(report, deleted_folders=tuple(shared)), folder_bytes, names


def _entries(store: Store, manifest: Digest) -> dict[str, Digest]:
    """A manifest's tree entries (none for a root whose manifest holds no tree)."""
    data = json.loads(store.read_bytes(manifest))
    entries = data.get("entries", {}) if isinstance(data, dict) else {}
    return {rel: Digest.parse(text) for rel, text in entries.items()}


def run(args: argparse.Namespace) -> int:
    if args.keep < 1:
        raise UsageError(f"--keep {args.keep}: keep at least 1 generation (the current one)")
    where = locate(args.workspace)
    store = where.store
    with StoreLock(store.root).exclusive(timeout=args.wait):
        p, report, folder_bytes, names = collect_generations(
            where.mirror, args.keep, dry_run=args.dry_run, grace=args.grace
        )
    total = report.bytes_freed + folder_bytes
    if args.json:
        out = report.to_json()
        out["bytes-freed"] = total
        out["generations"] = {
            "current": p.current,
            "kept": list(p.kept),
            "dropped": list(p.dropped),
            "stale": list(p.stale_dirs),
            "bytes": folder_bytes,
        }
        json.dump(out, sys.stdout, indent=2)
        sys.stdout.write("\n")
    if not args.quiet:
        _print_report(store, p, report, folder_bytes, names)
    return 0


def _print_report(
    store: Store, p: Retention, report: GcReport, folder_bytes: int, names: dict[Digest, str]
) -> None:
    verb = "would delete" if report.dry_run else "deleted"
    err = sys.stderr
    kept = ", ".join(str(n) for n in p.kept) or "none"
    print(f"generations kept: {kept} (current: {p.current})", file=err)
    for n in p.rerooted:
        restore = "would restore" if report.dry_run else "restored"
        print(f"{restore} the GC root of generation {n}", file=err)
    for n in p.dropped:
        print(f"{verb} generation {n}", file=err)
    for s in p.stale_dirs:
        print(f"{verb} unfinished generation folder {s}", file=err)
    for r in p.stale_roots:
        print(f"{verb} GC root {r} (its generation folder is gone)", file=err)
    for d in report.deleted_objects:
        # A dry run can still measure each object; a name says what it was (the path a
        # generation gave it), else it is an internal record (an upstream page, metadata).
        measured = f"  {size(store.size(d))}" if report.dry_run and d in store else ""
        what = names.get(d, "(internal record: upstream page or metadata)")
        print(f"{verb} {store.relpath(d)}{measured}  {what}", file=err)
    for t in report.deleted_temp:
        print(f"{verb} {t}", file=err)

    total = report.bytes_freed + folder_bytes
    print(
        f"{verb} {count(len(report.deleted_objects), 'object')} "
        f"({size(report.object_bytes)}), "
        f"{count(len(report.deleted_actions), 'action entry', 'action entries')} "
        f"({size(report.action_bytes)}), "
        f"{count(len(report.deleted_temp), 'temp file')} ({size(report.temp_bytes)}), "
        f"{count(len(p.dropped), 'generation')} ({size(folder_bytes)}), "
        f"{count(len(report.deleted_folders), 'shared folder')}; "
        f"{'would free' if report.dry_run else 'freed'} {size(total)}; "
        f"{count(report.kept_objects, 'object')} kept",
        file=err,
    )
    if report.missing_live:
        print(
            f"warning: {len(report.missing_live)} objects the kept generations need are missing:"
            " run 'morgan verify --repair'",
            file=err,
        )
