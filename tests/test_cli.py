"""The command line: help lists every command, errors become one line and an exit code."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from morgan.cli import COMMANDS, main

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
