"""Every command of docs/moving.md, run in order against a mirror of the fake upstream.

The commands are read from the page's ``sh`` blocks; ``/media/usb``, ``/srv/mirror`` and
``/mnt/backup`` become folders under ``tmp_path``; ``pip`` and ``uv pip`` run isolated
(tests/clients.py) and install into a fresh venv each.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest

from tests import clients
from tests.build_scenario import morgan
from tests.small_scenario import write_spec
from tests.upstream import FakeUpstream

PAGE = Path(__file__).resolve().parent.parent / "docs" / "moving.md"


def page_commands() -> list[str]:
    blocks = re.findall(r"```sh\n(.*?)```", PAGE.read_text(encoding="utf-8"), re.DOTALL)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


def _installed(python: Path) -> set[str]:
    proc = subprocess.run(
        [str(python), "-I", "-c", ("import importlib.metadata as m; "
         "print(' '.join(d.metadata['Name'] for d in m.distributions()))")],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return set(proc.stdout.split())


def _objects(ws: Path) -> set[str]:
    """The store's blobs, as paths relative to the mirror folder."""
    mirror = ws / "mirror"
    return {
        p.relative_to(mirror).as_posix()
        for p in (mirror / "store" / "objects").rglob("*")
        if p.is_file()
    }


def _shell(command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", command], cwd=cwd, capture_output=True, text=True, check=False
    )


@pytest.mark.slow
def test_every_moving_command_runs(upstream: FakeUpstream, tmp_path: Path) -> None:
    commands = page_commands()
    assert len(commands) == 10
    upstream.add_release("requests", "2.32.0", requires_dist=["util>=1"])
    upstream.add_release("util", "1.5")
    ws = tmp_path / "ws"
    write_spec(ws, upstream.url, ["requests"])
    assert morgan(ws, "build").returncode == 0
    usb, srv, backup = tmp_path / "usb", tmp_path / "srv-mirror", tmp_path / "backup"
    share = tmp_path / "share"
    usb.mkdir()
    places = {
        "/media/usb": str(usb),
        "/srv/mirror": str(srv),
        "/mnt/backup/mirror": str(backup),
        "/srv/share/mirror": str(share),
    }
    rsynced: list[set[str]] = []
    before: set[str] = set()
    for written in commands:
        command = written
        for fake, real in places.items():
            command = command.replace(fake, real)
        argv = shlex.split(command.split("  #")[0])
        if argv[0] == "morgan":
            proc = morgan(ws, *argv[1:])
            assert proc.returncode == 0, (command, proc.stderr)
        elif argv[0] in ("pip", "uv"):
            python = clients.make_venv(tmp_path / f"venv-{argv[0]}")
            url = argv[argv.index("--index-url") + 1]
            if argv[0] == "pip":
                cmd = clients.pip_command("install", url, *argv[4:], python=python)
            else:
                cmd = clients.uv_pip_command("install", url, *argv[5:], "--python", str(python))
            proc = clients.run(cmd, clients.pip_env(tmp_path))
            assert proc.returncode == 0, (command, proc.stdout + proc.stderr)
            assert {"requests", "util"} <= _installed(python), command
        elif argv[0] == "rsync":
            for _ in range(2):  # the first copy, then the delta after one more build
                proc = _shell(command + " --out-format=%n", ws)
                assert proc.returncode == 0, (command, proc.stderr)
                sent = [
                    n
                    for n in proc.stdout.split()
                    if n.startswith("store/objects/") and not n.endswith("/")
                ]
                rsynced.append(set(sent))
                if len(rsynced) == 1:
                    before = _objects(ws)
                    upstream.add_release("extra", "1.0")
                    write_spec(ws, upstream.url, ["requests", "extra"])
                    assert morgan(ws, "build").returncode == 0
            assert (backup / "index").readlink() == (ws / "mirror" / "index").readlink()
        else:  # cp, cd && ln && mv
            proc = _shell(command, ws)
            assert proc.returncode == 0, (command, proc.stderr)
        if command.startswith("cp -rL"):
            copied = usb / "morgan-index"
            assert [p for p in copied.rglob("*") if p.is_symlink()] == []
            assert (copied / "env" / "linux" / "simple" / "requests" / "index.html").is_file()
        if argv[:2] == ["morgan", "import"]:
            assert (srv / "index" / "env" / "linux" / "simple" / "requests").is_dir()
        if argv[:2] == ["morgan", "rollback"]:  # generations 1 and 2 after the rsync step
            want = "generations/1" if argv[2:] == [] else f"generations/{argv[2]}"
            assert (ws / "mirror" / "index").readlink() == Path(want)
            assert morgan(ws, "verify").returncode == 0
        if argv[:2] == ["morgan", "build"]:  # --materialize copy: links to the store gone
            current = (share / "index").resolve()
            assert (current / "env" / "linux" / "simple" / "requests" / "index.html").is_file()
            assert [p for p in current.rglob("*") if p.is_symlink()] == []
    # The delta carried exactly the blobs the second build added, none sent before.
    assert rsynced[0] == before
    assert rsynced[1] == _objects(ws) - before != set()
    # The hand rollback switched the index back to 1; verify checks it against its own lock.
    assert (ws / "mirror" / "index").readlink() == Path("generations/1")
    proc = morgan(ws, "verify")
    assert proc.returncode == 0, proc.stderr
