"""The three ways of building a mirror that the bench compares, behind one interface.

- `Ours`: `python -m morgan build` on a workspace with a `mirror.toml`.
- `Morgan015`: Morgan 0.15.0 from PyPI in its own venv, `morgan -I <upstream> mirror` on an
  index folder holding a `morgan.ini` whose env blocks carry the same marker values and,
  as `platform_tag`, a regex of exactly the platform tags our environment accepts.
- `PipDownload`: `pip download --only-binary=:all: --platform … --python-version …` once per
  environment into one shared wheelhouse, the way people do it today.

Every pip or morgan client here is isolated from this machine's pip configuration.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from bench.measure import Run, measure
from morgan.environments import Environment
from tests.clients import pip_env
from tests.server_process import free_port, stop, wait_for_port

ROOT = Path(__file__).resolve().parent.parent
MORGAN_015 = "morgan==0.15.0"


@dataclass(frozen=True, slots=True)
class Target:
    """One environment of the spec and how pip is told to act as it."""

    name: str
    python: str
    platform: str

    @property
    def environment(self) -> Environment:
        return Environment(name=self.name, python=self.python, platform=self.platform)

    def platforms(self) -> list[str]:
        """Every platform tag the environment accepts, best first (pip expands none)."""
        tags = self.environment.tags()
        return list(dict.fromkeys(t.platform for t in tags if t.platform != "any"))

    def pip_args(self) -> list[str]:
        """The `pip download` flags that make pip choose files for this environment."""
        abi = "cp" + self.python.replace(".", "")
        args = [a for p in self.platforms() for a in ("--platform", p)]
        args += ["--python-version", self.python, "--implementation", "cp"]
        return [*args, "--abi", abi, "--abi", "abi3", "--abi", "none", "--only-binary=:all:"]


def pip_cli(*args: str) -> list[str]:
    """`python -m pip --isolated --no-cache-dir ARGS…` (the bench's own pip)."""
    return [sys.executable, "-m", "pip", "--isolated", "--no-cache-dir", *args]


def tree_bytes(path: Path) -> int:
    """Bytes of the regular files under `path` (symlinks not followed, not counted)."""
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            st = Path(dirpath, name).lstat()
            if not Path(dirpath, name).is_symlink():
                total += st.st_size
    return total


class Tool(Protocol):
    """A mirror builder under test."""

    name: str

    def build(self, requirements: Sequence[str]) -> Run:
        """Build (or rebuild) the result for `requirements`; the first call is the cold one."""

    def result_bytes(self) -> int:
        """Bytes of the result that would cross the air gap."""

    def index_args(self) -> contextlib.AbstractContextManager[list[str]]:
        """While open: the pip flags that make pip use the result as its only index."""


@contextlib.contextmanager
def _serving(cmd: Sequence[str], port: int, log: Path) -> Iterator[str]:
    """Run a server command listening on `port`; yield its base URL once it answers."""
    with log.open("wb") as sink:
        proc = subprocess.Popen(list(cmd), stdout=sink, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, proc, log)
        yield f"http://127.0.0.1:{port}/"
    finally:
        stop(proc)


class Ours:
    """`morgan build` of this checkout."""

    name = "morgan (ours)"

    def __init__(self, work: Path, upstream_url: str, targets: Sequence[Target]) -> None:
        self.work = work
        self.workspace = work / "ws"
        self.upstream_url = upstream_url
        self.targets = targets

    def _write_spec(self, requirements: Sequence[str]) -> None:
        self.workspace.mkdir(parents=True, exist_ok=True)
        reqs = "".join(f'  "{r}",\n' for r in requirements)
        text = f'requirements = [\n{reqs}]\n\n[upstream]\nindex-url = "{self.upstream_url}"\n'
        for t in self.targets:
            text += f'\n[environments.{t.name}]\npython = "{t.python}"\nplatform = "{t.platform}"\n'
        (self.workspace / "mirror.toml").write_text(text, encoding="utf-8")

    def build(self, requirements: Sequence[str]) -> Run:
        self._write_spec(requirements)
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        # As installed by pip, with its bytecode compiled (Morgan 0.15.0's venv has it): a
        # shell that sets PYTHONDONTWRITEBYTECODE would make every run compile ~0.15 s of
        # source.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        return measure(
            [sys.executable, "-m", "morgan", "build", "-C", str(self.workspace)], env=env
        )

    def result_bytes(self) -> int:
        return tree_bytes(self.workspace / "mirror")

    @contextlib.contextmanager
    def index_args(self) -> Iterator[list[str]]:
        port = free_port()
        server = self.workspace / "mirror" / "server.py"
        cmd = [sys.executable, str(server), "--host", "127.0.0.1", "--port", str(port)]
        with _serving(cmd, port, self.work / "server.log") as url:
            yield ["--index-url", f"{url}simple/"]


class Morgan015:
    """Morgan 0.15.0 from PyPI, installed once into `venv`."""

    name = "Morgan 0.15.0"

    def __init__(
        self, work: Path, venv: Path, upstream_url: str, targets: Sequence[Target]
    ) -> None:
        self.work = work
        self.index = work / "index"
        self.venv = venv
        self.upstream_url = upstream_url
        self.targets = targets

    @staticmethod
    def install(venv: Path) -> Path:
        """Install Morgan 0.15.0 into `venv` (once) with an isolated pip; return its script."""
        script = venv / "bin" / "morgan"
        if script.exists():
            return script
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        env = pip_env(venv.parent)
        cmd = [str(venv / "bin" / "python"), "-m", "pip", "--isolated", "-q", "install"]
        subprocess.run(
            [*cmd, "--index-url", "https://pypi.org/simple/", MORGAN_015], env=env, check=True
        )
        return script

    def _write_config(self, requirements: Sequence[str]) -> None:
        self.index.mkdir(parents=True, exist_ok=True)
        text = ""
        for t in self.targets:
            markers = t.environment.markers()
            regex = "(" + "|".join(re.escape(p) for p in t.platforms()) + ")"
            text += f"[env.{t.name}]\n"
            for key in (
                "os_name",
                "sys_platform",
                "platform_machine",
                "platform_python_implementation",
                "platform_system",
                "python_version",
                "python_full_version",
                "implementation_name",
            ):
                text += f"{key} = {markers[key]}\n"
            text += f"platform_tag = {regex}\n\n"
        text += "[requirements]\n" + "".join(f"{r} =\n" for r in requirements)
        (self.index / "morgan.ini").write_text(text, encoding="utf-8")

    def build(self, requirements: Sequence[str]) -> Run:
        self._write_config(requirements)
        cmd = [str(self.venv / "bin" / "morgan"), "-i", str(self.index), "-I", self.upstream_url]
        return measure([*cmd, "mirror"], env=pip_env(self.work))

    def result_bytes(self) -> int:
        return tree_bytes(self.index)

    @contextlib.contextmanager
    def index_args(self) -> Iterator[list[str]]:
        port = free_port()
        cmd = [str(self.venv / "bin" / "morgan"), "-i", str(self.index)]
        cmd += ["-H", "127.0.0.1", "-p", str(port), "serve"]
        with _serving(cmd, port, self.work / "server.log") as url:
            yield ["--index-url", url]


class PipDownload:
    """`pip download` per environment into one wheelhouse."""

    name = "pip download"

    def __init__(self, work: Path, upstream_url: str, targets: Sequence[Target]) -> None:
        self.work = work
        self.wheelhouse = work / "wheelhouse"
        self.upstream_url = upstream_url
        self.targets = targets

    def build(self, requirements: Sequence[str]) -> Run:
        runs = []
        for t in self.targets:
            cmd = pip_cli("download", "--index-url", self.upstream_url, *t.pip_args())
            cmd += ["-d", str(self.wheelhouse), *requirements]
            runs.append(measure(cmd, env=pip_env(self.work)))
        return Run(
            code=max(r.code for r in runs),
            wall=sum(r.wall for r in runs),
            rss_bytes=max(r.rss_bytes for r in runs),
            output="\n".join(r.output for r in runs),
        )

    def result_bytes(self) -> int:
        return tree_bytes(self.wheelhouse)

    @contextlib.contextmanager
    def index_args(self) -> Iterator[list[str]]:
        yield ["--no-index", "--find-links", str(self.wheelhouse)]


def installs(
    tool: Tool, targets: Sequence[Target], requirements: Sequence[str], tmp: Path
) -> dict[str, str]:
    """For each environment, "" if it can download every requirement from the result, else
    pip's first error line.

    The client check of the build issue: `pip download --only-binary=:all:` for that
    environment's platforms and Python, with the result as the only index. The checks are
    not timed, so they run in parallel.
    """

    def check(index: list[str], t: Target) -> str:
        dest = tmp / f"check-{t.name}"
        shutil.rmtree(dest, ignore_errors=True)
        cmd = pip_cli("download", *index, *t.pip_args(), "-d", str(dest), *requirements)
        proc = subprocess.run(
            cmd, env=pip_env(tmp), capture_output=True, text=True, check=False, timeout=600
        )
        if proc.returncode == 0:
            return ""
        errors = [line for line in proc.stderr.splitlines() if line.startswith("ERROR:")]
        return errors[0] if errors else f"pip exited with {proc.returncode}"

    with tool.index_args() as index, ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda t: check(index, t), targets))
    return {t.name: error for t, error in zip(targets, results, strict=True)}
