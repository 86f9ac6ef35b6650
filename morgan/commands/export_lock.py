"""``morgan export-lock --env NAME [--index NAME] [-o FILE] [--base-url URL]``: a PEP 751
pylock.toml.

See :mod:`morgan.pylock` for what the file holds and where its URLs point.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from urllib.parse import urlsplit

from morgan import lock as lockfile
from morgan.errors import UsageError
from morgan.indexes import index_prefix
from morgan.pylock import FileLocation, pylock_text
from morgan.spec import load_spec
from morgan.toml_reader import display_path
from store import fsio

# pip and uv read a file as a PEP 751 lock only under these names (PEP 751 "File name").
_PYLOCK_NAME = re.compile(r"pylock(\.[^.\s/\\]+)?\.toml")


def configure(parser: argparse.ArgumentParser, name: str) -> None:
    del name
    parser.add_argument("--env", required=True, metavar="NAME", help="the environment to export")
    parser.add_argument(
        "--index",
        metavar="NAME",
        help="from the named index NAME ([indexes.NAME]) instead of the default index",
    )
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        metavar="FILE",
        help="where to write (default: pylock.<env>.toml in the workspace; '-': stdout)",
    )
    parser.add_argument(
        "--base-url",
        metavar="URL",
        help="the address clients reach the mirror at, e.g. http://mirror.lan:8080/ "
        "(default: relative paths into the mirror folder)",
    )


def run(args: argparse.Namespace) -> int:
    spec = load_spec(args.workspace / "mirror.toml")
    env = next((e for e in spec.environments if e.name == args.env), None)
    if env is None:
        known = ", ".join(e.name for e in spec.environments)
        raise UsageError(f"no environment {args.env!r} in mirror.toml — known: {known}")
    if args.index is not None and spec.index(args.index) is None:
        known = ", ".join(i.name for i in spec.indexes) or "none"
        raise UsageError(f"no index {args.index!r} in mirror.toml — known: {known}")
    lock_path = spec.path.parent / "mirror.lock"
    lock = lockfile.load(lock_path)
    if lock is None:
        raise UsageError(f"{display_path(lock_path)}: no such file — run 'morgan build' first")
    if lock.spec_digest != spec.digest():
        raise UsageError(
            f"{display_path(lock_path)} is older than mirror.toml — run 'morgan build' first, "
            "so the pylock matches the mirror"
        )
    stdout = str(args.output) == "-"
    default = (
        f"pylock.{env.name}.toml" if args.index is None else f"pylock.{args.index}-{env.name}.toml"
    )
    output: Path = args.output or spec.path.parent / default
    if not stdout and not _PYLOCK_NAME.fullmatch(output.name):
        raise UsageError(
            f"{output.name!r}: pip and uv read only files named pylock.toml or "
            "pylock.<name>.toml — e.g. -o pylock.toml"
        )
    if args.base_url is not None:
        parts = urlsplit(args.base_url)
        if parts.scheme not in ("http", "https", "file") or not (parts.netloc or parts.path):
            raise UsageError(
                f"--base-url {args.base_url!r}: not an absolute URL — write it like "
                "http://mirror.lan:8080/"
            )
        where = FileLocation(base_url=args.base_url, index=index_prefix(args.index))
    else:
        lock_dir = Path.cwd() if stdout else output.absolute().parent
        where = FileLocation(mirror=spec.output, lock_dir=lock_dir, index=index_prefix(args.index))
    text = pylock_text(lock, env, where, sdists=spec.policy.sdists, index=args.index)
    if stdout:
        print(text, end="")
        return 0
    fsio.replace_file(output, text.encode("utf-8"))
    count = text.count("[[packages]]")
    if args.json:
        print(json.dumps({"written": str(output), "environment": env.name, "packages": count}))
    elif not args.quiet:
        print(f"wrote {display_path(output)}: {count} packages for environment {env.name}")
    return 0
