"""`exclude-newer` cooldowns: spec values, what a build selects, and uv's own cut-off."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from morgan.errors import SpecError
from morgan.spec import parse_spec
from tests import clients
from tests.build_scenario import morgan
from tests.server_process import server_process
from tests.test_build_policy import listed
from tests.upstream import FakeUpstream

ENV = '\n[environments.linux]\npython = "3.11"\nplatform = "manylinux_2_28_x86_64"\n'
REQ = 'requirements = ["lib"]\n'
OLD, NEW = "2020-01-01T00:00:00.000000Z", "2024-06-01T00:00:00.000000Z"


def _error(text: str) -> str:
    with pytest.raises(SpecError) as info:
        parse_spec(text, Path("mirror.toml"))
    return str(info.value)


def test_spec_reads_times_dates_and_ages() -> None:
    text = (
        REQ
        + '[[upstreams]]\nname = "a"\nindex-url = "https://a.example/simple/"\n'
        + 'exclude-newer = "2024-05-01T02:00:00+02:00"\n'
        + '[[upstreams]]\nname = "b"\nindex-url = "https://b.example/simple/"\n'
        + "exclude-newer = 2024-05-01\n"  # an unquoted TOML date
        + ENV
        + '[policy]\nexclude-newer = "7 days"\n'
    )
    spec = parse_spec(text, Path("mirror.toml"))
    now = datetime(2026, 1, 8, tzinfo=UTC)
    assert spec.policy.exclude_newer is not None
    assert spec.policy.exclude_newer.cutoff(now) == datetime(2026, 1, 1, tzinfo=UTC)
    a, b = spec.upstreams
    assert a.exclude_newer is not None
    assert b.exclude_newer is not None
    assert a.exclude_newer.cutoff(now) == datetime(2024, 5, 1, tzinfo=UTC)
    assert b.exclude_newer.cutoff(now) == datetime(2024, 5, 1, tzinfo=UTC)


def test_spec_digest_unchanged_without_exclude_newer() -> None:
    plain = parse_spec(REQ + ENV, Path("mirror.toml"))
    cooled = parse_spec(REQ + ENV + '[policy]\nexclude-newer = "7 days"\n', Path("mirror.toml"))
    same = parse_spec(REQ + ENV + "[policy]\n", Path("mirror.toml"))
    assert plain.digest() == same.digest() != cooled.digest()


def test_spec_error_time_without_offset() -> None:
    text = REQ + ENV + '[policy]\nexclude-newer = "2024-05-01T00:00:00"\n'
    assert _error(text) == (
        "mirror.toml:7: policy.exclude-newer: '2024-05-01T00:00:00' has no UTC offset — "
        "add one, e.g. '2024-05-01T00:00:00Z'"
    )


def test_spec_error_not_a_time() -> None:
    text = REQ + '[upstream]\nindex-url = "https://x.example/simple/"\nexclude-newer = "soon"\n'
    assert _error(text + ENV) == (
        "mirror.toml:4: upstream.exclude-newer: 'soon' is neither a time nor an age — write "
        'an RFC 3339 time like "2024-05-01T00:00:00Z", a date, or an age like "7 days"'
    )


def test_spec_error_zero_age() -> None:
    text = REQ + ENV + '[policy]\nexclude-newer = "0 days"\n'
    assert _error(text) == (
        "mirror.toml:7: policy.exclude-newer: '0 days' is no cooldown at all — write an RFC "
        '3339 time like "2024-05-01T00:00:00Z", a date, or an age like "7 days", or remove '
        "the key"
    )


def _spec(ws: Path, upstreams: str, policy: str = "") -> None:
    ws.mkdir(parents=True, exist_ok=True)
    (ws / "mirror.toml").write_text(REQ + upstreams + ENV + policy)


def _wheels(ws: Path, project: str) -> list[str]:
    return [n for n in listed(ws, project) if n.endswith(".whl")]


def test_build_keeps_only_files_older_than_the_cutoff(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    upstream.add_release("lib", "1.0", sdist=False, upload_time=OLD)
    upstream.add_release("lib", "2.0", sdist=False, upload_time=NEW, requires_dist=["dep"])
    ws = tmp_path / "ws"
    up = f'[upstream]\nindex-url = "{upstream.url}"\n'
    _spec(ws, up, '[policy]\nexclude-newer = "2024-05-01T00:00:00Z"\n')
    proc = morgan(ws, "build")
    assert proc.returncode == 0, proc.stderr
    assert _wheels(ws, "lib") == ["lib-1.0-py3-none-any.whl"]
    lock = (ws / "mirror.lock").read_text()
    assert 'upload-time = "2020-01-01T00:00:00.000000Z"' in lock
    assert "2.0" not in lock
    # Without the cut-off, an upgrade takes the newest release.
    _spec(ws, up)
    upstream.add_release("dep", "1.0", sdist=False)
    proc = morgan(ws, "build", "--upgrade")
    assert proc.returncode == 0, proc.stderr
    assert _wheels(ws, "lib") == ["lib-2.0-py3-none-any.whl"]


def test_age_cutoff_and_per_upstream_override(upstream: FakeUpstream, tmp_path: Path) -> None:
    day_old = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    upstream.add_release("lib", "1.0", sdist=False, upload_time=OLD)
    upstream.add_release("lib", "2.0", sdist=False, upload_time=day_old)
    ws = tmp_path / "ws"
    _spec(ws, f'[upstream]\nindex-url = "{upstream.url}"\n', '[policy]\nexclude-newer = "7 days"\n')
    proc = morgan(ws, "build")
    assert proc.returncode == 0, proc.stderr
    assert _wheels(ws, "lib") == ["lib-1.0-py3-none-any.whl"]
    # The upstream's own, shorter cooldown wins over the policy's.
    up = f'[upstream]\nindex-url = "{upstream.url}"\nexclude-newer = "1 hour"\n'
    _spec(ws, up, '[policy]\nexclude-newer = "7 days"\n')
    proc = morgan(ws, "build", "--upgrade")
    assert proc.returncode == 0, proc.stderr
    assert _wheels(ws, "lib") == ["lib-2.0-py3-none-any.whl"]


def test_files_without_upload_time_are_excluded(upstream: FakeUpstream, tmp_path: Path) -> None:
    upstream.add_release("lib", "1.0", sdist=False, upload_time=OLD)
    upstream.html_only = True  # PEP 503 HTML carries no upload-time
    ws = tmp_path / "ws"
    up = f'[upstream]\nindex-url = "{upstream.url}"\n'
    _spec(ws, up, '[policy]\nexclude-newer = "2024-05-01"\n')
    proc = morgan(ws, "build")
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last == (
        "morgan: error: environment 'linux' (Python 3.11, manylinux_2_28_x86_64): no release "
        "of lib is available (exclude-newer 2024-05-01T00:00:00Z hides 0 newer file(s) and 1 "
        "without upload-time); needed by 'lib' (required by <spec>): relax the requirement, or "
        "remove the environment that cannot have it"
    )
    assert not (ws / "mirror.lock").exists()
    assert not (ws / "mirror" / "index").exists()


def test_uv_exclude_newer_works_through_the_mirror(upstream: FakeUpstream, tmp_path: Path) -> None:
    """Upload times pass through to the served pages: uv's own cut-off works on the mirror."""
    upstream.add_release("lib", "1.0", sdist=False, upload_time=OLD)
    upstream.add_release("lib", "2.0", sdist=False, upload_time=NEW)
    ws = tmp_path / "ws"
    _spec(ws, f'[upstream]\nindex-url = "{upstream.url}"\n', '[policy]\nversions = "all"\n')
    assert morgan(ws, "build").returncode == 0
    upstream.stop()
    (tmp_path / "req.in").write_text("lib\n")
    cmd = [sys.executable, str(ws / "mirror" / "server.py"), "--port", "0"]
    env = clients.pip_env(tmp_path)
    with server_process(cmd, tmp_path / "server.log") as server:
        index = f"{server.url}simple/"
        pinned = {}
        for cutoff in ("2024-05-01T00:00:00Z", None):
            extra = ["--exclude-newer", cutoff] if cutoff else []
            args = ["req.in", "--no-header", "--python-version", "3.11", *extra]
            proc = clients.run(clients.uv_pip_command("compile", index, *args), env, cwd=tmp_path)
            assert proc.returncode == 0, proc.stderr
            pinned[cutoff] = [line for line in proc.stdout.splitlines() if "==" in line]
    assert pinned == {"2024-05-01T00:00:00Z": ["lib==1.0"], None: ["lib==2.0"]}


def test_new_cutoff_drops_a_locked_release_it_hides(upstream: FakeUpstream, tmp_path: Path) -> None:
    upstream.add_release("lib", "1.0", sdist=False, upload_time=OLD)
    upstream.add_release("lib", "2.0", sdist=False, upload_time=NEW)
    ws = tmp_path / "ws"
    up = f'[upstream]\nindex-url = "{upstream.url}"\n'
    _spec(ws, up)
    assert morgan(ws, "build").returncode == 0
    assert _wheels(ws, "lib") == ["lib-2.0-py3-none-any.whl"]
    _spec(ws, up, '[policy]\nexclude-newer = "2024-05-01T00:00:00Z"\n')
    proc = morgan(ws, "build")  # no --upgrade: the locked 2.0 is too new now
    assert proc.returncode == 0, proc.stderr
    assert _wheels(ws, "lib") == ["lib-1.0-py3-none-any.whl"]
