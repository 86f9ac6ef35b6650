"""``morgan export -o FILE [--since OLD]`` and ``morgan import FILE``: air-gap bundles.

Both find the mirror folder the same way: ``--mirror DIR`` if given; else the workspace
itself when it is a mirror folder (it holds ``store/`` or ``index``, as on the offline side,
or is empty: a first import); else the spec's output folder.
"""

from __future__ import annotations

import argparse
import functools
import json
import tarfile
from pathlib import Path

from morgan import lock as lockfile
from morgan import signing
from morgan.bundle import (
    BundleError,
    export_bundle,
    objects_in_bundle,
    objects_in_lock,
)
from morgan.bundle_import import import_bundle
from morgan.errors import MorganError, UsageError
from morgan.human import count, size
from morgan.spec import load_spec
from morgan.toml_reader import display_path
from store.digest import Digest


def configure(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument("--mirror", type=Path, metavar="DIR", help="the mirror folder")
    if name == "export":
        parser.add_argument(
            "-o",
            "--output",
            type=Path,
            required=True,
            metavar="FILE",
            help="the bundle to write (a tar file to carry across the air gap)",
        )
        parser.add_argument(
            "--since",
            type=Path,
            metavar="OLD",
            help="an earlier bundle or mirror.lock the other side has: carry only new blobs",
        )
        parser.add_argument(
            "--sign",
            type=Path,
            metavar="KEY",
            help="sign the bundle with this OpenSSH key (ssh-keygen -Y sign; see docs/trust.md)",
        )
        return
    parser.add_argument("bundle", type=Path, metavar="FILE", help="a bundle from 'morgan export'")
    parser.add_argument(
        "--materialize",
        choices=("symlink", "copy", "hardlink"),
        default="symlink",
        help="how the index tree refers to blobs (default: relative symlinks)",
    )
    parser.add_argument(
        "--trust",
        type=Path,
        metavar="FILE",
        help="an OpenSSH allowed_signers file: refuse the bundle unless a key it lists signed it",
    )


def mirror_folder(args: argparse.Namespace) -> Path:
    """The mirror folder these arguments name (see the module docstring)."""
    if args.mirror is not None:
        return Path(args.mirror).absolute()
    ws: Path = args.workspace.absolute()
    if (ws / "store").is_dir() or (ws / "index").is_symlink() or not (ws / "mirror.toml").exists():
        return ws
    return load_spec(ws / "mirror.toml").output


def run(args: argparse.Namespace) -> int:
    mirror = mirror_folder(args)
    if args.command == "export":
        return _export(args, mirror)
    return _import(args, mirror)


def _since(path: Path | None) -> frozenset[Digest]:
    if path is None:
        return frozenset()
    if not path.exists():
        raise UsageError(f"--since {path}: no such file — pass an earlier bundle or mirror.lock")
    if tarfile.is_tarfile(path):
        return objects_in_bundle(path)
    try:
        lock = lockfile.load(path)
    except (MorganError, UnicodeDecodeError, OSError) as exc:
        lock, problem = None, str(exc)
    else:
        problem = "empty"
    if lock is None:
        raise UsageError(
            f"--since {path}: neither a bundle nor a mirror.lock ({problem}) — pass one of those"
        )
    return objects_in_lock(lock)


def _export(args: argparse.Namespace, mirror: Path) -> int:
    sign = None
    if args.sign is not None:
        key: Path = args.sign
        if not key.is_file():
            raise UsageError(f"--sign {key}: no such key file — give an OpenSSH private key")
        sign = functools.partial(signing.sign, key=key)
    result = export_bundle(mirror, args.output, since=_since(args.since), sign=sign)
    data = {
        "written": str(args.output),
        "generation": result.generation,
        "blobs": result.blobs,
        "blob-bytes": result.blob_bytes,
        "objects": result.total_objects,
        "object-bytes": result.total_bytes,
        "bundle-bytes": result.bundle_bytes,
        "signed": sign is not None,
    }
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    if args.quiet:
        return 0
    share = 100 * result.blob_bytes / result.total_bytes if result.total_bytes else 100.0
    print(
        f"wrote {display_path(args.output)}: {result.blobs} of "
        f"{count(result.total_objects, 'blob')}, {size(result.blob_bytes)} of "
        f"{size(result.total_bytes)} ({share:.0f}% of a full copy); "
        f"generation {result.generation}" + (f"; signed with {args.sign}" if sign else "")
    )
    return 0


def _import(args: argparse.Namespace, mirror: Path) -> int:
    if not args.bundle.is_file():
        raise BundleError(f"{args.bundle}: no such bundle — check the path")
    result = import_bundle(args.bundle, mirror, mode=args.materialize, trust=args.trust)
    if result.signer is not None:
        signed = f"signed by {result.signer}, trusted by {args.trust}"
    elif result.signed:
        signed = "signed, but the signature was not checked (no --trust FILE)"
    else:
        signed = "not signed"
    if args.json:
        print(
            json.dumps(
                {
                    "generation": result.generation,
                    "number": result.number,
                    "changed": result.changed,
                    "blobs": result.blobs,
                    "blob-bytes": result.blob_bytes,
                    "signer": str(result.signer) if result.signer else None,
                    "signature": signed,
                },
                indent=2,
            )
        )
        return 0
    if args.quiet:
        return 0
    if result.signed:
        print(signed)
    imported = f"imported {count(result.blobs, 'blob')} ({size(result.blob_bytes)}), all verified"
    if result.changed:
        print(
            f"{imported}; the index now points at generation {result.number} ({result.generation})"
        )
    else:
        print(
            f"{imported}; generation {result.number} ({result.generation}) was already the "
            "index: nothing switched"
        )
    return 0
