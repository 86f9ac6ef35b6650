"""PEP 792 project status: read from upstream pages, passed through, warned about, refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rules.lib.project_page import parse_project_page
from rules.model import NormalizedName
from tests.build_scenario import morgan
from tests.upstream import FakeUpstream

OLD = NormalizedName("old")
ENV = '\n[environments.linux]\npython = "3.11"\nplatform = "manylinux_2_28_x86_64"\n'


def test_status_read_from_json_and_html() -> None:
    page_json = json.dumps(
        {
            "meta": {"api-version": "1.4"},
            "name": "old",
            "files": [],
            "project-status": {"status": "archived", "reason": "moved to new"},
        }
    ).encode()
    parsed = parse_project_page(
        page_json, "application/vnd.pypi.simple.v1+json", "https://x/simple/old/", OLD
    )
    assert (parsed.status, parsed.status_reason) == ("archived", "moved to new")
    page_html = (
        b'<html><head><meta name="pypi:repository-version" content="1.4">'
        b'<meta name="pypi:project-status" content="deprecated">'
        b'<meta name="pypi:project-status-reason" content="use &quot;new&quot;">'
        b"</head><body></body></html>"
    )
    parsed = parse_project_page(page_html, "text/html", "https://x/simple/old/", OLD)
    assert (parsed.status, parsed.status_reason) == ("deprecated", 'use "new"')
    # A status PEP 792 does not define reads as active.
    odd = json.dumps({"name": "old", "files": [], "project-status": {"status": "sleepy"}})
    parsed = parse_project_page(
        odd.encode(), "application/vnd.pypi.simple.v1+json", "https://x/simple/old/", OLD
    )
    assert parsed.status == "active"
    # An active page keeps its canonical form (and digest).
    assert "status" not in parsed.to_json()


def _spec(ws: Path, url: str, requirements: str, policy: str = "") -> None:
    ws.mkdir(parents=True, exist_ok=True)
    (ws / "mirror.toml").write_text(
        f'requirements = [{requirements}]\n[upstream]\nindex-url = "{url}"\n{ENV}{policy}'
    )


def _page(ws: Path, project: str, kind: str) -> str:
    return (ws / "mirror" / "index" / "simple" / project / f"index.{kind}").read_text()


@pytest.mark.parametrize("html_only", [False, True], ids=["json-upstream", "html-upstream"])
def test_status_passes_through_and_warns(
    upstream: FakeUpstream, tmp_path: Path, html_only: bool
) -> None:
    upstream.html_only = html_only
    upstream.add_release("old", "1.0", sdist=False)
    upstream.add_release("dusty", "1.0", sdist=False)
    upstream.add_release("fresh", "1.0", sdist=False)
    upstream.statuses["old"] = ("deprecated", "use fresh")
    upstream.statuses["dusty"] = ("archived", "")
    ws = tmp_path / "ws"
    _spec(ws, upstream.url, '"old", "dusty", "fresh"')
    proc = morgan(ws, "build")
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if "warning" in line]
    assert warnings == [
        "morgan: warning: dusty is archived upstream: expect no more releases",
        "morgan: warning: old is deprecated upstream (use fresh)",
    ]
    page = json.loads(_page(ws, "old", "json"))
    assert page["meta"] == {"api-version": "1.4"}
    assert page["project-status"] == {"status": "deprecated", "reason": "use fresh"}
    assert json.loads(_page(ws, "dusty", "json"))["project-status"] == {"status": "archived"}
    assert "project-status" not in json.loads(_page(ws, "fresh", "json"))
    html = _page(ws, "old", "html")
    assert '<meta name="pypi:project-status" content="deprecated">' in html
    assert '<meta name="pypi:project-status-reason" content="use fresh">' in html
    assert "project-status" not in _page(ws, "fresh", "html")
    assert (
        'name = "old"\nstatus = "deprecated"\nreason = "use fresh"\n'
        in (ws / "mirror.lock").read_text()
    )
    # Rebuilt from the lock alone (no page asked for), the pages and warnings are the same.
    before = _page(ws, "old", "json")
    (ws / "mirror" / "build-stamp.json").unlink()  # take the full path, not the no-op one
    upstream.clear_requests()
    proc = morgan(ws, "build")
    assert proc.returncode == 0, proc.stderr
    assert upstream.page_requests() == []
    assert _page(ws, "old", "json") == before
    assert "morgan: warning: old is deprecated upstream (use fresh)" in proc.stderr


def test_quarantined_is_refused_unless_allowed(upstream: FakeUpstream, tmp_path: Path) -> None:
    upstream.add_release("app", "1.0", sdist=False, requires_dist=["bad"])
    upstream.add_release("bad", "1.0", sdist=False)
    upstream.statuses["bad"] = ("quarantined", "malware report")
    ws = tmp_path / "ws"
    _spec(ws, upstream.url, '"app"')
    proc = morgan(ws, "build")
    assert proc.returncode == 1
    assert proc.stderr.splitlines()[-1] == (
        "morgan: error: bad: upstream marks the project quarantined (malware report) (PEP 792) "
        "— refused; remove what requires it, or allow it by name: [policy] allow-quarantined = "
        '["bad"]'
    )
    assert not (ws / "mirror.lock").exists()
    assert not (ws / "mirror" / "index").exists()
    _spec(ws, upstream.url, '"app"', '\n[policy]\nallow-quarantined = ["Bad"]\n')
    proc = morgan(ws, "build")
    assert proc.returncode == 0, proc.stderr
    assert (
        "morgan: warning: bad is quarantined upstream (malware report); mirrored because "
        "[policy] allow-quarantined names it"
    ) in proc.stderr
    page = json.loads(_page(ws, "bad", "json"))
    assert page["project-status"] == {"status": "quarantined", "reason": "malware report"}


def test_quarantined_without_files_names_the_status(upstream: FakeUpstream, tmp_path: Path) -> None:
    """PyPI lists no files for a quarantined project: the resolution error says why."""
    upstream.add_release("app", "1.0", sdist=False, requires_dist=["bad"])
    upstream.add_release("bad", "1.0", sdist=False, yanked=True)  # as good as no files
    upstream.statuses["bad"] = ("quarantined", "")
    ws = tmp_path / "ws"
    _spec(ws, upstream.url, '"app"', '\n[policy]\nyanked = "skip"\n')
    proc = morgan(ws, "build")
    assert proc.returncode == 1
    assert (
        'bad: 1.0 yanked upstream, and [policy] yanked = "skip" keeps none (newest release: '
        "1.0) (upstream marks the project quarantined); needed by 'bad' (required by app 1.0)"
    ) in proc.stderr
