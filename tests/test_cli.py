"""The command line: help lists every command, errors become one line and an exit code."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from morgan.cli import COMMANDS, main
from tests.small_scenario import populate, write_spec
from tests.upstream import FakeUpstream, Fault

ROOT = Path(__file__).resolve().parent.parent


def test_help_lists_every_design_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for name in ("build", "graph", "gc", "verify", "serve", "env", "add", "remove"):
        assert name in COMMANDS
        assert f"    {name}" in out


def test_python_dash_m_morgan_runs() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "morgan", "--version"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert proc.returncode == 0
    assert proc.stdout.strip().startswith("morgan ")


def test_a_process_prints_all_its_output_and_its_exit_code_through_pipes(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # The process ends without tearing the interpreter down (morgan.cli.entry): what the
    # command printed is flushed first, whatever its size, and its exit code is kept.
    assert main([]) == 0
    expected = capsys.readouterr().out
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "morgan"], capture_output=True, text=True, env=env, check=False
    )
    assert (proc.returncode, proc.stdout) == (0, expected)
    proc = subprocess.run(
        [sys.executable, "-m", "morgan", "build", "-C", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("morgan: error: ")
    assert proc.stderr.endswith("\n")


# -- common options on either side of the command (git and uv accept theirs so) ------------


def _morgan(*args: str, stdout: int | None = subprocess.PIPE) -> subprocess.CompletedProcess[str]:
    """The real CLI in a subprocess, arguments exactly as given (no ``-C`` appended)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "morgan", *args],
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        check=False,
        timeout=300,
    )


@dataclass
class Mirror:
    workspace: Path
    upstream: FakeUpstream


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mirror]:
    """The small scenario, built once with the options written before ``build``."""
    root = tmp_path_factory.mktemp("cli")
    with FakeUpstream(root / "upstream").start() as up:
        populate(up)
        workspace = root / "ws"
        write_spec(workspace, up.url)
        proc = _morgan("-C", str(workspace), "--json", "build")
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["generation"] == 1
        yield Mirror(workspace, up)


def test_bare_morgan_prints_the_help() -> None:
    proc = _morgan()
    assert proc.returncode == 0
    assert proc.stdout.startswith("usage: morgan")
    assert "    build " in proc.stdout
    assert "common options (-C DIR, -q, -v, --json, --no-color) go before or after" in (
        " ".join(proc.stdout.split())
    )


def test_common_options_go_before_or_after_the_command(mirror: Mirror) -> None:
    ws = str(mirror.workspace)
    before = _morgan("-C", ws, "env", "list")
    after = _morgan("env", "list", "-C", ws)
    assert before.returncode == after.returncode == 0, before.stderr
    assert before.stdout == after.stdout
    assert "linux" in before.stdout
    assert "windows" in before.stdout
    as_json = _morgan("--json", f"-C{ws}", "-v", "--no-color", "env", "list")
    assert as_json.returncode == 0, as_json.stderr
    assert {e["name"] for e in json.loads(as_json.stdout)} == {"linux", "windows"}
    quiet = _morgan("-q", "-C", ws, "--no-color", "build")
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr == ""
    assert quiet.stdout == ""


# -- no traceback for anything a user can do -------------------------------------------------


def _closed_stdout_run(*args: str) -> subprocess.CompletedProcess[str]:
    """Run with stdout a pipe whose reader is already gone (``morgan … | head -0``)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return _morgan(*args, stdout=write_end)
    finally:
        os.close(write_end)


def test_no_command_prints_a_traceback_when_stdout_is_closed(mirror: Mirror) -> None:
    ws = str(mirror.workspace)
    runs = [
        ("env", "show", "linux"),
        ("env", "list"),
        ("graph",),
        ("graph", "--format", "json"),
        ("graph", "--why", "util"),
        ("gc", "--dry-run", "--json"),
        ("verify", "--json"),
        ("build", "--json"),
        ("export-lock", "--env", "linux", "-o", "-"),
        ("--help",),
    ]
    for args in runs:
        proc = _closed_stdout_run("-C", ws, *args)
        assert "Traceback" not in proc.stderr, (args, proc.stderr)
        assert "Exception ignored" not in proc.stderr, (args, proc.stderr)
        # Closed by the reader: 141 (128 + SIGPIPE) like a shell pipeline, never a crash.
        assert proc.returncode in (0, 141), (args, proc.returncode, proc.stderr)
    assert _closed_stdout_run("-C", ws, "env", "show", "linux").returncode == 141


def test_an_output_file_in_a_missing_folder_is_one_line(mirror: Mirror, tmp_path: Path) -> None:
    ws = str(mirror.workspace)
    missing = tmp_path / "missing" / "dir"
    runs = [
        ("graph", "--format", "html", "-o", str(missing / "g.html")),
        ("export-lock", "--env", "linux", "-o", str(missing / "pylock.toml")),
        ("export", "-o", str(missing / "bundle.tar")),
    ]
    for args in runs:
        proc = _morgan("-C", ws, *args)
        assert proc.returncode in (1, 2), (args, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1, (args, proc.stderr)
        assert lines[0].startswith("morgan: error: "), lines
        assert str(missing) in lines[0], lines
        assert not missing.exists()


def test_ctrl_c_mid_download_prints_one_line_and_keeps_the_index(
    mirror: Mirror, tmp_path: Path
) -> None:
    workspace = tmp_path / "ws"
    shutil.copytree(mirror.workspace, workspace, symlinks=True)
    served_before = (workspace / "mirror" / "index").readlink()
    # New requirements whose files trickle in, one download at a time: the build is
    # mid-download, with more downloads queued (cancelled by the interrupt), when stopped.
    slow = [f"slowpoke{i}" for i in range(6)]
    for name in slow:
        mirror.upstream.add_release(name, "1.0", sdist=False)
    mirror.upstream.set_fault("/files/slowpoke*", Fault(drip_bytes_per_sec=64))
    spec = workspace / "mirror.toml"
    added = "".join(f', "{name}"' for name in slow)
    spec.write_text(spec.read_text().replace('"other"]', f'"other"{added}]'))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "morgan", "-C", str(workspace), "build", "-j", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        while not any("slowpoke" in p for p in mirror.upstream.file_requests()):
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        mirror.upstream.clear_faults()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert err.strip().splitlines() == [
        "morgan: interrupted; the previous index is still served"
    ], err
    assert (workspace / "mirror" / "index").readlink() == served_before
