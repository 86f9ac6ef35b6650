"""``morgan init``: write a commented starter ``mirror.toml`` (never over an existing one)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from morgan.errors import UsageError
from morgan.spec import parse_spec
from morgan.toml_reader import display_path

STARTER = """\
# mirror.toml — what Morgan mirrors, and for which machines.
# Edit it by hand or with `morgan add REQ`, `morgan remove NAME`, `morgan env add NAME …`;
# then `morgan build` writes mirror.lock and the mirror folder (./mirror by default).
# Reference: docs/mirror-toml.md

# PEP 508 requirements; Morgan mirrors their whole dependency closure for every environment.
requirements = [
  "requests>=2.31",
]

# Where packages come from (PEP 691 JSON preferred, PEP 503 HTML works too).
[upstream]
index-url = "https://pypi.org/simple/"

# One table per target machine: the Python it runs and the NEWEST platform tag it accepts.
# `morgan env add NAME --current` describes the machine you are on;
# `morgan env add NAME --preset rhel8` (ubuntu-22.04, windows, macos-arm64, …) a known one.
[environments.linux]
python = "3.12"
platform = "manylinux_2_28_x86_64"   # glibc 2.28 or newer (RHEL 8, Debian 10, Ubuntu 20.04+)

# [environments.windows]
# python = "3.12"
# platform = "win_amd64"

# What to mirror beyond what resolution needs (all optional; these are the defaults).
# [policy]
# prereleases = "if-needed"      # "allow", "never"
# yanked = "pinned"              # keep yanked files only when pinned with ==; or "skip"
# sdists = true                  # also mirror the sdist of every selected version
# build-dependencies = true      # and what building those sdists needs
# versions = "needed"            # "all", or N: the latest N per requirement

# [output]
# path = "mirror"                # the folder that crosses the air gap
"""


def configure(parser: argparse.ArgumentParser, name: str) -> None:
    del name
    parser.add_argument("--force", action="store_true", help="overwrite an existing mirror.toml")


def run(args: argparse.Namespace) -> int:
    workspace: Path = args.workspace
    path = workspace / "mirror.toml"
    if path.exists() and not args.force:
        raise UsageError(
            f"{display_path(path)} already exists — edit it, or pass --force to replace it"
        )
    parse_spec(STARTER, path)  # the starter must always be a valid spec
    workspace.mkdir(parents=True, exist_ok=True)
    path.write_text(STARTER, encoding="utf-8")
    if args.json:
        print(json.dumps({"written": str(path)}))
    elif not args.quiet:
        print(f"wrote {display_path(path)}: edit it, then run 'morgan build'")
    return 0
