"""docs/nginx-s3.conf with real nginx in front of the S3 endpoint: PEP 691 negotiation,
exact types, caching, and real pip and uv installing every environment through it."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from morgan.environments import Environment
from tests import clients
from tests.s3_server import Generations, S3Server, publish_json, s3_env
from tests.server_fixtures import HTML, JSON, PIP_ACCEPT, POETRY_ACCEPT, UV_ACCEPT, V1_HTML
from tests.server_process import ROOT, free_port
from tests.small_scenario import ENVIRONMENTS
from tests.test_server_nginx import nginx_binary

pytestmark = [pytest.mark.nginx, pytest.mark.slow]

TEMPLATE = ROOT / "docs" / "nginx-s3.conf"
BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
BUCKET = "publish-nginx"


@dataclass
class Front:
    url: str  # http://127.0.0.1:PORT/
    bucket_url: str  # the published prefix on the S3 endpoint


def write_config(prefix: Path, s3: S3Server, bucket_path: str, port: int) -> Path:
    site = TEMPLATE.read_text()
    for name, value in {
        "@LISTEN@": f"127.0.0.1:{port}",
        "@S3_ENDPOINT@": s3.endpoint,
        "@BUCKET_PATH@": bucket_path,
        "@CACHE_DIR@": str(prefix / "cache"),
    }.items():
        site = site.replace(name, value)
    assert "@" not in site.replace("$", "").replace("= @missing", "").replace(
        "location @missing", ""
    )
    (prefix / "site.conf").write_text(site)
    temp = "\n".join(
        f"  {kind}_temp_path {prefix / ('tmp_' + kind)};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    conf = prefix / "nginx.conf"
    conf.write_text(
        "daemon off;\nmaster_process off;\nworker_processes 1;\n"
        f"pid {prefix / 'nginx.pid'};\nerror_log {prefix / 'error.log'} warn;\n"
        "events { worker_connections 256; }\n"
        f"http {{\n  access_log {prefix / 'access.log'};\n{temp}\n"
        f"  include {prefix / 'site.conf'};\n}}\n"
    )
    return conf


@contextmanager
def nginx_front(prefix: Path, s3: S3Server, bucket_path: str) -> Iterator[str]:
    """Real nginx with docs/nginx-s3.conf in front of ``bucket_path`` on ``s3``; its URL."""
    binary = nginx_binary()
    port = free_port()
    prefix.mkdir(parents=True, exist_ok=True)
    conf = write_config(prefix, s3, bucket_path, port)
    with (prefix / "stderr.log").open("wb") as sink:
        proc = subprocess.Popen([binary, "-p", str(prefix), "-c", str(conf)], stderr=sink)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(f"http://127.0.0.1:{port}/simple/", timeout=5)
                break
            except requests.ConnectionError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError((prefix / "stderr.log").read_text()) from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def front(
    s3_server: S3Server, s3_generations: Generations, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Front]:
    s3_server.make_bucket(BUCKET)
    publish_json(s3_generations.a, f"s3://{BUCKET}/pypi", s3_env(s3_server.endpoint))
    prefix = tmp_path_factory.mktemp("nginx-s3")
    with nginx_front(prefix, s3_server, f"/{BUCKET}/pypi") as url:
        yield Front(url, s3_server.url(BUCKET, "pypi/"))


def get(front: Front, path: str, **headers: str) -> requests.Response:
    return requests.get(
        front.url + path.lstrip("/"), headers=headers, allow_redirects=False, timeout=30
    )


@pytest.mark.parametrize(
    ("accept", "content_type"),
    [
        pytest.param(PIP_ACCEPT, JSON, id="pip"),
        pytest.param(UV_ACCEPT, JSON, id="uv"),
        pytest.param(POETRY_ACCEPT, JSON, id="poetry"),
        pytest.param(BROWSER_ACCEPT, HTML, id="browser"),
        pytest.param("", HTML, id="none"),
        pytest.param(V1_HTML, V1_HTML, id="v1-html"),
    ],
)
@pytest.mark.parametrize("path", ["simple/app/", "env/windows/simple/winonly/", "simple/"])
def test_negotiation(front: Front, path: str, accept: str, content_type: str) -> None:
    resp = get(front, path, Accept=accept)
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == content_type
    assert resp.headers["Vary"] == "Accept"
    assert resp.headers["Cache-Control"] == "public, max-age=60"
    name = "index.json" if content_type == JSON else "index.html"
    assert resp.content == requests.get(front.bucket_url + path + name, timeout=30).content


def test_406_redirect_404_and_record_hidden(front: Front) -> None:
    assert get(front, "simple/app/", Accept="application/xml").status_code == 406
    assert get(front, "simple/app/?format=json").headers["Content-Type"] == JSON
    redirect = get(front, "simple/app")
    assert (redirect.status_code, redirect.headers["Location"]) == (301, "/simple/app/")
    assert get(front, "simple/nope/", Accept=PIP_ACCEPT).status_code == 404
    assert get(front, "env/linux/simple/winonly/", Accept=PIP_ACCEPT).status_code == 404
    assert get(front, ".morgan/publish.json").status_code == 404
    home = get(front, "")
    assert home.status_code == 200
    assert "Morgan mirror" in home.text


def test_files_are_cached_forever_and_pages_briefly(front: Front) -> None:
    page = get(front, "simple/app/", Accept=PIP_ACCEPT).json()
    wheel = next(f for f in page["files"] if f["filename"].endswith(".whl"))
    url = requests.compat.urljoin(front.url + "simple/app/", wheel["url"])
    first = requests.get(url, timeout=30)
    assert first.headers["Content-Type"] == "application/zip"
    assert first.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    second = requests.get(url, timeout=30)
    assert second.headers["X-Cache-Status"] == "HIT"
    assert second.content == first.content
    part = requests.get(url, headers={"Range": "bytes=-22"}, timeout=30)
    assert (part.status_code, part.content) == (206, first.content[-22:])
    metadata = requests.get(url + ".metadata", timeout=30)
    assert metadata.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert b"Name: app" in metadata.content
    again = get(front, "simple/app/", Accept=PIP_ACCEPT)
    assert again.headers["X-Cache-Status"] == "HIT"


def test_pip_installs_the_host_environment_through_nginx(
    front: Front, tmp_path: Path, venv: Path
) -> None:
    env = clients.pip_env(tmp_path)
    index = front.url + "env/linux/simple/"
    proc = clients.run(
        clients.pip_command("install", index, "app", "native", "srconly", "other", python=venv),
        env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    listed = clients.run(clients.pip_command("list", index, "--format=json", python=venv), env)
    names = {p["name"]: p["version"] for p in json.loads(listed.stdout)}
    assert {k: names[k] for k in ("app", "util", "native", "srconly", "other")} == {
        "app": "1.0",
        "util": "1.5",
        "native": "1.0",
        "srconly": "1.0",
        "other": "1.0",
    }


@pytest.mark.parametrize("environment", sorted(ENVIRONMENTS))
def test_pip_downloads_every_environment_through_nginx(
    front: Front, tmp_path: Path, environment: str
) -> None:
    python, platform = ENVIRONMENTS[environment]
    # pip does not expand a glibc version into the older ones: name every platform tag.
    tags = Environment(name=environment, python=python, platform=platform).tags()
    platforms = dict.fromkeys(t.platform for t in tags if t.platform != "any")
    proc = clients.run(
        [
            *clients.pip_command("download", front.url + f"env/{environment}/simple/"),
            "--only-binary=:all:",
            *(f"--platform={p}" for p in platforms),
            "--python-version",
            python,
            "-d",
            str(tmp_path / "dl"),
            "app",
            "native",
            "other",
            "dropme",
            # pip evaluates markers against this host: ask for the Windows-only one by name.
            *(["winonly"] if environment == "windows" else []),
        ],
        clients.pip_env(tmp_path),
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    got = sorted(p.name for p in (tmp_path / "dl").iterdir())
    native = "native-1.0-py3-none-" + (
        "win_amd64.whl" if environment == "windows" else "manylinux_2_17_x86_64.whl"
    )
    assert native in got
    assert ("winonly-1.0-py3-none-any.whl" in got) == (environment == "windows")


UV_PLATFORMS = {"linux": "x86_64-manylinux_2_28", "windows": "x86_64-pc-windows-msvc"}


@pytest.mark.parametrize("environment", sorted(ENVIRONMENTS))
def test_uv_resolves_every_environment_through_nginx(
    front: Front, tmp_path: Path, environment: str
) -> None:
    python, _ = ENVIRONMENTS[environment]
    reqs = tmp_path / "requirements.in"
    reqs.write_text("app\nnative\nsrconly\nother\ndropme\n")
    proc = clients.run(
        [
            *clients.uv_pip_command("compile", front.url + f"env/{environment}/simple/"),
            "--python-platform",
            UV_PLATFORMS[environment],
            "--python-version",
            python,
            "--no-header",
            "--no-annotate",
            str(reqs),
        ],
        clients.pip_env(tmp_path),
        cwd=tmp_path,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    pins = sorted(line for line in proc.stdout.splitlines() if "==" in line)
    expected = ["app==1.0", "dropme==1.0", "native==1.0", "other==1.0", "srconly==1.0"]
    expected += ["util==1.5"] + (["winonly==1.0"] if environment == "windows" else [])
    assert pins == sorted(expected)
