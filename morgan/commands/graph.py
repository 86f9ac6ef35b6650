"""``morgan graph``: why each package is in the mirror, from the lock alone (offline)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from morgan.errors import MorganError, UsageError
from morgan.graph import (
    UnknownProjectError,
    graph_json,
    load_graph,
    render_dot,
    render_mermaid,
    render_text,
    render_why_text,
    why,
    why_json,
)
from morgan.graph_html import render_html
from morgan.location import Location, locate
from morgan.lock import PARSED_LOCK, Lock
from morgan.lock import load as load_lock

FORMATS = ("text", "dot", "json", "mermaid", "html")


class NotInMirrorError(MorganError):
    """``--why`` named a project the mirror does not have (exit 1, like a failed check)."""


def configure(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument("--why", metavar="NAME", help="every path from the spec to NAME")
    parser.add_argument("--env", metavar="E", help="only environment E (default: all)")
    parser.add_argument(
        "--index",
        metavar="NAME",
        help="the named index NAME ([indexes.NAME]; default: the default index at simple/)",
    )
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default=None,
        help="output format (default text; --json means json); html is one self-contained page",
    )
    parser.add_argument(
        "--build",
        action="store_true",
        help="draw the build plan of the current lock (rule nodes, keys, what ran and why)",
    )
    parser.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")


def _audience(lock: Lock, index: str | None) -> Lock:
    """``lock`` as its default index (None) or the named ``index`` sees it: that index's
    resolutions as the environments."""
    if index is None:
        return lock
    named = lock.named_index(index)
    if named is None:
        have = ", ".join(i.name for i in lock.indexes) or "no named indexes"
        raise UsageError(f"--index {index}: no such index; the lock has {have}")
    return dataclasses.replace(lock, environments=named.environments)


def run(args: argparse.Namespace) -> int:
    where = locate(args.workspace)
    lock = load_lock(where.lock_path, parsed=where.store.root / PARSED_LOCK)
    if lock is None:
        raise UsageError(f"{where.lock_path}: no mirror.lock; run 'morgan build' first")
    fmt = args.format or ("json" if args.json else "text")
    if args.build:
        if args.why is not None or args.env is not None:
            raise UsageError("--build draws the whole plan: drop --why and --env")
        _write(args, _plan(where, lock, fmt))
        return 0
    graph = load_graph(_audience(lock, args.index))
    if args.env is not None and args.env not in graph.graphs:
        raise UsageError(
            f"--env {args.env}: no such environment; the lock has {', '.join(graph.env_names())}"
        )
    envs = [args.env] if args.env else graph.env_names()
    if args.why is not None:
        if fmt not in ("text", "json"):
            raise UsageError(f"--why prints text or json, not {fmt}: drop --format {fmt}")
        try:
            answer = why(graph, args.why, args.env)
        except UnknownProjectError as exc:
            of = f" of index {args.index!r}" if args.index else ""
            raise NotInMirrorError(f"{exc}{of}") from None
        text = (
            json.dumps(why_json(answer), indent=2) + "\n"
            if fmt == "json"
            else render_why_text(graph, answer)
        )
    elif fmt == "text":
        text = render_text(graph, envs)
    elif fmt == "dot":
        text = render_dot(graph, envs)
    elif fmt == "mermaid":
        text = render_mermaid(graph, envs)
    elif fmt == "json":
        text = json.dumps(graph_json(graph, envs), indent=2) + "\n"
    else:
        text = render_html(graph, envs)
    _write(args, text)
    return 0


def _write(args: argparse.Namespace, text: str) -> None:
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)


def _plan(where: Location, lock: Lock, fmt: str) -> str:
    from morgan.plan_view import plan_graph, render_plan

    if where.spec is None:
        raise UsageError(
            f"{where.mirror}: graph --build needs the spec (mirror.toml) beside the lock"
        )
    if fmt == "mermaid":
        raise UsageError("--build draws text, json, dot or html, not mermaid: drop --format")
    g = plan_graph(where.spec, lock, where.lock_path.read_bytes(), where.mirror)
    return render_plan(g, fmt)
