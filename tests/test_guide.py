"""Every ``morgan`` command shown in docs/guide.md, run in order against a fake upstream.

The commands are read from the guide's ``sh`` blocks, so a command added to the guide is
run here too; paths the guide invents (/srv/mirror, /media/usb, .venv) are made real.
"""

from __future__ import annotations

import re
import shlex
import shutil
import sys
from pathlib import Path

import pytest

from morgan.cli import main
from morgan.server import MissRecord, default_miss_record
from tests import clients, dists
from tests.build_scenario import populate
from tests.upstream import FakeUpstream

PIP_AGENT = (
    "pip/26.3 {'cpu':'x86_64','distro':{'libc':{'lib':'glibc','version':'2.36'}},"
    "'implementation':{'name':'CPython','version':'3.11.7'},'python':'3.11.7',"
    "'system':{'name':'Linux','release':'6.1'}}"
)
GUIDE = Path(__file__).resolve().parent.parent / "docs" / "guide.md"


def guide_commands() -> list[str]:
    """The ``morgan …`` lines of the guide's sh blocks, in order."""
    blocks = re.findall(r"```sh\n(.*?)```", GUIDE.read_text(encoding="utf-8"), re.DOTALL)
    return [
        line.strip()
        for block in blocks
        for line in block.splitlines()
        if re.match(r"(cd \S+ && )?morgan ", line.strip())
    ]


PYLOCK_INPUT = """\
lock-version = "1.0"
created-by = "uv"

[[packages]]
name = "native"
version = "1.0"
wheels = [{ url = "https://files.example/native-1.0-py3-none-any.whl", hashes = { sha256 = "00" } }]
"""


@pytest.mark.slow
def test_every_guide_command_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    commands = guide_commands()
    assert len(commands) == 24
    ws = tmp_path / "ws"
    ws.mkdir()
    offline = tmp_path / "offline"
    monkeypatch.chdir(ws)
    with FakeUpstream(tmp_path / "upstream").start() as up:
        populate(up)
        up.add_release("requests", "2.31.0")
        up.add_release("requests", "2.32.0")
        up.add_release("pywin32", "306", wheels=["cp311-cp311-win_amd64"], sdist=False)
        # The inputs the guide's commands read.
        (ws / "requirements.txt").write_text("util>=1  # from requirements.txt\n")
        (ws / "pyproject.toml").write_text(
            '[project]\nname = "mine"\nversion = "1"\ndependencies = ["glibcy"]\n'
            '[project.optional-dependencies]\ncli = ["clicky"]\n'
        )
        (ws / "pylock.toml").write_text(PYLOCK_INPUT)
        python = clients.make_venv(ws / ".venv")
        wheel = dists.build_wheel(tmp_path / "dists", "speedup", "1.0")
        proc = clients.run(
            [sys.executable, "-m", "pip", "--isolated", "--no-cache-dir", "--python",
             str(python), "install", "--no-index", "--no-deps", str(wheel)],
            clients.pip_env(tmp_path),
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        for command in commands:
            argv = shlex.split(command)
            target = ws
            if argv[0] == "cd":  # "cd /srv/mirror && morgan import /media/usb/FILE"
                target = offline
                argv = argv[3:]
                argv[-1] = str(ws / Path(argv[-1]).name)
                # The guide's import follows a first, full import into that folder.
                assert main(["import", str(ws / "bundle-1.tar"), "-C", str(offline)]) == 0
            assert argv[0] == "morgan"
            if argv[1] == "missing" and not Path(default_miss_record(str(ws / "mirror"))).exists():
                # What server.py would have recorded on the offline side: pip asking for a
                # project the mirror lacks.
                record = MissRecord(default_miss_record(str(ws / "mirror")))
                record.note(("GET /simple/nothere/ HTTP/1.1", PIP_AGENT), 404)
            if argv[1:3] == ["export", "-o"] and "old/mirror.lock" in argv:
                (ws / "old").mkdir(exist_ok=True)
                shutil.copyfile(ws / "mirror.lock", ws / "old" / "mirror.lock")
            code = main([*argv[1:], "-C", str(target)] if argv[1] != "env" else argv[1:])
            captured = capsys.readouterr()
            assert code == 0, f"{command}: {captured.err}"
            if argv[1] == "init":
                # Never reach PyPI from a test: point the starter at the fake upstream.
                path = ws / "mirror.toml"
                path.write_text(path.read_text().replace("https://pypi.org/simple/", up.url))
    spec = (ws / "mirror.toml").read_text()
    for expected in ('"requests>=2.32"', '"util>=1"', '"glibcy"', '"clicky"', '"speedup==1.0"',
                     '"native==1.0"', "[environments.rhel8]", "[environments.jammy]"):  # fmt: skip
        assert expected in spec
    assert "pywin32" not in spec
    assert "[environments.laptop]" not in spec
    assert (ws / "pylock.servers.toml").is_file()
    assert (ws / "wants.txt").read_text().splitlines()[2].startswith("nothere  # 1 requests; ")
    assert (offline / "index").readlink() == Path("generations/1")
    assert (offline / "mirror.lock").read_bytes() == (ws / "mirror.lock").read_bytes()
