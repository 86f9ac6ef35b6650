"""One module per CLI command; each exposes ``run(args: argparse.Namespace) -> int``."""

from __future__ import annotations

import argparse
import gc as collector  # not `gc`: the package's `gc` is morgan.commands.gc


def add_wait_option(parser: argparse.ArgumentParser, holder: str) -> None:
    """``--wait SECONDS``: how long a command waits for ``holder`` to release the store lock."""
    parser.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help=f"wait this long for {holder} holding the store (default: fail at once)",
    )


def fewer_collections() -> None:
    """Run the cyclic garbage collector less often, for a command that keeps millions of
    small objects alive to its end and makes little cyclic garbage (a build: the files of
    every page, releases, versions; verify: the lock and every view's pages). At the default
    thresholds the collector scanned them ~1 300 times in a top200 cold build, 1.5-2.2 s of
    pauses that hold the GIL: collect the young objects every 50 000 allocations."""
    collector.set_threshold(50_000, 20, 100)
