"""Shared fixtures: the fake upstream index, a folder for built dists, client helpers."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import clients, dists
from tests.s3_server import Generations, S3Server, build_generations, moto_server
from tests.upstream import FakeUpstream

# Builds outside a terminal print a status line every few seconds; tests that compare a
# build's whole stderr must not see one appear when the machine is slow. The progress
# tests set their own interval.
os.environ["MORGAN_PROGRESS_INTERVAL"] = "3600"

# A shell runs a background job (`pytest &`, `nohup`, a CI runner without job control) with
# SIGINT ignored, and a process started from it inherits that: the builds and servers the
# Ctrl-C tests interrupt would then never see the signal. A signal with a handler is reset
# to its default in a child, so a handler here gives them a terminal's Ctrl-C back.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(autouse=True, scope="session")
def _state_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The servers that tests start record misses under XDG_STATE_HOME by default: a
    temporary one, never the user's ~/.local/state."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("state")))
        yield


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[FakeUpstream]:
    """A started FakeUpstream serving from `tmp_path / "upstream"`; stopped afterwards."""
    with FakeUpstream(tmp_path / "upstream").start() as server:
        yield server


@pytest.fixture
def dist_dir(tmp_path: Path) -> Path:
    """An empty folder to build wheels and sdists into."""
    path = tmp_path / "dists"
    path.mkdir()
    return path


@pytest.fixture(scope="session")
def backend_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The morgan-test-backend wheel, built once per session."""
    return dists.build_backend_wheel(tmp_path_factory.mktemp("backend"))


@pytest.fixture
def pip_env(tmp_path: Path) -> dict[str, str]:
    """The isolated environment for pip/uv subprocesses (see tests/clients.py)."""
    return clients.pip_env(tmp_path)


@pytest.fixture
def venv(tmp_path: Path) -> Path:
    """The python of a fresh venv without pip; install into it with `pip --python`."""
    return clients.make_venv(tmp_path / "venv")


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """One moto S3 server per session (worker): starting one costs about a second."""
    with moto_server(tmp_path_factory.mktemp("moto") / "moto.log") as server:
        yield server


@pytest.fixture(scope="session")
def s3_generations(tmp_path_factory: pytest.TempPathFactory) -> Generations:
    """Three generations of the small scenario, each a mirror folder alone (A → B → C)."""
    return build_generations(tmp_path_factory.mktemp("s3-generations"))
