"""``morgan publish s3://BUCKET/PREFIX``: put the current generation in object storage.

Works from a workspace or a mirror folder alone (e.g. one made by ``morgan import``): the
input is the generation ``index`` points to. See docs/object-storage.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from morgan.errors import UsageError
from morgan.location import locate
from morgan.objectstore import record as rec
from morgan.objectstore.bucket import Bucket, Target
from morgan.objectstore.prune import PruneReport, parse_duration, prune
from morgan.objectstore.sync import Plan, list_bucket, make_plan, publish
from morgan.objectstore.tree import Tree, generation_dir, read_tree


def configure(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument("url", metavar="s3://BUCKET/PREFIX", help="where to publish")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="say what would be uploaded and deleted; write nothing",
    )
    parser.add_argument(
        "-j", "--jobs", type=int, default=16, metavar="N", help="parallel uploads (default 16)"
    )
    parser.add_argument(
        "--no-bare-keys",
        action="store_true",
        help="publish pages only as <dir>/index.html and index.json, not also as <dir>/:"
        " for stores that keep objects as files (rclone serve s3); serve through nginx",
    )
    parser.add_argument(
        "--prune",
        action="store_true",
        help="after publishing, delete objects no kept generation needs",
    )
    parser.add_argument(
        "--keep",
        type=int,
        default=2,
        metavar="N",
        help="with --prune: generations to keep, the current one included (default 2)",
    )
    parser.add_argument(
        "--grace",
        default="1h",
        metavar="DURATION",
        help="with --prune: keep a superseded generation this long (default 1h; 30s, 15m, 2d)",
    )


def human_page(mirror: Path, generation: Path) -> bytes:
    """The static human page of a generation (server.py's, without a search query)."""
    from morgan.server import Generation, Summary, render_home

    summary = Summary(Generation(str(mirror), str(generation)))
    return render_home(summary, "").encode("utf-8")


def run(args: argparse.Namespace) -> int:
    target = Target.parse(args.url)
    if args.jobs < 1:
        raise UsageError(f"-j {args.jobs}: use at least 1 parallel upload")
    if args.keep < 1:
        raise UsageError(f"--keep {args.keep}: keep at least 1 generation (the current one)")
    grace = parse_duration(args.grace)
    where = locate(args.workspace)
    generation = generation_dir(where.mirror)
    tree = read_tree(
        generation,
        human_page(where.mirror, generation),
        under_prefix=bool(target.prefix),
        bare_keys=not args.no_bare_keys,
    )
    started = time.monotonic()
    bucket = Bucket(target, connections=args.jobs + 2)
    record = rec.load(bucket)
    plan = make_plan(bucket, tree, record, list_bucket(bucket, jobs=args.jobs))
    if not args.dry_run:
        publish(bucket, tree, record, plan, jobs=args.jobs)
    pruned = (
        prune(bucket, record, args.keep, grace, datetime.now(UTC), dry_run=args.dry_run)
        if args.prune
        else None
    )
    seconds = time.monotonic() - started
    error = None
    if plan.repaired and not args.dry_run:
        # Exit 1 although the bucket is whole again: something else writes there.
        error = (
            f"{target}: {len(plan.repaired)} objects were changed or deleted outside Morgan"
            f" (first: {plan.repaired[0]}); uploaded again, the bucket is complete: find out"
            " what else writes there"
        )
    _report(
        error=error,
        args=args,
        target=target,
        tree=tree,
        plan=plan,
        pruned=pruned,
        bucket=bucket,
        seconds=seconds,
    )
    if error is not None:
        print(f"morgan: error: {error}", file=sys.stderr)
        return 1
    return 0


def _report(
    *,
    args: argparse.Namespace,
    target: Target,
    tree: Tree,
    plan: Plan,
    pruned: PruneReport | None,
    bucket: Bucket,
    seconds: float,
    error: str | None,
) -> None:
    verb = "would upload" if args.dry_run else "uploaded"
    if args.json:
        out: dict[str, object] = {
            "target": str(target),
            "generation": tree.digest,
            "dry_run": args.dry_run,
            "objects": len(tree.objects),
            "uploaded": {"objects": len(plan.uploads), "bytes": plan.upload_bytes},
            "unchanged": plan.unchanged,
            "adopted": len(plan.adopted),
            "repaired": plan.repaired,
            "requests": dict(sorted(bucket.requests.items())),
            "seconds": round(seconds, 3),
        }
        if pruned is not None:
            out["pruned"] = {
                "kept": pruned.kept,
                "dropped": pruned.dropped,
                "waiting": pruned.waiting,
                "deleted": {"objects": len(pruned.deleted), "bytes": pruned.bytes},
            }
        if error is not None:
            out["error"], out["exit-code"] = error, 1
        json.dump(out, sys.stdout, indent=2)
        sys.stdout.write("\n")
    if args.quiet:
        return
    err = sys.stderr
    if args.verbose or args.dry_run:
        for obj in plan.uploads:
            print(f"{verb} {obj.key} ({obj.size} bytes)", file=err)
        for key in pruned.deleted if pruned else []:
            print(f"{'would delete' if args.dry_run else 'deleted'} {key}", file=err)
    print(
        f"{target}: generation {tree.digest[:16]}: {verb} {len(plan.uploads)} of"
        f" {len(tree.objects)} objects ({plan.upload_bytes} bytes), {plan.unchanged}"
        f" unchanged, {len(plan.adopted)} found in place; {sum(bucket.requests.values())}"
        f" requests, {seconds:.2f}s",
        file=err,
    )
    if pruned is not None:
        verb = "would delete" if args.dry_run else "deleted"
        print(
            f"prune: kept {len(pruned.kept)} generations ({len(pruned.waiting)} in grace),"
            f" dropped {len(pruned.dropped)}; {verb} {len(pruned.deleted)} objects"
            f" ({pruned.bytes} bytes)",
            file=err,
        )
