"""A second S3 implementation: ``morgan publish`` to rclone's ``serve s3`` (objects kept as
plain files), served through docs/nginx-s3.conf to real pip and uv.

What rclone lacks, and what these tests hold Morgan to: a key ending in ``/`` cannot sit
beside ``<dir>/index.html`` (a folder), so the default layout fails with one line naming
``--no-bare-keys``; and object metadata (Content-Type, Cache-Control, Morgan's blake3) lives
only in the server's memory, so after a restart nginx must still answer PEP 691 types and a
publish must still know what is already there.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from tests import clients
from tests.s3_server import Generations, S3Server, publish, publish_json, rclone_server, s3_env
from tests.server_fixtures import PIP_ACCEPT
from tests.test_publish_nginx import nginx_front

pytestmark = [pytest.mark.nginx, pytest.mark.slow]


@contextmanager
def started(data: Path) -> Iterator[S3Server]:
    with rclone_server(data, data.parent / "rclone.log") as server:
        yield server


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("rclone") / "data"
    path.mkdir()
    return path


def make_bucket(server: S3Server, name: str) -> None:
    server.client().create_bucket(Bucket=name)


def test_default_layout_fails_with_one_line_naming_the_fix(
    data: Path, s3_generations: Generations
) -> None:
    with started(data) as server:
        make_bucket(server, "bare")
        proc = publish(s3_generations.a, "s3://bare/pypi/", s3_env(server.endpoint))
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "--no-bare-keys" in lines[0]
    assert "re-run" in lines[0]
    assert "Traceback" not in proc.stderr


def test_publish_delta_restart_and_install_through_nginx(
    data: Path, s3_generations: Generations, tmp_path: Path, venv: Path
) -> None:
    url = "s3://files/pypi/"
    with started(data) as server:
        make_bucket(server, "files")
        env = s3_env(server.endpoint)
        first = publish_json(s3_generations.a, url, env, "--no-bare-keys")
        assert first["uploaded"]["objects"] == first["objects"] > 0
        assert not any(key.endswith("/") for key in _keys(server))
        again = publish_json(s3_generations.a, url, env, "--no-bare-keys")
        assert again["uploaded"]["objects"] == 0
        assert again["unchanged"] == first["objects"]
        delta = publish_json(s3_generations.b, url, env, "--no-bare-keys")
        assert 0 < delta["uploaded"]["objects"] < delta["objects"] // 2
    # A restart forgets every object's metadata: nothing is uploaded again (the record and
    # the ETags say what is there), and nginx still answers each page with its PEP 691 type.
    with started(data) as server:
        env = s3_env(server.endpoint)
        after = publish_json(s3_generations.b, url, env, "--no-bare-keys")
        assert after["uploaded"]["objects"] == 0, after
        raw = requests.get(server.url("files", "pypi/simple/app/index.json"), timeout=30)
        assert raw.headers["Content-Type"] == "application/json"  # what rclone guesses
        with nginx_front(tmp_path / "nginx", server, "/files/pypi") as front:
            page = requests.get(front + "simple/app/", headers={"Accept": PIP_ACCEPT}, timeout=30)
            assert page.headers["Content-Type"] == "application/vnd.pypi.simple.v1+json"
            assert [f["filename"] for f in page.json()["files"]] == [
                f["filename"] for f in page.json()["files"] if f["url"].startswith("../../")
            ]
            pip_env = clients.pip_env(tmp_path)
            index = front + "env/linux/simple/"
            proc = clients.run(
                clients.pip_command("install", index, "app", "native", "other", python=venv),
                pip_env,
                timeout=300,
            )
            assert proc.returncode == 0, proc.stderr
            listed = clients.run(
                clients.pip_command("list", index, "--format=json", python=venv), pip_env
            )
            names = {p["name"]: p["version"] for p in json.loads(listed.stdout)}
            assert names["util"] == "2.0"  # generation B, published after A
            reqs = tmp_path / "requirements.in"
            reqs.write_text("app\nnative\nother\n")
            uv = clients.run(
                [
                    *clients.uv_pip_command("compile", index),
                    "--no-header",
                    "--no-annotate",
                    str(reqs),
                ],
                pip_env,
                cwd=tmp_path,
                timeout=300,
            )
            assert uv.returncode == 0, uv.stderr
            assert "util==2.0" in uv.stdout.splitlines()


def _keys(server: S3Server) -> list[str]:
    s3 = server.client()
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket="files")
    return [obj["Key"] for page in pages for obj in page.get("Contents", [])]
