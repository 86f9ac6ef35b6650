"""Incremental builds and build errors, observed through the fake upstream's request log."""

from __future__ import annotations

import json
import tomllib
import urllib.request
from pathlib import Path

from rules.lib.http import PAGE_ACCEPT
from tests.build_scenario import morgan
from tests.upstream import FakeUpstream


def spec(ws: Path, url: str, requirements: list[str]) -> None:
    ws.mkdir(parents=True, exist_ok=True)
    reqs = ", ".join(f'"{r}"' for r in requirements)
    (ws / "mirror.toml").write_text(
        f'requirements = [{reqs}]\n\n[upstream]\nindex-url = "{url}"\n\n'
        '[environments.linux]\npython = "3.11"\nplatform = "manylinux_2_28_x86_64"\n\n'
        '[environments.old]\npython = "3.8"\nplatform = "manylinux2014_x86_64"\n'
    )


def pins(ws: Path, env: str = "linux") -> dict[str, str]:
    data = tomllib.loads((ws / "mirror.lock").read_text())
    return {p["name"]: p["version"] for p in data["environment"][env]["pins"]}


def small(up: FakeUpstream) -> None:
    up.add_release("top", "1.0", requires_dist=["mid>=1"])
    up.add_release("mid", "1.0", requires_dist=["leaf"])
    up.add_release("leaf", "1.0")
    up.add_release("other", "1.0")


def test_adding_a_requirement_keeps_locked_versions_and_fetches_only_new_pages(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    small(upstream)
    ws = tmp_path / "ws"
    spec(ws, upstream.url, ["top"])
    assert morgan(ws, "build").returncode == 0
    assert pins(ws) == {"top": "1.0", "mid": "1.0", "leaf": "1.0"}
    upstream.add_release("mid", "2.0", requires_dist=["leaf"])
    upstream.clear_requests()
    spec(ws, upstream.url, ["top", "other"])
    proc = morgan(ws, "build", "--explain")
    assert proc.returncode == 0, proc.stderr
    # mid stays at its locked 1.0 although 2.0 appeared; only the new project's page is asked.
    assert pins(ws) == {"top": "1.0", "mid": "1.0", "leaf": "1.0", "other": "1.0"}
    assert upstream.page_requests() == ["/simple/other/"]
    assert sorted(upstream.file_requests()) == [
        "/files/other-1.0-py3-none-any.whl",
        "/files/other-1.0-py3-none-any.whl.metadata",
        "/files/other-1.0.tar.gz",
    ]
    assert "ran page:other: volatile (upstream page refresh)" in proc.stderr
    # The root pages list one more project: the parameter naming the projects changed.
    for view in ("env-linux", "env-old", "union"):
        assert f"ran index:{view}: parameter projects changed" in proc.stderr
    assert "ran file:other-1.0-py3-none-any.whl:" in proc.stderr
    assert "ran page:mid" not in proc.stderr
    assert "new generation 2" in proc.stderr


def test_upgrade_refreshes_pages_and_takes_newer_versions(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    small(upstream)
    ws = tmp_path / "ws"
    spec(ws, upstream.url, ["top"])
    assert morgan(ws, "build").returncode == 0
    upstream.add_release("mid", "2.0", requires_dist=["leaf"])
    upstream.add_release("leaf", "2.0")
    proc = morgan(ws, "build", "--upgrade", "mid")
    assert proc.returncode == 0, proc.stderr
    assert pins(ws) == {"top": "1.0", "mid": "2.0", "leaf": "1.0"}
    proc = morgan(ws, "build", "--upgrade")
    assert proc.returncode == 0, proc.stderr
    assert pins(ws) == {"top": "1.0", "mid": "2.0", "leaf": "2.0"}


def test_missing_blob_is_refetched_with_explanation(upstream: FakeUpstream, tmp_path: Path) -> None:
    small(upstream)
    ws = tmp_path / "ws"
    spec(ws, upstream.url, ["leaf"])
    assert morgan(ws, "build").returncode == 0
    lock = tomllib.loads((ws / "mirror.lock").read_text())
    sdist = next(f for f in lock["release"][0]["files"] if f["filename"].endswith(".tar.gz"))
    blob = ws / "mirror" / "store" / "objects" / sdist["blake3"][:2] / sdist["blake3"]
    blob.unlink()
    upstream.clear_requests()
    proc = morgan(ws, "build", "--explain")
    assert proc.returncode == 0, proc.stderr
    assert upstream.page_requests() == []
    assert upstream.file_requests() == ["/files/leaf-1.0.tar.gz"]
    reason = f"output missing (blake3:{sdist['blake3']})"
    assert f"ran file:leaf-1.0.tar.gz:{sdist['sha256'][:16]}: {reason}" in proc.stderr
    assert blob.exists()


def test_offline_without_the_blob_fails_clearly(upstream: FakeUpstream, tmp_path: Path) -> None:
    small(upstream)
    ws = tmp_path / "ws"
    spec(ws, upstream.url, ["leaf"])
    assert morgan(ws, "build").returncode == 0
    store = ws / "mirror" / "store" / "objects"
    for p in store.rglob("*"):
        if p.is_file():
            p.chmod(0o644)
            p.unlink()
    upstream.clear_requests()
    proc = morgan(ws, "build", "--offline")
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith("morgan: error: --offline: ")
    assert upstream.requests == []


def test_unknown_project_names_the_chain(upstream: FakeUpstream, tmp_path: Path) -> None:
    upstream.add_release("top", "1.0", requires_dist=["mid"])
    upstream.add_release("mid", "1.0", requires_dist=["ghost>=1"])
    ws = tmp_path / "ws"
    spec(ws, upstream.url, ["top"])
    proc = morgan(ws, "build")
    assert proc.returncode == 1
    assert proc.stderr.strip() == (
        "morgan: error: environment 'linux': project 'ghost' not found on "
        f"{upstream.url}; needed by 'ghost>=1' (required by mid 1.0) ← 'mid' (required by "
        "top 1.0) ← 'top' (required by <spec>): check the name, or add an upstream that has it"
    )
    assert not (ws / "mirror" / "index").exists()
    assert not (ws / "mirror.lock").exists()


def test_conflict_names_the_environment_and_constraints(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    upstream.add_release("a", "1.0", requires_dist=["c<2"])
    upstream.add_release("b", "1.0", requires_dist=["c>=2"])
    upstream.add_release("c", "1.0")
    upstream.add_release("c", "2.0")
    ws = tmp_path / "ws"
    spec(ws, upstream.url, ["a", "b"])
    proc = morgan(ws, "build")
    assert proc.returncode == 1
    line = proc.stderr.strip()
    assert line.startswith(
        "morgan: error: environment 'linux' (Python 3.11, manylinux_2_28_x86_64)"
    )
    assert "c<2 (required by a 1.0)" in line
    assert "c>=2 (required by b 1.0)" in line


def test_requires_python_split_per_environment(upstream: FakeUpstream, tmp_path: Path) -> None:
    upstream.add_release("lib", "1.0")
    upstream.add_release("lib", "2.0", requires_python=">=3.9")
    ws = tmp_path / "ws"
    spec(ws, upstream.url, ["lib"])
    assert morgan(ws, "build").returncode == 0
    assert pins(ws, "linux") == {"lib": "2.0"}
    assert pins(ws, "old") == {"lib": "1.0"}


def test_hash_mismatch_fails_and_keeps_previous_generation(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    small(upstream)
    ws = tmp_path / "ws"
    spec(ws, upstream.url, ["leaf"])
    assert morgan(ws, "build").returncode == 0
    before = (ws / "mirror" / "index").readlink()
    bad = upstream.add_release("other", "1.0", wheels=[], sdist=True)[0]
    upstream.add_dist(bad, wrong_sha256=True)
    spec(ws, upstream.url, ["leaf", "other"])
    proc = morgan(ws, "build")
    assert proc.returncode == 1
    line = proc.stderr.strip()
    assert line.startswith("morgan: error: GET http://127.0.0.1:")
    assert "/files/other-1.0.tar.gz: expected sha256 " in line
    assert (ws / "mirror" / "index").readlink() == before
    assert not list((ws / "mirror" / "store" / "tmp").iterdir())


def test_unknowable_sdist_metadata_is_reported_and_still_mirrored(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    upstream.add_release("legacy", "1.0", wheels=[], sdist_metadata="none")
    upstream.add_backend()
    ws = tmp_path / "ws"
    spec(ws, upstream.url, ["legacy"])
    proc = morgan(ws, "build")
    assert proc.returncode == 0, proc.stderr
    assert "dependencies unknown without running code: legacy 1.0: no static metadata" in (
        proc.stderr
    )
    assert (ws / "mirror/index/simple/legacy/legacy-1.0.tar.gz").exists()


def test_noop_fast_path_needs_the_exact_spec_bytes(upstream: FakeUpstream, tmp_path: Path) -> None:
    small(upstream)
    ws = tmp_path / "ws"
    spec(ws, upstream.url, ["leaf"])
    assert morgan(ws, "build").returncode == 0
    fast = morgan(ws, "build")
    assert "unchanged, still generation 1: nothing to do" in fast.stderr
    # A comment changes the bytes but not the spec: the full path runs, finds the lock
    # fresh (no request) and the tree identical (no new generation).
    (ws / "mirror.toml").write_text((ws / "mirror.toml").read_text() + "# a comment\n")
    upstream.clear_requests()
    full = morgan(ws, "build")
    assert full.returncode == 0, full.stderr
    assert "nothing to do" not in full.stderr
    assert "unchanged, still generation 1:" in full.stderr
    assert upstream.requests == []
    assert "nothing to do" in morgan(ws, "build").stderr
    # A stamp from before it listed the generation's blobs (an older Morgan): the full path
    # once, which writes the new stamp; then the no-op counts the manifest's blobs.
    stamp_path = ws / "mirror" / "build-stamp.json"
    old = json.loads(stamp_path.read_text())
    del old["objects"]
    stamp_path.write_text(json.dumps(old))
    assert "nothing to do" not in morgan(ws, "build").stderr
    manifest = json.loads((ws / "mirror" / "index" / "manifest.json").read_text())
    assert f"nothing to do ({len(manifest['objects'])} blobs," in morgan(ws, "build").stderr


def test_html_only_upstream_files_are_fetched_once_and_found_offline(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    """An HTML page gives no file sizes; the lock does. The same file is asked for by both
    (resolution reads the page, the plan reads the lock): it is downloaded once, and a
    smaller spec then builds offline from the store."""
    upstream.html_only = True
    small(upstream)
    ws = tmp_path / "ws"
    spec(ws, upstream.url, ["top", "leaf"])
    assert morgan(ws, "build").returncode == 0
    fetched = upstream.file_requests()
    assert fetched
    assert len(fetched) == len(set(fetched)), fetched
    upstream.clear_requests()
    spec(ws, upstream.url, ["leaf"])
    proc = morgan(ws, "build", "--offline")
    assert proc.returncode == 0, proc.stderr
    assert upstream.requests == []


def _page_blob(ws: Path, upstream: FakeUpstream, name: str) -> Path:
    """The store's cached upstream page of ``name``: the bytes upstream sent."""
    request = urllib.request.Request(f"{upstream.url}{name}/", headers={"Accept": PAGE_ACCEPT})
    with urllib.request.urlopen(request) as response:
        body = response.read()
    for path in (ws / "mirror" / "store" / "objects").glob("*/*"):
        if path.read_bytes() == body:
            return path
    raise AssertionError(f"no cached page of {name}")


def test_a_torn_cached_page_is_never_read_and_is_fetched_again(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    """Cached upstream pages are written without fsync (docs/architecture.md): one torn by a
    power cut (here: zeros of the right size) is refused by --offline with a clear error, and
    the next build with network access fetches and stores it whole again."""
    small(upstream)
    ws = tmp_path / "ws"
    spec(ws, upstream.url, ["top"])
    assert morgan(ws, "build").returncode == 0
    blob = _page_blob(ws, upstream, "top")
    whole = blob.read_bytes()
    blob.chmod(0o644)
    blob.write_bytes(b"\0" * len(whole))
    proc = morgan(ws, "build", "--offline", "--upgrade")
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == (
        "morgan: error: --offline: the cached page of 'top' is damaged (a power cut while it"
        " was written?); run once with network access to fetch it again"
    )
    upstream.clear_requests()
    proc = morgan(ws, "build", "--upgrade")
    assert proc.returncode == 0, proc.stderr
    assert "/simple/top/" in upstream.page_requests()
    assert blob.read_bytes() == whole
    proc = morgan(ws, "build", "--offline", "--upgrade")
    assert proc.returncode == 0, proc.stderr
