"""``morgan missing`` and ``morgan clients``: the server's miss record, read back.

``missing`` turns what clients asked for and the mirror lacks into a requirements file to
carry to the connected side (``morgan add -r wants.txt``); ``clients`` lists which kinds of
client use the mirror and which have no matching environment in the spec
(``morgan env add NAME --from-user-agent AGENT`` adds one).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from morgan.environments import Environment
from morgan.errors import MorganError
from morgan.location import locate
from morgan.misses import Seen, Want, clients, parse_since, read_record, wants
from morgan.server import default_miss_record


def configure(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument(
        "--record",
        type=Path,
        metavar="FILE",
        help="the server's miss record (default: the one server.py uses for this mirror)",
    )
    parser.add_argument(
        "--since", metavar="DATE", help="only requests at or after DATE (YYYY-MM-DD, UTC)"
    )
    if name == "missing":
        parser.add_argument(
            "-o",
            "--output",
            type=Path,
            metavar="FILE",
            help="write the requirements file here (default: print it)",
        )


def run(args: argparse.Namespace) -> int:
    record, environments = _where(args)
    since = parse_since(args.since) if args.since else None
    entries = read_record(record, since)
    if args.command == "clients":
        return _clients(clients(entries, environments), environments, args)
    return _missing(wants(entries, environments), record, args)


def _where(args: argparse.Namespace) -> tuple[Path, list[Environment]]:
    """The record to read and the spec's environments (none when there is no spec)."""
    try:
        location = locate(args.workspace)
    except MorganError:
        if args.record is None:
            raise
        return args.record, []
    environments = list(location.spec.environments) if location.spec is not None else []
    record = args.record or Path(default_miss_record(str(location.mirror)))
    return record, environments


def _missing(found: list[Want], record: Path, args: argparse.Namespace) -> int:
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "requirement": w.requirement,
                        "project": w.project,
                        "requests": w.requests,
                        "files": sorted(w.files),
                        "views": sorted(w.views),
                        "clients": dict(sorted(w.clients.items())),
                        "environments": sorted(w.environments),
                        "last": w.last.strftime("%Y-%m-%dT%H:%M:%SZ") if w.last else None,
                    }
                    for w in found
                ],
                indent=2,
            )
        )
    since = f" since {args.since}" if args.since else ""
    lines = [
        f"# morgan missing: {len(found)} projects clients asked for and the mirror lacks{since}",
        f"# (record: {record}). On the connected side: morgan add -r THIS_FILE && morgan build",
    ]
    for w in found:
        who = "; ".join(
            f"{label} ×{n}" + (f" (env {', '.join(sorted(w.environments))})" if i == 0 else "")
            for i, (label, n) in enumerate(sorted(w.clients.items(), key=lambda kv: -kv[1]))
        )
        views = f"; in {', '.join(sorted(w.views))}" if w.views else ""
        lines.append(f"{w.requirement}  # {w.requests} requests{views}; {who}")
    text = "\n".join(lines) + "\n"
    if args.output is not None:
        args.output.write_text(text, encoding="utf-8")
        if not args.quiet and not args.json:
            print(f"wrote {len(found)} requirements to {args.output}", file=sys.stderr)
    elif not args.json:
        sys.stdout.write(text)
    return 0


def _clients(seen: list[Seen], environments: list[Environment], args: argparse.Namespace) -> int:
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "client": s.label,
                        "environments": s.environments,
                        "agents": sorted(s.agents),
                        "days": len(s.days),
                        "misses": s.misses,
                        "last": s.last.strftime("%Y-%m-%dT%H:%M:%SZ") if s.last else None,
                    }
                    for s in seen
                ],
                indent=2,
            )
        )
        return 0
    used = {name for s in seen for name in s.environments}
    for s in seen:
        where = f"env {', '.join(s.environments)}" if s.environments else "NO MATCHING ENVIRONMENT"
        print(f"{s.label}: {where}; days seen: {len(s.days)}, misses: {s.misses}")
        if not s.environments and s.agents:
            example = shlex.quote(sorted(s.agents)[0].replace("'", '"'))
            print(f"  add it: morgan env add NAME --from-user-agent {example}")
    unused = [e.name for e in environments if e.name not in used]
    if unused:
        print(f"environments no client matched: {', '.join(unused)}")
    return 0
