"""Upstream pages, JSON or HTML, become the same canonical ProjectPage."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from packaging.utils import InvalidSdistFilename, parse_sdist_filename
from packaging.version import Version

from morgan.catalog import group_releases
from rules import page as page_rule
from rules.errors import UpstreamError
from rules.lib.http import PageResponse
from rules.lib.project_page import (
    parse_index_page,
    parse_project_page,
    sdist_head,
    strip_credentials,
)
from rules.model import NormalizedName, ProjectPage, UpstreamFile
from store.objects import Store

JSON = "application/vnd.pypi.simple.v1+json"
HTML = "text/html; charset=utf-8"
PAGE = "https://files.example/simple/demo-pkg/"
SHA_A = "a" * 64
SHA_B = "b" * 64
SHA_M = "c" * 64
DEMO = NormalizedName("demo-pkg")


def json_page(files: list[dict[str, Any]], **extra: Any) -> bytes:
    page = {"meta": {"api-version": "1.1"}, "name": "demo-pkg", "files": files, **extra}
    return json.dumps(page).encode()


def file_entry(filename: str, **extra: Any) -> dict[str, Any]:
    return {"filename": filename, "url": f"../../f/{filename}", "hashes": {}, **extra}


def only_file(page: ProjectPage) -> UpstreamFile:
    assert len(page.files) == 1
    return page.files[0]


def test_json_page_gives_every_field() -> None:
    body = json_page(
        [
            {
                "filename": "demo_pkg-1.0-py3-none-any.whl",
                "url": "https://cdn.example/f/demo_pkg-1.0-py3-none-any.whl",
                "hashes": {"sha256": SHA_A.upper(), "md5": "0" * 32},
                "requires-python": " >=3.8 ",
                "size": 1234,
                "upload-time": "2024-01-02T03:04:05.123456Z",
                "yanked": "broken build",
                "core-metadata": {"sha256": SHA_M},
            }
        ]
    )
    page = parse_project_page(body, JSON, PAGE, DEMO)
    assert page == ProjectPage(
        name=DEMO,
        files=(
            UpstreamFile(
                filename="demo_pkg-1.0-py3-none-any.whl",
                url="https://cdn.example/f/demo_pkg-1.0-py3-none-any.whl",
                sha256=SHA_A,
                size=1234,
                upload_time="2024-01-02T03:04:05.123456Z",
                requires_python=">=3.8",
                yanked=True,
                yanked_reason="broken build",
                core_metadata=True,
                core_metadata_sha256=SHA_M,
            ),
        ),
    )


def test_html_page_gives_every_field_html_unescaped() -> None:
    body = (
        b"<!DOCTYPE html><html><body>"
        b'<a href="../../f/demo_pkg-1.0.tar.gz#sha256=' + SHA_A.encode() + b'" '
        b'data-requires-python="&gt;=3.8,&lt;4" data-yanked="bad &amp; old">demo_pkg-1.0.tar.gz</a>'
        b'<a href="../../f/demo_pkg-1.0-py3-none-any.whl#md5=abc" '
        b'data-dist-info-metadata="sha256=' + SHA_M.encode() + b'">x</a>'
        b"</body></html>"
    )
    page = parse_project_page(body, HTML, PAGE, DEMO)
    assert page.files == (
        UpstreamFile(
            filename="demo_pkg-1.0-py3-none-any.whl",
            url="https://files.example/f/demo_pkg-1.0-py3-none-any.whl",
            sha256=None,
            size=None,
            upload_time=None,
            requires_python=None,
            yanked=False,
            yanked_reason="",
            core_metadata=True,
            core_metadata_sha256=SHA_M,
        ),
        UpstreamFile(
            filename="demo_pkg-1.0.tar.gz",
            url="https://files.example/f/demo_pkg-1.0.tar.gz",
            sha256=SHA_A,
            size=None,
            upload_time=None,
            requires_python=">=3.8,<4",
            yanked=True,
            yanked_reason="bad & old",
            core_metadata=False,
            core_metadata_sha256=None,
        ),
    )


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        (JSON, json_page([file_entry("demo_pkg-1.0.tar.gz"), file_entry("demo_pkg-0.9.zip")])),
        (
            "application/vnd.pypi.simple.v1+html",
            b'<a href="../../f/demo_pkg-1.0.tar.gz">1</a><a href="../../f/demo_pkg-0.9.zip">2</a>',
        ),
    ],
    ids=["json", "html"],
)
def test_relative_urls_resolve_against_the_final_page_url(content_type: str, body: bytes) -> None:
    page = parse_project_page(body, content_type, "https://mirror.example/a/simple/demo-pkg/", DEMO)
    assert [(f.filename, f.url) for f in page.files] == [
        ("demo_pkg-0.9.zip", "https://mirror.example/a/f/demo_pkg-0.9.zip"),
        ("demo_pkg-1.0.tar.gz", "https://mirror.example/a/f/demo_pkg-1.0.tar.gz"),
    ]


def test_html_base_tag_changes_the_base_url() -> None:
    body = (
        b'<head><base href="https://other.example/pkgs/"></head><a href="demo_pkg-1.0.tar.gz">x</a>'
    )
    page = parse_project_page(body, HTML, PAGE, DEMO)
    assert only_file(page).url == "https://other.example/pkgs/demo_pkg-1.0.tar.gz"


def test_credentials_are_never_stored() -> None:
    page_url = "https://user:s3cret@private.example/simple/demo-pkg/"
    body = b'<a href="/f/demo_pkg-1.0.tar.gz">x</a><a href="https://u:p@cdn.example/demo_pkg-2.0.zip">y</a>'
    page = parse_project_page(body, HTML, page_url, DEMO)
    assert [f.url for f in page.files] == [
        "https://private.example/f/demo_pkg-1.0.tar.gz",
        "https://cdn.example/demo_pkg-2.0.zip",
    ]
    assert strip_credentials(page_url) == "https://private.example/simple/demo-pkg/"


def test_files_that_are_not_distributions_of_the_project_are_dropped() -> None:
    names = [
        "demo_pkg-1.0.tar.gz",
        "demo_pkg-1.0.egg",
        "demo_pkg-1.0.tar.bz2",
        "demo_pkg-1.0.win32.exe",
        "demo_pkg-notaversion-py3-none-any.whl",
        "other-1.0.tar.gz",
        "other-1.0-py3-none-any.whl",
        "README.txt",
    ]
    page = parse_project_page(json_page([file_entry(n) for n in names]), JSON, PAGE, DEMO)
    assert [f.filename for f in page.files] == ["demo_pkg-1.0.tar.gz"]


def test_unsafe_filenames_from_encoded_paths_are_dropped() -> None:
    body = (
        b'<a href="/f/..%2Fdemo_pkg-1.0.tar.gz">x</a>'
        b'<a href="/f/a%2Fdemo_pkg-1.1.tar.gz">x</a>'
        b'<a href="/f/demo_pkg-1.2.tar.gz">ok</a>'
    )
    page = parse_project_page(body, HTML, PAGE, DEMO)
    assert [f.filename for f in page.files] == ["demo_pkg-1.2.tar.gz"]


def test_json_filename_with_path_separator_is_dropped() -> None:
    entry = {"filename": "../demo_pkg-1.0.tar.gz", "url": "x.tar.gz", "hashes": {}}
    assert parse_project_page(json_page([entry]), JSON, PAGE, DEMO).files == ()


def test_remote_page_cannot_point_at_local_files() -> None:
    body = b'<a href="file:///etc/demo_pkg-1.0.tar.gz">x</a><a href="ftp://h/demo_pkg-2.0.tar.gz">y</a>'
    assert parse_project_page(body, HTML, PAGE, DEMO).files == ()


def test_files_sorted_by_filename_first_duplicate_wins() -> None:
    entries = [
        file_entry("demo_pkg-2.0.tar.gz", hashes={"sha256": SHA_A}),
        file_entry("demo_pkg-1.0.tar.gz"),
        file_entry("demo_pkg-2.0.tar.gz", hashes={"sha256": SHA_B}),
    ]
    page = parse_project_page(json_page(entries), JSON, PAGE, DEMO)
    assert [(f.filename, f.sha256) for f in page.files] == [
        ("demo_pkg-1.0.tar.gz", None),
        ("demo_pkg-2.0.tar.gz", SHA_A),
    ]


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, (False, "", False, None)),
        ({"yanked": False}, (False, "", False, None)),
        ({"yanked": True}, (True, "", False, None)),
        ({"yanked": "why"}, (True, "why", False, None)),
        ({"core-metadata": True}, (False, "", True, None)),
        ({"core-metadata": False, "dist-info-metadata": True}, (False, "", False, None)),
        ({"dist-info-metadata": {"sha256": SHA_M}}, (False, "", True, SHA_M)),
        ({"dist-info-metadata": True}, (False, "", True, None)),
        ({"core-metadata": {"sha512": "ab"}}, (False, "", True, None)),
    ],
    ids=lambda v: json.dumps(v) if isinstance(v, dict) else repr(v),
)
def test_json_yanked_and_core_metadata_forms(
    fields: dict[str, Any], expected: tuple[bool, str, bool, str | None]
) -> None:
    body = json_page([file_entry("demo_pkg-1.0-py3-none-any.whl", **fields)])
    f = only_file(parse_project_page(body, JSON, PAGE, DEMO))
    assert (f.yanked, f.yanked_reason, f.core_metadata, f.core_metadata_sha256) == expected


@pytest.mark.parametrize(
    ("attrs", "expected"),
    [
        ("", (False, "", False, None)),
        ("data-yanked", (True, "", False, None)),
        ('data-yanked=""', (True, "", False, None)),
        ('data-core-metadata="true"', (False, "", True, None)),
        ('data-core-metadata="false" data-dist-info-metadata="true"', (False, "", False, None)),
        (f'data-dist-info-metadata="sha256={SHA_M}"', (False, "", True, SHA_M)),
        ('data-core-metadata="sha512=00"', (False, "", True, None)),
    ],
)
def test_html_yanked_and_core_metadata_forms(
    attrs: str, expected: tuple[bool, str, bool, str | None]
) -> None:
    body = f'<a href="/f/demo_pkg-1.0-py3-none-any.whl" {attrs}>x</a>'.encode()
    f = only_file(parse_project_page(body, HTML, PAGE, DEMO))
    assert (f.yanked, f.yanked_reason, f.core_metadata, f.core_metadata_sha256) == expected


def test_any_1x_api_version_is_read() -> None:
    body = json.dumps(
        {
            "meta": {"api-version": "1.4"},
            "name": "Demo.Pkg",
            "files": [file_entry("demo_pkg-1.0.tar.gz")],
        }
    ).encode()
    assert only_file(parse_project_page(body, JSON, PAGE, DEMO)).filename == "demo_pkg-1.0.tar.gz"


@pytest.mark.parametrize(
    ("content_type", "body", "message"),
    [
        (JSON, b"{not json", f"{PAGE}: malformed JSON page: Expecting property name enclosed"),
        (JSON, b"[]", f"{PAGE}: malformed JSON page: top level is not an object"),
        (
            JSON,
            b'{"meta": {"api-version": "2.0"}, "files": []}',
            f"{PAGE}: unsupported Simple API version '2.0'; Morgan reads 1.x (PEP 629)",
        ),
        (
            JSON,
            b'{"meta": {"api-version": "1.0"}, "files": {}}',
            f"{PAGE}: malformed JSON project page: 'files' is not a list",
        ),
        (
            JSON,
            b'{"meta": {"api-version": "1.0"}, "name": "other", "files": []}',
            f"{PAGE}: page is for project 'other', expected 'demo-pkg'",
        ),
        (
            JSON,
            json_page([file_entry("demo_pkg-1.0.tar.gz", hashes={"sha256": "xyz"})]),
            f"{PAGE}: file demo_pkg-1.0.tar.gz: sha256 'xyz' is not 64 hexadecimal digits",
        ),
        (
            JSON,
            json_page([file_entry("demo_pkg-1.0.tar.gz", size="12")]),
            f"{PAGE}: file demo_pkg-1.0.tar.gz: 'size' '12' is not a non-negative integer",
        ),
        (
            JSON,
            json_page([{"filename": "demo_pkg-1.0.tar.gz"}]),
            f"{PAGE}: malformed JSON project page: file entry without string 'filename' and 'url'",
        ),
        (
            "text/html; charset=utf-8",
            b"<a href='x'>\xff\xfe</a>",
            f"{PAGE}: page is not valid utf-8: 'utf-8' codec can't decode byte 0xff",
        ),
        (
            "text/plain",
            b"",
            f"{PAGE}: unsupported content type 'text/plain'; expected PEP 691 JSON",
        ),
    ],
    ids=[
        "bad-json",
        "not-object",
        "api-2",
        "files-not-list",
        "wrong-project",
        "bad-sha",
        "bad-size",
        "no-url",
        "bad-utf8",
        "bad-type",
    ],
)
def test_malformed_pages_raise_upstream_error_naming_the_url(
    content_type: str, body: bytes, message: str
) -> None:
    with pytest.raises(UpstreamError) as exc:
        parse_project_page(body, content_type, PAGE, DEMO)
    assert str(exc.value).startswith(message)


def test_error_messages_never_show_credentials() -> None:
    with pytest.raises(UpstreamError) as exc:
        parse_project_page(b"{", JSON, "https://me:pw@h.example/simple/demo-pkg/", DEMO)
    assert str(exc.value).startswith("https://h.example/simple/demo-pkg/: malformed JSON page")
    assert "pw" not in str(exc.value)


def test_latin1_charset_is_honoured() -> None:
    body = '<a href="/f/demo_pkg-1.0.tar.gz" data-yanked="caf\u00e9">x</a>'.encode("latin-1")
    f = only_file(parse_project_page(body, "text/html; charset=ISO-8859-1", PAGE, DEMO))
    assert f.yanked_reason == "caf\u00e9"


def test_index_page_json_and_html_give_sorted_normalized_names() -> None:
    js = json.dumps(
        {"meta": {"api-version": "1.0"}, "projects": [{"name": "Zope.Interface"}, {"name": "a_b"}]}
    ).encode()
    html = (
        b'<a href="/simple/zope-interface/">Zope.Interface</a>'
        b'<a href="/a/">A_B</a><a href="x">../x</a>'
    )
    expected = [NormalizedName("a-b"), NormalizedName("zope-interface")]
    assert parse_index_page(js, JSON, "https://h/simple/") == expected
    assert parse_index_page(html, "text/html", "https://h/simple/") == expected


_WHEEL_NAMES = [
    "demo-1.0-py3-none-any.whl",
    "demo-1.0-1-py3-none-any.whl",
    "demo-1.0-1build-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
    "Demo_Pkg-1.0-py2.py3-none-any.whl",
    "demo__pkg-1.0-py3-none-any.whl",
    "demo-1.0-x-py3-none-any.whl",
    "demo-notaversion-py3-none-any.whl",
    "demo-1.0-py3-none.whl",
    "demo-1.0-a-b-c-d-e.whl",
    "demo-1.0-py3--any.whl",
    "demo-1.0-3py-none-any.whl",
    "demo-1.0-py3.-none-any.whl",
    "-1.0-py3-none-any.whl",
    "demo.whl",
    "other-1.0-py3-none-any.whl",
]


@pytest.mark.parametrize("filename", _WHEEL_NAMES)
def test_wheel_names_are_accepted_exactly_as_packaging_parses_them(filename: str) -> None:
    """The cached fast check of a page's wheel names agrees with packaging, name by name."""
    from packaging.utils import InvalidWheelFilename, parse_wheel_filename

    from rules.lib.project_page import _distribution_version

    try:
        expected = str(parse_wheel_filename(filename)[0]) == "demo"
    except InvalidWheelFilename:
        expected = False
    for _ in range(2):  # the second answer is the cached one
        assert (_distribution_version(filename, NormalizedName("demo")) is not None) is expected


def test_absolute_json_links_keep_their_url_minus_credentials_and_fragment() -> None:
    """Plain absolute links (the fast path) and every odd form around them end as the same
    canonical URLs; a link to another scheme is dropped."""
    links = {
        "demo_pkg-1.0.tar.gz": "https://files.example/p/demo_pkg-1.0.tar.gz",
        "demo_pkg-1.1.tar.gz": "https://u:p@files.example/p/demo_pkg-1.1.tar.gz",
        "demo_pkg-1.2.tar.gz": "https://files.example/p/demo_pkg-1.2.tar.gz#sha256=00",
        "demo_pkg-1.3.tar.gz": "https://files.example/p/demo_pkg-1.3.tar.gz?x=1",
        "demo_pkg-1.4.tar.gz": "file:///etc/demo_pkg-1.4.tar.gz",
        "demo_pkg-1.5.tar.gz": "http://files.example:8080/p/%7Edemo_pkg-1.5.tar.gz",
    }
    files = [{"filename": f, "url": u, "hashes": {}} for f, u in links.items()]
    body = json.dumps({"meta": {"api-version": "1.1"}, "files": files}).encode()
    page = parse_project_page(body, JSON, "https://index.example/simple/demo-pkg/", DEMO)
    assert {f.filename: f.url for f in page.files} == {
        "demo_pkg-1.0.tar.gz": "https://files.example/p/demo_pkg-1.0.tar.gz",
        "demo_pkg-1.1.tar.gz": "https://files.example/p/demo_pkg-1.1.tar.gz",
        "demo_pkg-1.2.tar.gz": "https://files.example/p/demo_pkg-1.2.tar.gz",
        "demo_pkg-1.3.tar.gz": "https://files.example/p/demo_pkg-1.3.tar.gz?x=1",
        "demo_pkg-1.5.tar.gz": "http://files.example:8080/p/%7Edemo_pkg-1.5.tar.gz",
    }


@pytest.mark.parametrize("content_type", [JSON, HTML])
def test_files_keep_refuses_are_skipped_by_name_and_their_releases_stay(content_type: str) -> None:
    # A build keeps only the wheels its environments can use; a release whose every file
    # was refused still exists (the resolver explains "no usable file" with it).
    names = [
        "demo_pkg-1.0-cp312-cp312-win_amd64.whl",
        "demo_pkg-1.0-py3-none-any.whl",
        "demo_pkg-2.0-cp312-cp312-win_amd64.whl",
        "other-1.0-cp312-cp312-win_amd64.whl",  # not this project's: dropped, not skipped
        "demo_pkg-3.x!-cp312-cp312-win_amd64.whl",  # no version: dropped, no release 3
        "demo_pkg-2.0-cp312-cp312-win_amd64.whl",  # listed twice: one release
    ]
    if content_type == JSON:
        body = json_page([file_entry(n) for n in names])
    else:
        body = "".join(f'<a href="../../f/{n}">{n}</a>' for n in names).encode()

    def keep(filename: str) -> bool:
        return not filename.endswith("win_amd64.whl")

    page = parse_project_page(body, content_type, PAGE, DEMO, keep=keep)
    assert [f.filename for f in page.files] == ["demo_pkg-1.0-py3-none-any.whl"]
    assert page.skipped == (Version("1.0"), Version("2.0"))  # once each, the page's order
    assert "skipped" not in page.to_json()
    releases = group_releases(page)
    assert [(str(r.version), [f.filename for f in r.files]) for r in releases] == [
        ("1.0", ["demo_pkg-1.0-py3-none-any.whl"]),
        ("2.0", []),
    ]


def test_the_cached_page_is_upstreams_bytes_unless_they_may_hold_credentials(
    tmp_path: Path,
) -> None:
    # An --offline build reads the page node's blob: upstream's own bytes, parsed again;
    # a page with an "@" (a link with credentials) is kept normalized, without them.
    plain = json_page([file_entry("demo_pkg-1.0.tar.gz")])
    secret = json_page([{**file_entry("demo_pkg-1.0.tar.gz"), "url": "https://u:pw@h.example/f"}])
    store = Store(tmp_path / "store")
    for body in (plain, secret):
        client = _OnePage(PageResponse(200, body, JSON, PAGE, None))
        out, parsed = page_rule.run(client, store, DEMO, ["https://files.example/simple/"])
        assert out.page is not None
        assert parsed is not None
        blob = store.read_verified(out.page)
        assert page_rule.read_cached(out, blob, DEMO) == parsed
        again = page_rule.PageOut.from_json(json.loads(json.dumps(out.to_json())))
        assert page_rule.read_cached(again, blob, DEMO) == parsed
        if body is plain:
            assert blob == plain
        else:
            assert b"pw" not in blob
            assert parsed.files[0].url == "https://h.example/f"


class _OnePage:
    def __init__(self, response: PageResponse) -> None:
        self.response = response

    def get_page(self, url: str, *, etag: str | None = None) -> PageResponse:
        return self.response


SDIST_NAMES = [
    "demo-1.0.tar.gz",
    "Demo_Pkg-2.0rc1.zip",
    "demo.pkg-1.0.post3.tar.gz",
    "demo-pkg-1!2.0.dev4.tar.gz",
    "demo-1.0-2.tar.gz",  # version "2": the name is "demo-1.0"
    "demo-not-a-version.tar.gz",
    "demo.tar.gz",
    "-1.0.tar.gz",
    "demo-1.0+local.7.zip",
    "demo-01.00.tar.gz",
]


@pytest.mark.parametrize("filename", SDIST_NAMES)
def test_sdist_names_read_as_packaging_reads_them(filename: str) -> None:
    # The page parse reads sdist names itself (with caches): the same name and version as
    # packaging's parse, and None where packaging refuses the name.
    stem = filename[:-7] if filename.endswith(".tar.gz") else filename[:-4]
    try:
        expected: tuple[str, Version] | None = parse_sdist_filename(filename)
    except InvalidSdistFilename:
        expected = None
    assert sdist_head(stem) == expected


def test_refused_files_of_a_json_page_still_give_their_versions() -> None:
    # Entries the keep refuses are not made into files, but their releases stay known (a
    # release whose files no environment can use is still one resolution explains), and
    # a malformed entry is an error whether or not the keep would refuse it.
    files = [
        {"filename": "demo-1.0-py3-none-win_arm64.whl", "url": "https://f.example/a.whl"},
        {"filename": "demo-2.0.tar.gz", "url": "https://f.example/demo-2.0.tar.gz"},
        {"filename": "other-3.0.tar.gz", "url": "https://f.example/other-3.0.tar.gz"},
    ]
    body = json.dumps({"meta": {"api-version": "1.1"}, "name": "demo", "files": files})
    page = parse_project_page(
        body.encode(),
        "application/vnd.pypi.simple.v1+json",
        "https://i.example/simple/demo/",
        NormalizedName("demo"),
        keep=lambda name: not name.endswith("win_arm64.whl"),
    )
    assert [f.filename for f in page.files] == ["demo-2.0.tar.gz"]
    assert page.skipped == (Version("1.0"),)
    bad = {"meta": {"api-version": "1.1"}, "files": [{"filename": "demo-1.0.tar.gz", "url": 7}]}
    with pytest.raises(UpstreamError, match="file entry without string 'filename' and 'url'"):
        parse_project_page(
            json.dumps(bad).encode(),
            "application/vnd.pypi.simple.v1+json",
            "https://i.example/simple/demo/",
            NormalizedName("demo"),
            keep=lambda name: False,
        )
