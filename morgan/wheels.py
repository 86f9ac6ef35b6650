"""Opt-in wheel building: ``[build] wheels = ["ENV", …]`` — the one place Morgan runs
package code (a package's build backend, and the compiler it calls).

For each listed environment that matches the build host (same implementation and Python
X.Y as the interpreter running Morgan, and a platform that accepts wheels built here), every
selected release that has an sdist but no wheel for the environment is built into a wheel:

- offline, from the mirror itself: ``pip wheel --no-index --find-links DIR`` where ``DIR``
  holds links to the files this environment selected (its build dependencies included), so
  build isolation installs the build requirements from the mirror and nothing else;
- in a subprocess (its own session, killed whole with its compiler children after
  ``[build] timeout`` seconds), with no pip configuration from outside, ``SOURCE_DATE_EPOCH``
  fixed;
- a wheel tagged ``linux_<arch>`` (what setuptools writes) is re-tagged with the host's own
  ``manylinux_<glibc>_<arch>`` tag (``WHEEL`` and ``RECORD`` rewritten): it then fits exactly
  the environments whose glibc is at least the host's. Like ``auditwheel`` without its
  check of external libraries: meant for a fleet of machines like the build host.

A build is a node of the executor keyed by the sdist's sha256, the interpreter and the
sha256 of every file offered to it: the next build reuses the wheel from the store. The
built wheel is then registered as the fixed output of its own fetch node, so everything
after selection (views, pages, lock, bundles, verify) handles it like any file. A build that
fails is a warning (the sdist is still served); nothing is cached for it.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Self

from packaging.utils import parse_wheel_filename

from morgan.catalog import UpstreamCatalog
from morgan.environments import Environment, current_environment
from morgan.errors import BuildError
from morgan.lock import BUILT_URL
from morgan.resolve import Release, usable_files
from rules.fetch import Fetched
from rules.model import UpstreamFile
from rules.rule import Json, Rule
from store.digest import Digest


@dataclass(frozen=True, slots=True)
class BuiltWheel:
    """The output of rule ``build-wheel``: the wheel pip made from an sdist, in the store."""

    fetched: Fetched
    filename: str

    @property
    def blobs(self) -> tuple[Digest, ...]:
        return self.fetched.blobs

    def to_json(self) -> dict[str, object]:
        return {**self.fetched.to_json(), "filename": self.filename}

    @classmethod
    def from_json(cls, data: Json) -> Self:
        return cls(Fetched.from_json(data), str(data["filename"]))


# Rule ``build-wheel`` lives here, not in rules/: it is the one rule that runs package code
# (isolated, opt-in: docs/wheel-building.md), and its run function drives pip.
BUILD_WHEEL = Rule("build-wheel", 1, BuiltWheel)
_WHEEL_FILE = re.compile(r"[^/]+\.dist-info/WHEEL")
_EPOCH = "315532800"  # 1980-01-01: the earliest zip timestamp, for reproducible archives


@dataclass(frozen=True, slots=True)
class Builder:
    """The interpreter that builds, and the platform tag of the machine it runs on."""

    executable: str
    implementation: str
    version: str  # "3.11.7"
    platform: str  # "manylinux_2_36_x86_64"

    @property
    def label(self) -> str:
        impl = {"cp": "CPython", "pp": "PyPy"}.get(self.implementation, self.implementation)
        return f"{impl} {self.version} on {self.platform}"


@dataclass(frozen=True, slots=True)
class Built:
    """A wheel built for the build: which sdist, with what (for the lock)."""

    filename: str
    sdist_sha256: str
    builder: str


@dataclass
class WheelResult:
    built: dict[str, Built]  # wheel filename → how it was made
    warnings: list[str]


def builder_for(env: Environment) -> Builder:
    """This host as the builder of ``env``'s wheels; BuildError when it does not match."""
    host = current_environment("host")
    short = ".".join(env.python.split(".")[:2])
    host_short = ".".join(host.python.split(".")[:2])
    accepted = {t.platform for t in env.tags()}
    if (
        env.implementation != host.implementation
        or short != host_short
        or env.free_threaded != host.free_threaded
        or host.platform not in accepted
    ):
        raise BuildError(
            f"[build] wheels: environment {env.name!r} (Python {env.python}, {env.platform}) "
            f"does not match this build host (Python {host.python}, {host.platform}): build "
            "its wheels on a machine like its targets with a Morgan running on that Python, "
            "or remove it from [build] wheels"
        )
    return Builder(sys.executable, host.implementation, host.python, host.platform)


def build_wheels(
    envs: Sequence[tuple[Environment, list[Release], list[Release]]],
    catalog: UpstreamCatalog,
    *,
    timeout: int,
) -> tuple[dict[tuple[str, str, str], Release], WheelResult]:
    """Build the wheels of ``envs`` (environment, releases to build for, every release it
    selected). Returns (env name, project, version) → the release with its built wheel."""
    result = WheelResult({}, [])
    out: dict[tuple[str, str, str], Release] = {}
    for env, wanted, selected in envs:
        builder = builder_for(env)
        offered = [f for rel in selected for f in _files(rel, env)]
        pending = {f.filename: catalog.fetch_async(f) for f in offered}
        blobs = {name: str(fut.result().blob) for name, fut in pending.items()}
        shas = sorted({str(f.sha256) for f in offered})
        for rel in wanted:
            wheels, sdists = usable_files(rel, env, allow_yanked=True)
            if wheels or not sdists:
                continue
            sdist = sdists[0]
            try:
                wheel = _build_one(
                    catalog,
                    builder,
                    sdist,
                    offered=offered,
                    blobs=blobs,
                    shas=shas,
                    timeout=timeout,
                )
            except BuildError as exc:
                result.warnings.append(f"{env.name}: {exc}")
                continue
            result.built[wheel.filename] = Built(wheel.filename, str(sdist.sha256), builder.label)
            out[(env.name, rel.name, str(rel.version))] = replace(
                rel, files=tuple(sorted((*rel.files, wheel), key=lambda f: f.filename))
            )
    return out, result


def strip_built(release: Release) -> Release:
    """``release`` without the wheels an earlier build made (they are made again, or
    found in the action cache, by :func:`build_wheels`)."""
    files = tuple(f for f in release.files if not f.url.startswith(BUILT_URL))
    return release if len(files) == len(release.files) else replace(release, files=files)


def _files(rel: Release, env: Environment) -> list[UpstreamFile]:
    wheels, sdists = usable_files(rel, env, allow_yanked=True)
    return wheels + sdists


def _build_one(
    catalog: UpstreamCatalog,
    builder: Builder,
    sdist: UpstreamFile,
    *,
    offered: Sequence[UpstreamFile],
    blobs: dict[str, str],
    shas: list[str],
    timeout: int,
) -> UpstreamFile:
    node = BUILD_WHEEL.node(
        f"wheel-build:{sdist.filename}:{str(sdist.sha256)[:16]}",
        {
            "sdist": sdist.filename,
            "sha256": sdist.sha256 or "",
            "interpreter": f"{builder.implementation}-{builder.version}-{builder.platform}",
            "offered": shas,
        },
    )

    def run() -> BuiltWheel:
        return _run_build(catalog, builder, sdist, offered=offered, blobs=blobs, timeout=timeout)

    built = catalog.executor.run(node, run)
    wheel = UpstreamFile(
        filename=built.filename,
        url=f"{BUILT_URL}{sdist.sha256}",
        sha256=built.fetched.sha256,
        size=built.fetched.size,
        upload_time=None,
        requires_python=sdist.requires_python,
        yanked=False,
        yanked_reason="",
        core_metadata=False,
        core_metadata_sha256=None,
    )
    # The wheel's own fetch node gets the built blob as its fixed output: what comes after
    # selection fetches it like any file and finds it here, never on the network.
    catalog.executor.run(catalog.file_node(wheel), lambda: built.fetched)
    return wheel


def _run_build(
    catalog: UpstreamCatalog,
    builder: Builder,
    sdist: UpstreamFile,
    *,
    offered: Sequence[UpstreamFile],
    blobs: dict[str, str],
    timeout: int,
) -> BuiltWheel:
    work = catalog.store.root / "tmp" / f"wheel-build-{os.getpid()}-{sdist.filename}"
    shutil.rmtree(work, ignore_errors=True)
    links, out = work / "links", work / "out"
    links.mkdir(parents=True)
    out.mkdir()
    try:
        for f in offered:
            (links / f.filename).symlink_to(catalog.store.path(Digest.parse(blobs[f.filename])))
        log = _pip_wheel(builder, links / sdist.filename, out=out, timeout=timeout, work=work)
        made = list(out.glob("*.whl"))
        if len(made) != 1:
            raise BuildError(f"{sdist.filename}: pip wheel made no wheel ({log})")
        wheel = _retag(made[0], builder.platform)
        with wheel.open("rb") as fh:
            blob = catalog.store.put_stream(fh)
        return BuiltWheel(Fetched.of(blob), wheel.name)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _pip_wheel(builder: Builder, sdist: Path, *, out: Path, timeout: int, work: Path) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON"))}
    env.update(
        {
            "PIP_CONFIG_FILE": os.devnull,
            "PIP_NO_INPUT": "1",
            "SOURCE_DATE_EPOCH": _EPOCH,
            "TMPDIR": str(work),
        }
    )
    cmd = [
        builder.executable, "-m", "pip", "--isolated", "--disable-pip-version-check",
        "--no-cache-dir", "wheel", "--no-deps", "--no-index", "--find-links", str(sdist.parent),
        "--wheel-dir", str(out), str(sdist),
    ]  # fmt: skip
    with subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=work,
        env=env,
        start_new_session=True,  # its own process group: the timeout kills compilers too
    ) as proc:
        try:
            output, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise BuildError(
                f"{sdist.name}: building a wheel took longer than {timeout} s: killed "
                "(raise [build] timeout if it needs longer)"
            ) from None
    text = output.decode("utf-8", "replace")
    if proc.returncode != 0:
        last = [line for line in text.splitlines() if line.strip()][-3:]
        raise BuildError(f"{sdist.name}: pip wheel failed: {' | '.join(last)}")
    return text.strip().splitlines()[-1] if text.strip() else ""


def _retag(wheel: Path, platform: str) -> Path:
    """A ``linux_<arch>`` wheel re-tagged ``platform`` (name, WHEEL and RECORD)."""
    _name, _version, build, tags = parse_wheel_filename(wheel.name)
    if not any(t.platform.startswith("linux_") for t in tags):
        return wheel
    new_tags = sorted({f"{t.interpreter}-{t.abi}-{platform}" for t in tags})
    interp = ".".join(sorted({t.split("-")[0] for t in new_tags}))
    abi = ".".join(sorted({t.split("-")[1] for t in new_tags}))
    stem = wheel.name.split("-")
    head = "-".join(stem[: 3 if build else 2])
    target = wheel.with_name(f"{head}-{interp}-{abi}-{platform}.whl")
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(target, "w") as dst:
        members = src.infolist()
        wheel_name = next(m.filename for m in members if _WHEEL_FILE.fullmatch(m.filename))
        record_name = wheel_name.rsplit("/", 1)[0] + "/RECORD"
        lines = src.read(wheel_name).decode("utf-8").splitlines()
        text = "\n".join(line for line in lines if not line.startswith("Tag:"))
        text = text.rstrip("\n") + "\n" + "".join(f"Tag: {t}\n" for t in new_tags) + "\n"
        data = text.encode("utf-8")
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        for m in members:
            if m.filename == wheel_name:
                dst.writestr(m, data)
            elif m.filename == record_name:
                row = f"{wheel_name},sha256={digest},{len(data)}"
                rows = [
                    row if r.startswith(wheel_name + ",") else r
                    for r in src.read(m).decode("utf-8").splitlines()
                ]
                dst.writestr(m, "\n".join(rows) + "\n")
            else:
                dst.writestr(m, src.read(m))
    wheel.unlink()
    return target
