"""Several upstreams in order, a project pinned to one, credentials kept out of outputs,
and generations materialized as copies."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import tomllib
from pathlib import Path

from tests.build_scenario import ROOT, morgan
from tests.upstream import FakeUpstream

ENV = '[environments.linux]\npython = "3.11"\nplatform = "manylinux_2_28_x86_64"\n'


def test_upstreams_in_order_and_a_project_pinned_to_one(tmp_path: Path) -> None:
    with (
        FakeUpstream(tmp_path / "a").start() as first,
        FakeUpstream(tmp_path / "b").start() as second,
        FakeUpstream(tmp_path / "corp").start() as corp,
    ):
        first.add_release("common", "1.0")
        second.add_release("common", "9.0")  # never used: the first upstream has it
        second.add_release("only-b", "1.0")
        first.add_release("pinned", "5.0")  # look-alikes on the public upstreams
        second.add_release("pinned", "6.0")
        corp.add_release("pinned", "1.0")
        ws = tmp_path / "ws"
        ws.mkdir()
        (ws / "mirror.toml").write_text(
            'requirements = ["common", "only-b", "pinned"]\n'
            f'[[upstreams]]\nname = "a"\nindex-url = "{first.url}"\n'
            f'[[upstreams]]\nname = "b"\nindex-url = "{second.url}"\n'
            f'[[upstreams]]\nname = "corp"\nindex-url = "{corp.url}"\nprojects = ["pinned"]\n' + ENV
        )
        proc = morgan(ws, "build")
        assert proc.returncode == 0, proc.stderr
        lock = tomllib.loads((ws / "mirror.lock").read_text())
        pins = {p["name"]: p["version"] for p in lock["environment"]["linux"]["pins"]}
        assert pins == {"common": "1.0", "only-b": "1.0", "pinned": "1.0"}
        # A pinned project is asked of its upstream only; others in order, first answer wins.
        assert "/simple/pinned/" not in first.page_requests() + second.page_requests()
        assert corp.page_requests() == ["/simple/pinned/"]
        assert "/simple/common/" not in second.page_requests()
        assert first.page_requests().count("/simple/only-b/") == 1
        # The root pages a cold build asks for while it starts are the ones it uses: no
        # page is asked of an upstream twice.
        for up in (first, second, corp):
            assert sorted(set(up.page_requests())) == sorted(up.page_requests())


def test_credentials_never_reach_lock_pages_or_output(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    upstream.add_release("leaf", "1.0")
    secret_url = upstream.url.replace("http://", "http://alice:s3cr3t-pw@")
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "mirror.toml").write_text(
        f'requirements = ["leaf"]\n[upstream]\nindex-url = "{secret_url}"\n' + ENV
    )
    proc = morgan(ws, "build", "-v", "--explain")
    assert proc.returncode == 0, proc.stderr
    assert "s3cr3t-pw" not in proc.stderr + proc.stdout
    assert "s3cr3t-pw" not in (ws / "mirror.lock").read_text()
    for page in (ws / "mirror" / "index").rglob("index.*"):
        assert b"s3cr3t-pw" not in page.read_bytes()
    # The credentials were sent (HTTP basic auth), not lost.
    assert any(r.headers.get("authorization", "").startswith("Basic ") for r in upstream.requests)


def test_materialize_copy_gives_regular_files_with_the_same_bytes(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    upstream.add_release("leaf", "1.0")
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "mirror.toml").write_text(
        f'requirements = ["leaf"]\n[upstream]\nindex-url = "{upstream.url}"\n' + ENV
    )
    proc = morgan(ws, "build", "--materialize", "copy")
    assert proc.returncode == 0, proc.stderr
    wheel = ws / "mirror/index/simple/leaf/leaf-1.0-py3-none-any.whl"
    assert wheel.is_file()
    assert not wheel.is_symlink()
    assert wheel.read_bytes() == (upstream.files_dir / wheel.name).read_bytes()


def test_credentials_from_the_environment_are_sent_and_never_written(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    upstream.add_release("leaf", "1.0")
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "mirror.toml").write_text(
        f'requirements = ["leaf"]\n[[upstreams]]\nname = "corp-idx"\nindex-url = "{upstream.url}"\n'
        + ENV
    )
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "MORGAN_UPSTREAM_CORP_IDX_USERNAME": "bob",
        "MORGAN_UPSTREAM_CORP_IDX_PASSWORD": "env-s3cret",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "morgan", "build", "-v", "-C", str(ws)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    expected = "Basic " + base64.b64encode(b"bob:env-s3cret").decode()
    assert upstream.requests
    assert all(r.headers.get("authorization") == expected for r in upstream.requests)
    assert "env-s3cret" not in proc.stderr + (ws / "mirror.lock").read_text()
