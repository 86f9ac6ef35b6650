"""Rendered pages: exact bytes, deterministic, and accepted by real pip and uv."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import BinaryIO, NamedTuple

import pytest

from rules.lib.project_page import parse_project_page
from rules.lib.render import (
    render_index_html,
    render_index_json,
    render_project_html,
    render_project_json,
)
from rules.model import MirrorFile, NormalizedName
from tests import clients

DEMO = NormalizedName("demo-pkg")
SHA_A = "a" * 64
SHA_M = "c" * 64


def mirror_file(filename: str, **changes: object) -> MirrorFile:
    values: dict[str, object] = {
        "filename": filename,
        "sha256": SHA_A,
        "blake3": "b" * 64,
        "size": 10,
        "upload_time": None,
        "requires_python": None,
        "yanked": False,
        "yanked_reason": "",
        "metadata_sha256": None,
        "metadata_blake3": None,
    }
    values.update(changes)
    return MirrorFile(**values)  # type: ignore[arg-type]


FILES = [
    mirror_file(
        "demo_pkg-1.0-py3-none-any.whl",
        requires_python=">=3.8,<4",
        upload_time="2024-01-02T03:04:05.000000Z",
        metadata_sha256=SHA_M,
        metadata_blake3="d" * 64,
    ),
    mirror_file("demo_pkg-1.0.tar.gz", yanked=True, yanked_reason='bad "quote" & <tag>'),
    mirror_file("demo_pkg-1.0+local.1-py3-none-any.whl", yanked=True),
    mirror_file("demo_pkg-1!0.5.zip"),
]


def test_project_html_exact_bytes() -> None:
    assert render_project_html(DEMO, FILES).decode() == (
        "<!DOCTYPE html>\n"
        "<html>\n"
        "  <head>\n"
        '    <meta name="pypi:repository-version" content="1.1">\n'
        "    <title>Links for demo-pkg</title>\n"
        "  </head>\n"
        "  <body>\n"
        "    <h1>Links for demo-pkg</h1>\n"
        f'    <a href="demo_pkg-1!0.5.zip#sha256={SHA_A}">demo_pkg-1!0.5.zip</a><br>\n'
        f'    <a href="demo_pkg-1.0+local.1-py3-none-any.whl#sha256={SHA_A}" data-yanked="">'
        "demo_pkg-1.0+local.1-py3-none-any.whl</a><br>\n"
        f'    <a href="demo_pkg-1.0-py3-none-any.whl#sha256={SHA_A}" '
        'data-requires-python="&gt;=3.8,&lt;4" '
        f'data-core-metadata="sha256={SHA_M}" data-dist-info-metadata="sha256={SHA_M}">'
        "demo_pkg-1.0-py3-none-any.whl</a><br>\n"
        f'    <a href="demo_pkg-1.0.tar.gz#sha256={SHA_A}" '
        'data-yanked="bad &quot;quote&quot; &amp; &lt;tag&gt;">demo_pkg-1.0.tar.gz</a><br>\n'
        "  </body>\n"
        "</html>\n"
    )


def test_project_json_content() -> None:
    page = json.loads(render_project_json(DEMO, FILES))
    assert page == {
        "meta": {"api-version": "1.1"},
        "name": "demo-pkg",
        "versions": ["1.0", "1.0+local.1", "1!0.5"],
        "files": [
            {
                "filename": "demo_pkg-1!0.5.zip",
                "url": "demo_pkg-1!0.5.zip",
                "hashes": {"sha256": SHA_A},
                "size": 10,
                "yanked": False,
                "core-metadata": False,
            },
            {
                "filename": "demo_pkg-1.0+local.1-py3-none-any.whl",
                "url": "demo_pkg-1.0+local.1-py3-none-any.whl",
                "hashes": {"sha256": SHA_A},
                "size": 10,
                "yanked": True,
                "core-metadata": False,
            },
            {
                "filename": "demo_pkg-1.0-py3-none-any.whl",
                "url": "demo_pkg-1.0-py3-none-any.whl",
                "hashes": {"sha256": SHA_A},
                "size": 10,
                "requires-python": ">=3.8,<4",
                "upload-time": "2024-01-02T03:04:05.000000Z",
                "yanked": False,
                "core-metadata": {"sha256": SHA_M},
            },
            {
                "filename": "demo_pkg-1.0.tar.gz",
                "url": "demo_pkg-1.0.tar.gz",
                "hashes": {"sha256": SHA_A},
                "size": 10,
                "yanked": 'bad "quote" & <tag>',
                "core-metadata": False,
            },
        ],
    }
    assert b"dist-info-metadata" not in render_project_json(DEMO, FILES)


def test_same_input_in_any_order_gives_the_same_bytes() -> None:
    shuffled = [FILES[2], FILES[0], FILES[3], FILES[1]]
    assert render_project_html(DEMO, shuffled) == render_project_html(DEMO, FILES)
    assert render_project_json(DEMO, shuffled) == render_project_json(DEMO, FILES)
    names = [NormalizedName("b"), NormalizedName("a-c"), NormalizedName("b")]
    assert render_index_json(names) == render_index_json(sorted(names))
    assert render_index_html(names) == render_index_html(sorted(names))


def test_rendered_pages_parse_back_to_the_same_facts() -> None:
    for body, content_type in [
        (render_project_html(DEMO, FILES), "text/html"),
        (render_project_json(DEMO, FILES), "application/vnd.pypi.simple.v1+json"),
    ]:
        page = parse_project_page(body, content_type, "https://m.example/simple/demo-pkg/", DEMO)
        got = [
            (f.filename, f.url, f.sha256, f.requires_python, f.yanked, f.core_metadata_sha256)
            for f in page.files
        ]
        assert got == [
            (
                f.filename,
                f"https://m.example/simple/demo-pkg/{f.filename}",
                f.sha256,
                f.requires_python,
                f.yanked,
                f.metadata_sha256,
            )
            for f in sorted(FILES, key=lambda f: f.filename)
        ]


def test_index_pages_exact() -> None:
    names = [NormalizedName("zope-interface"), NormalizedName("a-b")]
    assert render_index_html(names).decode() == (
        "<!DOCTYPE html>\n"
        "<html>\n"
        "  <head>\n"
        '    <meta name="pypi:repository-version" content="1.1">\n'
        "    <title>Simple index</title>\n"
        "  </head>\n"
        "  <body>\n"
        '    <a href="a-b/">a-b</a><br>\n'
        '    <a href="zope-interface/">zope-interface</a><br>\n'
        "  </body>\n"
        "</html>\n"
    )
    assert render_index_json(names) == (
        b'{"meta": {"api-version": "1.1"}, '
        b'"projects": [{"name": "a-b"}, {"name": "zope-interface"}]}\n'
    )


@pytest.mark.parametrize("bad", ["Demo", "../x", "a/b", "a--b", ""])
def test_unnormalized_names_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="is not a normalized name"):
        render_index_html([NormalizedName(bad)])
    with pytest.raises(ValueError, match="is not a normalized name"):
        render_project_json(NormalizedName(bad), [])


def test_duplicate_filenames_are_refused() -> None:
    with pytest.raises(ValueError, match=r"'demo_pkg-1\.0\.tar\.gz' is listed twice"):
        render_project_html(DEMO, [FILES[1], FILES[1]])


# --- real clients ---------------------------------------------------------------------------


def wheel_bytes(name: str, version: str, requires: list[str]) -> tuple[bytes, bytes]:
    """A minimal valid wheel and its METADATA bytes (what PEP 658 serves)."""
    dist_info = f"{name}-{version}.dist-info"
    metadata = "Metadata-Version: 2.1\nName: {}\nVersion: {}\n{}\n".format(
        name.replace("_", "-"), version, "".join(f"Requires-Dist: {r}\n" for r in requires)
    ).encode()
    members = {
        f"{name}/__init__.py": b"",
        f"{dist_info}/METADATA": metadata,
        f"{dist_info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
        b"Tag: py3-none-any\n",
    }
    record = "".join(f"{path},,\n" for path in members) + f"{dist_info}/RECORD,,\n"
    members[f"{dist_info}/RECORD"] = record.encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path, data in members.items():
            archive.writestr(path, data)
    return buffer.getvalue(), metadata


def add_wheel(
    root: Path, project: str, version: str, requires: list[str], **changes: object
) -> MirrorFile:
    module = project.replace("-", "_")
    data, metadata = wheel_bytes(module, version, requires)
    filename = f"{module}-{version}-py3-none-any.whl"
    folder = root / project
    folder.mkdir(parents=True, exist_ok=True)
    (folder / filename).write_bytes(data)
    (folder / f"{filename}.metadata").write_bytes(metadata)
    return mirror_file(
        filename,
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
        metadata_sha256=hashlib.sha256(metadata).hexdigest(),
        **changes,
    )


@pytest.fixture(scope="module")
def index_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """demo-pkg: 1.0 (needs dep-pkg), 2.0 yanked, 3.0 for Python 4 only; dep-pkg: 0.5+local."""
    root = tmp_path_factory.mktemp("index") / "simple"
    projects = {
        NormalizedName("demo-pkg"): [
            add_wheel(root, "demo-pkg", "1.0", ["dep-pkg"], requires_python=">=3.8"),
            add_wheel(root, "demo-pkg", "2.0", [], yanked=True, yanked_reason="broken"),
            add_wheel(root, "demo-pkg", "3.0", [], requires_python=">=4"),
        ],
        NormalizedName("dep-pkg"): [add_wheel(root, "dep-pkg", "0.5+local", [])],
    }
    for name, files in projects.items():
        (root / name / "index.html").write_bytes(render_project_html(name, files))
        (root / name / "index.json").write_bytes(render_project_json(name, files))
    (root / "index.html").write_bytes(render_index_html(list(projects)))
    (root / "index.json").write_bytes(render_index_json(list(projects)))
    return root


class Index(NamedTuple):
    url: str
    page_type: str  # the Content-Type this index answers with to pip and uv
    page_types: set[str]  # the Content-Types of the project pages the clients fetched


def serve(root: Path, prefer_json: bool) -> Iterator[Index]:
    page_types: set[str] = set()

    class Handler(SimpleHTTPRequestHandler):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, directory=str(root.parent), **kwargs)  # type: ignore[arg-type]

        def send_head(self) -> io.BytesIO | BinaryIO | None:
            wants_json = "application/vnd.pypi.simple.v1+json" in self.headers.get("Accept", "")
            if prefer_json and wants_json and self.path.endswith("/"):
                self.path += "index.json"
            return super().send_head()

        def guess_type(self, path: str | os.PathLike[str]) -> str:
            kind = "application/octet-stream"
            if str(path).endswith("index.json"):
                kind = "application/vnd.pypi.simple.v1+json"
            elif str(path).endswith(".html"):
                kind = "text/html; charset=utf-8"
            if self.path.startswith("/simple/demo-pkg/") and kind != "application/octet-stream":
                page_types.add(kind)
            return kind

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/simple/"
        kind = "application/vnd.pypi.simple.v1+json" if prefer_json else "text/html; charset=utf-8"
        yield Index(url, kind, page_types)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(params=["json", "html"])
def index(request: pytest.FixtureRequest, index_tree: Path) -> Iterator[Index]:
    yield from serve(index_tree, prefer_json=request.param == "json")


def pip_download(index: str, dest: Path) -> list[str]:
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "pip", "download", "--isolated", "--no-cache-dir"),
            *("--index-url", index, "--only-binary=:all:", "-d", str(dest), "demo-pkg"),
        ],
        env=clients.pip_env(dest.parent),
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return sorted(p.name for p in dest.iterdir())


EXPECTED_DOWNLOAD = ["demo_pkg-1.0-py3-none-any.whl", "dep_pkg-0.5+local-py3-none-any.whl"]


def test_pip_downloads_from_rendered_pages_over_http(index: Index, tmp_path: Path) -> None:
    assert pip_download(index.url, tmp_path / "dl") == EXPECTED_DOWNLOAD
    assert index.page_types == {index.page_type}


def test_pip_downloads_from_rendered_pages_over_file_url(index_tree: Path, tmp_path: Path) -> None:
    assert pip_download(index_tree.as_uri() + "/", tmp_path / "dl") == EXPECTED_DOWNLOAD


def test_uv_compiles_against_rendered_pages(index: Index, tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.in"
    requirements.write_text("demo-pkg\n")
    proc = subprocess.run(
        [
            *("uv", "pip", "compile", "--no-cache", "--no-header", "--no-annotate"),
            *("--python-version", "3.11", "--index-url", index.url, str(requirements)),
        ],
        env=clients.pip_env(tmp_path),
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["demo-pkg==1.0", "dep-pkg==0.5+local"]
    assert index.page_types == {index.page_type}
