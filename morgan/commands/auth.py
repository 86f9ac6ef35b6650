"""``morgan auth``: write the users file that ``server.py --auth FILE`` reads.

``add USER`` creates or replaces a user (password read from stdin when it is not a
terminal — one line — else asked twice at a prompt: never an argument, so it stays out of
shell history and ``ps``), optionally limited to views (``--view env/linux``, repeatable;
``simple`` is the union index and the human page). ``remove USER`` and ``list`` do what
they say. The file holds one ``USER:$pbkdf2-sha256$ITERATIONS$SALT$HASH[:VIEWS]`` line per
user, salted PBKDF2-HMAC-SHA256 from the standard library; it is written whole to a temp
file and renamed into place, mode 0600. Its format and checks live in ``morgan/server.py``
(the server reads it alone on the offline side).
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from pathlib import Path

from morgan import server
from morgan.errors import UsageError
from store import fsio

DEFAULT_FILE = "morgan-users"


def configure(parser: argparse.ArgumentParser, name: str) -> None:
    """Add the ``add``, ``remove`` and ``list`` subcommands (dest ``auth_command``)."""
    del name
    sub = parser.add_subparsers(dest="auth_command", metavar="SUBCOMMAND", required=True)
    add = sub.add_parser("add", help="add a user, or set a user's password and views")
    add.add_argument("user", metavar="USER", help="user name (1-64 of A-Z a-z 0-9 . _ @ + -)")
    add.add_argument(
        "--view",
        action="append",
        metavar="VIEW",
        help="what the user may read: simple (the union index), env/NAME or indexes/NAME (a "
        "named index); repeat for more "
        "(default: everything)",
    )
    add.add_argument(
        "--iterations",
        type=int,
        default=server.AUTH_ITERATIONS,
        metavar="N",
        help=f"PBKDF2 iterations (default {server.AUTH_ITERATIONS}; "
        f"at least {server.AUTH_MIN_ITERATIONS})",
    )
    remove = sub.add_parser("remove", help="remove a user")
    remove.add_argument("user", metavar="USER")
    listing = sub.add_parser("list", help="list the users and their views")
    for p in (add, remove, listing):
        p.add_argument(
            "--file",
            type=Path,
            default=None,
            metavar="FILE",
            help=f"the users file (default: WORKSPACE/{DEFAULT_FILE})",
        )
        p.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="JSON out")


def run(args: argparse.Namespace) -> int:
    path: Path = args.file if args.file is not None else args.workspace / DEFAULT_FILE
    users = _read(path)
    command: str = args.auth_command
    if command == "list":
        return _list(path, users, as_json=args.json)
    if command == "remove":
        if args.user not in users:
            raise UsageError(f"no user {args.user!r} in {path}: see 'morgan auth list'")
        del users[args.user]
        _write(path, users)
        return _done(args, {"removed": args.user, "written": str(path)}, f"removed {args.user}")
    return _add(path, users, args)


def _add(path: Path, users: dict[str, server.AuthUser], args: argparse.Namespace) -> int:
    if not server.AUTH_MIN_ITERATIONS <= args.iterations <= 10**8:
        raise UsageError(
            f"--iterations {args.iterations} is out of range: "
            f"use {server.AUTH_MIN_ITERATIONS}..100000000"
        )
    views = args.view
    line = f"{args.user}:{server.hash_password(_password(args.user), args.iterations)}"
    if views:
        line += ":" + ",".join(v.strip("/") for v in views)
    try:
        user = server.parse_auth_line(line, "--view/USER")
    except server.AuthFileError as exc:
        raise UsageError(str(exc).replace("--view/USER: ", "")) from None
    users[user.name] = user
    _write(path, users)
    where = ", ".join(sorted(user.views)) if user.views is not None else "everything"
    return _done(
        args,
        {"added": user.name, "views": sorted(user.views or []), "written": str(path)},
        f"{user.name} may read {where} ({path})",
    )


def _password(user: str) -> str:
    """The password: one line of stdin when it is not a terminal, else a prompt, twice."""
    if not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass(f"password for {user}: ")
        if getpass.getpass("again: ") != password:
            raise UsageError("the two passwords differ: nothing written")
    if not password:
        raise UsageError(f"empty password for {user}: give one on stdin or at the prompt")
    return password


def _read(path: Path) -> dict[str, server.AuthUser]:
    if not path.exists():
        return {}
    try:
        return server.read_auth_file(str(path))
    except (server.AuthFileError, UnicodeDecodeError) as exc:
        raise UsageError(f"{exc} — fix or remove that line") from None


def _write(path: Path, users: dict[str, server.AuthUser]) -> None:
    text = "# morgan users: server.py --auth FILE (written by 'morgan auth')\n"
    text += "".join(users[name].line() + "\n" for name in sorted(users))
    fsio.replace_file(path, text.encode("utf-8"), mode=0o600)


def _list(path: Path, users: dict[str, server.AuthUser], *, as_json: bool) -> int:
    rows = {name: sorted(u.views) if u.views is not None else None for name, u in users.items()}
    if as_json:
        print(json.dumps({"file": str(path), "users": rows}))
        return 0
    for name in sorted(rows):
        views = rows[name]
        print(f"{name}\t{', '.join(views) if views is not None else 'everything'}")
    return 0


def _done(args: argparse.Namespace, data: dict[str, object], text: str) -> int:
    if args.json:
        print(json.dumps(data))
    elif not args.quiet:
        print(f"morgan: {text}", file=sys.stderr)
    return 0
