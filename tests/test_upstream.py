"""tests/upstream.py: the fake index serves what PyPI serves, logs requests, injects faults."""

from __future__ import annotations

import hashlib
import http.client
import json
import socket
import threading
import time
import tomllib
import zipfile
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin

import pytest
import requests

from tests import clients
from tests.upstream import JSON_V1, FakeUpstream, Fault, negotiate

PIP_ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, "
    "text/html; q=0.01"
)
UV_ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, "
    "text/html;q=0.01"
)
POETRY_ACCEPT = "application/vnd.pypi.simple.v1+json, */*;q=0.1"


def _get(url: str, accept: str | None = JSON_V1, **kwargs: object) -> requests.Response:
    headers = {} if accept is None else {"Accept": accept}
    return requests.get(url, headers=headers, timeout=10, allow_redirects=False, **kwargs)  # type: ignore[arg-type]


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[dict[str, str | None], str]] = []
        self.meta: list[dict[str, str | None]] = []
        self._open: dict[str, str | None] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._open = dict(attrs)
        elif tag == "meta":
            self.meta.append(dict(attrs))

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self.links.append((self._open, data))
            self._open = None


def _links(text: str) -> _Links:
    parser = _Links()
    parser.feed(text)
    return parser


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _wheel_metadata(path: Path) -> bytes:
    with zipfile.ZipFile(path) as whl:
        return whl.read(next(n for n in whl.namelist() if n.endswith(".dist-info/METADATA")))


# --- pages --------------------------------------------------------------------------------


def test_index_json_and_html(upstream: FakeUpstream) -> None:
    upstream.add_release("Zeta.Pkg", "1.0", sdist=False)
    upstream.add_release("alpha", "1.0", sdist=False)
    resp = _get(upstream.url)
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == JSON_V1
    assert resp.json() == {
        "meta": {"api-version": "1.1"},
        "projects": [{"name": "alpha"}, {"name": "zeta-pkg"}],
    }
    page = _get(upstream.url, "text/html")
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    parsed = _links(page.text)
    assert parsed.links == [({"href": "alpha/"}, "alpha"), ({"href": "zeta-pkg/"}, "zeta-pkg")]
    assert parsed.meta == [{"name": "pypi:repository-version", "content": "1.1"}]


def test_detail_json_has_every_pep_691_700_key(upstream: FakeUpstream) -> None:
    wheel, sdist = upstream.add_release(
        "Demo_Pkg", "1.0", requires_dist=["dep"], requires_python=">=3.8",
        upload_time="2024-05-06T07:08:09.123456Z",
    )  # fmt: skip
    upstream.add_release("demo-pkg", "0.9", sdist=False, yanked="broken")
    (old,) = upstream.files_dir.glob("demo_pkg-0.9-*.whl")
    resp = _get(upstream.url + "demo-pkg/")
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == JSON_V1
    assert resp.headers["Vary"] == "Accept"
    meta_sha = hashlib.sha256(_wheel_metadata(wheel)).hexdigest()
    assert resp.json() == {
        "meta": {"api-version": "1.1"},
        "name": "demo-pkg",
        "versions": ["0.9", "1.0"],
        "files": [
            {
                "filename": "demo_pkg-1.0-py3-none-any.whl",
                "url": upstream.file_url("demo_pkg-1.0-py3-none-any.whl"),
                "hashes": {"sha256": _sha(wheel)},
                "requires-python": ">=3.8",
                "yanked": False,
                "size": wheel.stat().st_size,
                "upload-time": "2024-05-06T07:08:09.123456Z",
                "core-metadata": {"sha256": meta_sha},
            },
            {
                "filename": "demo_pkg-1.0.tar.gz",
                "url": upstream.file_url("demo_pkg-1.0.tar.gz"),
                "hashes": {"sha256": _sha(sdist)},
                "requires-python": ">=3.8",
                "yanked": False,
                "size": sdist.stat().st_size,
                "upload-time": "2024-05-06T07:08:09.123456Z",
                "core-metadata": False,
            },
            {
                "filename": "demo_pkg-0.9-py3-none-any.whl",
                "url": upstream.file_url("demo_pkg-0.9-py3-none-any.whl"),
                "hashes": {"sha256": _sha(old)},
                "requires-python": None,
                "yanked": "broken",
                "size": old.stat().st_size,
                # Default upload times: one minute per file added, from 2020-01-01.
                "upload-time": "2020-01-01T00:02:00.000000Z",
                "core-metadata": {"sha256": hashlib.sha256(_wheel_metadata(old)).hexdigest()},
            },
        ],
    }


def test_detail_html_has_data_attributes_and_sha256_fragments(upstream: FakeUpstream) -> None:
    (wheel,) = upstream.add_release(
        "demo", "1.0", sdist=False, requires_python=">=3.8,<4", yanked=True
    )
    (sdist,) = upstream.add_release("demo", "2.0", wheels=(), yanked="bad <build>")
    resp = _get(upstream.url + "demo/", PIP_ACCEPT.replace("json", "html"))
    assert resp.headers["Content-Type"] == "application/vnd.pypi.simple.v1+html"
    page = _get(upstream.url + "demo/", "text/html")
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    assert 'data-requires-python="&gt;=3.8,&lt;4"' in page.text
    meta = f"sha256={hashlib.sha256(_wheel_metadata(wheel)).hexdigest()}"
    assert _links(page.text).links == [
        (
            {
                "href": f"{upstream.file_url(wheel.name)}#sha256={_sha(wheel)}",
                "data-requires-python": ">=3.8,<4",
                "data-yanked": "",
                "data-core-metadata": meta,
                "data-dist-info-metadata": meta,
            },
            wheel.name,
        ),
        (
            {
                "href": f"{upstream.file_url(sdist.name)}#sha256={_sha(sdist)}",
                "data-yanked": "bad <build>",
            },
            sdist.name,
        ),
    ]


def test_relative_urls_resolve_against_the_page(upstream: FakeUpstream) -> None:
    upstream.absolute_urls = False
    (wheel,) = upstream.add_release("demo", "1.0", sdist=False)
    page_url = upstream.url + "demo/"
    entry = _get(page_url).json()["files"][0]
    assert entry["url"] == "../../files/demo-1.0-py3-none-any.whl"
    html_href = _links(_get(page_url, "text/html").text).links[0][0]["href"]
    assert html_href == f"../../files/demo-1.0-py3-none-any.whl#sha256={_sha(wheel)}"
    assert _get(urljoin(page_url, entry["url"])).content == wheel.read_bytes()


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (PIP_ACCEPT, JSON_V1),
        (UV_ACCEPT, JSON_V1),
        (POETRY_ACCEPT, JSON_V1),
        (None, "text/html; charset=utf-8"),
        ("*/*", "text/html; charset=utf-8"),
        ("text/html", "text/html; charset=utf-8"),
        ("application/vnd.pypi.simple.v1+html", "application/vnd.pypi.simple.v1+html"),
        (f"{JSON_V1};q=0, text/html;q=0.5", "text/html; charset=utf-8"),
        ("text/html;q=0.5, application/*;q=0.9", JSON_V1),
        ("text/*", "text/html; charset=utf-8"),
        ("*/*, text/html;q=0", JSON_V1),
        (f"text/html, {JSON_V1}", JSON_V1),
        ("text/html;q=0.9, */*;q=1", JSON_V1),  # HTML ranked below anything else
    ],
)
def test_content_negotiation(upstream: FakeUpstream, accept: str | None, expected: str) -> None:
    upstream.add_release("demo", "1.0", sdist=False)
    resp = _get(upstream.url + "demo/", accept)
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == expected


def test_unacceptable_type_is_406_and_format_query_overrides(upstream: FakeUpstream) -> None:
    upstream.add_release("demo", "1.0", sdist=False)
    assert _get(upstream.url + "demo/", "application/xml").status_code == 406
    forced = _get(upstream.url + "demo/?format=text/html", JSON_V1)
    assert forced.headers["Content-Type"] == "text/html; charset=utf-8"
    assert _get(upstream.url + "demo/?format=bogus").status_code == 406
    assert negotiate(f"{JSON_V1};q=0") is None


def test_html_only_and_json_only_switches(upstream: FakeUpstream) -> None:
    upstream.add_release("demo", "1.0", sdist=False)
    upstream.html_only = True
    assert _get(upstream.url + "demo/", JSON_V1).headers["Content-Type"].startswith("text/html")
    upstream.html_only = False
    upstream.json_only = True
    assert _get(upstream.url + "demo/", "text/html").headers["Content-Type"] == JSON_V1


def test_unknown_project_and_file_are_404(upstream: FakeUpstream) -> None:
    upstream.add_release("demo", "1.0", sdist=False)
    assert _get(upstream.url + "nope/").status_code == 404
    assert _get(upstream.base_url + "/files/nope-1.0.tar.gz").status_code == 404
    assert _get(upstream.base_url + "/elsewhere").status_code == 404


def test_unnormalized_names_and_missing_slash_redirect(upstream: FakeUpstream) -> None:
    upstream.add_release("demo-pkg", "1.0", sdist=False)
    for path in ("Demo_Pkg/", "demo.pkg", "demo-pkg"):
        resp = _get(upstream.url + path)
        assert (resp.status_code, resp.headers["Location"]) == (301, "/simple/demo-pkg/")
    assert _get(upstream.url + "Demo_Pkg/?format=text/html").headers["Location"] == (
        "/simple/demo-pkg/?format=text/html"
    )
    assert _get(upstream.base_url + "/simple").headers["Location"] == "/simple/"
    followed = requests.get(upstream.url + "Demo.Pkg", headers={"Accept": JSON_V1}, timeout=10)
    assert followed.json()["name"] == "demo-pkg"


def test_project_graph_from_toml(upstream: FakeUpstream) -> None:
    graph = tomllib.loads(
        """
        [demo."1.0"]
        requires_dist = ["dep>=1"]
        wheels = ["py3-none-any", "cp311-cp311-win_amd64"]
        [dep."1.2"]
        sdist = false
        """
    )
    upstream.add_projects(graph)
    demo = _get(upstream.url + "demo/").json()
    assert [f["filename"] for f in demo["files"]] == [
        "demo-1.0-py3-none-any.whl",
        "demo-1.0-cp311-cp311-win_amd64.whl",
        "demo-1.0.tar.gz",
    ]
    assert [f["filename"] for f in _get(upstream.url + "dep/").json()["files"]] == [
        "dep-1.2-py3-none-any.whl"
    ]
    with pytest.raises(ValueError, match=r"^dep 2.0: unknown release key 'requires' — use one"):
        upstream.add_projects({"dep": {"2.0": {"requires": ["x"]}}})


# --- files and .metadata ------------------------------------------------------------------


def test_files_and_metadata_are_served_exactly(upstream: FakeUpstream) -> None:
    wheel, sdist = upstream.add_release("demo", "1.0", requires_dist=["dep>=2"])
    resp = _get(upstream.file_url(wheel.name))
    assert resp.content == wheel.read_bytes()
    assert resp.headers["Content-Length"] == str(wheel.stat().st_size)
    assert resp.headers["Accept-Ranges"] == "bytes"
    meta = _get(upstream.file_url(wheel.name) + ".metadata")
    assert meta.content == _wheel_metadata(wheel)
    assert b"Requires-Dist: dep>=2\n" in meta.content
    assert _get(upstream.file_url(sdist.name)).content == sdist.read_bytes()
    assert _get(upstream.file_url(sdist.name) + ".metadata").status_code == 404


def test_metadata_switches(upstream: FakeUpstream, dist_dir: Path) -> None:
    from tests import dists

    upstream.add_dist(dists.build_wheel(dist_dir, "plain", "1.0"), metadata=False)
    (wheel,) = upstream.add_release("demo", "1.0", sdist=False)
    assert _get(upstream.url + "plain/").json()["files"][0]["core-metadata"] is False
    assert _get(upstream.file_url("plain-1.0-py3-none-any.whl.metadata")).status_code == 404
    upstream.metadata_enabled = False
    assert _get(upstream.url + "demo/").json()["files"][0]["core-metadata"] is False
    assert "data-core-metadata" not in _get(upstream.url + "demo/", "text/html").text
    assert _get(upstream.file_url(wheel.name) + ".metadata").status_code == 404
    upstream.metadata_enabled = True
    upstream.legacy_dist_info_metadata = True
    entry = _get(upstream.url + "demo/").json()["files"][0]
    assert entry["data-dist-info-metadata"] == entry["core-metadata"]


def test_wrong_sha256_lists_a_hash_the_file_does_not_have(
    upstream: FakeUpstream, dist_dir: Path
) -> None:
    from tests import dists

    wheel = dists.build_wheel(dist_dir, "demo", "1.0")
    upstream.add_dist(wheel, wrong_sha256=True)
    listed = _get(upstream.url + "demo/").json()["files"][0]["hashes"]["sha256"]
    assert len(listed) == 64
    assert listed != _sha(wheel)
    assert _get(upstream.file_url(wheel.name)).content == wheel.read_bytes()


def test_range_and_head(upstream: FakeUpstream) -> None:
    (wheel,) = upstream.add_release("demo", "1.0", sdist=False)
    data = wheel.read_bytes()
    url = upstream.file_url(wheel.name)
    part = requests.get(url, headers={"Range": "bytes=10-19"}, timeout=10)
    assert (part.status_code, part.content) == (206, data[10:20])
    assert part.headers["Content-Range"] == f"bytes 10-19/{len(data)}"
    tail = requests.get(url, headers={"Range": "bytes=-30"}, timeout=10)
    assert (tail.status_code, tail.content) == (206, data[-30:])
    bad = requests.get(url, headers={"Range": f"bytes={len(data)}-"}, timeout=10)
    assert (bad.status_code, bad.headers["Content-Range"]) == (416, f"bytes */{len(data)}")
    head = requests.head(url, timeout=10)
    assert (head.status_code, head.content) == (200, b"")
    assert head.headers["Content-Length"] == str(len(data))


# --- request log, keep-alive, concurrency, lifecycle --------------------------------------


def test_every_request_is_recorded(upstream: FakeUpstream) -> None:
    (wheel,) = upstream.add_release("demo", "1.0", sdist=False)
    _get(upstream.url + "demo/", UV_ACCEPT)
    _get(upstream.file_url(wheel.name))
    requests.head(upstream.file_url(wheel.name), timeout=10)
    assert [(r.method, r.path) for r in upstream.requests] == [
        ("GET", "/simple/demo/"),
        ("GET", "/files/demo-1.0-py3-none-any.whl"),
        ("HEAD", "/files/demo-1.0-py3-none-any.whl"),
    ]
    assert upstream.requests[0].headers["accept"] == UV_ACCEPT
    assert upstream.page_requests() == ["/simple/demo/"]
    assert upstream.file_requests() == ["/files/demo-1.0-py3-none-any.whl"] * 2
    upstream.clear_requests()
    assert upstream.requests == []


def test_keep_alive_serves_many_requests_on_one_connection(upstream: FakeUpstream) -> None:
    (wheel,) = upstream.add_release("demo", "1.0", sdist=False)
    conn = http.client.HTTPConnection("127.0.0.1", int(upstream.base_url.rsplit(":", 1)[1]))
    try:
        conn.request("GET", "/simple/demo/", headers={"Accept": JSON_V1})
        first = conn.getresponse()
        assert json.loads(first.read())["name"] == "demo"
        sock = conn.sock
        for _ in range(3):
            conn.request("GET", f"/files/{wheel.name}")
            resp = conn.getresponse()
            assert resp.read() == wheel.read_bytes()
            assert conn.sock is sock  # not reconnected
    finally:
        conn.close()
    assert len(upstream.requests) == 4


def test_many_concurrent_clients(upstream: FakeUpstream) -> None:
    wheels = [upstream.add_release(f"p{i}", "1.0", sdist=False)[0] for i in range(8)]
    errors: list[str] = []

    def client(n: int) -> None:
        with requests.Session() as session:
            for i in range(5):
                wheel = wheels[(n + i) % len(wheels)]
                resp = session.get(upstream.file_url(wheel.name), timeout=30)
                if resp.content != wheel.read_bytes():
                    errors.append(f"client {n}: {wheel.name} differs")

    threads = [threading.Thread(target=client, args=(n,)) for n in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(upstream.requests) == 32 * 5


def test_stop_closes_idle_keep_alive_connections_and_refuses_new_ones(tmp_path: Path) -> None:
    server = FakeUpstream(tmp_path).start()
    port = int(server.base_url.rsplit(":", 1)[1])
    conn = http.client.HTTPConnection("127.0.0.1", port)
    conn.request("GET", "/simple/")
    conn.getresponse().read()
    server.stop()  # must return although the connection above is idle, not closed
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5)
    conn.close()


# --- faults -------------------------------------------------------------------------------


def test_status_fault_with_times_and_retry_after(upstream: FakeUpstream) -> None:
    upstream.add_release("demo", "1.0", sdist=False)
    upstream.set_fault("/simple/demo/", Fault(status=429, times=2, retry_after="3"))
    first, second, third = (_get(upstream.url + "demo/") for _ in range(3))
    assert (first.status_code, first.headers["Retry-After"]) == (429, "3")
    assert second.status_code == 429
    assert third.status_code == 200
    assert len(upstream.page_requests()) == 3


def test_fault_pattern_scope_and_clear(upstream: FakeUpstream) -> None:
    (wheel,) = upstream.add_release("demo", "1.0", sdist=False)
    upstream.set_fault("/files/*.whl", Fault(status=503))
    assert _get(upstream.url + "demo/").status_code == 200
    assert _get(upstream.file_url(wheel.name)).status_code == 503
    assert _get(upstream.file_url(wheel.name) + ".metadata").status_code == 200
    assert _get(upstream.file_url(wheel.name)).status_code == 503  # times=None: always
    upstream.clear_faults()
    assert _get(upstream.file_url(wheel.name)).status_code == 200


def test_delay_fault_makes_a_client_time_out(upstream: FakeUpstream) -> None:
    upstream.add_release("demo", "1.0", sdist=False)
    upstream.set_fault("/simple/demo/", Fault(delay=30, times=1))
    with pytest.raises(requests.ReadTimeout):
        requests.get(upstream.url + "demo/", timeout=0.5)
    assert _get(upstream.url + "demo/").status_code == 200  # times=1: used up


def test_truncate_fault_claims_full_length_then_closes(upstream: FakeUpstream) -> None:
    (wheel,) = upstream.add_release("demo", "1.0", sdist=False)
    upstream.set_fault(f"/files/{wheel.name}", Fault(truncate=100))
    conn = http.client.HTTPConnection("127.0.0.1", int(upstream.base_url.rsplit(":", 1)[1]))
    conn.request("GET", f"/files/{wheel.name}")
    resp = conn.getresponse()
    assert resp.headers["Content-Length"] == str(wheel.stat().st_size)
    with pytest.raises(http.client.IncompleteRead) as exc:
        resp.read()
    assert exc.value.partial == wheel.read_bytes()[:100]
    conn.close()


def _raw_request(upstream: FakeUpstream, path: str) -> tuple[bytes, BaseException | None]:
    """Send a GET on a raw socket; return what arrived and how the connection ended."""
    port = int(upstream.base_url.rsplit(":", 1)[1])
    received = b""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except ConnectionResetError as exc:
            return received, exc
    return received, None


def test_reset_fault_resets_the_connection(upstream: FakeUpstream) -> None:
    (wheel,) = upstream.add_release("demo", "1.0", sdist=False)
    upstream.set_fault("/simple/demo/", Fault(reset=True, times=1))
    received, ended = _raw_request(upstream, "/simple/demo/")
    assert (received, type(ended)) == (b"", ConnectionResetError)
    upstream.set_fault(f"/files/{wheel.name}", Fault(reset=True, truncate=50, times=1))
    received, ended = _raw_request(upstream, f"/files/{wheel.name}")
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert f"Content-Length: {wheel.stat().st_size}".encode() in head
    assert (body, type(ended)) == (wheel.read_bytes()[:50], ConnectionResetError)
    upstream.set_fault("/simple/demo/", Fault(reset=True, times=1))
    with pytest.raises(requests.ConnectionError):
        _get(upstream.url + "demo/")


def test_wrong_body_and_extra_bytes_faults(upstream: FakeUpstream) -> None:
    (wheel,) = upstream.add_release("demo", "1.0", sdist=False)
    data = wheel.read_bytes()
    upstream.set_fault(f"/files/{wheel.name}", Fault(wrong_body=True, times=1))
    wrong = _get(upstream.file_url(wheel.name)).content
    assert len(wrong) == len(data)
    assert wrong != data
    upstream.set_fault(f"/files/{wheel.name}", Fault(extra_bytes=10, times=1))
    longer = _get(upstream.file_url(wheel.name))
    assert longer.headers["Content-Length"] == str(len(data) + 10)
    assert longer.content[: len(data)] == data
    assert len(longer.content) == len(data) + 10
    assert _get(upstream.file_url(wheel.name)).content == data


def test_drip_fault_sends_headers_then_trickles_the_body(upstream: FakeUpstream) -> None:
    (wheel,) = upstream.add_release("demo", "1.0", sdist=False)
    upstream.set_fault(f"/files/{wheel.name}", Fault(drip_bytes_per_sec=200, times=1))
    resp = requests.get(upstream.file_url(wheel.name), stream=True, timeout=0.5)
    assert resp.status_code == 200  # the headers came at once
    with pytest.raises(requests.ConnectionError):
        resp.content  # noqa: B018 - the body does not come within the read timeout
    resp.close()
    # A fast drip delivers the whole body intact.
    upstream.set_fault(f"/files/{wheel.name}", Fault(drip_bytes_per_sec=1e7, times=1))
    assert requests.get(upstream.file_url(wheel.name), timeout=10).content == wheel.read_bytes()


def test_body_fault_replaces_the_body(upstream: FakeUpstream) -> None:
    upstream.add_release("demo", "1.0", sdist=False)
    upstream.set_fault("/simple/demo/", Fault(body=b'{"meta": ', times=1))
    broken = _get(upstream.url + "demo/")
    assert (broken.status_code, broken.headers["Content-Type"]) == (200, JSON_V1)
    assert (broken.content, broken.headers["Content-Length"]) == (b'{"meta": ', "9")
    assert _get(upstream.url + "demo/").json()["name"] == "demo"


def test_a_listed_file_that_404s(upstream: FakeUpstream) -> None:
    (wheel,) = upstream.add_release("demo", "1.0", sdist=False)
    upstream.set_fault(f"/files/{wheel.name}", Fault(status=404))
    assert _get(upstream.url + "demo/").json()["files"][0]["filename"] == wheel.name
    assert _get(upstream.file_url(wheel.name)).status_code == 404


def test_redirect_fault_and_redirect_loop(upstream: FakeUpstream) -> None:
    upstream.add_release("demo", "1.0", sdist=False)
    upstream.add_release("other", "1.0", sdist=False)
    upstream.set_fault("/simple/demo/", Fault(redirect_to="/simple/other/", times=1))
    moved = _get(upstream.url + "demo/")
    assert (moved.status_code, moved.headers["Location"]) == (302, "/simple/other/")
    upstream.set_fault("/simple/loop/", Fault(redirect_to="/simple/loop/"))
    with pytest.raises(requests.TooManyRedirects):
        requests.get(upstream.url + "loop/", timeout=10)


# --- real clients -------------------------------------------------------------------------


@pytest.mark.parametrize("absolute_urls", [True, False], ids=["absolute", "relative"])
def test_pip_installs_from_the_fake_upstream(
    tmp_path: Path, upstream: FakeUpstream, venv: Path, absolute_urls: bool
) -> None:
    upstream.absolute_urls = absolute_urls
    upstream.add_release("Demo.App", "1.0", requires_dist=["dep-lib>=1"])
    upstream.add_release("Demo.App", "2.0", yanked="broken release")
    upstream.add_release("dep-lib", "1.5", requires_python=">=3.8")
    upstream.add_release("dep-lib", "9.0", requires_python="<3")
    proc = clients.run(
        clients.pip_command("install", upstream.url, "demo-app", python=venv),
        clients.pip_env(tmp_path),
    )
    assert proc.returncode == 0, proc.stderr
    assert "Successfully installed demo-app-1.0 dep-lib-1.5" in proc.stdout
    check = [
        str(venv),
        "-c",
        "import demo_app, dep_lib; print(demo_app.__version__, dep_lib.__version__)",
    ]
    assert clients.run(check, clients.pip_env(tmp_path)).stdout == "1.0 1.5\n"
    fetched = upstream.file_requests()
    # pip read the wheels' metadata through PEP 658, then downloaded exactly two wheels.
    assert sorted(p for p in fetched if p.endswith(".whl")) == [
        "/files/demo_app-1.0-py3-none-any.whl",
        "/files/dep_lib-1.5-py3-none-any.whl",
    ]
    assert "/files/demo_app-1.0-py3-none-any.whl.metadata" in fetched


@pytest.mark.parametrize("html_only", [False, True], ids=["json", "html"])
def test_uv_pip_compile_against_the_fake_upstream(
    tmp_path: Path, upstream: FakeUpstream, html_only: bool
) -> None:
    upstream.html_only = html_only
    upstream.add_release("top", "1.0", requires_dist=["mid[extra]>=1"])
    for version in ("1.0", "2.0"):
        upstream.add_release(
            "mid", version, requires_dist=['leaf; extra == "extra"'], provides_extra=["extra"]
        )
    upstream.add_release("leaf", "3.1")
    reqs = tmp_path / "requirements.in"
    reqs.write_text("top\n")
    cmd = clients.uv_pip_command(
        "compile", upstream.url, str(reqs), "--python-version", "3.11", "--no-header",
        "--no-annotate", "--quiet",
    )  # fmt: skip
    proc = clients.run(cmd, clients.pip_env(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "leaf==3.1\nmid==2.0\ntop==1.0\n"
    accept = upstream.requests[0].headers["accept"]
    assert accept.startswith("application/vnd.pypi.simple.v1+json")


def test_large_file_is_streamed_intact(upstream: FakeUpstream, dist_dir: Path) -> None:
    from tests import dists

    wheel = dists.build_wheel(dist_dir, "big", "1.0", payload_size=8 * 2**20)
    upstream.add_dist(wheel)
    resp = requests.get(upstream.file_url(wheel.name), timeout=30)
    assert resp.headers["Content-Length"] == str(wheel.stat().st_size)
    assert hashlib.sha256(resp.content).hexdigest() == _sha(wheel)


def test_bandwidth_caps_the_link_shared_by_all_connections(
    upstream: FakeUpstream, dist_dir: Path
) -> None:
    """The bench's floor divides bytes by `bandwidth`: the link must never carry more,
    however many connections share it (a lone one may run at most SLACK + AHEAD ahead)."""
    from tests import dists
    from tests.upstream_http import Link

    wheel = dists.build_wheel(dist_dir, "capped", "1.0", payload_size=2 * 2**20)
    upstream.add_dist(wheel)
    size = wheel.stat().st_size
    upstream.bandwidth = 8 * 2**20  # the three downloads below need ~0.8 s at least
    bodies: list[bytes] = []

    def fetch() -> None:
        bodies.append(requests.get(upstream.file_url(wheel.name), timeout=30).content)

    start = time.monotonic()
    threads = [threading.Thread(target=fetch) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - start
    assert [hashlib.sha256(b).hexdigest() for b in bodies] == [_sha(wheel)] * 3
    assert elapsed >= 3 * size / upstream.bandwidth - Link.SLACK - Link.AHEAD
