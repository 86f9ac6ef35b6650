"""Every page the mirror serves, read by clients that are not ours, agrees with mirror.lock.

The build acceptance scenario (tests/build_scenario.py, plus one release yanked *with a
reason* full of HTML-special characters) is built with the real CLI and served by the
mirror's own ``server.py``. Every page — the union index and each environment's view, the
project list and every project page, in PEP 691 JSON and in PEP 503 HTML — is then read by
two independent readers:

- ``pypi-simple`` (a PEP 503/691/700 client library from PyPI), which reads every field;
- pip's own link collector (``pip._internal.index.collector.parse_links``): what pip, the
  client most users have, actually sees.

Each field is checked against ``mirror.lock`` (read with ``tomllib``, not with our reader):
sha256, size, upload-time, requires-python, yanked and its reason, the core-metadata hash
(and the sha256 of the ``.metadata`` bytes served), the versions list; JSON never carries
``dist-info-metadata`` and HTML's ``data-dist-info-metadata`` equals ``data-core-metadata``.
"""

from __future__ import annotations

import hashlib
import json
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import Version
from pip._internal.index.collector import IndexContent, parse_links
from pip._internal.models.link import Link
from pypi_simple import DistributionPackage, IndexPage, ProjectPage
from pypi_simple.html import RepositoryPage

from morgan.environments import Environment
from tests.build_scenario import ENVIRONMENTS, REQUIREMENTS, morgan, populate, write_spec
from tests.server_process import ServerProcess, server_process
from tests.upstream import FakeUpstream

pytestmark = pytest.mark.slow

JSON_TYPE = "application/vnd.pypi.simple.v1+json"
HTML_TYPE = "text/html; charset=utf-8"
# A reason that must survive HTML attribute escaping and JSON string escaping intact.
YANK_REASON = "broken \"build\" <3.0 & 'quoted'"
VIEWS = ["union", *sorted(ENVIRONMENTS)]


@dataclass(frozen=True)
class LockFile:
    """One file of mirror.lock, as the lock says it (raw TOML values)."""

    project: str
    version: str
    data: dict[str, Any]

    @property
    def filename(self) -> str:
        return str(self.data["filename"])


@dataclass
class Mirror:
    server: ServerProcess
    workspace: Path
    lock: dict[str, Any]
    session: requests.Session

    def base(self, view: str) -> str:
        return self.server.url + ("simple/" if view == "union" else f"env/{view}/simple/")

    def get(self, url: str, accept: str | None = None) -> requests.Response:
        headers = {"Accept": accept} if accept else {}
        resp = self.session.get(url, headers=headers, allow_redirects=False, timeout=30)
        assert resp.status_code == 200, (url, resp.status_code, resp.text[:200])
        return resp


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mirror]:
    root = tmp_path_factory.mktemp("conformance")
    with FakeUpstream(root / "upstream").start() as up:
        populate(up)
        up.add_release("reasoned", "1.0", yanked=YANK_REASON, requires_python=">=3.8, <4")
        workspace = root / "ws"
        write_spec(workspace, up.url, [*REQUIREMENTS, "reasoned==1.0"])
        proc = morgan(workspace, "build")
        assert proc.returncode == 0, proc.stderr
        lock = tomllib.loads((workspace / "mirror.lock").read_text(encoding="utf-8"))
        cmd = [sys.executable, str(workspace / "mirror" / "server.py"), "--port", "0"]
        with server_process(cmd, root / "server.log") as server, requests.Session() as s:
            yield Mirror(server, workspace, lock, s)


# -- what the lock says each page must list ---------------------------------------------------


def lock_files(lock: dict[str, Any]) -> dict[str, list[LockFile]]:
    """Project name -> every file of every locked release of it."""
    out: dict[str, list[LockFile]] = {}
    for rel in lock["release"]:
        for f in rel["files"]:
            out.setdefault(rel["name"], []).append(LockFile(rel["name"], rel["version"], f))
    return out


def _fits(filename: str, tags: frozenset[str]) -> bool:
    if not filename.endswith(".whl"):
        return True  # the sdist is listed for every environment (it may be built there)
    return any(str(t) in tags for t in parse_wheel_filename(filename)[3])


def expected_files(lock: dict[str, Any], view: str) -> dict[str, list[LockFile]]:
    """Project name -> the files ``view`` must list: all for the union; for an environment,
    the files of its pinned release that fit it (yanked ones only when nothing else does)."""
    every = lock_files(lock)
    if view == "union":
        return every
    python, platform = ENVIRONMENTS[view]
    tags = frozenset(
        str(t) for t in Environment(name=view, python=python, platform=platform).tags()
    )
    out: dict[str, list[LockFile]] = {}
    for pin in lock["environment"][view]["pins"]:
        release = [f for f in every[pin["name"]] if f.version == pin["version"]]
        fitting = [f for f in release if _fits(f.filename, tags)]
        live = [f for f in fitting if not f.data["yanked"]]
        out[pin["name"]] = live or fitting
    return out


def by_version(files: list[LockFile]) -> list[str]:
    return sorted({f.version for f in files}, key=Version)


# -- the checks ---------------------------------------------------------------------------------


def check_package(pkg: DistributionPackage, want: LockFile, page_url: str, fmt: str) -> None:
    """One pypi-simple file entry against its lock entry."""
    lock = want.data
    assert pkg.url == page_url + want.filename
    assert pkg.digests == {"sha256": lock["sha256"]}
    assert pkg.requires_python == lock.get("requires-python")
    assert pkg.is_yanked is lock["yanked"]
    if lock["yanked"]:
        # JSON says `"yanked": true` when there is no reason; HTML says `data-yanked=""`.
        no_reason = None if fmt == "json" else ""
        assert pkg.yanked_reason == lock.get("yanked-reason", no_reason)
    meta = lock.get("metadata-sha256")
    assert pkg.has_metadata is (True if meta else (False if fmt == "json" else None))
    assert pkg.metadata_digests == ({"sha256": meta} if meta else None)
    if fmt == "json":  # PEP 700 fields exist in JSON only
        assert pkg.size == lock["size"]
        upload = datetime.strptime(lock["upload-time"], "%Y-%m-%dT%H:%M:%S.%fZ")
        assert pkg.upload_time == upload.replace(tzinfo=UTC)


def check_pip_link(link: Link, want: LockFile, page_url: str, fmt: str) -> None:
    """One file as pip sees it against its lock entry."""
    lock = want.data
    assert link.url_without_fragment == page_url + want.filename
    assert link.filename == want.filename
    assert link.as_hashes().digest_count == 1
    assert link.as_hashes().is_hash_allowed("sha256", lock["sha256"])
    assert link.requires_python == lock.get("requires-python")
    assert link.yanked_reason == (lock.get("yanked-reason", "") if lock["yanked"] else None)
    meta = lock.get("metadata-sha256")
    if meta:
        assert link.metadata_file_data is not None
        assert link.metadata_file_data.hashes == {"sha256": meta}
        metadata_link = link.metadata_link()
        assert metadata_link is not None
        assert metadata_link.url_without_fragment == page_url + want.filename + ".metadata"
    else:
        assert link.metadata_file_data is None
    if fmt == "json":
        assert link.upload_time is not None
        assert link.upload_time.strftime("%Y-%m-%dT%H:%M:%S.%fZ") == lock["upload-time"]


def check_served_bytes(m: Mirror, page_url: str, want: LockFile) -> None:
    """The file and its .metadata, fetched through the page's links, hash as the lock says."""
    lock = want.data
    body = m.get(page_url + want.filename).content
    assert (len(body), hashlib.sha256(body).hexdigest()) == (lock["size"], lock["sha256"])
    meta = lock.get("metadata-sha256")
    if meta:
        metadata = m.get(page_url + want.filename + ".metadata").content
        assert hashlib.sha256(metadata).hexdigest() == meta


def test_scenario_exercises_every_field(mirror: Mirror) -> None:
    """The lock really holds yanked files with and without a reason, requires-python, sdists
    without and wheels with .metadata: otherwise the checks below would prove less."""
    files = [f.data for fs in lock_files(mirror.lock).values() for f in fs]
    assert {f.get("yanked-reason") for f in files if f["yanked"]} == {None, YANK_REASON}
    assert {f.get("requires-python") for f in files} == {None, ">=3.10", ">=3.8, <4"}
    assert {f["filename"].endswith(".whl") for f in files if f.get("metadata-sha256")} == {True}
    assert any(not f["filename"].endswith(".whl") for f in files)


@pytest.mark.parametrize("view", VIEWS)
def test_project_list_pages(mirror: Mirror, view: str) -> None:
    base = mirror.base(view)
    want = sorted(expected_files(mirror.lock, view))
    resp = mirror.get(base, JSON_TYPE)
    assert resp.headers["Content-Type"] == JSON_TYPE
    listing = IndexPage.from_json_data(resp.json())
    assert listing.repository_version == "1.1"
    assert sorted(canonicalize_name(p) for p in listing.projects) == want
    resp = mirror.get(base, "text/html")
    assert resp.headers["Content-Type"] == HTML_TYPE
    page = RepositoryPage.from_html(resp.content, base_url=base, from_encoding="utf-8")
    assert page.repository_version == "1.1"
    assert sorted(link.text for link in page.links) == want
    assert sorted(link.url for link in page.links) == [f"{base}{name}/" for name in want]


@pytest.mark.parametrize("view", VIEWS)
def test_project_pages_in_json(mirror: Mirror, view: str) -> None:
    checked = 0
    for project, want in sorted(expected_files(mirror.lock, view).items()):
        url = f"{mirror.base(view)}{project}/"
        resp = mirror.get(url, JSON_TYPE)
        assert resp.headers["Content-Type"] == JSON_TYPE
        raw = json.loads(resp.content)
        # PEP 714: the old key must never appear in JSON (some pip versions crash on it).
        assert [f for f in raw["files"] if "dist-info-metadata" in f] == []
        # PEP 700 on the wire: size and upload-time exactly as locked (upstream's time).
        wire = {f["filename"]: (f["size"], f["upload-time"]) for f in raw["files"]}
        assert wire == {w.filename: (w.data["size"], w.data["upload-time"]) for w in want}
        page = ProjectPage.from_json_data(raw, base_url=url)
        assert (page.project, page.repository_version) == (project, "1.1")
        assert page.versions is not None
        assert sorted(page.versions, key=Version) == by_version(want)
        assert len(page.versions) == len(set(page.versions))
        wanted = {w.filename: w for w in want}
        assert sorted(p.filename for p in page.packages) == sorted(wanted)
        for pkg in page.packages:
            check_package(pkg, wanted[pkg.filename], url, "json")
        links = list(parse_links(IndexContent(resp.content, JSON_TYPE, None, url)))
        assert sorted(link.filename for link in links) == sorted(wanted)
        for link in links:
            check_pip_link(link, wanted[link.filename], url, "json")
            check_served_bytes(mirror, url, wanted[link.filename])
            checked += 1
    assert checked == sum(len(v) for v in expected_files(mirror.lock, view).values())


@pytest.mark.parametrize("view", VIEWS)
def test_project_pages_in_html(mirror: Mirror, view: str) -> None:
    for project, want in sorted(expected_files(mirror.lock, view).items()):
        url = f"{mirror.base(view)}{project}/"
        resp = mirror.get(url, "text/html")
        assert resp.headers["Content-Type"] == HTML_TYPE
        page = ProjectPage.from_html(project, resp.content, base_url=url, from_encoding="utf-8")
        assert page.repository_version == "1.1"
        wanted = {w.filename: w for w in want}
        assert sorted(p.filename for p in page.packages) == sorted(wanted)
        for pkg in page.packages:
            check_package(pkg, wanted[pkg.filename], url, "html")
        versions = {p.version for p in page.packages}
        assert sorted(v for v in versions if v is not None) == by_version(want)
        # Old pip reads only data-dist-info-metadata: it must carry the same value.
        for anchor in RepositoryPage.from_html(resp.content, base_url=url).links:
            assert anchor.get_str_attrib("data-dist-info-metadata") == anchor.get_str_attrib(
                "data-core-metadata"
            )
        content = IndexContent(resp.content, resp.headers["Content-Type"], "utf-8", url)
        links = list(parse_links(content))
        assert sorted(link.filename for link in links) == sorted(wanted)
        for link in links:
            check_pip_link(link, wanted[link.filename], url, "html")


def test_every_page_was_read(mirror: Mirror) -> None:
    """The views and projects read above are all those the served generation holds."""
    index = mirror.workspace / "mirror" / "index"
    assert sorted(p.name for p in (index / "env").iterdir()) == sorted(ENVIRONMENTS)
    for view in VIEWS:
        simple = index / "simple" if view == "union" else index / "env" / view / "simple"
        on_disk = sorted(p.name for p in simple.iterdir() if p.is_dir())
        assert on_disk == sorted(expected_files(mirror.lock, view)), view
