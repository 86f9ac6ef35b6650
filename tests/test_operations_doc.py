"""The commands docs/operations.md shows for the offline side, run for real."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import urllib.request
from pathlib import Path

from tests.build_scenario import ROOT, morgan
from tests.server_process import stop
from tests.upstream import FakeUpstream

DOC = (ROOT / "docs" / "operations.md").read_text()


def shell_block_after(heading: str) -> str:
    section = DOC.split(heading, 1)[1]
    match = re.search(r"```sh\n(.*?)```", section, re.S)
    assert match is not None
    return match.group(1)


def test_rollback_command_switches_index_back(upstream: FakeUpstream, tmp_path: Path) -> None:
    upstream.add_release("leaf", "1.0")
    upstream.add_release("other", "1.0")
    ws = tmp_path / "ws"
    ws.mkdir()
    env = '[environments.linux]\npython = "3.11"\nplatform = "manylinux_2_28_x86_64"\n'
    for reqs in ('["leaf"]', '["leaf", "other"]'):
        (ws / "mirror.toml").write_text(
            f'requirements = {reqs}\n[upstream]\nindex-url = "{upstream.url}"\n{env}'
        )
        assert morgan(ws, "build").returncode == 0
    mirror = ws / "mirror"
    assert (mirror / "index").readlink() == Path("generations/2")
    subprocess.run(
        ["sh", "-c", shell_block_after("## Roll back")], cwd=mirror, check=True, timeout=30
    )
    assert (mirror / "index").readlink() == Path("generations/1")
    assert not (mirror / "index" / "simple" / "other").exists()


def test_offline_serve_command_serves_the_index(upstream: FakeUpstream, tmp_path: Path) -> None:
    upstream.add_release("leaf", "1.0")
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "mirror.toml").write_text(
        f'requirements = ["leaf"]\n[upstream]\nindex-url = "{upstream.url}"\n'
        '[environments.linux]\npython = "3.11"\nplatform = "manylinux_2_28_x86_64"\n'
    )
    assert morgan(ws, "build").returncode == 0
    command = shell_block_after("On the offline side").split("#")[0].strip()
    assert command == "python mirror/server.py --host 0.0.0.0 --port 8080"
    # Same command on loopback and a free port (tests never bind elsewhere).
    argv = [sys.executable, "mirror/server.py", "--host", "127.0.0.1", "--port", "0"]
    proc = subprocess.Popen(argv, cwd=ws, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        url = re.search(r"at (http://\S+/)", line)
        assert url is not None, line
        with urllib.request.urlopen(url.group(1) + "env/linux/simple/leaf/") as resp:
            assert b"leaf-1.0-py3-none-any.whl" in resp.read()
    finally:
        stop(proc)


def test_quickstart_online_commands(upstream: FakeUpstream, tmp_path: Path) -> None:
    upstream.add_release("requests", "2.31.0")
    upstream.add_release(
        "numpy",
        "2.0.0",
        wheels=["cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64", "cp312-cp312-win_amd64"],
    )
    ws = tmp_path / "ws"
    ws.mkdir()
    block = shell_block_after("On the connected machine")
    commands = [shlex.split(line.split("#")[0]) for line in block.splitlines() if line.strip()]
    assert [c[:2] for c in commands] == [
        ["morgan", "init"],
        ["morgan", "add"],
        ["morgan", "env"],
        ["morgan", "build"],
        ["morgan", "verify"],
    ]
    for argv in commands:
        proc = morgan(ws, *argv[1:])
        assert proc.returncode == 0, (argv, proc.stderr)
        assert "already listed" not in proc.stdout, argv  # every step does something
        if argv[1] == "init":
            # The starter spec points at PyPI; the test suite's only network is the fake one.
            spec = ws / "mirror.toml"
            spec.write_text(spec.read_text().replace("https://pypi.org/simple/", upstream.url))
    assert (ws / "mirror" / "index" / "env" / "win" / "simple" / "numpy").is_dir()
    # init's Linux target and the Windows one: two environments, no duplicate.
    assert sorted(p.name for p in (ws / "mirror" / "index" / "env").iterdir()) == ["linux", "win"]
