"""``morgan add`` and ``morgan remove``: edit ``requirements`` in ``mirror.toml``.

Requirements come from the command line, requirements files (``-r``), a ``pyproject.toml``
(``--pyproject``, with ``--extra``), an installed environment (``--from-env PYTHON``) or the
pins of a ``pylock.toml`` / ``uv.lock`` (``--from-lock``). The spec keeps its comments and
layout; it is written only if the result loads, and a bad requirement changes nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import tomlkit

from morgan import inputs
from morgan.edit import (
    add_requirements,
    index_requirement,
    read_document,
    remove_requirements,
    write_checked,
)
from morgan.errors import UsageError


def configure(parser: argparse.ArgumentParser, name: str) -> None:
    """``add REQ… [-r FILE] [--pyproject FILE --extra E] [--from-env PY] [--from-lock F]``;
    ``remove NAME…``."""
    if name == "remove":
        parser.add_argument("names", nargs="+", metavar="NAME", help="project names to remove")
        return
    parser.add_argument("requirements", nargs="*", metavar="REQ", help="PEP 508 requirements")
    parser.add_argument(
        "-r",
        "--requirement",
        dest="requirement_files",
        action="append",
        type=Path,
        default=[],
        metavar="FILE",
        help="add the requirements of a pip requirements file (repeatable)",
    )
    parser.add_argument(
        "--pyproject",
        type=Path,
        metavar="FILE",
        help="add [project].dependencies of a pyproject.toml",
    )
    parser.add_argument(
        "--extra",
        action="append",
        default=[],
        metavar="NAME",
        help="with --pyproject: also its optional-dependencies NAME ('*': all; repeatable)",
    )
    parser.add_argument(
        "--from-env",
        metavar="PYTHON",
        help="pin every package installed in that interpreter's environment (like pip freeze)",
    )
    parser.add_argument(
        "--from-lock",
        type=Path,
        metavar="FILE",
        help="pin every package of a pylock.toml or uv.lock (name==version)",
    )


def run(args: argparse.Namespace) -> int:
    spec_path: Path = args.workspace / "mirror.toml"
    if args.command == "remove":
        return _remove(spec_path, args.names, as_json=args.json, quiet=bool(args.quiet))
    return _add(spec_path, args)


def _gather(args: argparse.Namespace) -> tuple[list[str], list[str], list[str]]:
    """(requirements, notes, where ``--pre`` was asked for)."""
    texts: list[tuple[str, str]] = [(r, "") for r in args.requirements]
    notes: list[str] = []
    pre: list[str] = []
    sources: list[inputs.Inputs] = [
        inputs.from_requirements_file(f) for f in args.requirement_files
    ]
    if args.extra and args.pyproject is None:
        raise UsageError("--extra needs --pyproject FILE")
    if args.pyproject is not None:
        sources.append(inputs.from_pyproject(args.pyproject, args.extra))
    if args.from_env is not None:
        sources.append(inputs.from_environment(args.from_env))
    if args.from_lock is not None:
        sources.append(inputs.from_lock_file(args.from_lock))
        notes.append(
            f"{args.from_lock}: versions are pinned; 'morgan build' still picks the files; for "
            "exactly the lock's files, hash-checked, use locks = [...] in mirror.toml instead"
        )
    for source in sources:
        texts += [(r, "") for r in source.requirements]
        notes += source.notes
        pre += source.prereleases
    if not texts:
        raise UsageError(
            "nothing to add — give requirements ('morgan add \"requests>=2.31\"') or a source "
            "(-r FILE, --pyproject FILE, --from-env PYTHON, --from-lock FILE)"
        )
    return [str(index_requirement(text, origin=origin)) for text, origin in texts], notes, pre


def _allow_prereleases(doc: tomlkit.TOMLDocument, where: str) -> str | None:
    """Map a requirements file's ``--pre`` to ``[policy] prereleases = "allow"``: pip then
    lets every requirement match prereleases, and so will the mirror's resolution. Returns
    the note to print, or None when the policy already allows them."""
    policy = doc.get("policy")
    if policy is None:
        policy = tomlkit.table()
        doc["policy"] = policy
    current = policy.get("prereleases", "if-needed")
    if current == "allow":
        return None
    if current == "never":
        raise UsageError(
            f"{where}: --pre asks for prereleases but mirror.toml has [policy] prereleases = "
            '"never" — remove --pre from the file or change the policy'
        )
    policy["prereleases"] = "allow"
    return f'{where}: --pre: set [policy] prereleases = "allow" (it was "{current}")'


def _add(spec_path: Path, args: argparse.Namespace) -> int:
    requirements, notes, pre = _gather(args)
    doc = read_document(spec_path)
    policy_changed = False
    if pre:
        note = _allow_prereleases(doc, pre[0])
        if note is not None:
            notes.append(note)
            policy_changed = True
    for note in notes:
        print(f"morgan: note: {note}", file=sys.stderr)
    changes = add_requirements(doc, [index_requirement(r) for r in requirements])
    if policy_changed or any(c.action != "kept" for c in changes):
        write_checked(spec_path, tomlkit.dumps(doc))
    if args.json:
        print(
            json.dumps(
                [{"action": c.action, "requirement": c.requirement, "old": c.old} for c in changes],
                indent=2,
            )
        )
        return 0
    if args.quiet:
        return 0
    for change in changes:
        if change.action == "replaced":
            print(f"replaced {change.old} with {change.requirement}")
        elif change.action == "kept":
            print(f"already listed: {change.requirement}")
        else:
            print(f"added {change.requirement}")
    return 0


def _remove(spec_path: Path, names: list[str], *, as_json: bool, quiet: bool) -> int:
    doc = read_document(spec_path)
    removed = remove_requirements(doc, names)
    write_checked(spec_path, tomlkit.dumps(doc))
    if as_json:
        print(json.dumps({"removed": removed}, indent=2))
        return 0
    if quiet:
        return 0
    for text in removed:
        print(f"removed {text}")
    return 0
