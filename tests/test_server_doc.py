"""Every command docs/server.md shows for starting a server, run for real.

Ports and addresses are the doc's own except where a test must differ: tests bind
127.0.0.1 only and never a fixed port, so ``--host 0.0.0.0`` becomes ``--host 127.0.0.1``
and every command gets ``--port 0`` (a free port); ``/srv/mirror`` is the test's mirror.
"""

from __future__ import annotations

import re
import shlex
import shutil
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.build_scenario import ROOT
from tests.index_tree import build_tree
from tests.server_process import SERVER_PY, server_process

DOC = (ROOT / "docs" / "server.md").read_text(encoding="utf-8")


def doc_commands() -> list[list[str]]:
    block = re.search(r"```sh\n(.*?)```", DOC, re.S)
    assert block is not None
    return [shlex.split(line, comments=True) for line in block.group(1).splitlines() if line]


def test_the_doc_shows_both_ways_to_start_a_server() -> None:
    assert [words[:2] for words in doc_commands()] == [
        ["python", "server.py"],
        ["python", "server.py"],
        ["python", "server.py"],
        ["morgan", "serve"],
    ]


@pytest.mark.parametrize("words", doc_commands(), ids=" ".join)
def test_each_server_command_serves_the_mirror(words: list[str], tmp_path: Path) -> None:
    tree = build_tree(tmp_path / "mirror")
    shutil.copyfile(SERVER_PY, tree.root / "server.py")  # as `morgan build` puts it there
    command = [w.replace("/srv/mirror", str(tree.root)) for w in words]
    if "--host" in command:
        command[command.index("--host") + 1] = "127.0.0.1"
    if "--port" in command:
        del command[command.index("--port") : command.index("--port") + 2]
    command += ["--port", "0"]
    if command[0] == "python":
        command[0] = sys.executable
    else:  # morgan, as installed: the same module
        command[:1] = [sys.executable, "-m", "morgan"]
    with server_process(command, tmp_path / "server.log", cwd=tree.root) as proc:
        resp = urllib.request.urlopen(f"{proc.url}simple/", timeout=10)
        with resp:
            assert (resp.status, b"alpha" in resp.read()) == (200, True)
    if "--processes" in words:
        assert "with 4 processes" in (tmp_path / "server.log").read_text()
