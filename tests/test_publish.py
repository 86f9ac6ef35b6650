"""`morgan publish s3://…` against a real S3 endpoint (moto's server on 127.0.0.1).

Layout, exact types, bare keys, relative links, a zero-upload re-publish, a minimal delta,
--dry-run and --json, and pip installing straight from the bucket's HTTP endpoint.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import requests

from tests import clients
from tests.s3_server import Generations, S3Server, publish, publish_json, s3_env

PIP_ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1,"
    " text/html; q=0.01"
)


@pytest.fixture(scope="module")
def published(s3_server: S3Server, s3_generations: Generations) -> tuple[str, dict[str, Any]]:
    """Generation A published under a prefix; returns the bucket URL and the --json report."""
    bucket = s3_server.make_bucket("publish-basic")
    env = s3_env(s3_server.endpoint)
    report = publish_json(s3_generations.a, f"s3://{bucket}/pypi", env)
    return s3_server.url(bucket, "pypi/"), report


def keys(s3_server: S3Server, bucket: str, prefix: str = "") -> dict[str, dict[str, Any]]:
    s3 = s3_server.client()
    out = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            out[item["Key"][len(prefix) :]] = item
    return out


def test_first_publish_uploads_every_object_once(
    published: tuple[str, dict[str, Any]], s3_server: S3Server
) -> None:
    _, report = published
    found = keys(s3_server, "publish-basic", "pypi/")
    objects = {k for k in found if not k.startswith(".morgan/")}
    assert report["uploaded"]["objects"] == report["objects"] == len(objects)
    assert report["uploaded"]["bytes"] == sum(found[k]["Size"] for k in objects)
    assert report["unchanged"] == 0
    # One listing call per shard for a bucket this small, one GET of the (absent) record.
    assert report["requests"]["list"] == 19  # 18 shards and the top level, in parallel
    assert report["requests"]["get"] == 1
    # The record and the generation's key list, besides the objects.
    assert ".morgan/publish.json" in found
    assert f".morgan/generations/{report['generation']}.json" in found


def test_layout_types_and_cache_headers(
    published: tuple[str, dict[str, Any]], s3_server: S3Server
) -> None:
    base, _ = published
    found = keys(s3_server, "publish-basic", "pypi/")
    wheel = next(k for k in found if k.endswith("/app-1.0-py3-none-any.whl"))
    assert re.fullmatch(r"files/[0-9a-f]{64}/app-1\.0-py3-none-any\.whl", wheel)
    expected = {
        wheel: ("application/zip", "public, max-age=31536000, immutable"),
        wheel + ".metadata": ("text/plain; charset=utf-8", "public, max-age=31536000, immutable"),
        next(k for k in found if k.endswith("/app-1.0.tar.gz")): (
            "application/gzip",
            "public, max-age=31536000, immutable",
        ),
        "simple/app/": ("text/html; charset=utf-8", "public, max-age=60"),
        "simple/app/index.html": ("text/html; charset=utf-8", "public, max-age=60"),
        "simple/app/index.json": ("application/vnd.pypi.simple.v1+json", "public, max-age=60"),
        "simple/": ("text/html; charset=utf-8", "public, max-age=60"),
        "simple/index.json": ("application/vnd.pypi.simple.v1+json", "public, max-age=60"),
        "env/linux/simple/app/": ("text/html; charset=utf-8", "public, max-age=60"),
        "env/windows/simple/winonly/index.json": (
            "application/vnd.pypi.simple.v1+json",
            "public, max-age=60",
        ),
        "index.html": ("text/html; charset=utf-8", "public, max-age=60"),
        "": ("text/html; charset=utf-8", "public, max-age=60"),
    }
    for key, (kind, cache) in expected.items():
        r = requests.get(base + key, timeout=30)
        assert r.status_code == 200, key
        assert (r.headers["Content-Type"], r.headers["Cache-Control"]) == (kind, cache), key
        assert "Content-Encoding" not in r.headers
    # The wheel's bytes are the mirror's, named by their blake3.
    assert "winonly" not in requests.get(base + "env/linux/simple/", timeout=30).text


def test_pages_link_relatively_and_every_link_resolves(
    published: tuple[str, dict[str, Any]], s3_generations: Generations
) -> None:
    base, _ = published
    for root in ("simple/", "env/linux/simple/", "env/windows/simple/"):
        index = requests.get(base + root, timeout=30)
        projects = re.findall(r'href="([^"]+)"', index.text)
        assert projects
        assert all(not p.startswith(("/", "http")) for p in projects)
        for project in projects:
            for page in (project, project + "index.html"):
                html = requests.get(base + root + page, timeout=30)
                assert html.status_code == 200
                hrefs = re.findall(r'href="([^"#]+)#sha256=([0-9a-f]+)"', html.text)
                assert hrefs
                for href, sha in hrefs:
                    assert href.startswith("../../" + "../../" * root.count("env/") + "files/")
                    f = requests.get(requests.compat.urljoin(base + root + page, href), timeout=30)
                    assert f.status_code == 200, href
                    assert __import__("hashlib").sha256(f.content).hexdigest() == sha
            data = requests.get(base + root + project + "index.json", timeout=30).json()
            for entry in data["files"]:
                url = requests.compat.urljoin(base + root + project, entry["url"])
                assert requests.head(url, timeout=30).status_code in (200, 403)
                assert entry["url"].endswith("/" + entry["filename"])
    # The JSON page says the same as the mirror's, apart from where files live.
    mirror_page = json.loads(
        (s3_generations.a / "index" / "simple" / "app" / "index.json").read_text()
    )
    bucket_page = requests.get(base + "simple/app/index.json", timeout=30).json()
    for entry in (*mirror_page["files"], *bucket_page["files"]):
        entry.pop("url")
    assert bucket_page == mirror_page


def test_republish_uploads_nothing(
    published: tuple[str, dict[str, Any]], s3_server: S3Server, s3_generations: Generations
) -> None:
    env = s3_env(s3_server.endpoint)
    report = publish_json(s3_generations.a, "s3://publish-basic/pypi", env)
    assert report["uploaded"] == {"objects": 0, "bytes": 0}
    assert report["unchanged"] == report["objects"]
    assert report["requests"] == {"get": 1, "list": 19}


def test_pip_installs_from_the_bucket_endpoint(
    published: tuple[str, dict[str, Any]], tmp_path: Path, venv: Path
) -> None:
    base, _ = published
    env = clients.pip_env(tmp_path)
    proc = clients.run(
        clients.pip_command("install", base + "env/linux/simple/", "app", "srconly", python=venv),
        env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    freeze = clients.run(clients.pip_command("list", base, "--format=json", python=venv), env)
    names = {p["name"]: p["version"] for p in json.loads(freeze.stdout)}
    assert (names["app"], names["util"], names["srconly"]) == ("1.0", "1.5", "1.0")
    # pip sent its PEP 691 Accept; S3 ignores it and answers the bare key's HTML.
    r = requests.get(base + "simple/app/", headers={"Accept": PIP_ACCEPT}, timeout=30)
    assert r.headers["Content-Type"] == "text/html; charset=utf-8"


def test_dry_run_writes_nothing_and_says_what(
    s3_server: S3Server, s3_generations: Generations
) -> None:
    bucket = s3_server.make_bucket("publish-dry")
    env = s3_env(s3_server.endpoint)
    proc = publish(s3_generations.a, f"s3://{bucket}", env, "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert "would upload simple/app/index.json" in proc.stderr
    assert keys(s3_server, bucket) == {}
    report = publish_json(s3_generations.a, f"s3://{bucket}", env, "--dry-run")
    assert report["dry_run"] is True
    assert report["uploaded"]["objects"] == report["objects"]
    assert "put" not in report["requests"]
    assert keys(s3_server, bucket) == {}


def test_delta_uploads_only_new_files_and_changed_pages(
    s3_server: S3Server, s3_generations: Generations
) -> None:
    bucket = s3_server.make_bucket("publish-delta")
    env = s3_env(s3_server.endpoint)
    publish_json(s3_generations.a, f"s3://{bucket}", env)
    before = keys(s3_server, bucket)
    report = publish_json(s3_generations.b, f"s3://{bucket}", env, "-v")
    after = keys(s3_server, bucket)
    new = {k for k in after if k not in before and not k.startswith(".morgan/")}
    changed = {k for k in before if k in after and before[k]["ETag"] != after[k]["ETag"]} - {
        ".morgan/publish.json"
    }
    # util 2.0: its wheel, sdist and .metadata; util's pages; the root pages only if the
    # project list changed (it did not); the human page (sizes changed).
    assert {k.rsplit("/", 1)[-1] for k in new} == {
        "util-2.0-py3-none-any.whl",
        "util-2.0-py3-none-any.whl.metadata",
        "util-2.0.tar.gz",
        f"{report['generation']}.json",
    } - {f"{report['generation']}.json"}
    assert report["uploaded"]["objects"] == len(new) + len(changed)
    assert all(
        k.startswith(("simple/util/", "env/linux/simple/util/", "env/windows/simple/util/"))
        or k in ("index.html", "")
        for k in changed
    ), changed
    assert nothing_deleted(before, after)


def nothing_deleted(before: dict[str, Any], after: dict[str, Any]) -> bool:
    return set(before) <= set(after)
