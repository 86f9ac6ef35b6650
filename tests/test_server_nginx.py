"""The same tree through real nginx with docs/nginx.conf: negotiation, files, pip and uv.

nginx is a Debian package that ``.ci/run`` installs. Without it these tests fail under CI
(``CI`` set) and are skipped elsewhere.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.index_tree import IndexTree, build_tree, make_wheel
from tests.server_fixtures import (
    HTML,
    JSON,
    PDM_ACCEPT,
    PIP_ACCEPT,
    POETRY_ACCEPT,
    UV_ACCEPT,
    V1_HTML,
    raw_exchange,
    status_of,
)
from tests.server_process import ROOT, free_port, pip, uv

pytestmark = [pytest.mark.nginx, pytest.mark.slow]

TEMPLATE = ROOT / "docs" / "nginx.conf"
SECRET = b"TOP-SECRET-nginx"


def nginx_binary() -> str:
    found = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if found is None:
        message = "nginx is not installed (apt-get install nginx; .ci/run does it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


# The documented HTTPS-with-logins lines, commented out in the template.
TLS_LINES = (
    "listen @LISTEN@ ssl;",
    "ssl_certificate ",
    "ssl_certificate_key ",
    "auth_basic ",
    "auth_basic_user_file ",
)


def write_config(
    prefix: Path, mirror: Path, port: int, tls: tuple[Path, Path] | None = None
) -> Path:
    """docs/nginx.conf with its placeholders filled, inside a minimal main config; with
    ``tls`` (server PEM, users file), its HTTPS-with-logins lines are switched on instead of
    the plain ``listen``, exactly as its comment tells an operator to."""
    site = TEMPLATE.read_text()
    if tls is not None:
        lines = []
        for line in site.splitlines():
            stripped = line.strip()
            if stripped == "listen @LISTEN@;":
                continue
            switched_on = stripped.startswith("# ") and stripped[2:].startswith(TLS_LINES)
            lines.append("    " + stripped[2:] if switched_on else line)
        site = "\n".join(lines) + "\n"
        site = site.replace("@TLS_CERT@", str(tls[0])).replace("@TLS_KEY@", str(tls[0]))
        site = site.replace("@USERS@", str(tls[1]))
        live = [line.strip() for line in site.splitlines() if not line.strip().startswith("#")]
        assert len([line for line in live if line.startswith(TLS_LINES)]) == 5
    site = site.replace("@MIRROR_ROOT@", str(mirror)).replace("@LISTEN@", f"127.0.0.1:{port}")
    live = [line for line in site.splitlines() if not line.strip().startswith("#")]
    assert "@" not in "".join(live).replace("$", "")  # every placeholder was replaced
    (prefix / "site.conf").write_text(site)
    temp = "\n".join(
        f"  {kind}_temp_path {prefix / ('tmp_' + kind)};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    main = (
        "daemon off;\nmaster_process off;\nworker_processes 1;\n"
        f"pid {prefix / 'nginx.pid'};\nerror_log {prefix / 'error.log'} warn;\n"
        "events { worker_connections 256; }\n"
        f"http {{\n  access_log {prefix / 'access.log'};\n{temp}\n"
        f"  include {prefix / 'site.conf'};\n}}\n"
    )
    conf = prefix / "nginx.conf"
    conf.write_text(main)
    return conf


@dataclass
class Nginx:
    url: str
    prefix: Path

    def access_log(self) -> str:
        return (self.prefix / "access.log").read_text()


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> IndexTree:
    base = tmp_path_factory.mktemp("nginx")
    (base / "secret.txt").write_bytes(SECRET)
    # No planted symlink here: nginx follows any link in the tree (docs/server.md says so);
    # only server.py restricts link targets to the store.
    return build_tree(base / "mirror", environments={"linux": ["alpha", "beta"]})


@contextmanager
def running_nginx(
    mirror: Path, prefix: Path, tls: tuple[Path, Path] | None = None
) -> Iterator[Nginx]:
    """Real nginx with docs/nginx.conf on a free port (``tls``: HTTPS with logins)."""
    binary = nginx_binary()
    prefix.mkdir()
    port = free_port()
    conf = write_config(prefix, mirror, port, tls)
    with (prefix / "stderr.log").open("wb") as sink:
        proc = subprocess.Popen([binary, "-p", str(prefix), "-c", str(conf)], stderr=sink)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None:
                    raise AssertionError((prefix / "stderr.log").read_text()) from None
                time.sleep(0.1)
        scheme = "https" if tls is not None else "http"
        yield Nginx(f"{scheme}://127.0.0.1:{port}/", prefix)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def nginx(tree: IndexTree) -> Iterator[Nginx]:
    with running_nginx(tree.root, tree.root.parent / "nginx") as running:
        yield running


def get(nginx: Nginx, path: str, **headers: str) -> requests.Response:
    return requests.get(nginx.url + path.lstrip("/"), headers=headers, allow_redirects=False)


def page(tree: IndexTree, project: str, ext: str) -> bytes:
    return (tree.generation(1) / "simple" / project / f"index.{ext}").read_bytes()


@pytest.mark.parametrize(
    ("accept", "content_type"),
    [
        pytest.param(PIP_ACCEPT, JSON, id="pip"),
        pytest.param(UV_ACCEPT, JSON, id="uv"),
        pytest.param(POETRY_ACCEPT, JSON, id="poetry"),
        pytest.param(PDM_ACCEPT, JSON, id="pdm"),
        pytest.param("*/*", HTML, id="any"),
        pytest.param("text/html", HTML, id="text-html"),
        pytest.param("application/vnd.pypi.simple.v1+html", V1_HTML, id="v1-html"),
        pytest.param(f"{JSON};q=0, text/html", HTML, id="json-refused"),
    ],
)
@pytest.mark.parametrize("path", ["/simple/alpha/", "/env/linux/simple/alpha/"])
def test_negotiation(
    tree: IndexTree, nginx: Nginx, path: str, accept: str, content_type: str
) -> None:
    resp = get(nginx, path, Accept=accept)
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == content_type
    assert resp.headers["Vary"] == "Accept"
    assert resp.headers["Cache-Control"] == "public, max-age=60"
    assert resp.content == page(tree, "alpha", "json" if content_type == JSON else "html")


def test_format_query_and_406(nginx: Nginx) -> None:
    assert (
        get(nginx, "/simple/alpha/?format=json", Accept="text/html").headers["Content-Type"] == JSON
    )
    assert get(nginx, "/simple/alpha/?format=xml").status_code == 406
    assert get(nginx, "/simple/alpha/", Accept="application/xml").status_code == 406


def test_list_pages_redirects_and_404(tree: IndexTree, nginx: Nginx) -> None:
    listing = get(nginx, "/simple/", Accept=UV_ACCEPT)
    assert listing.headers["Content-Type"] == JSON
    assert listing.content == (tree.generation(1) / "simple" / "index.json").read_bytes()
    redirect = get(nginx, "/simple/alpha")
    assert (redirect.status_code, redirect.headers["Location"]) == (301, "/simple/alpha/")
    assert get(nginx, "/simple/nope/", Accept=PIP_ACCEPT).status_code == 404
    assert get(nginx, "/env/linux/simple/gamma-lib/", Accept=PIP_ACCEPT).status_code == 404


def test_files_ranges_and_conditional_requests(tree: IndexTree, nginx: Nginx) -> None:
    dist = next(d for d in tree.dists if d.filename == "alpha-2.0-py3-none-any.whl")
    path = f"/simple/alpha/{dist.filename}"
    full = get(nginx, path)
    assert full.content == dist.data
    assert full.headers["Content-Type"] == "application/octet-stream"
    assert full.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert "Content-Encoding" not in full.headers
    part = get(nginx, path, Range="bytes=-22")
    assert part.status_code == 206
    assert part.content == dist.data[-22:]
    assert get(nginx, path, Range=f"bytes={len(dist.data)}-").status_code == 416
    assert get(nginx, path, **{"If-None-Match": full.headers["ETag"]}).status_code == 304
    assert get(nginx, path + ".metadata").content == dist.metadata
    # If-Modified-Since never gives 304 (ETag only), for files and pages alike.
    future = "Fri, 01 Jan 2100 00:00:00 GMT"
    assert get(nginx, path, **{"If-Modified-Since": future}).status_code == 200
    assert get(nginx, "/simple/alpha/", **{"If-Modified-Since": future}).status_code == 200


def test_traversal_and_escape_attempts(nginx: Nginx) -> None:
    port = int(nginx.url.rsplit(":", 1)[1].rstrip("/"))
    for target in (
        "/simple/../../secret.txt",
        "/simple/%2e%2e/%2e%2e/%2e%2e/secret.txt",
        "/simple/alpha/..%2f..%2f..%2f..%2f..%2fsecret.txt",
        "/.morgan-json/simple/",
        "/store/objects/",
        "/generations/1/simple/",
    ):
        raw = raw_exchange(port, f"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        status = status_of(raw)
        assert status is not None
        assert 400 <= status < 500, (target, raw[:100])
        assert SECRET not in raw, target


def test_pip_and_uv_through_nginx(nginx: Nginx, tmp_path: Path) -> None:
    index = f"{nginx.url}simple/"
    target = tmp_path / "pip-site"
    proc = pip(tmp_path, "install", "--index-url", index, "--target", str(target), "alpha")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in target.glob("*.dist-info")) == [
        "alpha-2.0.dist-info",
        "beta-1.0.dist-info",
    ]
    dl = tmp_path / "dl"
    proc = pip(
        tmp_path, "download", "--index-url", index, "--only-binary=:all:",
        "--platform", "manylinux_2_17_x86_64", "--python-version", "3.9",
        "-d", str(dl), "gamma-lib",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert [p.name for p in dl.iterdir()] == ["gamma_lib-1.0-cp39-cp39-manylinux_2_17_x86_64.whl"]
    uv_target = tmp_path / "uv-site"
    proc = uv(
        tmp_path, "pip", "install", "--no-config", "--python", sys.executable,
        "--index-url", index, "--target", str(uv_target), "alpha",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in uv_target.glob("*.dist-info")) == [
        "alpha-2.0.dist-info",
        "beta-1.0.dist-info",
    ]
    (tmp_path / "requirements.in").write_text("alpha\ngamma-lib\n")
    proc = uv(
        tmp_path, "pip", "compile", "--no-config", "--no-header", "--no-annotate",
        "--python-platform", "windows", "--python-version", "3.12",
        "--index-url", index, "requirements.in",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["alpha==2.0", "beta==1.0", "gamma-lib==1.0"]


def test_generation_switch_is_picked_up(tree: IndexTree, nginx: Nginx) -> None:
    delta = make_wheel("delta", "1.0")
    assert get(nginx, "/simple/delta/", Accept=PIP_ACCEPT).status_code == 404
    tree.add_generation(2, [*tree.dists, delta])
    try:
        resp = get(nginx, "/simple/delta/", Accept=PIP_ACCEPT)
        assert resp.status_code == 200
        wheel = get(nginx, "/simple/delta/delta-1.0-py3-none-any.whl").content
        assert hashlib.sha256(wheel).hexdigest() == delta.sha256
    finally:
        tree.switch(1)


def test_https_with_logins_through_nginx(tree: IndexTree, tmp_path: Path) -> None:
    """The documented HTTPS-with-logins lines: 401 with a Basic challenge without
    credentials or with a wrong password, the mirror with them, over TLS from a test CA;
    pip installs with the credentials in its index URL and is refused without them."""
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(
        str(tmp_path / "server.pem")
    )
    hashed = subprocess.run(
        ["openssl", "passwd", "-6", "-stdin"],
        input="s3cret-nginx\n",
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    users = tmp_path / "htpasswd"
    users.write_text(f"alice:{hashed}\n")
    tls = (tmp_path / "server.pem", users)
    with running_nginx(tree.root, tmp_path / "nginx", tls) as running:
        verify = str(tmp_path / "ca.pem")
        url = running.url + "simple/alpha/"
        refused = requests.get(url, verify=verify, timeout=30)
        assert refused.status_code == 401
        assert refused.headers["WWW-Authenticate"] == 'Basic realm="morgan"'
        wrong = requests.get(url, verify=verify, auth=("alice", "guess"), timeout=30)
        assert wrong.status_code == 401
        page = requests.get(
            url, verify=verify, auth=("alice", "s3cret-nginx"), headers={"Accept": JSON}, timeout=30
        )
        assert page.status_code == 200
        assert page.headers["Content-Type"] == JSON
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_DIR")
        }
        env.update({"REQUESTS_CA_BUNDLE": verify, "SSL_CERT_FILE": verify})
        for index, ok in (
            (running.url.replace("https://", "https://alice:s3cret-nginx@") + "simple/", True),
            (running.url + "simple/", False),
        ):
            target = tmp_path / f"site-{ok}"
            command = [sys.executable, "-m", "pip", "--isolated", "--no-cache-dir", "install"]
            command += ["--disable-pip-version-check", "--no-input", "--cert", verify]
            command += ["--index-url", index, "--target", str(target), "alpha"]
            env_pip = {k: v for k, v in env.items() if not k.startswith("PIP_")}
            env_pip["PIP_CONFIG_FILE"] = os.devnull
            done = subprocess.run(
                command, capture_output=True, text=True, env=env_pip, check=False, timeout=300
            )
            assert (done.returncode == 0) is ok, done.stdout + done.stderr
        assert "s3cret-nginx" not in running.access_log()
