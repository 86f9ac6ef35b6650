"""morgan-test-backend: a tiny PEP 517 build backend for the sdists that tests/dists.py makes.

This module is shipped, as is, as the single module of the `morgan-test-backend` wheel, so it
uses the standard library only. It is also imported by tests/dists.py: both write wheels with
`write_wheel`, so a wheel built by pip through this backend and a wheel built directly by the
tests have the same layout.

An sdist made by tests/dists.py carries `morgan_test_build.json`: the project's name, version,
core metadata fields and the list of source files to put in the wheel. The backend never reads
PKG-INFO or pyproject.toml, so it builds the same wheel whatever metadata style the sdist uses
(that is what "dynamic metadata" means for a real backend too).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import os
import re
import shlex
import subprocess
import sys
import sysconfig
import tarfile
import time
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

BUILD_INFO = "morgan_test_build.json"
# A fixed timestamp makes every archive byte-identical for the same inputs.
ZIP_DATE = (1980, 1, 1, 0, 0, 0)
TAR_MTIME = 315532800  # 1980-01-01, the same instant


def escape_name(name: str) -> str:
    """The PEP 427 / sdist filename component of a project name (normalized, `_` separated)."""
    return re.sub(r"[-_.]+", "_", name).lower()


def metadata_text(
    name: str,
    version: str,
    *,
    metadata_version: str = "2.1",
    requires_dist: Sequence[str] = (),
    requires_python: str | None = None,
    provides_extra: Sequence[str] = (),
    dynamic: Sequence[str] = (),
) -> str:
    """Core metadata (the METADATA / PKG-INFO email-header format) for the given fields."""
    lines = [
        f"Metadata-Version: {metadata_version}",
        f"Name: {name}",
        f"Version: {version}",
        f"Summary: {name} test distribution",
    ]
    lines += [f"Dynamic: {field}" for field in dynamic]
    if requires_python is not None:
        lines.append(f"Requires-Python: {requires_python}")
    lines += [f"Provides-Extra: {extra}" for extra in provides_extra]
    lines += [f"Requires-Dist: {req}" for req in requires_dist]
    return "\n".join(lines) + "\n\n"


def _record_hash(digest: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def write_wheel(
    path: Path,
    dist_info: str,
    files: Iterable[tuple[str, Iterable[bytes]]],
    *,
    metadata: str,
    tags: Sequence[str],
    purelib: bool,
) -> Path:
    """Write a wheel at `path`: `files` (archive name, content chunks), then the .dist-info.

    RECORD lists every member with its sha256 and size. Content is streamed, so a large file
    given as many chunks is never held in memory whole. Returns `path`.
    """
    record: list[str] = []
    with zipfile.ZipFile(path, "w") as zf:

        def add(arcname: str, chunks: Iterable[bytes], compress: bool = True) -> None:
            info = zipfile.ZipInfo(arcname, date_time=ZIP_DATE)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
            sha = hashlib.sha256()
            size = 0
            with zf.open(info, "w", force_zip64=True) as out:
                for chunk in chunks:
                    sha.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
            record.append(f"{arcname},{_record_hash(sha.digest())},{size}")

        for arcname, chunks in files:
            # Data files (e.g. a large random payload) do not compress: store them.
            add(arcname, chunks, compress=arcname.endswith(".py"))
        wheel = ["Wheel-Version: 1.0", "Generator: morgan-test-backend (1.0)"]
        wheel.append(f"Root-Is-Purelib: {'true' if purelib else 'false'}")
        wheel += [f"Tag: {tag}" for tag in tags]
        add(f"{dist_info}/METADATA", [metadata.encode("utf-8")])
        add(f"{dist_info}/WHEEL", [("\n".join(wheel) + "\n\n").encode("utf-8")])
        record.append(f"{dist_info}/RECORD,,")
        info = zipfile.ZipInfo(f"{dist_info}/RECORD", date_time=ZIP_DATE)
        info.external_attr = 0o644 << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        zf.writestr(info, "\n".join(record) + "\n")
    return path


def write_sdist(path: Path, top: str, files: Mapping[str, bytes]) -> Path:
    """Write a reproducible .tar.gz at `path` holding `files` under the directory `top`."""
    with (
        path.open("wb") as raw,
        gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        dirs = {top} | {
            f"{top}/{'/'.join(parts[:i])}"
            for parts in (name.split("/") for name in files)
            for i in range(1, len(parts))
        }
        for name in sorted(dirs):
            info = tarfile.TarInfo(name)
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            info.mtime = TAR_MTIME
            tar.addfile(info)
        for name in sorted(files):
            data = files[name]
            info = tarfile.TarInfo(f"{top}/{name}")
            info.size = len(data)
            info.mode = 0o644
            info.mtime = TAR_MTIME
            tar.addfile(info, _BytesReader(data))
    return path


class _BytesReader:
    """The minimal file object tarfile.addfile reads from."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def read(self, size: int = -1) -> bytes:
        end = len(self._data) if size < 0 else self._pos + size
        chunk = self._data[self._pos : end]
        self._pos += len(chunk)
        return chunk


# --- PEP 517 hooks: the source tree is the current directory -------------------------------


def _build_info() -> dict[str, Any]:
    info: dict[str, Any] = json.loads(Path(BUILD_INFO).read_text(encoding="utf-8"))
    return info


def _dist_info(info: Mapping[str, Any]) -> str:
    return f"{escape_name(info['name'])}-{info['version']}.dist-info"


def _metadata(info: Mapping[str, Any]) -> str:
    return metadata_text(
        info["name"],
        info["version"],
        requires_dist=info["requires_dist"],
        requires_python=info["requires_python"],
        provides_extra=info["provides_extra"],
    )


def get_requires_for_build_wheel(config_settings: object = None) -> list[str]:
    """No build dependency beyond this backend."""
    return []


def get_requires_for_build_sdist(config_settings: object = None) -> list[str]:
    """No build dependency beyond this backend."""
    return []


def prepare_metadata_for_build_wheel(
    metadata_directory: str, config_settings: object = None
) -> str:
    """Write `<name>-<version>.dist-info/` (METADATA, WHEEL) and return its name."""
    info = _build_info()
    dist_info = _dist_info(info)
    target = Path(metadata_directory) / dist_info
    target.mkdir(parents=True, exist_ok=True)
    (target / "METADATA").write_text(_metadata(info), encoding="utf-8")
    wheel = "Wheel-Version: 1.0\nGenerator: morgan-test-backend (1.0)\n"
    wheel += "Root-Is-Purelib: true\nTag: py3-none-any\n\n"
    (target / "WHEEL").write_text(wheel, encoding="utf-8")
    return dist_info


def build_wheel(
    wheel_directory: str, config_settings: object = None, metadata_directory: object = None
) -> str:
    """Build a wheel of the files the sdist lists; return its filename.

    Pure (py3-none-any) unless the build info lists `c_extensions` ({module: C source}):
    those are compiled with the C compiler Python was built with, as setuptools does, and
    the wheel is tagged for this interpreter and `linux_<arch>`-style platform. A
    `build_seconds` entry makes the build take that long (to test time limits).
    """
    info = _build_info()
    time.sleep(float(info.get("build_seconds", 0)))
    files = [(name, [Path(name).read_bytes()]) for name in info["files"]]
    tag = "py3-none-any"
    extensions: dict[str, str] = info.get("c_extensions", {})
    if extensions:
        abi = f"cp{sys.version_info[0]}{sys.version_info[1]}"
        platform = re.sub(r"[-.]", "_", sysconfig.get_platform())
        tag = f"{abi}-{abi}-{platform}"
        cc = shlex.split(sysconfig.get_config_var("CC") or "cc")
        include = sysconfig.get_paths()["include"]
        for module, source in sorted(extensions.items()):
            built = module + str(sysconfig.get_config_var("EXT_SUFFIX"))
            subprocess.run(
                [*cc, "-shared", "-fPIC", "-I", include, source, "-o", built], check=True
            )
            files.append((built, [Path(built).read_bytes()]))
    filename = f"{escape_name(info['name'])}-{info['version']}-{tag}.whl"
    write_wheel(
        Path(wheel_directory) / filename,
        _dist_info(info),
        files,
        metadata=_metadata(info),
        tags=[tag],
        purelib=not extensions,
    )
    return filename


def build_sdist(sdist_directory: str, config_settings: object = None) -> str:
    """Re-pack the source tree (every regular file under it) as an sdist; return its name."""
    info = _build_info()
    top = f"{escape_name(info['name'])}-{info['version']}"
    files: dict[str, bytes] = {}
    for dirpath, _dirnames, filenames in os.walk("."):
        for filename in filenames:
            rel = Path(dirpath, filename).as_posix().removeprefix("./")
            files[rel] = Path(dirpath, filename).read_bytes()
    write_sdist(Path(sdist_directory) / f"{top}.tar.gz", top, files)
    return f"{top}.tar.gz"
