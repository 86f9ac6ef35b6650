"""The miss loop: server.py records what real pip and uv asked for and the mirror lacks;
``morgan missing`` turns it into a requirements file, ``morgan add -r`` takes it,
``morgan env add --from-user-agent`` and ``morgan clients`` read the clients' agents."""

from __future__ import annotations

import json
import os
import sys
import time
import tomllib
from pathlib import Path

import pytest

from morgan.clients import parse_user_agent
from morgan.environments import current_environment
from morgan.server import MissRecord, default_miss_record
from tests import clients
from tests.build_scenario import morgan
from tests.server_process import ServerProcess, server_process
from tests.upstream import FakeUpstream

HOST = current_environment("host")
SHORT = ".".join(HOST.python.split(".")[:2])
LABEL = f"CPython {SHORT} {HOST.platform}"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """A built mirror (envs: ``linux`` that this host's clients match, ``mac`` that none
    does), its server.py recording misses, and what real pip and uv asked of it:
    (workspace, record, the pip User-Agent as recorded)."""
    root = tmp_path_factory.mktemp("missing")
    with FakeUpstream(root / "upstream").start() as up:
        up.add_release("demo", "1.0")
        ws = root / "ws"
        ws.mkdir()
        (ws / "mirror.toml").write_text(
            f'requirements = ["demo"]\n\n[upstream]\nindex-url = "{up.url}"\n\n'
            f'[environments.linux]\npython = "{SHORT}"\nplatform = "manylinux_2_28_x86_64"\n\n'
            '[environments.mac]\npython = "3.13"\nplatform = "macosx_14_0_arm64"\n'
        )
        proc = morgan(ws, "build")
        assert proc.returncode == 0, proc.stderr
    record = root / "state" / "misses.jsonl"
    mirror = ws / "mirror"
    cmd = [sys.executable, str(mirror / "server.py"), "--port", "0", "--misses", str(record)]
    with server_process(cmd, root / "server.log") as server:
        env = clients.pip_env(root)
        _ask(server, env, root)
        _recorded(record, misses=3, clients=2)
        assert f"; recording misses at {record}\n" in server.log_text()
    agents = [json.loads(line)["agent"] for line in record.read_text().splitlines()]
    pip_agent = next(a for a in agents if a.startswith("pip/"))
    return ws, record, pip_agent


def _recorded(record: Path, *, misses: int, clients: int) -> None:
    """Wait until the record holds as many misses and clients as were asked for: the
    server records a request after answering it, so under load the last lines may still
    be on their way when the clients are done (stopping the server then would lose them)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        lines = [json.loads(x) for x in record.read_text().splitlines()] if record.exists() else []
        kinds = [e["kind"] for e in lines]
        if len(kinds) - kinds.count("client") >= misses and kinds.count("client") >= clients:
            return
        time.sleep(0.05)


def _ask(server: ServerProcess, env: dict[str, str], tmp: Path) -> None:
    """Real clients ask for what the mirror has and for what it lacks."""
    union = f"{server.url}simple/"
    # --isolated ignores PIP_DISABLE_PIP_VERSION_CHECK: without the flag pip also asks the
    # mirror for its own page ("pip" would be a miss too).
    quiet = "--disable-pip-version-check"
    ok = clients.run(
        clients.pip_command("download", union, quiet, "-d", str(tmp / "d"), "demo"), env
    )
    assert ok.returncode == 0, ok.stderr
    for index in (union, f"{server.url}env/linux/simple/"):
        miss = clients.run(
            clients.pip_command("download", index, quiet, "-d", str(tmp / "d"), "nothere"), env
        )
        assert miss.returncode != 0
    wanted = tmp / "requirements.in"
    wanted.write_text("alsonot==2.0\n")
    compile_ = clients.run(clients.uv_pip_command("compile", union, str(wanted)), env)
    assert compile_.returncode != 0


def test_the_record_holds_the_misses_and_each_client_once(served: tuple[Path, Path, str]) -> None:
    ws, record, pip_agent = served
    entries = [json.loads(line) for line in record.read_text().splitlines()]
    misses = sorted((e["kind"], e["project"], e["view"]) for e in entries if e["kind"] != "client")
    assert misses == [
        ("project", "alsonot", ""),
        ("project", "nothere", ""),
        ("project", "nothere", "env/linux"),
    ]
    agents = sorted(e["agent"].split("/")[0] for e in entries if e["kind"] == "client")
    assert agents == ["pip", "uv"]  # one line per client per day, however many requests
    client = parse_user_agent(pip_agent)
    assert client is not None
    assert (client.python, client.implementation, client.platform) == (
        HOST.python,
        "cp",
        HOST.platform,
    )
    assert not str(record).startswith(str(ws / "mirror"))


def test_missing_writes_requirements_that_add_takes(
    served: tuple[Path, Path, str], tmp_path: Path
) -> None:
    ws, record, _ = served
    work = tmp_path / "ws"
    work.mkdir()
    (work / "mirror.toml").write_text((ws / "mirror.toml").read_text())
    wants = tmp_path / "wants.txt"
    proc = morgan(work, "missing", "--record", str(record), "-o", str(wants))
    assert proc.returncode == 0, proc.stderr
    lines = wants.read_text().splitlines()
    assert lines[2:] == [
        f"nothere  # 2 requests; in env/linux; {LABEL} ×2 (env linux)",
        f"alsonot  # 1 requests; {LABEL} ×1 (env linux)",
    ]
    add = morgan(work, "add", "-r", str(wants))
    assert add.returncode == 0, add.stderr
    spec = tomllib.loads((work / "mirror.toml").read_text())
    assert spec["requirements"] == ["demo", "nothere", "alsonot"]
    data = json.loads(morgan(work, "missing", "--record", str(record), "--json").stdout)
    assert [(w["requirement"], w["requests"], w["environments"]) for w in data] == [
        ("nothere", 2, ["linux"]),
        ("alsonot", 1, ["linux"]),
    ]
    later = morgan(work, "missing", "--record", str(record), "--since", "2999-01-01", "--json")
    assert json.loads(later.stdout) == []
    bad = morgan(work, "missing", "--record", str(record), "--since", "yesterday")
    assert bad.returncode == 2
    assert "--since 'yesterday' is not a date: use YYYY-MM-DD" in bad.stderr


def test_env_add_from_user_agent_describes_the_client(
    served: tuple[Path, Path, str], tmp_path: Path
) -> None:
    ws, _, pip_agent = served
    work = tmp_path / "ws"
    work.mkdir()
    (work / "mirror.toml").write_text((ws / "mirror.toml").read_text())
    proc = morgan(work, "env", "add", "desk", "--from-user-agent", pip_agent)
    assert proc.returncode == 0, proc.stderr
    spec = tomllib.loads((work / "mirror.toml").read_text())
    # The same target `morgan env add --current` describes on this machine.
    assert spec["environments"]["desk"] == {"python": HOST.python, "platform": HOST.platform}
    bad = morgan(work, "env", "add", "other", "--from-user-agent", "curl/8.0")
    assert bad.returncode == 2
    assert "--from-user-agent 'curl/8.0'…: not a pip or uv User-Agent" in bad.stderr


def test_clients_lists_who_uses_the_mirror_and_what_has_no_environment(
    served: tuple[Path, Path, str], tmp_path: Path
) -> None:
    ws, record, _ = served
    mac_agent = (
        'pip/24.0 {"cpu":"arm64","distro":{"name":"macOS","version":"14.4.1"},'
        '"implementation":{"name":"CPython","version":"3.12.2"},"python":"3.12.2",'
        '"system":{"name":"Darwin","release":"23.4.0"}}'
    )
    extra = tmp_path / "record.jsonl"
    extra.write_text(
        record.read_text()
        + json.dumps({"kind": "client", "time": "2026-01-02T03:04:05Z", "agent": mac_agent})
        + "\n"
    )
    proc = morgan(ws, "clients", "--record", str(extra))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == f"{LABEL}: env linux; days seen: 1, misses: 3"
    assert (
        lines[1]
        == "CPython 3.12 macosx_14_0_arm64: NO MATCHING ENVIRONMENT; days seen: 1, misses: 0"
    )
    assert lines[2].startswith("  add it: morgan env add NAME --from-user-agent 'pip/24.0 {")
    assert lines[3] == "environments no client matched: mac"


def test_the_record_is_bounded_and_never_inside_the_mirror(
    served: tuple[Path, Path, str], tmp_path: Path
) -> None:
    path = tmp_path / "record.jsonl"
    record = MissRecord(str(path), max_bytes=4096)
    for n in range(200):
        record.note((f"GET /simple/p{n}/ HTTP/1.1", "pip/1"), 404)
    assert path.stat().st_size <= 4096
    assert (tmp_path / "record.jsonl.1").stat().st_size <= 4096
    assert '"project": "p199"' in path.read_text()
    # A page the mirror has, or a path that is no project, is not a miss.
    before = path.read_text()
    record.note(("GET /simple/demo/ HTTP/1.1", "pip/1"), 200)
    record.note(("GET /favicon.ico HTTP/1.1", "pip/1"), 404)
    assert path.read_text() == before
    ws, _, _ = served
    mirror = ws / "mirror"
    inside = mirror / "misses.jsonl"
    log = tmp_path / "server.log"
    cmd = [sys.executable, str(mirror / "server.py"), "--port", "0", "--misses", str(inside)]
    with server_process(cmd, log):
        pass
    assert "misses are not recorded inside the mirror" in log.read_text()
    assert not inside.exists()
    # The default: one file per mirror folder under XDG_STATE_HOME, outside the mirror.
    default = Path(default_miss_record(str(mirror)))
    assert default.parent == Path(os.environ["XDG_STATE_HOME"]) / "morgan"
