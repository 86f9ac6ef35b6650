"""The README's client commands, run for real against a mirror of the repo's own spec.

The spec is the repository's `mirror.toml` with the upstream swapped for the fake one (tests
never use the Internet), which serves look-alike releases of what it asks for. The commands
are the README's, with what a test must change: a free port instead of 8080, and pip and uv
isolated from this machine's configuration and installing into a folder of the test's.
"""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

from tests.build_scenario import ROOT, morgan
from tests.clients import pip_command, pip_env, run, uv_pip_command
from tests.server_process import server_process
from tests.upstream import FakeUpstream

README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_readme_clients_install_requests_from_the_mirror(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    upstream.add_release(
        "requests",
        "2.32.3",
        requires_dist=["idna>=2.5", "urllib3>=1.21.1", "certifi>=2017.4.17"],
    )
    for name, version in (("idna", "3.10"), ("urllib3", "2.2.3"), ("certifi", "2024.8.30")):
        upstream.add_release(name, version)
    upstream.add_release("packaging", "24.2")
    upstream.add_release("colorama", "0.4.6")
    ws = tmp_path / "ws"
    ws.mkdir()
    spec = (ROOT / "mirror.toml").read_text(encoding="utf-8")
    (ws / "mirror.toml").write_text(spec.replace("https://pypi.org/simple/", upstream.url))
    assert morgan(ws, "build").returncode == 0

    blocks = re.findall(r"```sh\n(.*?)```", README, re.S)
    lines = [shlex.split(line) for line in blocks[2].splitlines()]
    assert [words[:3] for words in lines] == [
        ["python", "mirror/server.py", "--port"],
        ["pip", "install", "--index-url"],
        ["uv", "pip", "install"],
    ]
    command = [sys.executable, str(ws / lines[0][1]), "--port", "0"]  # README: 8080
    env = pip_env(tmp_path)
    with server_process(command, tmp_path / "server.log", cwd=ws) as proc:
        for words, target in ((lines[1], "pip-target"), (lines[2][1:], "uv-target")):
            index = words[words.index("--index-url") + 1].replace(
                "http://127.0.0.1:8080/", proc.url
            )
            wanted = words[-1]
            maker = pip_command if words[0] == "pip" else uv_pip_command
            done = run(maker("install", index, "--target", str(tmp_path / target), wanted), env)
            assert done.returncode == 0, done.stdout + done.stderr
            installed = sorted(
                p.name.split("-")[0] for p in (tmp_path / target).glob("*.dist-info")
            )
            assert installed == ["certifi", "idna", "requests", "urllib3"]
