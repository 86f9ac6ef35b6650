"""``morgan serve``: serve the current index with ``morgan/server.py``, in-process.

The same code ``python server.py`` runs inside a mirror; this command only finds the mirror
folder (``--root``, else the workspace itself when it is a mirror, else ``<workspace>/mirror``)
and turns startup problems into one-line errors. With ``--json`` it prints one JSON line on
stdout once the socket listens — ``{"url": …, "index-url": …, "root": …}`` — so a script
that started it with ``--port 0`` learns the address; ``-q`` drops the access log (errors
are still logged).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from morgan.errors import UsageError

if TYPE_CHECKING:
    from morgan.server import MirrorServer


def configure(parser: argparse.ArgumentParser, name: str) -> None:
    """Add ``--host``, ``--port``, ``--root``, ``--max-connections``, ``--processes``,
    ``--max-open-connections``, ``--auth``, ``--tls-cert`` and ``--tls-key``."""
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    parser.add_argument(
        "--port", type=int, default=8080, help="port (default 8080; 0 picks a free one)"
    )
    parser.add_argument(
        "--mirror",
        "--root",
        dest="root",
        type=Path,
        default=None,
        metavar="DIR",
        help="the mirror folder (default: the workspace if it is a mirror, else "
        "WORKSPACE/mirror; --root is server.py's spelling)",
    )
    parser.add_argument(
        "--max-connections",
        type=int,
        default=128,
        metavar="N",
        help="requests answered at once; idle connections do not count (default 128)",
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=1,
        metavar="N",
        help="server processes sharing the port (default 1; POSIX only; "
        "see docs/server-load.md for when more help)",
    )
    parser.add_argument(
        "--max-open-connections",
        type=int,
        default=None,
        metavar="N",
        help="open connections per process before the longest-waiting one is closed for a "
        "new one (default 4096, less if the file-descriptor limit is lower)",
    )
    parser.add_argument(
        "--auth",
        metavar="FILE",
        default=None,
        help="users who may read the mirror (written by 'morgan auth add')",
    )
    parser.add_argument("--tls-cert", metavar="FILE", default=None, help="serve HTTPS: PEM chain")
    parser.add_argument("--tls-key", metavar="FILE", default=None, help="its PEM private key")
    parser.add_argument(
        "--misses",
        default=None,
        metavar="FILE",
        help="record requests for what the mirror lacks here, for 'morgan missing' "
        "(default: a file per mirror under ~/.local/state/morgan/; 'off': none)",
    )


def find_root(workspace: Path) -> Path:
    """The mirror folder for ``workspace``: itself when it holds ``index``, else ``mirror/``."""
    if (workspace / "index").is_symlink() or (workspace / "index").is_dir():
        return workspace
    return workspace / "mirror"


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted (Ctrl-C exits 0)."""
    from morgan import server

    root: Path = args.root if args.root is not None else find_root(args.workspace)
    index = root / "index"
    if not (index.is_symlink() or index.is_dir()):
        raise UsageError(f"no mirror index at {index}: run 'morgan build' first or pass --root DIR")
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port {args.port} is not a TCP port: use 0..65535 (0 picks a free one)")
    if not 1 <= args.max_connections <= 10000:
        raise UsageError(f"--max-connections {args.max_connections} is out of range: use 1..10000")
    if not 1 <= args.processes <= 64:
        raise UsageError(f"--processes {args.processes} is out of range: use 1..64")
    max_open = args.max_open_connections
    if max_open is not None and not 1 <= max_open <= 65536:
        raise UsageError(f"--max-open-connections {max_open} is out of range: use 1..65536")
    try:
        auth = server.load_auth(args.auth)
        tls = server.tls_context(args.tls_cert, args.tls_key)
    except server.SetupError as exc:
        raise UsageError(str(exc)) from None
    try:
        return server.serve(
            str(root),
            args.host,
            args.port,
            args.max_connections,
            access_log=not args.quiet,
            ready=_announce if args.json else None,
            processes=args.processes,
            max_open=max_open,
            auth=auth,
            tls=tls,
            misses=args.misses,
        )
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise UsageError(
            f"cannot listen on {args.host}:{args.port}: {reason} — pick another --port or --host"
        ) from None


def _announce(listening: MirrorServer) -> None:
    """The ``--json`` line: where the server listens, printed once it does."""
    url = listening.url
    print(json.dumps({"url": url, "index-url": f"{url}simple/", "root": listening.root}))
    sys.stdout.flush()
