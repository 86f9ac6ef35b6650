"""Run the Morgan a user installs (a wheel or an sdist in its own venv), not the checkout.

``.ci/run`` builds the wheel and the sdist from the clean checkout, installs each into a fresh
venv that is not the test venv, then runs this module from the test venv (which has the fake
upstream)::

    python -m tests.installed_smoke --wheel-venv W --sdist-venv S

With the wheel's venv: ``morgan --help``, ``morgan --version``, ``morgan -V``,
``python -m morgan --version``, a ``morgan build`` of the small scenario against the fake
upstream, ``morgan verify``, and the mirror's own ``server.py`` answering one project page.
With the sdist's venv: ``morgan --help``. Every command runs outside the checkout with no
``PYTHONPATH``, so a module, data file or entry point missing from the package fails here.
Exit 0 when all hold; otherwise one line per failure and exit 1.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

from morgan import __version__
from tests import small_scenario
from tests.server_process import free_port, stop, wait_for_port
from tests.upstream import FakeUpstream

_failures: list[str] = []


def _fail(line: str) -> None:
    _failures.append(line)
    print(f"FAIL {line}", file=sys.stderr, flush=True)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PYTHONNOUSERSITE"] = "1"
    return env


def _run(what: str, command: list[str], cwd: Path, expect: str | None = None) -> str:
    done = subprocess.run(
        command, cwd=cwd, env=_env(), capture_output=True, text=True, check=False, timeout=300
    )
    out = done.stdout + done.stderr
    if done.returncode != 0:
        last = out.strip().splitlines()[-3:] or ["(no output)"]
        _fail(f"{what}: exit {done.returncode}: " + " | ".join(last))
    elif expect is not None and expect not in out:
        _fail(f"{what}: output lacks {expect!r}: {out.strip()[:200]}")
    else:
        print(f"ok   {what}", flush=True)
    return out


def _check_installed_copy(venv: Path, cwd: Path) -> None:
    """The interpreter of ``venv`` imports Morgan from that venv, not from the checkout."""
    out = _run(
        "morgan is imported from the venv",
        [str(venv / "bin" / "python"), "-c", "import morgan, rules, store; print(morgan.__file__)"],
        cwd,
    )
    if out and str(venv.resolve()) not in str(Path(out.strip()).resolve()):
        _fail(f"morgan was imported from {out.strip()}, not from {venv}")


def wheel_checks(venv: Path, work: Path) -> None:
    morgan = str(venv / "bin" / "morgan")
    _check_installed_copy(venv, work)
    _run("morgan --help", [morgan, "--help"], work, expect="verify")
    _run("morgan --version", [morgan, "--version"], work, expect=f"morgan {__version__}")
    _run("morgan -V", [morgan, "-V"], work, expect=f"morgan {__version__}")
    python = str(venv / "bin" / "python")
    _run("python -m morgan --version", [python, "-m", "morgan", "--version"], work, __version__)
    with FakeUpstream(work / "upstream") as upstream:
        small_scenario.populate(upstream)
        ws = work / "ws"
        small_scenario.write_spec(ws, upstream.url)
        _run("morgan build", [morgan, "build", "-C", str(ws)], work)
        _run("morgan verify", [morgan, "verify", "-C", str(ws)], work)
    server = ws / "mirror" / "server.py"
    if not server.is_file():
        _fail(f"the build left no {server}")
        return
    port = free_port()
    log = work / "server.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [python, str(server), "--port", str(port)],
            cwd=ws / "mirror",
            env=_env(),
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_port(port, proc, log)
        url = f"http://127.0.0.1:{port}/simple/app/"
        with urllib.request.urlopen(url, timeout=10) as response:
            body = response.read().decode()
        if "app-1.0-py3-none-any.whl" not in body:
            _fail(f"server.py: {url} does not link app's wheel: {body[:200]}")
        else:
            print(f"ok   mirror/server.py answers {url}")
    except (OSError, RuntimeError) as exc:
        _fail(f"server.py: {exc}")
    finally:
        stop(proc)


def sdist_checks(venv: Path, work: Path) -> None:
    _check_installed_copy(venv, work)
    _run("morgan --help (sdist)", [str(venv / "bin" / "morgan"), "--help"], work, expect="verify")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.installed_smoke")
    parser.add_argument("--wheel-venv", type=Path, required=True)
    parser.add_argument("--sdist-venv", type=Path, required=True)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="morgan-installed-") as tmp:
        work = Path(tmp)
        wheel_checks(args.wheel_venv.absolute(), work)
        sdist_checks(args.sdist_venv.absolute(), work)
    return 1 if _failures else 0


if __name__ == "__main__":
    sys.exit(main())
