"""What the build fetches ahead of the resolver, and what that may and may not cost.

Pages and PEP 658 metadata are crawled ahead of resolution, and a release's files start
downloading when the resolver pins it, or before, when every successful resolution must pin
it (a project with one usable release, reached through such releases). Users see this as
speed (bench/); what they must never see is a different result, or a file downloaded on a
guess when upstream offers its `.metadata` (without it, the guessed wheel is what the
resolver would download to read).
"""

from __future__ import annotations

import time
import tomllib
from pathlib import Path

from tests.build_scenario import morgan
from tests.upstream import FakeUpstream, Fault


def spec(ws: Path, url: str, requirements: list[str], envs: dict[str, tuple[str, str]]) -> None:
    ws.mkdir(parents=True, exist_ok=True)
    reqs = ", ".join(f'"{r}"' for r in requirements)
    text = f'requirements = [{reqs}]\n\n[upstream]\nindex-url = "{url}"\n'
    for name, (python, platform) in envs.items():
        text += f'\n[environments.{name}]\npython = "{python}"\nplatform = "{platform}"\n'
    (ws / "mirror.toml").write_text(text, encoding="utf-8")


LINUX = {"linux": ("3.11", "manylinux_2_28_x86_64")}


def pins(ws: Path, env: str) -> dict[str, str]:
    data = tomllib.loads((ws / "mirror.lock").read_text())
    return {p["name"]: p["version"] for p in data["environment"][env]["pins"]}


def served(ws: Path) -> list[str]:
    simple = ws / "mirror" / "index" / "simple"
    return sorted(p.name for p in simple.glob("*/*") if not p.name.startswith("index."))


def build_capped_dep(upstream: FakeUpstream, tmp_path: Path) -> Path:
    """``top`` needs ``dep`` and ``cap``, which caps ``dep<2``; ``dep`` 2.0 (the newest,
    the crawl's guess) needs ``newdep``. Built for Linux: the resolver pins dep 1.0."""
    upstream.add_release("top", "1.0", requires_dist=["dep", "cap"])
    upstream.add_release("cap", "1.0", requires_dist=["dep<2"])
    upstream.add_release("dep", "1.0")
    upstream.add_release("dep", "2.0", requires_dist=["newdep"])
    upstream.add_release("newdep", "1.0")
    ws = tmp_path / "ws"
    spec(ws, upstream.url, ["top"], LINUX)
    proc = morgan(ws, "build")
    assert proc.returncode == 0, proc.stderr
    assert pins(ws, "linux") == {"top": "1.0", "cap": "1.0", "dep": "1.0"}
    return ws


def test_a_wrong_guess_costs_metadata_requests_never_a_file(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    # The crawl meets `dep` first as `top`'s plain requirement, guesses its newest release
    # (2.0) and follows its dependency `newdep`; the resolver then takes dep 1.0 because
    # `cap` caps it.
    ws = build_capped_dep(upstream, tmp_path)
    files = upstream.file_requests()
    assert "/files/dep-2.0-py3-none-any.whl.metadata" in files  # the guess was made
    assert "/simple/newdep/" in upstream.page_requests()  # and followed
    downloads = sorted(f for f in files if not f.endswith(".metadata"))
    assert downloads == [
        "/files/cap-1.0-py3-none-any.whl",
        "/files/cap-1.0.tar.gz",
        "/files/dep-1.0-py3-none-any.whl",
        "/files/dep-1.0.tar.gz",
        "/files/top-1.0-py3-none-any.whl",
        "/files/top-1.0.tar.gz",
    ]
    assert served(ws) == [
        "cap-1.0-py3-none-any.whl",
        "cap-1.0-py3-none-any.whl.metadata",
        "cap-1.0.tar.gz",
        "dep-1.0-py3-none-any.whl",
        "dep-1.0-py3-none-any.whl.metadata",
        "dep-1.0.tar.gz",
        "top-1.0-py3-none-any.whl",
        "top-1.0-py3-none-any.whl.metadata",
        "top-1.0.tar.gz",
    ]


def test_the_guess_takes_the_newest_release_the_requirement_allows(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    # `top` asks for dep<2: the crawl reads dep 1.0's metadata, never 2.0's.
    upstream.add_release("top", "1.0", requires_dist=["dep<2"])
    upstream.add_release("dep", "1.0")
    upstream.add_release("dep", "2.0", requires_dist=["newdep"])
    upstream.add_release("newdep", "1.0")
    ws = tmp_path / "ws"
    spec(ws, upstream.url, ["top"], LINUX)
    proc = morgan(ws, "build")
    assert proc.returncode == 0, proc.stderr
    assert pins(ws, "linux") == {"top": "1.0", "dep": "1.0"}
    assert "/files/dep-2.0-py3-none-any.whl.metadata" not in upstream.file_requests()
    assert "/simple/newdep/" not in upstream.page_requests()


def test_a_root_requirements_specifier_guides_the_guess_too(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    # The spec asks for top<2: the crawl starts at top 1.0, not at the newest release.
    upstream.add_release("top", "1.0")
    upstream.add_release("top", "2.0", requires_dist=["newdep"])
    upstream.add_release("newdep", "1.0")
    ws = tmp_path / "ws"
    spec(ws, upstream.url, ["top<2"], LINUX)
    proc = morgan(ws, "build")
    assert proc.returncode == 0, proc.stderr
    assert pins(ws, "linux") == {"top": "1.0"}
    assert "/files/top-2.0-py3-none-any.whl.metadata" not in upstream.file_requests()
    assert "/simple/newdep/" not in upstream.page_requests()


def test_without_pep658_the_crawl_reads_guessed_wheels_and_the_mirror_is_the_same(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    # An upstream with no `.metadata`: the crawl downloads the wheel it guesses (that is
    # how the resolver reads it too). A wrong guess's wheel is never served.
    upstream.metadata_enabled = False
    ws = build_capped_dep(upstream, tmp_path)
    files = upstream.file_requests()
    assert "/files/dep-2.0-py3-none-any.whl" in files  # the guess, read from the wheel
    assert "/simple/newdep/" in upstream.page_requests()  # and followed
    assert not [f for f in files if f.endswith(".metadata")]
    assert "dep-2.0-py3-none-any.whl" not in served(ws)
    assert "dep-1.0-py3-none-any.whl.metadata" in served(ws)  # extracted from the wheel


def test_environments_share_one_metadata_request_when_upstream_hashes_match(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    # Two environments pick two different wheels of one release; upstream advertises the
    # same core-metadata hash for both, so their dependencies are read once.
    upstream.add_release(
        "native", "1.0", wheels=["py3-none-manylinux_2_17_x86_64", "py3-none-win_amd64"]
    )
    ws = tmp_path / "ws"
    envs = {**LINUX, "windows": ("3.12", "win_amd64")}
    spec(ws, upstream.url, ["native"], envs)
    proc = morgan(ws, "build")
    assert proc.returncode == 0, proc.stderr
    metadata = [f for f in upstream.file_requests() if f.endswith(".metadata")]
    assert len(metadata) == 1, metadata
    assert pins(ws, "linux") == pins(ws, "windows") == {"native": "1.0"}
    # Each wheel is still served with its own .metadata, extracted from the wheel itself.
    assert served(ws) == [
        "native-1.0-py3-none-manylinux_2_17_x86_64.whl",
        "native-1.0-py3-none-manylinux_2_17_x86_64.whl.metadata",
        "native-1.0-py3-none-win_amd64.whl",
        "native-1.0-py3-none-win_amd64.whl.metadata",
        "native-1.0.tar.gz",
    ]


def test_after_backtracking_the_mirror_holds_only_the_final_pins(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    # `a` 2.0 is pinned first (newest) and its files may start downloading; `b` then
    # conflicts with it through `c`, and the resolver backtracks to `a` 1.0.
    upstream.add_release("a", "1.0", requires_dist=["c"])
    upstream.add_release("a", "2.0", requires_dist=["c==1.0"])
    upstream.add_release("b", "1.0", requires_dist=["c==2.0"])
    upstream.add_release("c", "1.0")
    upstream.add_release("c", "2.0")
    ws = tmp_path / "ws"
    spec(ws, upstream.url, ["a", "b"], LINUX)
    proc = morgan(ws, "build")
    assert proc.returncode == 0, proc.stderr
    assert pins(ws, "linux") == {"a": "1.0", "b": "1.0", "c": "2.0"}
    assert [n for n in served(ws) if not n.endswith(".metadata")] == [
        "a-1.0-py3-none-any.whl",
        "a-1.0.tar.gz",
        "b-1.0-py3-none-any.whl",
        "b-1.0.tar.gz",
        "c-2.0-py3-none-any.whl",
        "c-2.0.tar.gz",
    ]
    proc = morgan(ws, "verify")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_release_every_resolution_needs_is_fetched_once_for_the_environments_using_it(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    # `model` has one release: whatever the resolver does, it pins it, so its files may
    # start downloading before the resolver reaches it; each environment's wheel once, and
    # nothing for `winonly`, which only Windows needs (and the spec has no Windows).
    upstream.add_release("top", "1.0", requires_dist=["model", "winonly; sys_platform == 'win32'"])
    upstream.add_release("top", "0.9")
    upstream.add_release(
        "model", "1.0", wheels=["py3-none-manylinux_2_17_x86_64", "py3-none-macosx_11_0_arm64"]
    )
    upstream.add_release("winonly", "1.0")
    ws = tmp_path / "ws"
    spec(ws, upstream.url, ["top"], {**LINUX, "mac": ("3.12", "macosx_14_0_arm64")})
    proc = morgan(ws, "build")
    assert proc.returncode == 0, proc.stderr
    assert pins(ws, "linux") == pins(ws, "mac") == {"top": "1.0", "model": "1.0"}
    downloads = [f for f in upstream.file_requests() if not f.endswith(".metadata")]
    assert sorted(downloads) == [
        "/files/model-1.0-py3-none-macosx_11_0_arm64.whl",
        "/files/model-1.0-py3-none-manylinux_2_17_x86_64.whl",
        "/files/model-1.0.tar.gz",
        "/files/top-1.0-py3-none-any.whl",
        "/files/top-1.0.tar.gz",
    ]
    assert "/simple/winonly/" not in upstream.page_requests()


def test_a_resolution_that_cannot_succeed_downloads_nothing_for_it(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    # `top` needs zdep>=2 and upstream has zdep 1.0 only: no resolution succeeds. The
    # resolver reads `slow` first (its page takes a second) while zdep's page is in; the
    # build fails naming the conflict, and zdep's files were not fetched meanwhile.
    upstream.add_release("top", "1.0", requires_dist=["slow", "zdep>=2"])
    upstream.add_release("zdep", "1.0", wheels=["py3-none-manylinux_2_17_x86_64"])
    upstream.add_release("slow", "1.0")
    upstream.set_fault("/simple/slow/", Fault(delay=1.0))
    ws = tmp_path / "ws"
    spec(ws, upstream.url, ["top"], LINUX)
    proc = morgan(ws, "build")
    assert proc.returncode != 0
    assert "zdep" in proc.stderr
    downloads = [f for f in upstream.file_requests() if not f.endswith(".metadata")]
    assert not any(f.startswith("/files/zdep-") for f in downloads)
    assert not (ws / "mirror" / "index").exists()


def _most_in_flight(upstream: FakeUpstream, window: float) -> int:
    """The most wheel requests that arrived within ``window`` seconds of one another."""
    at = sorted(r.at for r in upstream.requests if r.path.endswith(".whl"))
    return max((sum(1 for t in at if s <= t < s + window) for s in at), default=0)


def test_jobs_bounds_the_downloads_in_flight_and_the_default_runs_more_than_eight(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    # Twelve small wheels, each answered after a second (pages and .metadata at once): a
    # thread's next wheel request comes at least a second after its last one, so the
    # wheel requests that arrive within less than a second were in flight together.
    names = [f"small{i:02d}" for i in range(12)]
    for name in names:
        upstream.add_release(name, "1.0", sdist=False)
    upstream.set_fault("/files/*.whl", Fault(delay=1.0))
    ws = tmp_path / "two"
    spec(ws, upstream.url, names, LINUX)
    proc = morgan(ws, "build", "-j", "2")
    assert proc.returncode == 0, proc.stderr
    assert len(served(ws)) == 24  # each wheel and its .metadata
    assert _most_in_flight(upstream, 0.9) == 2
    upstream.clear_requests()
    ws = tmp_path / "default"
    spec(ws, upstream.url, names, LINUX)
    proc = morgan(ws, "build")
    assert proc.returncode == 0, proc.stderr
    assert _most_in_flight(upstream, 0.9) > 8  # 16 at a time by default


def test_an_upgrade_reads_the_locked_projects_pages_together_and_no_metadata_it_has(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    # `--upgrade` reads every project's page again. The crawl ahead used to skip every
    # locked name, so the resolver read those pages one at a time, one answer before the
    # next request (a 2 000-project upgrade took 70-80 s at a 30 ms round trip with one
    # request in flight). Each dependency page here is answered after a second: asked
    # together, they all arrive within less than a second.
    deps = [f"wide{i}" for i in range(8)]
    upstream.add_release("top", "1.0", requires_dist=deps)
    for name in deps:
        upstream.add_release(name, "1.0")
    first = tmp_path / "first"
    spec(first, upstream.url, ["top"], LINUX)
    assert morgan(first, "build").returncode == 0
    upstream.add_release("wide3", "2.0")
    # The spec and its lock in a new workspace (a new store: nothing cached).
    ws = tmp_path / "ws"
    ws.mkdir()
    for name in ("mirror.toml", "mirror.lock"):
        (ws / name).write_bytes((first / name).read_bytes())
    upstream.clear_requests()
    upstream.set_fault("/simple/wide*", Fault(delay=1.0))
    proc = morgan(ws, "build", "--upgrade")
    assert proc.returncode == 0, proc.stderr
    assert pins(ws, "linux") == {"top": "1.0", **dict.fromkeys(deps, "1.0"), "wide3": "2.0"}
    asked = sorted(r.at for r in upstream.requests if r.path.startswith("/simple/wide"))
    assert len(asked) == len(deps)
    assert asked[-1] - asked[0] < 0.9
    # The lock says what the unchanged releases depend on: the only .metadata asked for is
    # the new release's.
    metadata = [f for f in upstream.file_requests() if f.endswith(".metadata")]
    assert metadata == ["/files/wide3-2.0-py3-none-any.whl.metadata"]


def test_the_pages_the_resolver_needs_next_go_ahead_of_the_crawls_queue(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    # The roots `a` and `z`: z needs 48 projects, a needs 4, and each of their pages is
    # answered after 0.6 s. z's wheel comes at once and a's 0.1 s later, so when the
    # resolver (which pins `a` first) learns what `a` needs, the crawl ahead has queued
    # the pages of z's 48 dependencies, 16 of them asked for already. The next threads
    # free ask for a's pages before the 32 still queued (a's pages used to wait behind
    # them, or the resolver asked for them itself one after another). Without PEP 658
    # .metadata (the crawl reads each guessed wheel): the crawl's first steps taken while
    # the build starts (from .metadata only, tested on their own below) would read both
    # roots' dependencies before resolution starts.
    upstream.metadata_enabled = False
    wide = [f"zdep{i:02d}" for i in range(48)]
    need = [f"adep{i}" for i in range(4)]
    upstream.add_release("a", "1.0", requires_dist=need, sdist=False)
    upstream.add_release("z", "1.0", requires_dist=wide, sdist=False)
    for name in wide + need:
        upstream.add_release(name, "1.0", sdist=False)
    upstream.set_fault("/files/a-1.0-*.whl", Fault(delay=0.1))
    upstream.set_fault("/simple/?dep*", Fault(delay=0.6))
    ws = tmp_path / "ws"
    spec(ws, upstream.url, ["a", "z"], LINUX)
    proc = morgan(ws, "build")
    assert proc.returncode == 0, proc.stderr
    assert pins(ws, "linux") == dict.fromkeys(["a", "z", *wide, *need], "1.0")
    log = list(upstream.requests)
    known = next(r.done[-1] for r in log if r.path == "/files/a-1.0-py3-none-any.whl")
    asked = max(r.at for r in log if r.path.startswith("/simple/adep"))
    wide_asked = sorted(r.at for r in log if r.path.startswith("/simple/zdep"))
    assert len(wide_asked) == len(wide)
    # Between a's wheel and the last of a's pages, at most the rest of the round of
    # requests a's pages go out in (before: the next 16 or 32 of z's).
    assert sum(1 for t in wide_asked if known < t < asked) < 16


def _early_scenario(upstream: FakeUpstream) -> None:
    """`top` 1.0 (2.0rc1 is a prerelease) needs `dep` always, `winonly` on Windows and
    `docs` with its extra only; `dep` has one release."""
    upstream.add_release("top", "1.0", requires_dist=["dep"])
    upstream.add_release(
        "top",
        "2.0rc1",
        requires_dist=["dep", "winonly; sys_platform == 'win32'", "docs; extra == 'docs'"],
        provides_extra=["docs"],
    )
    upstream.add_release(
        "top",
        "1.1",
        requires_dist=["dep", "winonly; sys_platform == 'win32'", "docs; extra == 'docs'"],
        provides_extra=["docs"],
    )
    for name in ("dep", "winonly", "docs"):
        upstream.add_release(name, "1.0")


def test_a_cold_build_crawls_on_from_its_root_pages_while_it_starts(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    # While a cold build imports its engine, the root pages it asked for lead on to the
    # .metadata of the release the crawl guesses first (the newest final one) and to the
    # pages of what that release needs in a target environment; the engine then takes
    # these answers instead of asking again.
    import argparse

    from morgan.commands.build import _start_early
    from morgan.spec import load_spec
    from rules.lib.fetch import MAX_METADATA_BYTES
    from rules.lib.http import HttpClient

    _early_scenario(upstream)
    ws = tmp_path / "ws"
    spec(ws, upstream.url, ["top"], LINUX)
    args = argparse.Namespace(offline=False, upgrade=None)
    expected = [
        "/simple/dep/",
        "/simple/top/",
        "/files/top-1.1-py3-none-any.whl.metadata",
    ]
    with HttpClient() as client:
        _start_early(args, load_spec(ws / "mirror.toml"), client)
        for _ in range(1000):
            if len(upstream.requests) >= len(expected):
                break
            time.sleep(0.01)
        time.sleep(0.2)  # (nothing more comes)
        assert sorted(r.path for r in upstream.requests) == sorted(expected)
        assert client.get_page(f"{upstream.url}dep/").status == 200
        metadata = client.get_bytes(
            upstream.file_url("top-1.1-py3-none-any.whl") + ".metadata",
            max_bytes=MAX_METADATA_BYTES,
        )
        assert b"Requires-Dist: dep" in metadata
        assert len(upstream.requests) == len(expected)  # taken, not asked again


def test_a_cold_build_asks_for_nothing_twice_with_the_early_crawl(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    # The whole build: every page and file asked for once (what the early crawl got is
    # taken), and nothing for a marker that holds in no environment or an extra.
    _early_scenario(upstream)
    ws = tmp_path / "ws"
    spec(ws, upstream.url, ["top"], LINUX)
    proc = morgan(ws, "build")
    assert proc.returncode == 0, proc.stderr
    assert pins(ws, "linux") == {"top": "1.1", "dep": "1.0"}
    paths = [r.path for r in upstream.requests]
    assert len(paths) == len(set(paths))
    assert sorted(p for p in paths if p.startswith("/simple/")) == ["/simple/dep/", "/simple/top/"]
