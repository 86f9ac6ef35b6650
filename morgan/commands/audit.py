"""``morgan audit --advisories FILE [--env NAME] [--json]``: locked versions with advisories.

Offline: reads the OSV export given (the zip OSV publishes for PyPI) and the lock of the
workspace or of a mirror folder alone. Exit 0 when no locked version is affected, 1 when
some are (each listed), 2 when the file or the arguments are unusable.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from morgan import lock as lockfile
from morgan.advisories import Finding, find, load_advisories
from morgan.errors import UsageError
from morgan.location import locate
from morgan.toml_reader import display_path


def configure(parser: argparse.ArgumentParser, name: str) -> None:
    del name
    parser.add_argument(
        "--advisories",
        required=True,
        type=Path,
        metavar="FILE",
        help="the OSV export for PyPI (all.zip from osv-vulnerabilities.storage.googleapis.com)",
    )
    parser.add_argument("--env", metavar="NAME", help="only this environment's pins")


def run(args: argparse.Namespace) -> int:
    where = locate(args.workspace)
    lock = lockfile.load(where.lock_path)
    if lock is None:
        raise UsageError(
            f"{display_path(where.lock_path)}: no such file — run 'morgan build' first"
        )
    if args.env is not None and lock.environment(args.env) is None:
        known = ", ".join(e.name for e in lock.environments) or "none"
        raise UsageError(f"no environment {args.env!r} in the lock — known: {known}")
    pins = [
        (p.name, p.version, env.name)
        for env in lock.environments
        if args.env in (None, env.name)
        for p in env.pins
    ]
    findings = find(load_advisories(args.advisories), pins)
    _report(findings, len({(n, v) for n, v, _ in pins}), args)
    return 1 if findings else 0


def _report(findings: list[Finding], checked: int, args: argparse.Namespace) -> None:
    if args.json:
        doc = {"checked": checked, "findings": [f.to_json() for f in findings]}
        print(json.dumps(doc, indent=2, sort_keys=True))
        return
    for f in findings:
        print(f"{f.line()} [{', '.join(f.environments)}]", file=sys.stderr)
    if not args.quiet:
        releases = len({(f.name, f.version) for f in findings})
        print(
            f"{checked} locked releases checked: {releases} affected by {len(findings)} advisories",
            file=sys.stderr,
        )
