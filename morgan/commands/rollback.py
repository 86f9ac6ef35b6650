"""``morgan rollback [N]``: serve an earlier generation again (the default: the one before).

The documented ``ln -s`` / ``mv -T`` recipe as a command, under the store lock: the
generation must still be complete and rooted (``gc --keep`` keeps the current one and N-1
before it). The mirror's ``mirror.lock`` becomes the lock that generation was built from, so
``verify`` and ``graph`` describe what is served. The next ``morgan build`` rolls forward.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from morgan.commands import add_wait_option
from morgan.errors import UsageError
from morgan.generations import rollback
from morgan.location import is_mirror, locate
from store.lock import StoreLock


def configure(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument(
        "generation",
        nargs="?",
        type=int,
        metavar="N",
        help="the generation to serve (default: the newest one before the current)",
    )
    parser.add_argument(
        "--mirror",
        type=Path,
        metavar="DIR",
        help="the mirror folder (default: the workspace's [output] path, or -C DIR if it is one)",
    )
    add_wait_option(parser, "a build or gc")


def run(args: argparse.Namespace) -> int:
    if args.generation is not None and args.generation < 1:
        raise UsageError(f"rollback {args.generation}: generations are numbered from 1")
    if args.mirror is not None and not is_mirror(args.mirror):
        raise UsageError(
            f"--mirror {args.mirror}: not a mirror folder (no store/ and generations/):"
            " pass the folder a build wrote"
        )
    where = locate(args.mirror if args.mirror is not None else args.workspace)
    store = where.store
    with StoreLock(store.root).exclusive(timeout=args.wait):
        before, after = rollback(store, where.mirror, args.generation)
    if args.json:
        print(json.dumps({"from": before or None, "to": after}))
    elif not args.quiet:
        print(f"serving generation {after} (was {before or 'none'})", file=sys.stderr)
    return 0
