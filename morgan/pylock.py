"""A PEP 751 ``pylock.toml`` for one environment of ``mirror.lock``, pointing at the mirror.

The file lists the environment's run-time pins (build-time pins are what the index serves
to build isolation, not what gets installed), each with every wheel of the locked version
that fits the environment and its sdist, with size, upload time and sha256. Installers
(``pip install -r pylock.toml``, pip ≥ 26.1; ``uv pip install -r pylock.toml``) then install
exactly the locked set, hash-checked, with no resolution of their own.

Where files are: PEP 751 wants an absolute ``url`` or a ``path`` (relative to the lock
file's folder). Both point into the environment's own view, ``env/<name>/simple/``, the
index its clients are told to use: it serves exactly the files the pylock lists, so the
lock works where only that view is published, and its ``index`` is the same URL a client
passes as ``--index-url``. With a base URL (the address clients reach the mirror at), every
file gets ``url = <base>env/<name>/simple/<project>/<filename>`` and the package an
``index``; without one, a relative ``path`` into ``<mirror>/index/env/<name>/simple/…``
(the path stays valid across builds, because ``index`` always names the current
generation) — for installing on the machine that holds the mirror, or with the lock file
carried next to the mirror folder.

Output is deterministic: the same lock and options give the same bytes.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from packaging.tags import Tag
from packaging.utils import (
    InvalidWheelFilename,
    canonicalize_name,
    parse_wheel_filename,
)

from morgan import __version__
from morgan.environments import Environment
from morgan.errors import UsageError
from morgan.lock import Lock, LockedFile, LockedRelease

__all__ = ["FileLocation", "environment_marker", "files_for", "pylock_text"]


@dataclass(frozen=True, slots=True)
class FileLocation:
    """Where the pylock says files are: ``base_url`` (absolute) or ``mirror`` seen from
    ``lock_dir`` (a relative path). Exactly one of ``base_url`` / ``mirror`` is set."""

    base_url: str | None = None
    mirror: Path | None = None
    lock_dir: Path | None = None
    index: str = ""  # a named index's prefix, "indexes/<name>/" (docs/indexes.md)

    def index_url(self, env: str) -> str | None:
        """The URL of ``env``'s view (``<base>env/<env>/simple/``, below a named index's
        prefix), without a base URL none."""
        if self.base_url is None:
            return None
        base = self.base_url if self.base_url.endswith("/") else self.base_url + "/"
        return f"{base}{self.index}env/{env}/simple/"

    def entry(self, env: str, project: str, filename: str) -> tuple[str, str]:
        """``("url", …)`` or ``("path", …)`` for one file of ``env``'s view."""
        index = self.index_url(env)
        if index is not None:
            return "url", f"{index}{project}/{filename}"
        if self.mirror is None or self.lock_dir is None:
            raise ValueError("FileLocation needs base_url, or mirror and lock_dir")
        view = self.mirror / "index" / self.index / "env" / env / "simple"
        target = view / project / filename
        return "path", Path(os.path.relpath(target, self.lock_dir)).as_posix()


def environment_marker(env: Environment) -> str:
    """A PEP 508 marker that is true exactly on interpreters of ``env``'s kind."""
    markers = env.markers()
    keys = ("implementation_name", "python_version", "sys_platform", "platform_machine")
    return " and ".join(f"{key} == {json.dumps(markers[key])}" for key in keys)


def files_for(
    release: LockedRelease, env: Environment, *, with_sdists: bool = True
) -> tuple[list[LockedFile], LockedFile | None]:
    """The files of ``release`` in ``env``'s view of the mirror (what ``env/<name>/simple/``
    serves, chosen by the same rule the build uses): its wheels that install on ``env``,
    best first, and its sdist (a ``.tar.gz`` before a ``.zip``)."""
    # Imported here: the build module pulls in the executor and resolver, which the other
    # users of this module (and `morgan --help`) do not need.
    from morgan.catalog import locked_release
    from morgan.selected_files import env_files

    in_view = {f.filename for f in env_files(locked_release(release), env, sdists=with_sdists)}
    rank = {tag: i for i, tag in enumerate(env.tags())}
    wheels: list[tuple[int, str, LockedFile]] = []
    sdists: list[LockedFile] = []
    for f in release.files:
        if f.filename not in in_view:
            continue
        if not f.filename.endswith(".whl"):
            if f.filename.endswith((".tar.gz", ".zip")):
                sdists.append(f)
            continue
        try:
            tags: frozenset[Tag] = parse_wheel_filename(f.filename)[3]
        except InvalidWheelFilename:
            continue
        best = min((rank[t] for t in tags if t in rank), default=None)
        if best is not None:
            wheels.append((best, f.filename, f))
    sdists.sort(key=lambda f: (not f.filename.endswith(".tar.gz"), f.filename))
    return [f for _, _, f in sorted(wheels)], next(iter(sdists), None)


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=True)  # a valid TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {value!r} to a pylock.toml")


def _file_table(env: str, project: str, f: LockedFile, where: FileLocation) -> str:
    key, location = where.entry(env, project, f.filename)
    parts = [f"name = {_toml(f.filename)}"]
    if f.upload_time:
        try:
            # TOML offset date-time, written bare: PEP 751 upload-time is a datetime.
            datetime.fromisoformat(f.upload_time)
            parts.append(f"upload-time = {f.upload_time}")
        except ValueError:
            pass  # an upstream time that is not RFC 3339 is left out, not guessed
    parts += [
        f"{key} = {_toml(location)}",
        f"size = {f.size}",
        f"hashes = {_toml({'sha256': f.sha256})}",
    ]
    return "{ " + ", ".join(parts) + " }"


def pylock_text(
    lock: Lock,
    env: Environment,
    where: FileLocation,
    *,
    sdists: bool = True,
    index: str | None = None,
) -> str:
    """The ``pylock.toml`` text for ``env``'s run-time pins in ``lock`` (``sdists``: the
    spec's ``[policy] sdists``, which decides whether the view has a release's sdist), in
    the default index or the named ``index`` (whose view ``where`` then points into).

    Raises :class:`UsageError` when ``lock`` has no such environment, or a pin has no file
    that installs on ``env``.
    """
    envs = lock.audience(index) or ()
    locked = next((e for e in envs if e.name == env.name), None)
    if locked is None:
        known = ", ".join(e.name for e in envs) or "none"
        of = f" in index {index!r}" if index is not None else ""
        raise UsageError(
            f"mirror.lock has no environment {env.name!r}{of} (locked: {known}) — run "
            "'morgan build' after adding it"
        )
    flags = f"--env {env.name}" + (f" --index {index}" if index is not None else "")
    out = [
        f"# Written by `morgan export-lock {flags}` (morgan {__version__}) from mirror.lock.\n",
        "# Install exactly these files: pip install -r <this file>  (pip >= 26.1), or\n",
        "# uv pip install -r <this file>.\n",
        'lock-version = "1.0"\n',
        f"environments = [{_toml(environment_marker(env))}]\n",
        'created-by = "morgan"\n',
    ]
    pins = sorted({(p.name, p.version) for p in locked.pins if p.role == "run"})
    for name, version in pins:
        release = lock.release(name, version)
        if release is None:
            raise UsageError(
                f"mirror.lock pins {name} {version} without a release entry — run "
                "'morgan build' to rewrite the lock"
            )
        project = canonicalize_name(name)
        wheels, sdist = files_for(release, env, with_sdists=sdists)
        if not wheels and sdist is None:
            raise UsageError(
                f"{name} {version} has no file for environment {env.name!r} in mirror.lock — "
                "run 'morgan build' to fetch it"
            )
        out.append("\n[[packages]]\n")
        out.append(f"name = {_toml(project)}\nversion = {_toml(version)}\n")
        if release.requires_python:
            out.append(f"requires-python = {_toml(release.requires_python)}\n")
        index = where.index_url(env.name)
        if index is not None:
            out.append(f"index = {_toml(index)}\n")
        if sdist is not None:
            out.append(f"sdist = {_file_table(env.name, project, sdist, where)}\n")
        if wheels:
            out.append("wheels = [\n")
            out.extend(f"  {_file_table(env.name, project, w, where)},\n" for w in wheels)
            out.append("]\n")
    return "".join(out)
