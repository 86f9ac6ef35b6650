"""The ``morgan`` command line: argument parsing and dispatch to ``morgan.commands``.

``main(argv)`` takes its arguments so tests call it directly. Every :class:`MorganError`
(argument errors included) becomes one line on stderr and its exit code; store and rule
errors become one line and exit 1; nothing else is caught. With ``--json`` an error also
prints one JSON document on stdout, ``{"error": LINE, "exit-code": N}``, so stdout always
holds exactly one document a script can parse.

The common options (``-C DIR``, ``-q``, ``-v``, ``--json``, ``--no-color``) are accepted on
either side of the command name, as git and uv accept theirs: ``morgan -C ws -q build`` is
``morgan build -C ws -q``. Bare ``morgan`` prints the help.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import importlib
import json
import logging
import os
import re
import sys
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import CancelledError
from pathlib import Path
from typing import NoReturn, Protocol

from morgan import __version__
from morgan.credentials import redact
from morgan.errors import MorganError, UsageError
from rules.errors import RuleError
from store.errors import StoreError

# command name -> (module under morgan.commands, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "init": ("init", "write a commented starter mirror.toml"),
    "build": ("build", "resolve, fetch, render and switch to a new generation"),
    "graph": ("graph", "explain why each package is in the mirror"),
    "gc": ("gc", "delete generations and blobs no root reaches"),
    "rollback": ("rollback", "serve an earlier generation again (default: the one before)"),
    "verify": ("verify", "re-hash blobs, check the index, prove installability"),
    "serve": ("serve", "serve the current index with server.py"),
    "auth": ("auth", "add, remove and list the users server.py --auth lets read"),
    "env": ("env", "show, list, add and remove target environments"),
    "add": ("edit", "add requirements to mirror.toml"),
    "remove": ("edit", "remove requirements from mirror.toml"),
    "export": ("bundle", "write an air-gap bundle (only the blobs the other side lacks)"),
    "import": ("bundle", "verify and import an air-gap bundle"),
    "export-lock": ("export_lock", "write a PEP 751 pylock.toml for one environment"),
    "audit": ("audit", "list locked versions that known advisories (an OSV export) affect"),
    "publish": ("publish", "upload the current generation to S3-compatible object storage"),
    "missing": ("missing", "what clients asked the server for and the mirror lacks"),
    "clients": ("missing", "which clients use the mirror, and which no environment matches"),
}


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad argument as a :class:`UsageError` (exit 2), so argument
    errors follow the same one-line and ``--json`` rules as every other error."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        raise UsageError(f"{message} — see '{self.prog} --help'")


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-C",
        dest="workspace",
        type=Path,
        default=Path(),
        metavar="DIR",
        help="workspace directory (holds mirror.toml; default: current directory)",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    p.add_argument("-q", "--quiet", action="count", default=0, help="less output")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more output")
    p.add_argument(
        "--no-color",
        action="store_true",
        help="no colour (Morgan never colours its output; accepted so scripts may pass it)",
    )


# The common options, as they may be written before the command name.
_COMMON_FLAGS = frozenset({"--json", "--quiet", "--verbose", "--no-color"})
_COMMON_SHORT = re.compile(r"-[qv]+")
_COMMON_WITH_VALUE = frozenset({"-C"})


def hoist_common_options(words: Sequence[str]) -> tuple[list[str], str | None]:
    """(``words`` with the common options written before the command moved just after it,
    the command name or None). ``morgan -C ws -q build`` becomes ``morgan build -C ws -q``;
    anything else before the command (``--help``, ``-V``) stops the scan and stays put.
    Without a command the common options are dropped: there is nothing they apply to."""
    before: list[str] = []
    i = 0
    while i < len(words):
        word = words[i]
        if word in _COMMON_WITH_VALUE and i + 1 < len(words):
            before += [word, words[i + 1]]
            i += 2
        elif (
            (word.startswith("-C") and len(word) > 2)
            or word in _COMMON_FLAGS
            or _COMMON_SHORT.fullmatch(word)
        ):
            before.append(word)
            i += 1
        else:
            break
    rest = list(words[i:])
    if rest and not rest[0].startswith("-"):
        return [rest[0], *before, *rest[1:]], rest[0]
    # No command (``morgan -C ws --help``): the common options have nothing to apply to.
    return rest, None


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole parser; with ``only`` (a known command), just that command's sub-parser,
    and only its module imported: a command starts without importing the rest of Morgan
    or building twelve parsers it will not use (a no-op build takes well under 0.1 s)."""
    parser = _Parser(
        prog="morgan",
        description="Build a reproducible, per-environment PyPI mirror for air-gapped networks.",
    )
    parser.add_argument("-V", "--version", action="version", version=f"morgan {__version__}")
    parser.epilog = (
        "common options (-C DIR, -q, -v, --json, --no-color) go before or after COMMAND; "
        "'morgan COMMAND --help' lists a command's own options"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module, help_text) in COMMANDS.items():
        if only is not None and only != name:
            continue
        p = sub.add_parser(name, help=help_text, description=help_text)
        _add_common(p)
        p.set_defaults(_module=module)
        configure = _configure(module) if only in (None, name) else None
        if configure is not None:
            configure(p, name)
    return parser


def _configure(module: str) -> _Configure | None:
    try:
        mod = importlib.import_module(f"morgan.commands.{module}")
    except ModuleNotFoundError as exc:
        if exc.name != f"morgan.commands.{module}":
            raise
        return None
    configure: _Configure | None = getattr(mod, "configure", None)
    return configure


class _Configure(Protocol):
    """A command module's optional ``configure(parser, name)``: adds its own flags."""

    def __call__(self, parser: argparse.ArgumentParser, name: str) -> None: ...


# glibc gives each thread that meets a busy heap an arena of its own (up to 8 per core), and
# memory freed in one arena serves only the threads bound to it: a build's 30 threads then
# hold several partly empty heaps. With the GIL, two arenas cost no measurable time; a cold
# 2 000-project build peaked 37 MB lower. MALLOC_ARENA_MAX set by the user wins.
_MALLOC_ARENAS = 2
_M_ARENA_MAX = -8  # glibc's mallopt parameter number


def _limit_malloc_arenas() -> None:
    """Cap glibc's malloc arenas for this process (nothing elsewhere, or if already set)."""
    if os.environ.get("MALLOC_ARENA_MAX") or not sys.platform.startswith("linux"):
        return
    try:
        if not (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc"):
            return
        import ctypes

        ctypes.CDLL(None).mallopt(_M_ARENA_MAX, _MALLOC_ARENAS)
    except (ValueError, OSError, AttributeError):
        return


def entry() -> NoReturn:
    """The process's entry point (``python -m morgan``, the ``morgan`` script): run
    :func:`main`, then leave without tearing the interpreter down.

    A rebuild of a large mirror ends holding ~250 MB of objects (2 000 projects); freeing
    them one by one, and the collection Python runs on its way out, took 1-4 s after the
    work was done. The exit is what the interpreter's own would be, less that: other
    threads are joined, ``atexit`` functions run, standard streams are flushed.
    (In-process callers, the tests, use :func:`main`.) Under a profiler or a tracer
    (``python -m cProfile``, coverage), which write their results on the way out, the
    exit is the interpreter's."""
    code = main()
    if sys.getprofile() is not None or sys.gettrace() is not None:
        sys.exit(code)
    for thread in threading.enumerate():
        if thread is not threading.main_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the process exit code (0 ok, 1 failure, 2 usage/spec error)."""
    _limit_malloc_arenas()
    words, command = hoist_common_options(sys.argv[1:] if argv is None else argv)
    # Known before parsing, so a bad argument is reported as JSON too.
    as_json = "--json" in words[: words.index("--")] if "--" in words else "--json" in words
    if not words:
        build_parser().print_help(sys.stdout)
        return 0
    try:
        with _quiet_cancelled_callbacks():
            code = _run(words, command)
            sys.stdout.flush()  # a closed pipe is reported here, inside the handlers below
    except BrokenPipeError:
        # The reader went away (`morgan env show x | head -1`): what it wanted, it has.
        # Point stdout at /dev/null so the interpreter's final flush stays quiet.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, what a shell reports for a command killed by it
    except MorganError as exc:
        return _fail(str(exc), exc.exit_code, as_json=as_json)
    except StoreError as exc:
        return _fail(f"store: {exc}", 1, as_json=as_json)
    except RuleError as exc:
        # An upstream or metadata failure that no command translated: still one line.
        return _fail(str(exc), 1, as_json=as_json)
    except OSError as exc:
        # A file the user named cannot be written or read (missing folder, permissions,
        # disk full): one line naming it, never a traceback.
        where = f"{exc.filename}: " if exc.filename is not None else ""
        return _fail(
            f"{where}{exc.strerror or exc} — check the path and its permissions", 1, as_json=as_json
        )
    except KeyboardInterrupt:
        message = "interrupted; the previous index is still served"
        print(f"morgan: {message}", file=sys.stderr)
        if as_json:
            print(json.dumps({"error": message, "exit-code": 130}))
        return 130
    return code


def _run(words: list[str], command: str | None) -> int:
    parser = build_parser(only=command if command in COMMANDS else None)
    args = parser.parse_args(words)
    try:
        mod = importlib.import_module(f"morgan.commands.{args._module}")
    except ModuleNotFoundError as exc:
        if exc.name != f"morgan.commands.{args._module}":
            raise
        raise UsageError(
            f"'morgan {args.command}' is not implemented yet in morgan {__version__}"
        ) from None
    code: int = mod.run(args)
    return code


class _CancelledCallback(logging.Filter):
    """Drops concurrent.futures' "exception calling callback" records for futures that were
    cancelled: on Ctrl-C the thread pools cancel queued work, and every done-callback that
    asks a cancelled future for its result logs a traceback (~30 of them) before the one
    clean line. A callback failing for any other reason is still logged."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, CancelledError)


@contextlib.contextmanager
def _quiet_cancelled_callbacks() -> Iterator[None]:
    logger = logging.getLogger("concurrent.futures")
    quiet = _CancelledCallback()
    logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)


def _fail(message: str, code: int, *, as_json: bool) -> int:
    """Report an error: one line on stderr; with ``--json`` also the JSON error document.

    Any URL credentials that reached the message are masked (``user:***@``) here, the one
    place every error passes through."""
    message = redact(message)
    print(f"morgan: error: {message}", file=sys.stderr)
    if as_json:
        print(json.dumps({"error": message, "exit-code": code}))
    return code


if __name__ == "__main__":
    sys.exit(main())
