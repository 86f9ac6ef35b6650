"""``morgan env``: show, list, add and remove the target environments of ``mirror.toml``.

``show`` and ``list`` print their result on stdout (it is the command's product, meant to be
piped; ``-q`` does not hide it); ``--json`` prints the same as one JSON document. ``add`` and
``remove`` edit the spec with tomlkit, keeping comments and layout, and write it only if the
edited spec loads; they confirm with one line (none with ``-q``) or, with ``--json``,
``{"added": ENVIRONMENT, "written": SPEC}`` / ``{"removed": NAME, "written": SPEC}``.
"""

from __future__ import annotations

import argparse
import difflib
import json
from pathlib import Path
from typing import Any

import tomlkit

from morgan.clients import parse_user_agent
from morgan.edit import read_document, write_checked
from morgan.environments import (
    Environment,
    InvalidEnvironmentError,
    current_environment,
    folder_name_problem,
)
from morgan.errors import UsageError
from morgan.presets import PRESETS
from morgan.spec import load_spec
from morgan.toml_reader import display_path


def configure(parser: argparse.ArgumentParser, name: str) -> None:
    """Add the ``show``, ``list``, ``add`` and ``remove`` subcommands (dest ``env_command``)."""
    del name  # one module, one command
    sub = parser.add_subparsers(dest="env_command", metavar="SUBCOMMAND", required=True)
    show = sub.add_parser("show", help="print an environment's python, markers and wheel tags")
    show.add_argument("env_name", metavar="NAME", help="the environment's name in mirror.toml")
    listing = sub.add_parser("list", help="list the environments of mirror.toml")
    add = sub.add_parser("add", help="add an environment to mirror.toml")
    add.add_argument("env_name", metavar="NAME", help="a new environment name")
    target = add.add_mutually_exclusive_group()
    target.add_argument("--current", action="store_true", help="describe this interpreter")
    target.add_argument("--python", metavar="V", help="target Python, e.g. 3.12 or 3.9.18")
    target.add_argument(
        "--from-user-agent",
        metavar="AGENT",
        help="the client a pip/uv User-Agent describes (from 'morgan clients' or a log)",
    )
    add.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        metavar="NAME",
        help="a known target (--python overrides its Python): " + ", ".join(sorted(PRESETS)),
    )
    add.add_argument("--platform", metavar="TAG", help="newest platform tag the target accepts")
    add.add_argument(
        "--implementation", choices=("cp", "pp"), default="cp", help="cp (default) or pp"
    )
    add.add_argument("--free-threaded", action="store_true", help="a free-threaded CPython")
    remove = sub.add_parser("remove", help="remove an environment from mirror.toml")
    remove.add_argument("env_name", metavar="NAME", help="the environment to remove")
    for p in (show, listing, add, remove):
        # SUPPRESS: a value given before the subcommand is not reset by the subparser.
        p.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="JSON out")
        p.add_argument(
            "-q", "--quiet", action="count", default=argparse.SUPPRESS, help="less output"
        )
        p.add_argument(
            "-C",
            dest="workspace",
            type=Path,
            default=argparse.SUPPRESS,
            metavar="DIR",
            help="workspace directory (holds mirror.toml)",
        )


def run(args: argparse.Namespace) -> int:
    """Dispatch to the subcommand; errors are raised as MorganError for the CLI to print."""
    spec_path: Path = args.workspace / "mirror.toml"
    command: str = args.env_command
    if command == "show":
        return _show(spec_path, args.env_name, as_json=args.json)
    if command == "list":
        return _list(spec_path, as_json=args.json)
    if command == "add":
        return _add(spec_path, args)
    return _remove(spec_path, args)


def describe(env: Environment, *, with_tags: bool = True) -> dict[str, Any]:
    """An environment as JSON-ready data: its values, all 11 markers and (optionally) tags."""
    data: dict[str, Any] = {
        "name": env.name,
        "python": env.python,
        "platform": env.platform,
        "implementation": env.implementation,
        "free-threaded": env.free_threaded,
        "markers": env.markers(),
    }
    if with_tags:
        data["tags"] = [str(tag) for tag in env.tags()]
    return data


def _find(spec_path: Path, name: str) -> Environment:
    environments = load_spec(spec_path).environments
    for env in environments:
        if env.name == name:
            return env
    names = [env.name for env in environments]
    close = difflib.get_close_matches(name, names, 1) or [
        n for n in names if n.lower() == name.lower()
    ]
    hint = f"did you mean {close[0]!r}?" if close else "known: " + ", ".join(names)
    raise UsageError(f"no environment {name!r} in {display_path(spec_path)} — {hint}")


def _show(spec_path: Path, name: str, *, as_json: bool) -> int:
    env = _find(spec_path, name)
    data = describe(env)
    if as_json:
        print(json.dumps(data, indent=2))
        return 0
    flavour = " (free-threaded)" if env.free_threaded else ""
    print(f"environment: {env.name}")
    print(f"python: {env.python}{flavour}")
    print(f"implementation: {env.implementation}")
    print(f"platform: {env.platform}")
    print("markers:")
    for key, value in data["markers"].items():
        print(f"  {key} = {json.dumps(value)}")
    print(f"tags ({len(data['tags'])}, best first):")
    for tag in data["tags"]:
        print(f"  {tag}")
    return 0


def _list(spec_path: Path, *, as_json: bool) -> int:
    environments = load_spec(spec_path).environments
    if as_json:
        print(json.dumps([describe(e, with_tags=False) for e in environments], indent=2))
        return 0
    width = max(len(e.name) for e in environments)
    for env in environments:
        python = env.python + ("t" if env.free_threaded else "")
        print(f"{env.name:<{width}}  {python:<8}  {env.implementation}  {env.platform}")
    return 0


def _environment_names(doc: tomlkit.TOMLDocument) -> list[str]:
    envs = doc.get("environments")
    return list(envs.keys()) if isinstance(envs, dict) else []


def _add(spec_path: Path, args: argparse.Namespace) -> int:
    name: str = args.env_name
    problem = folder_name_problem(name, "an environment name", "env/<name>/")
    if problem is not None:
        raise UsageError(problem)
    if args.preset is None and args.platform in PRESETS:
        preset = PRESETS[args.platform]
        raise UsageError(
            f"--platform {args.platform!r} is a preset name, not a wheel platform tag — use "
            f"--preset {args.platform} (Python {preset.python}, {preset.platform})"
        )
    if args.preset is not None:
        if args.current or args.platform is not None:
            raise UsageError("--preset gives the platform: drop --current / --platform")
        preset = PRESETS[args.preset]
        args.platform = preset.platform
        args.python = args.python or preset.python
    elif args.from_user_agent is not None:
        if args.platform is not None:
            raise UsageError("--from-user-agent gives the platform: drop --platform")
    elif not args.current and args.python is None:
        raise UsageError("say which target: --current, --preset NAME, or --python V --platform TAG")
    try:
        if args.current:
            env = current_environment(name)
        elif args.from_user_agent is not None:
            env = _from_user_agent(name, args.from_user_agent)
        else:
            if args.platform is None:
                raise UsageError("--python needs --platform TAG, e.g. --platform win_amd64")
            env = Environment(
                name, args.python, args.platform, args.implementation, args.free_threaded
            )
    except InvalidEnvironmentError as exc:
        raise UsageError(f"--{exc.field}: {exc}") from None
    doc = read_document(spec_path)
    for existing in _environment_names(doc):
        if existing.lower() == name.lower():
            raise UsageError(
                f"environment {existing!r} already exists in {display_path(spec_path)} — "
                f"pick another name or run 'morgan env remove {existing}' first"
            )
    table = tomlkit.table()
    table.add("python", env.python)
    table.add("platform", env.platform)
    if env.implementation != "cp":
        table.add("implementation", env.implementation)
    if env.free_threaded:
        table.add("free-threaded", True)
    table.add(tomlkit.nl())
    if "environments" not in doc:
        doc.add("environments", tomlkit.table(is_super_table=True))
    doc["environments"].add(name, table)
    write_checked(spec_path, tomlkit.dumps(doc))
    if args.json:
        added = describe(env, with_tags=False)
        print(json.dumps({"added": added, "written": str(spec_path)}, indent=2))
    elif not args.quiet:
        print(f"added environment {name}: python {env.python}, platform {env.platform}")
    return 0


def _from_user_agent(name: str, agent: str) -> Environment:
    client = parse_user_agent(agent)
    if client is None:
        raise UsageError(
            f"--from-user-agent {agent[:60]!r}…: not a pip or uv User-Agent "
            "('pip/VERSION {JSON}'); copy one from 'morgan clients' or the access log"
        )
    return client.environment(name)


def _remove(spec_path: Path, args: argparse.Namespace) -> int:
    name: str = args.env_name
    doc = read_document(spec_path)
    names = _environment_names(doc)
    if name not in names:
        _find(spec_path, name)  # raises the usual "no environment" error with a hint
        raise UsageError(f"environment {name!r} is not a table in {display_path(spec_path)}")
    if len(names) == 1:
        raise UsageError(
            f"{name!r} is the only environment — add another before removing it "
            "(a spec needs at least one)"
        )
    del doc["environments"][name]
    write_checked(spec_path, tomlkit.dumps(doc))
    if args.json:
        print(json.dumps({"removed": name, "written": str(spec_path)}, indent=2))
    elif not args.quiet:
        print(f"removed environment {name}")
    return 0
