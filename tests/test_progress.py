"""The build's progress display: live on a terminal, plain lines in logs."""

from __future__ import annotations

import io
import os
import pty
import subprocess
import sys
import time
from pathlib import Path

import pytest

from morgan.executor import Node
from morgan.progress import ProgressReporter
from rules.fetch import RULE, Fetched
from store.digest import Digest
from tests.build_scenario import ROOT
from tests.upstream import FakeUpstream


def fetch_node(name: str) -> Node[Fetched]:
    return RULE.node(f"file:{name}", {"f": name})


def fetched(size: int) -> Fetched:
    return Fetched(Digest.of(b"x"), "0" * 64, size)


def test_live_line_counts_files_and_bytes_then_clears(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    out = io.StringIO()
    rep = ProgressReporter(out, live=True)
    rep.node_finished(fetch_node("a.whl"), fetched(2_000_000), cached=False)
    text = out.getvalue()
    assert text.startswith("\r0 envs resolved · 1 files 2.0 MB · ")
    assert text.endswith(" MB/s · 0 pages · 0 metadata · 0 cached")
    rep.close()
    assert out.getvalue().endswith("\r" + " " * len(text[1:]) + "\r")


def test_live_line_fits_the_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "40")
    out = io.StringIO()
    rep = ProgressReporter(out, live=True, environments=3)
    rep.environment_resolved("linux", 12)
    rep.environment_resolved("windows", 12)
    last = out.getvalue().split("\r")[-1]
    assert len(last) <= 39
    # Whole parts, most useful first: never a name cut in the middle.
    assert last.startswith("resolving 2/3 envs · 0 files 0.0 MB")
    assert last.rstrip().endswith(("MB", "MB/s"))
    assert len(rep.status()) > 60  # the whole status would have wrapped


def test_at_80_columns_the_line_keeps_phase_files_bytes_and_rate(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    out = io.StringIO()
    rep = ProgressReporter(out, live=True, environments=3)
    for name in ("legacy-linux", "windows-server", "mac-arm"):
        rep.environment_resolved(name, 12)
    rep.node_finished(fetch_node("a.whl"), fetched(213_815_352), cached=False)
    rep.environment_resolved("extra", 1)  # draws now (a node alone redraws at most 10/s)
    last = out.getvalue().split("\r")[-1].rstrip()
    assert len(last) <= 79
    assert last.startswith("4 envs resolved · 1 files 213.8 MB · ")
    assert "MB/s · " in last
    assert "resolved: legacy-li" not in last  # the names part is dropped whole, not cut


def test_outside_a_terminal_a_status_line_comes_every_interval() -> None:
    out = io.StringIO()
    rep = ProgressReporter(out, live=False, environments=2, interval=0.02)
    rep.environment_resolved("linux", 3)
    rep.node_finished(fetch_node("a.whl"), fetched(5_000_000), cached=False)
    deadline = time.monotonic() + 30
    while "1 files 5.0 MB" not in out.getvalue():  # a condition, not a timed assertion
        assert time.monotonic() < deadline, out.getvalue()
        time.sleep(0.01)
    rep.close()
    lines = out.getvalue().splitlines()
    assert lines
    assert all(line.startswith("progress: resolving 1/2 envs · ") for line in lines)
    settled = out.getvalue()
    time.sleep(0.1)
    assert out.getvalue() == settled  # close() stopped the timer


def test_resolved_environments_are_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    live, plain = io.StringIO(), io.StringIO()
    rep = ProgressReporter(live, live=True)
    rep.environment_resolved("linux", 12)
    assert live.getvalue().endswith("0 cached · resolved: linux")
    ProgressReporter(plain, live=False, verbose=1).environment_resolved("mac", 3)
    assert plain.getvalue() == "resolved environment mac: 3 releases\n"


def test_plain_mode_prints_a_line_per_node_only_when_verbose() -> None:
    quiet, loud = io.StringIO(), io.StringIO()
    ProgressReporter(quiet, live=False).node_finished(fetch_node("a"), fetched(1), cached=False)
    ProgressReporter(loud, live=False, verbose=1).node_finished(
        fetch_node("a"), fetched(1), cached=False
    )
    assert quiet.getvalue() == ""
    assert loud.getvalue() == "ran file:a\n"


def test_build_on_a_terminal_draws_progress(upstream: FakeUpstream, tmp_path: Path) -> None:
    upstream.add_release("leaf", "1.0")
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "mirror.toml").write_text(
        f'requirements = ["leaf"]\n[upstream]\nindex-url = "{upstream.url}"\n'
        '[environments.linux]\npython = "3.11"\nplatform = "manylinux_2_28_x86_64"\n'
    )
    primary, secondary = pty.openpty()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "morgan", "build", "-C", str(ws)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=secondary,
        env=env,
    )
    os.close(secondary)
    chunks = []
    while True:
        try:
            data = os.read(primary, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    assert proc.wait(timeout=60) == 0
    text = b"".join(chunks).decode()
    assert "\rresolving 0/1 envs · " in text
    assert " · 1 pages" in text
    assert "new generation 1: 1 project, 2 files" in text
