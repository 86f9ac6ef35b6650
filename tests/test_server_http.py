"""server.py over real sockets: negotiation, redirects, files, caching, keep-alive, generations."""

from __future__ import annotations

import email.utils
import http.client
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from morgan.server import MirrorServer
from tests.index_tree import IndexTree, build_tree, make_wheel, render_project
from tests.server_fixtures import (
    HTML,
    JSON,
    PDM_ACCEPT,
    PIP_ACCEPT,
    POETRY_ACCEPT,
    UV_ACCEPT,
    V1_HTML,
    port_of,
    raw_exchange,
    request,
    running_server,
)

ENVIRONMENTS = {"linux": ["alpha", "beta"]}


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> IndexTree:
    return build_tree(tmp_path_factory.mktemp("http") / "mirror", environments=ENVIRONMENTS)


@pytest.fixture(scope="module")
def served(tree: IndexTree) -> Iterator[tuple[MirrorServer, io.StringIO]]:
    with running_server(tree.root) as pair:
        yield pair


@pytest.fixture
def server(served: tuple[MirrorServer, io.StringIO]) -> MirrorServer:
    return served[0]


def page(tree: IndexTree, project: str, ext: str) -> bytes:
    return (tree.generation(1) / "simple" / project / f"index.{ext}").read_bytes()


# -- content negotiation ---------------------------------------------------------------

NEGOTIATION = [
    pytest.param(PIP_ACCEPT, JSON, id="pip"),
    pytest.param(UV_ACCEPT, JSON, id="uv"),
    pytest.param(POETRY_ACCEPT, JSON, id="poetry"),
    pytest.param(PDM_ACCEPT, JSON, id="pdm"),
    pytest.param(None, HTML, id="no-accept"),
    pytest.param("*/*", HTML, id="any"),
    pytest.param("text/html", HTML, id="text-html"),
    pytest.param("text/*", HTML, id="text-star"),
    pytest.param("application/vnd.pypi.simple.v1+html", V1_HTML, id="v1-html"),
    pytest.param("application/*", JSON, id="application-star"),
    pytest.param("application/vnd.pypi.simple.latest+json", JSON, id="latest-json"),
    pytest.param(f"{JSON};q=0.5, text/html", HTML, id="html-higher-q"),
    pytest.param("text/html;q=0, */*;q=0.1", V1_HTML, id="text-html-refused"),
    pytest.param("TEXT/HTML", HTML, id="case-insensitive"),
]


@pytest.mark.parametrize(("accept", "content_type"), NEGOTIATION)
@pytest.mark.parametrize("path", ["/simple/alpha/", "/env/linux/simple/alpha/"])
def test_project_page_negotiation(
    tree: IndexTree, server: MirrorServer, path: str, accept: str | None, content_type: str
) -> None:
    resp = request(server, path, {"Accept": accept} if accept else {})
    assert resp.status == 200
    assert resp.headers["content-type"] == content_type
    assert resp.headers["vary"] == "Accept"
    assert resp.headers["cache-control"] == "public, max-age=60"
    ext = "json" if content_type == JSON else "html"
    assert resp.body == page(tree, "alpha", ext)


def test_root_index_negotiation(tree: IndexTree, server: MirrorServer) -> None:
    as_json = request(server, "/simple/", {"Accept": UV_ACCEPT})
    as_html = request(server, "/simple/", {"Accept": "text/html"})
    assert as_json.headers["content-type"] == JSON
    names = [p["name"] for p in json.loads(as_json.body)["projects"]]
    assert names == ["alpha", "beta", "gamma-lib"]
    assert as_html.headers["content-type"] == HTML
    assert b'<a href="gamma-lib/">gamma-lib</a>' in as_html.body
    env = json.loads(request(server, "/env/linux/simple/", {"Accept": PIP_ACCEPT}).body)
    assert [p["name"] for p in env["projects"]] == ["alpha", "beta"]


@pytest.mark.parametrize(
    ("query", "content_type"),
    [
        ("json", JSON),
        ("html", HTML),
        ("application/vnd.pypi.simple.v1%2Bjson", JSON),
        ("application/vnd.pypi.simple.v1%2Bhtml", V1_HTML),
        ("text/html", HTML),
    ],
)
def test_format_query_overrides_accept(server: MirrorServer, query: str, content_type: str) -> None:
    accept = "text/html" if content_type == JSON else JSON
    resp = request(server, f"/simple/alpha/?format={query}", {"Accept": accept})
    assert resp.status == 200
    assert resp.headers["content-type"] == content_type


@pytest.mark.parametrize(
    ("path", "accept"),
    [
        ("/simple/alpha/", "application/xml"),
        ("/simple/alpha/", "text/html;q=0, application/vnd.pypi.simple.v1+json;q=0"),
        ("/simple/alpha/", "image/*"),
        ("/simple/alpha/?format=xml", PIP_ACCEPT),
        ("/simple/", "application/json"),
    ],
)
def test_not_acceptable(server: MirrorServer, path: str, accept: str) -> None:
    resp = request(server, path, {"Accept": accept})
    assert resp.status == 406
    assert resp.headers["vary"] == "Accept"


@pytest.mark.parametrize(
    "path", ["/simple/nope/", "/env/linux/simple/gamma-lib/", "/env/windows/simple/"]
)
def test_unknown_project_or_environment_is_404(server: MirrorServer, path: str) -> None:
    resp = request(server, path, {"Accept": PIP_ACCEPT})
    assert resp.status == 404
    assert resp.headers["content-type"] == "text/plain; charset=utf-8"


@pytest.mark.parametrize(
    ("path", "location"),
    [
        ("/simple", "simple/"),
        ("/simple/alpha", "alpha/"),
        ("/simple/Alpha/", "../alpha/"),
        ("/simple/Gamma_Lib", "gamma-lib/"),
        ("/simple/gamma.lib/", "../gamma-lib/"),
        ("/simple/GAMMA--LIB/?format=json", "../gamma-lib/?format=json"),
        ("/env/linux/simple", "simple/"),
        ("/env/linux/simple/Beta", "beta/"),
    ],
)
def test_redirects_to_normalized_slash_form(server: MirrorServer, path: str, location: str) -> None:
    resp = request(server, path)
    assert resp.status == 301
    assert resp.headers["location"] == location


def test_redirect_resolves_to_the_page(tree: IndexTree, server: MirrorServer) -> None:
    import requests

    resp = requests.get(
        f"http://127.0.0.1:{port_of(server)}/simple/Gamma_Lib", headers={"Accept": PIP_ACCEPT}
    )
    assert resp.url == f"http://127.0.0.1:{port_of(server)}/simple/gamma-lib/"
    assert resp.content == page(tree, "gamma-lib", "json")


# -- files -----------------------------------------------------------------------------


def wheel(tree: IndexTree, filename: str = "alpha-2.0-py3-none-any.whl") -> bytes:
    return next(d.data for d in tree.dists if d.filename == filename)


FILE = "/simple/alpha/alpha-2.0-py3-none-any.whl"


def test_file_headers_and_body(tree: IndexTree, server: MirrorServer) -> None:
    data = wheel(tree)
    dist = next(d for d in tree.dists if d.filename == "alpha-2.0-py3-none-any.whl")
    resp = request(server, FILE)
    assert resp.status == 200
    assert resp.body == data
    assert resp.headers["content-length"] == str(len(data))
    assert resp.headers["content-type"] == "application/octet-stream"
    assert resp.headers["etag"] == f'"{dist.blake3}"'
    assert resp.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert resp.headers["accept-ranges"] == "bytes"
    assert "content-encoding" not in resp.headers
    blob = tree.objects() / dist.blake3[:2] / dist.blake3
    modified = email.utils.parsedate_to_datetime(resp.headers["last-modified"])
    assert int(modified.timestamp()) == int(blob.stat().st_mtime)


def test_metadata_file_is_the_wheel_metadata(tree: IndexTree, server: MirrorServer) -> None:
    dist = next(d for d in tree.dists if d.filename == "alpha-2.0-py3-none-any.whl")
    resp = request(server, FILE + ".metadata")
    assert resp.status == 200
    assert resp.body == dist.metadata
    assert b"Requires-Dist: beta>=1.0" in resp.body


def test_sdist_is_served_without_encoding(tree: IndexTree, server: MirrorServer) -> None:
    resp = request(server, "/simple/beta/beta-1.0.tar.gz", {"Accept-Encoding": "gzip"})
    assert resp.status == 200
    assert resp.headers["content-type"] == "application/octet-stream"
    assert "content-encoding" not in resp.headers
    assert resp.body == wheel(tree, "beta-1.0.tar.gz")


def test_head_sends_headers_only(tree: IndexTree, server: MirrorServer) -> None:
    get = request(server, FILE)
    head = request(server, FILE, method="HEAD")
    assert head.status == 200
    assert head.body == b""
    for name in ("content-length", "etag", "last-modified", "content-type", "cache-control"):
        assert head.headers[name] == get.headers[name]
    page_head = request(server, "/simple/alpha/", {"Accept": PIP_ACCEPT}, method="HEAD")
    assert page_head.headers["content-type"] == JSON
    assert page_head.headers["content-length"] == str(len(page(tree, "alpha", "json")))


@pytest.mark.parametrize(
    ("spec", "start", "end"),
    [("bytes=0-9", 0, 9), ("bytes=10-", 10, None), ("bytes=-22", -22, None), ("bytes=5-5", 5, 5)],
)
def test_single_range(
    tree: IndexTree, server: MirrorServer, spec: str, start: int, end: int | None
) -> None:
    data = wheel(tree)
    size = len(data)
    resp = request(server, FILE, {"Range": spec})
    expected = data[start:] if end is None else data[start : end + 1]
    first = start % size
    assert resp.status == 206
    assert resp.body == expected
    assert resp.headers["content-length"] == str(len(expected))
    assert resp.headers["content-range"] == f"bytes {first}-{first + len(expected) - 1}/{size}"


def test_range_past_the_end_clamps(tree: IndexTree, server: MirrorServer) -> None:
    data = wheel(tree)
    resp = request(server, FILE, {"Range": f"bytes=10-{len(data) * 2}"})
    assert resp.status == 206
    assert resp.body == data[10:]


@pytest.mark.parametrize("spec", ["bytes={size}-", "bytes={size}-{bigger}", "bytes=-0"])
def test_unsatisfiable_range_is_416(tree: IndexTree, server: MirrorServer, spec: str) -> None:
    size = len(wheel(tree))
    resp = request(server, FILE, {"Range": spec.format(size=size, bigger=size + 5)})
    assert resp.status == 416
    assert resp.headers["content-range"] == f"bytes */{size}"


@pytest.mark.parametrize(
    "spec",
    [
        "bytes=0-1,5-6",
        "items=0-5",
        "bytes=9-2",
        "bytes=x-",
        "bytes=\u00b2-",  # superscript two: str.isdigit() says yes, int() says no
        "bytes=-\u00b2",
        "bytes=0-\u00b9",
        "bytes=\u00bd-",  # one half: str.isnumeric()
        "bytes=0-" + "9" * 5000,
        "bytes=" + "9" * 5000 + "-",
        "bytes=-" + "9" * 5000,
        "bytes=0-" + "0" * 19,
        "bytes= 1 - 2",
        "bytes=+1-2",
        "bytes=-",
    ],
    ids=lambda spec: spec[:24],
)
def test_ignored_ranges_send_the_whole_file(
    tree: IndexTree, served: tuple[MirrorServer, io.StringIO], spec: str
) -> None:
    """Malformed means the whole file (200): ASCII digits only, at most 18 of them; nothing
    is logged as an internal error."""
    server, log = served
    resp = request(server, FILE, {"Range": spec})
    assert resp.status == 200
    assert resp.body == wheel(tree)
    assert "Traceback" not in log.getvalue()
    assert "internal error" not in log.getvalue()


def test_if_range_with_another_etag_sends_everything(tree: IndexTree, server: MirrorServer) -> None:
    etag = request(server, FILE, method="HEAD").headers["etag"]
    assert request(server, FILE, {"Range": "bytes=0-3", "If-Range": etag}).status == 206
    resp = request(server, FILE, {"Range": "bytes=0-3", "If-Range": '"other"'})
    assert resp.status == 200
    assert resp.body == wheel(tree)


@pytest.mark.parametrize("path", [FILE, "/simple/alpha/"])
def test_if_none_match_gives_304(server: MirrorServer, path: str) -> None:
    full = request(server, path, {"Accept": PIP_ACCEPT})
    etag = full.headers["etag"]
    for header in (etag, f"W/{etag}", f'"nope", {etag}', "*"):
        resp = request(server, path, {"Accept": PIP_ACCEPT, "If-None-Match": header})
        assert resp.status == 304
        assert resp.body == b""
        assert resp.headers["etag"] == etag
        assert resp.headers["content-length"] == full.headers["content-length"]
    assert request(server, path, {"If-None-Match": '"nope"'}).status == 200


def test_page_variants_have_distinct_etags(server: MirrorServer) -> None:
    tags = {
        request(server, "/simple/alpha/", {"Accept": accept}).headers["etag"]
        for accept in (JSON, V1_HTML, "text/html")
    }
    assert len(tags) == 3


def test_if_modified_since_alone_never_gives_304(server: MirrorServer) -> None:
    """Only the ETag validates: a blob's mtime is not monotonic across generations."""
    modified = request(server, FILE, method="HEAD").headers["last-modified"]
    assert request(server, FILE, {"If-Modified-Since": modified}).status == 200
    assert (
        request(server, FILE, {"If-Modified-Since": "Fri, 01 Jan 2100 00:00:00 GMT"}).status == 200
    )
    assert request(server, FILE, {"If-Modified-Since": "garbage"}).status == 200


def test_pages_carry_no_last_modified(server: MirrorServer) -> None:
    for accept in (PIP_ACCEPT, "text/html", V1_HTML):
        resp = request(server, "/simple/alpha/", {"Accept": accept})
        assert resp.status == 200
        assert "last-modified" not in resp.headers
    assert "last-modified" not in request(server, "/simple/alpha/index.json").headers


def test_no_wrong_304_after_a_rollback(tmp_path: Path) -> None:
    """Generation 2 changes alpha's page; a rollback to generation 1 must answer the old
    page in full to a client that validates what it cached from generation 2, whatever
    date it sends (the page blob of generation 1 is older or newer: either way)."""
    tree = build_tree(tmp_path / "mirror")
    newer = make_wheel("alpha", "9.0")
    tree.add_generation(2, [*tree.dists, newer])
    with running_server(tree.root) as (server, _):
        cached = request(server, "/simple/alpha/", {"Accept": PIP_ACCEPT})
        assert b"alpha-9.0" in cached.body
        tree.switch(1)
        for headers in (
            {"If-None-Match": cached.headers["etag"]},
            {"If-Modified-Since": "Fri, 01 Jan 2100 00:00:00 GMT"},
            {
                "If-None-Match": cached.headers["etag"],
                "If-Modified-Since": "Fri, 01 Jan 2100 00:00:00 GMT",
            },
        ):
            resp = request(server, "/simple/alpha/", {"Accept": PIP_ACCEPT, **headers})
            assert resp.status == 200, headers
            assert resp.body == page(tree, "alpha", "json")
            assert b"alpha-9.0" not in resp.body


def test_index_files_can_be_fetched_directly(tree: IndexTree, server: MirrorServer) -> None:
    resp = request(server, "/simple/alpha/index.json")
    assert resp.headers["content-type"] == JSON
    assert resp.body == page(tree, "alpha", "json")
    assert request(server, "/simple/index.html").headers["content-type"] == HTML


def test_directories_are_never_listed(server: MirrorServer) -> None:
    for path in ("/env/", "/env/linux/", "/generations/", "/store/objects/", "/simple/alpha/x/"):
        assert request(server, path).status == 404, path


# -- connections and logging -----------------------------------------------------------


def test_keep_alive_serves_two_requests_on_one_connection(server: MirrorServer) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port_of(server), timeout=10)
    try:
        conn.request("GET", "/simple/alpha/", headers={"Accept": PIP_ACCEPT})
        first = conn.getresponse()
        first.read()
        sock = conn.sock
        conn.request("GET", FILE)
        second = conn.getresponse()
        second.read()
        assert conn.sock is sock  # not reconnected: the server kept the connection open
        assert (first.status, second.status) == (200, 200)
        assert first.getheader("connection") is None
    finally:
        conn.close()


def test_pipelined_requests_are_answered_in_order(server: MirrorServer) -> None:
    raw = raw_exchange(
        port_of(server),
        b"GET /simple/nope/ HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /simple/alpha/ HTTP/1.1\r\nHost: x\r\nAccept: text/html\r\n\r\n"
        b"GET /simple/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    statuses = re.findall(rb"HTTP/1\.1 (\d{3}) ", raw)
    assert statuses == [b"404", b"200", b"200"]


def test_http_1_0_closes_after_the_response(server: MirrorServer) -> None:
    raw = raw_exchange(port_of(server), b"GET /simple/ HTTP/1.0\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"\r\nConnection: close\r\n" in raw


def test_http_1_0_keep_alive_is_confirmed(server: MirrorServer) -> None:
    raw = raw_exchange(
        port_of(server),
        b"GET /simple/ HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
        b"GET /simple/nope/ HTTP/1.0\r\n\r\n",
    )
    first, second = raw.split(b"HTTP/1.1 ")[1:]
    assert first.startswith(b"200 OK\r\n")
    assert b"\r\nConnection: keep-alive\r\n" in first
    assert second.startswith(b"404 Not Found\r\n")
    assert b"\r\nConnection: close\r\n" in second


def test_one_access_log_line_per_request(served: tuple[MirrorServer, io.StringIO]) -> None:
    server, log = served
    # The server logs a request after sending its response, so a client holding the whole
    # response does not prove the line is written yet; the server closing the connection
    # does (it logs first). Each request here asks for that close and reads until it, and
    # carries its own agent so lines of earlier tests' requests cannot be counted.
    exchanges = [
        ("GET", "/simple/alpha/", f"Accept: {PIP_ACCEPT}\r\n", "pip/26.3 (log-test 1)"),
        ("GET", "/simple/nope/", "", "log-test 2"),
        ("HEAD", "/simple", "", "log-test 3"),
    ]
    for method, path, extra, agent in exchanges:
        raw_exchange(
            port_of(server),
            f"{method} {path} HTTP/1.1\r\nHost: x\r\n{extra}User-Agent: {agent}\r\n"
            "Connection: close\r\n\r\n".encode("latin-1"),
        )
    lines = [line for line in log.getvalue().splitlines() if "log-test" in line]
    assert len(lines) == 3
    assert '"GET /simple/alpha/ HTTP/1.1" 200 ' in lines[0]
    assert lines[0].endswith('"pip/26.3 (log-test 1)"')
    assert '"GET /simple/nope/ HTTP/1.1" 404 ' in lines[1]
    assert lines[1].endswith('"log-test 2"')
    assert '"HEAD /simple HTTP/1.1" 301 ' in lines[2]
    assert lines[2].endswith('"log-test 3"')
    assert all(line.startswith("127.0.0.1 - - [") for line in lines)


# -- the human page --------------------------------------------------------------------


def test_home_page_lists_projects_versions_and_environments(server: MirrorServer) -> None:
    resp = request(server, "/")
    assert resp.status == 200
    assert resp.headers["content-type"] == HTML
    text = resp.body.decode()
    assert "<script" not in text
    assert '<a href="simple/gamma-lib/">gamma-lib</a>' in text
    assert "<td>1.0, 2.0, 3.0, 4.0</td>" in text
    assert '<a href="env/linux/simple/">linux</a> — 2 projects' in text
    assert '<form method="get" action="">' in text


def test_home_page_search_works_without_javascript(server: MirrorServer) -> None:
    text = request(server, "/?q=Gamma_").body.decode()
    assert "1 of 3 projects" in text
    assert "simple/gamma-lib/" in text
    assert "simple/alpha/" not in text
    hostile = request(server, "/?q=%3Cscript%3Ealert(1)%3C/script%3E").body.decode()
    assert "<script>" not in hostile
    assert "&lt;script&gt;" in hostile


# -- generations -----------------------------------------------------------------------


def test_new_generation_is_served_without_restart(tmp_path: Path) -> None:
    tree = build_tree(tmp_path / "mirror")
    with running_server(tree.root) as (server, _):
        assert request(server, "/simple/delta/").status == 404
        conn = http.client.HTTPConnection("127.0.0.1", port_of(server), timeout=10)
        conn.request("GET", "/simple/alpha/", headers={"Accept": PIP_ACCEPT})
        old = conn.getresponse()
        head = old.read(10)  # the response is in flight when the index switches

        delta = make_wheel("delta", "1.0")
        tree.add_generation(2, [*tree.dists, delta])
        rest = old.read()
        conn.close()
        old_page = (tree.generation(1) / "simple" / "alpha" / "index.json").read_bytes()
        assert head + rest == old_page  # one response, one generation

        assert request(server, "/simple/delta/", {"Accept": PIP_ACCEPT}).status == 200
        assert request(server, "/simple/delta/delta-1.0-py3-none-any.whl").body == delta.data
        tree.switch(1)
        assert request(server, "/simple/delta/").status == 404


def test_no_index_yet_is_503(tmp_path: Path) -> None:
    with running_server(tmp_path) as (server, _):
        resp = request(server, "/simple/")
        assert resp.status == 503
        assert b"run morgan build" in resp.body


def test_copied_tree_is_served_with_stat_etags(tmp_path: Path) -> None:
    tree = build_tree(tmp_path / "mirror", materialize="copy")
    path = tree.generation(1) / "simple" / "alpha" / "alpha-2.0-py3-none-any.whl"
    assert not path.is_symlink()
    with running_server(tree.root) as (server, _):
        resp = request(server, FILE)
        st = path.stat()
        assert resp.body == path.read_bytes()
        assert resp.headers["etag"] == f'"{st.st_size:x}-{st.st_mtime_ns:x}-{st.st_ino:x}"'
        assert request(server, FILE, {"If-None-Match": resp.headers["etag"]}).status == 304


def test_page_bytes_match_the_renderer(tree: IndexTree, server: MirrorServer) -> None:
    dists = [d for d in tree.dists if d.project == "beta"]
    html_page, json_page = render_project("beta", dists)
    assert request(server, "/simple/beta/", {"Accept": JSON}).body == json_page
    assert request(server, "/simple/beta/", {"Accept": "text/html"}).body == html_page
