"""Faults and bad input of `morgan publish`: each ends with one clear line and exit 1 (2 for
usage), and nothing already published is damaged.

Wrong credentials run against a second moto server that checks signatures (IAM user made
while it still allows unauthenticated calls); SlowDown throttling and a publish killed
halfway go through a real HTTP proxy in front of the S3 server (tests/s3_proxy.py).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from morgan.objectstore.tree import generation_dir, read_tree
from tests.s3_checks import walk_bucket
from tests.s3_proxy import fault_proxy
from tests.s3_server import (
    Generations,
    S3Server,
    moto_server,
    publish,
    publish_json,
    s3_env,
)

pytestmark = pytest.mark.slow


def etags(s3: S3Server, bucket: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for page in s3.client().get_paginator("list_objects_v2").paginate(Bucket=bucket):
        out.update({o["Key"]: o["ETag"] for o in page.get("Contents", [])})
    return out


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("morgan: error: ")
    assert "Traceback" not in proc.stderr
    return lines[0]


def pages_of(mirror: Path) -> dict[str, bytes]:
    tree = read_tree(generation_dir(mirror))
    return {o.key: o.read() for o in tree.objects if o.body is not None}


@pytest.fixture(scope="module")
def auth_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[S3Server, str, str]]:
    """A moto server that checks credentials; yields it and a valid key id and secret."""
    log = tmp_path_factory.mktemp("moto-auth") / "moto.log"
    # IAM user, access key and policy are made unauthenticated; every later call is checked.
    with moto_server(log, {"INITIAL_NO_AUTH_ACTION_COUNT": "3"}) as server:
        iam = server.client_for("iam", "bootstrap", "bootstrap")
        iam.create_user(UserName="publisher")
        key = iam.create_access_key(UserName="publisher")["AccessKey"]
        policy = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
        }
        iam.put_user_policy(
            UserName="publisher", PolicyName="all", PolicyDocument=json.dumps(policy)
        )
        yield server, key["AccessKeyId"], key["SecretAccessKey"]


def test_wrong_credentials(auth_s3: tuple[S3Server, str, str], s3_generations: Generations) -> None:
    server, key_id, secret = auth_s3
    server.client(key_id, secret).create_bucket(Bucket="auth-bucket")
    publish_json(s3_generations.a, "s3://auth-bucket", s3_env(server.endpoint, key_id, secret))
    before = {
        o["Key"]: o["ETag"]
        for o in server.client(key_id, secret).list_objects_v2(Bucket="auth-bucket")["Contents"]
    }
    wrong_secret = "wrong-secret-must-not-be-printed"
    proc = publish(
        s3_generations.b, "s3://auth-bucket", s3_env(server.endpoint, key_id, wrong_secret)
    )
    assert one_line_error(proc) == (
        "morgan: error: s3://auth-bucket/: the service refused the credentials"
        " (SignatureDoesNotMatch on get): check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or"
        " AWS_PROFILE and the bucket policy"
    )
    proc = publish(
        s3_generations.b, "s3://auth-bucket", s3_env(server.endpoint, "AKIAUNKNOWN", secret)
    )
    assert "refused the credentials (InvalidAccessKeyId on get)" in one_line_error(proc)
    for p in (proc,):
        assert secret not in p.stderr + p.stdout
        assert wrong_secret not in p.stderr + p.stdout
    after = {
        o["Key"]: o["ETag"]
        for o in server.client(key_id, secret).list_objects_v2(Bucket="auth-bucket")["Contents"]
    }
    assert after == before


def test_no_credentials_at_all(s3_server: S3Server, s3_generations: Generations) -> None:
    env = s3_env(s3_server.endpoint)
    del env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]
    proc = publish(s3_generations.a, "s3://nobody", env)
    assert one_line_error(proc) == (
        "morgan: error: s3://nobody/: no usable AWS credentials (NoCredentialsError): set"
        " AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE"
    )


def test_missing_bucket(s3_server: S3Server, s3_generations: Generations) -> None:
    proc = publish(s3_generations.a, "s3://no-such-bucket/x", s3_env(s3_server.endpoint))
    assert one_line_error(proc) == (
        f"morgan: error: s3://no-such-bucket: no such bucket at {s3_server.endpoint}:"
        " create it or fix the name"
    )


def test_endpoint_down(s3_generations: Generations) -> None:
    from tests.server_process import free_port

    endpoint = f"http://127.0.0.1:{free_port()}"
    env = {**s3_env(endpoint), "AWS_MAX_ATTEMPTS": "1"}
    proc = publish(s3_generations.a, "s3://anything", env)
    assert one_line_error(proc) == (
        f"morgan: error: cannot reach the S3 endpoint {endpoint} (EndpointConnectionError):"
        " check AWS_ENDPOINT_URL and that the service is up"
    )


def test_bad_url_and_options(s3_server: S3Server, s3_generations: Generations) -> None:
    env = s3_env(s3_server.endpoint)
    for args, message in (
        (
            ("https://x/y",),
            "'https://x/y': not an s3:// URL: write s3://BUCKET or s3://BUCKET/PREFIX",
        ),
        (
            ("s3://b", "--grace", "soon"),
            "--grace 'soon': not a duration: write e.g. 30s, 15m, 1h or 2d",
        ),
        (("s3://b", "--keep", "0"), "--keep 0: keep at least 1 generation (the current one)"),
    ):
        proc = publish(s3_generations.a, args[0], env, *args[1:])
        assert proc.returncode == 2
        assert proc.stderr.splitlines()[-1] == f"morgan: error: {message}"


def test_slowdown_retried_then_reported(s3_server: S3Server, s3_generations: Generations) -> None:
    bucket = s3_server.make_bucket("faults-slowdown")
    publish_json(s3_generations.a, f"s3://{bucket}", s3_env(s3_server.endpoint))
    before = etags(s3_server, bucket)
    with fault_proxy(s3_server.endpoint) as (proxy, url):
        proxy.slowdown = -1  # every upload throttled, every retry too
        proc = publish(s3_generations.b, f"s3://{bucket}", s3_env(url), "-j", "2")
        line = one_line_error(proc)
        assert "throttled by the service (SlowDown on put files/" in line
        assert "re-run later or with a lower -j" in line
        assert "what was published before is intact: re-run to complete" in line
        assert proxy.slowed >= 3  # botocore retried (AWS_MAX_ATTEMPTS=3)
        # Nothing reached the bucket but the record's pending entry: A is served as before.
        after = etags(s3_server, bucket)
        assert {k: v for k, v in after.items() if not k.startswith(".morgan/")} == {
            k: v for k, v in before.items() if not k.startswith(".morgan/")
        }
        # A few throttled answers are retried away: the publish completes.
        proxy.slowdown, proxy.slowed = 2, 0
        report = publish_json(s3_generations.b, f"s3://{bucket}", s3_env(url))
        assert proxy.slowed == 2
        assert report["uploaded"]["objects"] > 0
    walk = walk_bucket(s3_server.url(bucket))
    assert walk.problems == []
    assert walk.pages["simple/"] == pages_of(s3_generations.b)["simple/"]


def test_publish_killed_halfway(s3_server: S3Server, s3_generations: Generations) -> None:
    bucket = s3_server.make_bucket("faults-killed")
    publish_json(s3_generations.a, f"s3://{bucket}", s3_env(s3_server.endpoint))
    a_pages, b_pages = pages_of(s3_generations.a), pages_of(s3_generations.b)
    with fault_proxy(s3_server.endpoint) as (proxy, url):
        # B's delta: three util 2.0 files, then util's pages: hold after the files and two
        # pages, so the kill lands in the middle of the page phase.
        proxy.hold_after = 5
        cmd = [sys.executable, "-m", "morgan", "publish", f"s3://{bucket}", "-j", "1"]
        proc = subprocess.Popen(
            [*cmd, "-C", str(s3_generations.b)],
            env=s3_env(url),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        assert proxy.holding.wait(120)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
        proxy.release.set()
    walk = walk_bucket(s3_server.url(bucket))
    assert walk.problems == []
    mixed = {k: v for k, v in walk.pages.items() if a_pages.get(k) != v}
    assert mixed  # some pages are B's already ...
    assert all(b_pages.get(k) == v for k, v in mixed.items())  # ... and every other is A's
    assert walk.pages["simple/"] == a_pages["simple/"]
    report = publish_json(s3_generations.b, f"s3://{bucket}", s3_env(s3_server.endpoint))
    assert report["adopted"] == 5  # what the killed run uploaded is found, not re-sent
    assert report["repaired"] == []
    walk = walk_bucket(s3_server.url(bucket))
    assert walk.problems == []
    assert all(b_pages[k] == v for k, v in walk.pages.items())
    again = publish_json(s3_generations.b, f"s3://{bucket}", s3_env(s3_server.endpoint))
    assert again["uploaded"]["objects"] == 0


def test_object_changed_behind_morgans_back(
    s3_server: S3Server, s3_generations: Generations
) -> None:
    bucket = s3_server.make_bucket("faults-tamper")
    env = s3_env(s3_server.endpoint)
    publish_json(s3_generations.a, f"s3://{bucket}", env)
    s3 = s3_server.client()
    wheel = next(k for k in etags(s3_server, bucket) if k.endswith("/app-1.0-py3-none-any.whl"))
    original = s3.get_object(Bucket=bucket, Key=wheel)["Body"].read()
    s3.put_object(Bucket=bucket, Key=wheel, Body=b"not a wheel")
    s3.delete_object(Bucket=bucket, Key="simple/util/index.json")
    proc = publish(s3_generations.a, f"s3://{bucket}", env, "--json")
    assert proc.returncode == 1
    assert proc.stderr.splitlines()[-1] == (
        f"morgan: error: s3://{bucket}/: 2 objects were changed or deleted outside Morgan"
        f" (first: {wheel}); uploaded again, the bucket is complete: find out what else"
        " writes there"
    )
    report: dict[str, Any] = json.loads(proc.stdout)  # one document, the error in it
    assert report["exit-code"] == 1
    assert report["error"] == proc.stderr.splitlines()[-1].removeprefix("morgan: error: ")
    assert sorted(report["repaired"]) == sorted([wheel, "simple/util/index.json"])
    assert report["uploaded"]["objects"] == 2
    assert s3.get_object(Bucket=bucket, Key=wheel)["Body"].read() == original
    assert walk_bucket(s3_server.url(bucket)).problems == []
    assert publish_json(s3_generations.a, f"s3://{bucket}", env)["uploaded"]["objects"] == 0


def test_unreadable_record(s3_server: S3Server, s3_generations: Generations) -> None:
    bucket = s3_server.make_bucket("faults-record")
    env = s3_env(s3_server.endpoint)
    publish_json(s3_generations.a, f"s3://{bucket}", env)
    s3_server.client().put_object(Bucket=bucket, Key=".morgan/publish.json", Body=b"{oops")
    before = etags(s3_server, bucket)
    line = one_line_error(publish(s3_generations.b, f"s3://{bucket}", env))
    assert line.startswith(
        f"morgan: error: s3://{bucket}/.morgan/publish.json: unreadable publish record ("
    )
    assert line.endswith(
        "): restore it or delete it (the next publish then re-checks every object)"
    )
    assert etags(s3_server, bucket) == before
