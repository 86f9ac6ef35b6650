"""One module per CLI command; each exposes ``run(args: argparse.Namespace) -> int``."""

from __future__ import annotations

import argparse


def add_wait_option(parser: argparse.ArgumentParser, holder: str) -> None:
    """``--wait SECONDS``: how long a command waits for ``holder`` to release the store lock."""
    parser.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help=f"wait this long for {holder} holding the store (default: fail at once)",
    )
