"""``python server.py --processes N``: several processes answer on one port, every one of
them picks up a new generation, the access log keeps whole lines, and every way of stopping
the server (SIGTERM, Ctrl-C, the parent killed) stops all of them."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.index_tree import IndexTree, build_tree, make_wheel
from tests.server_fixtures import PIP_ACCEPT
from tests.server_process import SERVER_PY

LOG_LINE = re.compile(
    r'^127\.0\.0\.1 - - \[[^]]+\] "GET /simple/alpha/ HTTP/1\.1" 200 \d+ \d+\.\d{4} "-"$'
)


@dataclass
class Running:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    def children(self) -> list[int]:
        """Ids of the server's child processes (Linux /proc)."""
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text()
                except OSError:
                    continue  # gone meanwhile
                if int(stat.rsplit(")", 1)[1].split()[1]) == self.proc.pid:
                    found.append(int(entry.name))
        return found


@contextmanager
def serving(tree: IndexTree, log: Path, processes: int) -> Iterator[Running]:
    """``python server.py --processes N`` in its own session (Ctrl-C goes to its group)."""
    command = [sys.executable, str(SERVER_PY), "--root", str(tree.root), "--port", "0"]
    command += ["--processes", str(processes)]
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            command, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        for _ in range(200):
            match = re.search(r"Serving .* at http://127\.0\.0\.1:(\d+)/", log.read_text())
            if match or proc.poll() is not None:
                break
            time.sleep(0.05)
        assert match, log.read_text()
        yield Running(proc, int(match.group(1)), log)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def _get_page(port: int, times: int) -> list[bytes]:
    """``times`` requests for alpha's JSON page on one new connection: the bodies."""
    head = f"GET /simple/alpha/ HTTP/1.1\r\nHost: m\r\nAccept: {PIP_ACCEPT}\r\n\r\n".encode()
    bodies: list[bytes] = []
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head * times)
        pending = b""
        while len(bodies) < times:
            chunk = sock.recv(65536)
            assert chunk, "closed early"
            pending += chunk
            while b"\r\n\r\n" in pending:
                top, rest = pending.split(b"\r\n\r\n", 1)
                assert top.startswith(b"HTTP/1.1 200 OK\r\n"), top
                found = re.search(rb"Content-Length: (\d+)", top)
                assert found, top
                length = int(found.group(1))
                if len(rest) < length:
                    break
                bodies.append(rest[:length])
                pending = rest[length:]
    return bodies


def _gone(pid: int) -> bool:
    return not Path(f"/proc/{pid}").exists() or "Z" in _state(pid)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


def _released(port: int, pids: set[int]) -> bool:
    """Whether none of ``pids`` listens on ``port`` any more: a connection is refused, or
    what answers is another process's socket (with the suite's servers binding port 0 in
    parallel, the kernel may hand the freed port to one of them)."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return not _listeners(port) & pids


def _listeners(port: int) -> set[int]:
    """Ids of the processes with a listening TCP socket on ``port`` (Linux /proc)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table, encoding="ascii") as fh:  # noqa: PTH123
            for line in list(fh)[1:]:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":
                    inodes.add(f"socket:[{fields[9]}]")
    owners = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if any(str(fd.readlink()) in inodes for fd in (entry / "fd").iterdir()):
                    owners.add(int(entry.name))
    return owners


def test_processes_share_the_port_and_all_switch_to_a_new_generation(tmp_path: Path) -> None:
    tree = build_tree(tmp_path / "mirror")
    with serving(tree, tmp_path / "server.log", 3) as server:
        assert len(server.children()) == 2
        # 30 connections of 3 requests: every process keeps the answer for the old page.
        before = [body for _ in range(30) for body in _get_page(server.port, 3)]
        assert all(b'"alpha-2.0-py3-none-any.whl"' in body for body in before)
        tree.add_generation(2, [make_wheel("alpha", "5.0")])
        after = [body for _ in range(30) for body in _get_page(server.port, 3)]
        # With the first process stopped, only the children can accept: they answer too.
        os.kill(server.proc.pid, signal.SIGSTOP)
        try:
            after += [body for _ in range(10) for body in _get_page(server.port, 3)]
        finally:
            os.kill(server.proc.pid, signal.SIGCONT)
        assert len(after) == 120
        assert all(b'"alpha-5.0-py3-none-any.whl"' in body for body in after)
        assert all(b'"alpha-2.0-py3-none-any.whl"' not in body for body in after)
        # Lines of several processes in one log file: 210 whole lines, none cut or mixed.
        for _ in range(100):
            lines = server.log.read_text().splitlines()[1:]
            if len(lines) >= 210:
                break
            time.sleep(0.05)
        assert len(lines) == 210
        assert [line for line in lines if not LOG_LINE.match(line)] == []


def test_sigterm_stops_every_process(tmp_path: Path) -> None:
    tree = build_tree(tmp_path / "mirror")
    with serving(tree, tmp_path / "server.log", 3) as server:
        children = server.children()
        assert len(children) == 2
        assert len(_get_page(server.port, 2)) == 2
        server.proc.terminate()
        assert server.proc.wait(timeout=10) == 0
        assert [pid for pid in children if not _gone(pid)] == []
        assert _released(server.port, {server.proc.pid, *children})


def test_ctrl_c_stops_every_process(tmp_path: Path) -> None:
    tree = build_tree(tmp_path / "mirror")
    with serving(tree, tmp_path / "server.log", 2) as server:
        children = server.children()
        assert len(children) == 1
        os.killpg(server.proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
        assert server.proc.wait(timeout=10) == 0
        assert [pid for pid in children if not _gone(pid)] == []
        assert _released(server.port, {server.proc.pid, *children})
        assert server.log.read_text().count("morgan-server: stopped") == 1


def test_a_process_whose_parent_was_killed_stops(tmp_path: Path) -> None:
    tree = build_tree(tmp_path / "mirror")
    with serving(tree, tmp_path / "server.log", 2) as server:
        (child,) = server.children()
        assert _listeners(server.port) == {server.proc.pid, child}  # both hold the socket
        server.proc.kill()  # SIGKILL: the parent cannot stop its child
        server.proc.wait(timeout=10)
        for _ in range(100):  # the child checks its parent every half second
            if _gone(child):
                break
            time.sleep(0.1)
        assert _gone(child)
        assert _released(server.port, {server.proc.pid, child})


def test_processes_out_of_range_is_refused(tmp_path: Path) -> None:
    tree = build_tree(tmp_path / "mirror")
    command = [sys.executable, str(SERVER_PY), "--root", str(tree.root), "--port", "0"]
    done = subprocess.run(
        [*command, "--processes", "0"], capture_output=True, text=True, check=False, timeout=30
    )
    assert (done.returncode, done.stderr) == (2, "server.py: error: --processes must be 1..64\n")
