"""`morgan rollback`: an earlier generation served again, checked against its own lock."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.build_scenario import morgan
from tests.small_scenario import populate, write_spec
from tests.upstream import FakeUpstream


@pytest.fixture(scope="module")
def upstream_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with FakeUpstream(tmp_path_factory.mktemp("rollback-upstream")).start() as up:
        populate(up)
        yield up.url


def _two_generations(ws: Path, url: str) -> bytes:
    """Generation 1 from the full spec, 2 from a smaller one; generation 1's lock."""
    write_spec(ws, url)
    assert morgan(ws, "build").returncode == 0
    first_lock = (ws / "mirror.lock").read_bytes()
    write_spec(ws, url, ["util"])
    assert morgan(ws, "build").returncode == 0
    assert (ws / "mirror" / "index").readlink() == Path("generations/2")
    return first_lock


def test_rollback_serves_the_previous_generation_and_verify_checks_its_own_lock(
    upstream_url: str, tmp_path: Path
) -> None:
    ws = tmp_path / "ws"
    first_lock = _two_generations(ws, upstream_url)
    mirror = ws / "mirror"
    # Each generation records the lock it was built from.
    assert (mirror / "generations" / "1" / "mirror.lock").read_bytes() == first_lock
    assert (mirror / "generations" / "2" / "mirror.lock").read_bytes() == (
        ws / "mirror.lock"
    ).read_bytes()

    proc = morgan(ws, "rollback", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"from": 2, "to": 1}
    assert (mirror / "index").readlink() == Path("generations/1")
    assert (mirror / "mirror.lock").read_bytes() == first_lock
    proc = morgan(ws, "verify")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.endswith("generations 1, 2, 2 environments: OK\n"), proc.stderr
    # The next build rolls forward to what the spec asks for, as a new generation.
    proc = morgan(ws, "build")
    assert proc.returncode == 0, proc.stderr
    assert (mirror / "index").readlink() == Path("generations/3")


def test_a_rollback_by_hand_verifies_too(upstream_url: str, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    _two_generations(ws, upstream_url)
    mirror = ws / "mirror"
    # The documented recipe, without Morgan: the workspace lock now describes generation 2.
    subprocess.run(["ln", "-s", "generations/1", "index.new"], cwd=mirror, check=True)
    subprocess.run(["mv", "-T", "index.new", "index"], cwd=mirror, check=True)
    proc = morgan(ws, "verify")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.endswith("generations 1, 2, 2 environments: OK\n"), proc.stderr


def test_rollback_refuses_what_it_cannot_serve(upstream_url: str, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    write_spec(ws, upstream_url)
    assert morgan(ws, "build").returncode == 0
    proc = morgan(ws, "rollback")
    assert (proc.returncode, proc.stderr) == (
        2,
        (
            f"morgan: error: {(ws / 'mirror').resolve()}: no generation before 1 to roll back"
            " to (gc keeps the current one and --keep N-1 before it)\n"
        ),
    )
    proc = morgan(ws, "rollback", "7")
    assert (proc.returncode, proc.stderr) == (
        2,
        "morgan: error: rollback 7: no such generation (generations: 1)\n",
    )
    assert (ws / "mirror" / "index").readlink() == Path("generations/1")
    proc = morgan(tmp_path, "rollback", "--mirror", str(ws))
    assert (proc.returncode, proc.stderr) == (
        2,
        (
            f"morgan: error: --mirror {ws}: not a mirror folder (no store/ and generations/):"
            " pass the folder a build wrote\n"
        ),
    )


def test_rollback_with_mirror_names_the_folder_from_anywhere(
    upstream_url: str, tmp_path: Path
) -> None:
    ws = tmp_path / "ws"
    _two_generations(ws, upstream_url)
    mirror = ws / "mirror"
    # The offline side has only the mirror folder: --mirror names it, like build and serve.
    proc = morgan(tmp_path, "rollback", "1", "--mirror", str(mirror), "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"from": 2, "to": 1}
    assert (mirror / "index").readlink() == Path("generations/1")
    proc = morgan(ws, "verify")
    assert proc.returncode == 0, proc.stderr
