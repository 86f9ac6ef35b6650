"""``morgan build``: resolve, fetch, render, switch; print a summary (and why nodes ran)."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import re
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from morgan.commands import add_wait_option, fewer_collections
from morgan.errors import BuildError, UsageError
from morgan.human import count, size
from morgan.noop import up_to_date
from morgan.progress import ProgressReporter

if TYPE_CHECKING:
    from morgan.build import BuildResult
    from morgan.spec import Spec, Upstream


def configure(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument(
        "--mirror",
        "--out",
        dest="out",
        type=Path,
        metavar="DIR",
        help="the mirror folder (default: [output] path; --out is the old spelling)",
    )
    parser.add_argument("--offline", action="store_true", help="never use the network")
    parser.add_argument(
        "--upgrade",
        nargs="*",
        metavar="NAME",
        help="refresh project pages and re-resolve (all projects, or only NAMEs)",
    )
    parser.add_argument(
        "--materialize",
        choices=("symlink", "copy", "hardlink"),
        default="symlink",
        help="how the index tree refers to blobs (default: relative symlinks)",
    )
    parser.add_argument("--explain", action="store_true", help="print every node that ran and why")
    parser.add_argument(
        "--jobs",
        "-j",
        type=int,
        default=16,
        help="parallel downloads (default 16), and half as many of files of 4 MB or more",
    )
    add_wait_option(parser, "another build or gc")


def upstream_credentials(
    upstreams: Sequence[Upstream], environ: Mapping[str, str]
) -> dict[str, tuple[str, str]]:
    """The credentials of each upstream, keyed by its host[:port]: ``user:password@`` from
    its ``index-url`` (split off when the spec was loaded), overridden by
    ``MORGAN_UPSTREAM_<NAME>_USERNAME`` / ``_PASSWORD`` (NAME upper-cased, other characters
    as ``_``) — like uv's ``UV_INDEX_<NAME>_USERNAME``. Never written anywhere;
    ``~/.netrc`` still applies to hosts without any."""
    out = {}
    for up in upstreams:
        host = urlsplit(up.index_url).netloc
        if up.credentials is not None:
            out[host] = up.credentials
        key = re.sub(r"[^A-Z0-9]", "_", up.name.upper())
        user = environ.get(f"MORGAN_UPSTREAM_{key}_USERNAME")
        password = environ.get(f"MORGAN_UPSTREAM_{key}_PASSWORD")
        if user is not None and password is not None:
            out[host] = (user, password)
    return out


def make_client(offline: bool, upstreams: Sequence[Upstream] = ()) -> object:
    from rules.lib.http import HttpClient

    if offline:
        return _OfflineClient()
    return HttpClient(credentials=upstream_credentials(upstreams, os.environ))


class _OfflineClient:
    requests_sent = 0

    def _refuse(self, url: str) -> None:
        raise UsageError(f"--offline: would fetch {url}; run without --offline to fetch it")

    def get_page(self, url: str, *, etag: str | None = None) -> object:
        self._refuse(url)
        raise AssertionError  # unreachable

    def get_bytes(self, url: str, *, max_bytes: int) -> bytes:
        self._refuse(url)
        raise AssertionError

    def stream(self, url: str) -> object:
        self._refuse(url)
        raise AssertionError


def run(args: argparse.Namespace) -> int:
    if args.jobs < 1:
        raise UsageError(f"--jobs {args.jobs}: must be at least 1 (parallel downloads)")
    if args.upgrade is None and not args.json and args.materialize == "symlink":
        current = up_to_date(args.workspace, args.out)
        if current is not None:
            if not args.quiet:
                print(
                    f"unchanged, still generation {current.generation}: nothing to do "
                    f"({count(current.files, 'blob')}, {size(current.bytes_total)}, all present)\n"
                    f"generation digest {current.digest}\n"
                    f"index: {current.mirror / 'index'}",
                    file=sys.stderr,
                )
            return 0
    fewer_collections()
    from morgan.spec import load_spec

    spec = load_spec(args.workspace / "mirror.toml")
    preparing = _prepare_store((args.out or spec.output).resolve() / "store")
    try:
        client = make_client(args.offline, spec.upstreams)
        _start_early(args, spec, client)
        return _build(args, spec, client)
    finally:
        preparing.join()  # (an in-process caller finds the store as the build left it)


def _start_early(args: argparse.Namespace, spec: Spec, client: object) -> None:
    """Ask for the root projects' pages now, while the build imports the resolver, when
    the build resolves and may ask for them (not with a lock to build from, ``--offline``,
    ``--upgrade NAME``, or private folders, whose names are never asked of an upstream).
    A build that resolves from scratch (no lock) without named indexes crawls on from
    them there (morgan/early.py): each root's likely ``.metadata``, then its dependencies'
    pages."""
    from packaging.specifiers import SpecifierSet
    from packaging.utils import canonicalize_name

    from morgan.spec import routed
    from rules.model import NormalizedName

    if args.offline or args.upgrade not in (None, []) or spec.all_private:
        return
    locked = (spec.path.parent / "mirror.lock").exists()
    if args.upgrade is None and locked:
        return
    roots: dict[NormalizedName, SpecifierSet] = {}
    for r in spec.all_requirements:
        name = NormalizedName(canonicalize_name(r.name))
        roots[name] = roots[name] & r.specifier if name in roots else r.specifier

    def page_url(name: NormalizedName) -> str | None:
        first = routed(spec.upstreams, name)[:1]  # the upstream the catalog asks first
        return f"{first[0].index_url}{name}/" if first else None

    if locked or spec.indexes:
        urls = [url for url in map(page_url, roots) if url is not None]
        client.get_pages_early(urls)  # type: ignore[attr-defined]
        return
    from morgan.early import EarlyCrawl
    from rules.lib.fetch import MAX_METADATA_BYTES

    EarlyCrawl(
        client,  # type: ignore[arg-type]
        roots,
        spec.targets,
        page_url,
        max_metadata_bytes=MAX_METADATA_BYTES,
    ).start()


def _build(args: argparse.Namespace, spec: Spec, client: object) -> int:
    # Imported here: the build pulls in networkx and resolvelib, which `morgan --help` and
    # every other command do not need.
    from morgan.build import BuildOptions, build
    from morgan.resolve import UnknownProjectError

    upgrade: bool | frozenset[str]
    if args.upgrade is None:
        upgrade = False
    elif args.upgrade == []:
        upgrade = True
    else:
        upgrade = frozenset(args.upgrade)
    opts = BuildOptions(
        out=args.out,
        offline=args.offline,
        upgrade=upgrade,
        materialize=args.materialize,
        workers=args.jobs,
        lock_timeout=args.wait,
    )
    progress = ProgressReporter(
        sys.stderr,
        live=sys.stderr.isatty() and not args.quiet,
        verbose=args.verbose,
        # One resolution per target for the default index and each named one.
        environments=len(spec.targets) * (1 + len(spec.indexes)),
        # Outside a terminal (CI logs, pipes) a status line every few seconds.
        interval=None if args.quiet or args.json else _plain_interval(),
    )
    opts = dataclasses.replace(opts, reporter=progress)
    started = time.monotonic()
    try:
        result = build(spec, client, opts)
    except UnknownProjectError as exc:
        hint = "" if args.offline else _did_you_mean(client, spec.upstreams, exc.name)
        raise BuildError(f"{exc}{hint}") from None
    finally:
        progress.close()
    elapsed = time.monotonic() - started
    report(result, elapsed, args)
    return 0


def _prepare_store(root: Path) -> threading.Thread:
    """Make a new store's folders (the fan-out folders of blobs, action entries and folder
    objects, ``tmp/``, ``traces/``: :meth:`Store.prepare`) in a thread while the build
    imports its modules (~0.2 s of CPU) and reads the lock: a cold build's first writes
    then find them there. A failure is left to the build itself to meet and report."""
    from store.errors import StoreError
    from store.objects import Store

    def prepare() -> None:
        with contextlib.suppress(OSError, StoreError):
            Store(root).prepare()

    thread = threading.Thread(target=prepare, name="morgan-store")
    thread.start()
    return thread


def _did_you_mean(client: object, upstreams: Sequence[Upstream], name: str) -> str:
    """`` — did you mean 'django'?`` from the upstreams' root project lists (one request
    each, on this error path only); empty when none is close or a list cannot be read."""
    from morgan.explain import close_names, project_names
    from rules.errors import RuleError

    names: list[str] = []
    for up in upstreams:
        try:
            page = client.get_page(up.index_url)  # type: ignore[attr-defined]
            names += project_names(page.body, page.content_type)
        except (RuleError, OSError, ValueError):
            continue
    close = close_names(name, names)
    if not close:
        return ""
    return " — did you mean " + " or ".join(repr(c) for c in close) + "?"


def _plain_interval() -> float:
    """Seconds between status lines outside a terminal (``MORGAN_PROGRESS_INTERVAL``, 5)."""
    text = os.environ.get("MORGAN_PROGRESS_INTERVAL", "5")
    try:
        value = float(text)
    except ValueError:
        raise UsageError(
            f"MORGAN_PROGRESS_INTERVAL={text!r}: not a number of seconds — e.g. 5"
        ) from None
    if value <= 0:
        raise UsageError(f"MORGAN_PROGRESS_INTERVAL={text!r}: must be more than 0 seconds")
    return value


def report(result: BuildResult, elapsed: float, args: argparse.Namespace) -> None:
    if args.json:
        json.dump(
            {
                "mirror": str(result.mirror),
                "generation": result.generation,
                "digest": result.digest,
                "changed": result.changed,
                "projects": result.projects,
                "files": result.files,
                "bytes": result.bytes_total,
                "fetched": result.fetched,
                "reused": result.reused,
                "requests": result.requests,
                "seconds": round(elapsed, 3),
                "ran": [{"node": r.id, "reason": r.reason} for r in result.ran],
                "unknown-metadata": list(result.unknown_metadata),
                "source-builds": [b.to_json() for b in result.source_builds],
                "kept": list(result.kept),
                "warnings": list(result.warnings),
                "wheel-warnings": list(result.wheel_warnings),
            },
            sys.stdout,
            indent=2,
        )
        sys.stdout.write("\n")
    if args.explain:
        for how in result.resolutions:
            print(f"resolution {how}", file=sys.stderr)
        for r in result.ran:
            print(f"ran {r.id}: {r.reason}", file=sys.stderr)
    for r in result.ran:
        if r.id.startswith("wheel-build:"):
            sdist = r.id.split(":")[1]
            print(f"morgan: built a wheel from {sdist} ([build] wheels)", file=sys.stderr)
    for warning in result.wheel_warnings:
        print(f"morgan: warning: no wheel built: {warning}", file=sys.stderr)
    for note in result.kept:
        print(f"morgan: {note} (served from the store)", file=sys.stderr)
    for u in result.unknown_metadata:
        print(f"morgan: warning: dependencies unknown without running code: {u}", file=sys.stderr)
    for w in result.warnings:
        print(f"morgan: warning: {w}", file=sys.stderr)
    if args.quiet:
        return
    for b in result.source_builds:
        print(f"morgan: note: {b}", file=sys.stderr)
    state = "new generation" if result.changed else "unchanged, still generation"
    reused = "nothing from cache"
    if result.reused:
        reused = f"{count(result.reused, 'step')} reused from cache"
    print(
        f"{state} {result.generation}: {count(result.projects, 'project')}, "
        f"{count(result.files, 'file')}, {size(result.bytes_total)}; "
        f"{count(result.fetched, 'file')} fetched, {reused}, "
        f"{count(result.requests, 'request')}, {elapsed:.2f}s\n"
        f"generation digest {result.digest}\n"
        f"index: {result.mirror / 'index'}",
        file=sys.stderr,
    )
