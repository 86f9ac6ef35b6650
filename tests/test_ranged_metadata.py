"""A large wheel's dependencies read with HTTP range requests when upstream offers no
PEP 658 ``.metadata`` (rules/lib/ranged.py): the resolver learns them from a few small
requests instead of downloading the wheel first; the wheel is still downloaded (the mirror
keeps it) and what the ranges gave is checked against it. Opt-in (MORGAN_METADATA_RANGES=1):
on the registry measured it cost more than it saved (docs/performance.md, ninth round)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from tests import dists
from tests.build_scenario import morgan
from tests.upstream import FakeUpstream
from tests.upstream_http import RecordedRequest

BIG = "big-2.0-py3-none-any.whl"


@pytest.fixture(autouse=True)
def _ranges_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MORGAN_METADATA_RANGES", "1")  # opt-in (docs/performance.md)


PAYLOAD = 2 << 20  # above the 1 MB from which ranges are used


def spec(ws: Path, url: str) -> None:
    ws.mkdir(parents=True, exist_ok=True)
    (ws / "mirror.toml").write_text(
        f'requirements = ["big"]\n\n[upstream]\nindex-url = "{url}"\n\n'
        '[environments.linux]\npython = "3.11"\nplatform = "manylinux_2_28_x86_64"\n',
        encoding="utf-8",
    )


def pins(ws: Path) -> dict[str, str]:
    data = tomllib.loads((ws / "mirror.lock").read_text())
    return {p["name"]: p["version"] for p in data["environment"]["linux"]["pins"]}


def publish(upstream: FakeUpstream, dep: str = "good") -> None:
    """``big`` 1.0 and 2.0, large wheels that need ``dep``; ``good`` and ``bads`` 1.0.
    Two releases: ``big`` is not certain, so nothing downloads it before it is pinned."""
    upstream.metadata_enabled = False
    for version in ("1.0", "2.0"):
        upstream.add_dist(
            dists.build_wheel(
                upstream.build_dir / version,
                "big",
                version,
                requires_dist=[dep],
                payload_size=PAYLOAD,
            )
        )
    upstream.add_release("good", "1.0")
    upstream.add_release("bads", "1.0")


def big_requests(upstream: FakeUpstream) -> list[RecordedRequest]:
    """The requests for the big wheel and the dep's page, in arrival order."""
    with upstream._lock:
        seen = list(upstream.requests)
    return [r for r in seen if r.path in (f"/files/{BIG}", "/simple/good/")]


def test_the_resolver_reads_a_large_wheels_dependencies_with_a_few_range_requests(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    publish(upstream)
    upstream.bandwidth = PAYLOAD  # bytes/s: the wheel takes ~1 s
    ws = tmp_path / "ws"
    spec(ws, upstream.url)
    proc = morgan(ws, "build")
    assert proc.returncode == 0, proc.stderr
    assert pins(ws) == {"big": "2.0", "good": "1.0"}
    log = big_requests(upstream)
    ranged = [r for r in log if r.path.startswith("/files/") and "range" in r.headers]
    whole = [r for r in log if r.path.startswith("/files/") and "range" not in r.headers]
    page = next(r for r in log if r.path == "/simple/good/")
    assert 1 <= len(ranged) <= 3, log
    # The dependency's page was asked for before the wheel's download was over (the
    # upstream sends 2 MB/s): what the resolver needed came from the ranges.
    assert len(whole) == 1, log
    assert page.at < whole[0].done[0], log
    # The mirror has the wheel and its .metadata (from the verified wheel).
    simple = ws / "mirror" / "index" / "simple" / "big"
    assert (simple / BIG).stat().st_size > PAYLOAD
    assert (simple / f"{BIG}.metadata").read_bytes().count(b"Requires-Dist: good") == 1
    proc = morgan(ws, "verify")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_server_without_ranges_gives_the_same_lock_from_the_downloaded_wheel(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    publish(upstream)
    with_ranges = tmp_path / "with"
    spec(with_ranges, upstream.url)
    assert morgan(with_ranges, "build").returncode == 0
    upstream.ranges = False  # a Range header is ignored: the whole file, 200
    upstream.requests.clear()
    without = tmp_path / "without"
    spec(without, upstream.url)
    proc = morgan(without, "build")
    assert proc.returncode == 0, proc.stderr
    log = big_requests(upstream)
    page = next(r for r in log if r.path == "/simple/good/")
    whole = [r for r in log if r.path.startswith("/files/") and r.done]
    assert whole[0].done[0] <= page.at, log  # the dependencies read from the download
    assert (without / "mirror.lock").read_bytes() == (with_ranges / "mirror.lock").read_bytes()


def test_ranges_that_disagree_with_the_downloaded_wheel_stop_the_build(
    upstream: FakeUpstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    publish(upstream)
    served = upstream.files_dir / BIG
    # A wheel of the same size whose METADATA names another dependency: its bytes are
    # what the server answers to range requests for the real one.
    for name in ("bads", "evil", "fake", "oops", "nope", "lies", "gone", "wrng"):
        other = dists.build_wheel(
            tmp_path / "other" / name, "big", "2.0", requires_dist=[name], payload_size=PAYLOAD
        )
        if other.stat().st_size == served.stat().st_size:
            break
    else:
        raise AssertionError("no wheel of the same size to serve in its place")
    upstream.add_release(name, "1.0")
    upstream.ranges_from[BIG] = other
    # 2 MB/s: the ranges' answer is in (and cached) before the download is over, which
    # then finds the difference.
    upstream.bandwidth = PAYLOAD
    ws = tmp_path / "ws"
    spec(ws, upstream.url)
    proc = morgan(ws, "build")
    assert proc.returncode != 0
    assert "the METADATA read with range requests is not the one in the downloaded wheel" in (
        proc.stderr
    ), proc.stderr
    assert "without MORGAN_METADATA_RANGES=1" in proc.stderr
    assert not (ws / "mirror" / "index").exists()  # nothing was published
    # What the ranges gave is not reused: the next build (ranges off, the default) reads
    # the wheel again and is right.
    monkeypatch.delenv("MORGAN_METADATA_RANGES")
    upstream.requests.clear()
    proc = morgan(ws, "build")
    assert proc.returncode == 0, proc.stderr
    assert pins(ws) == {"big": "2.0", "good": "1.0"}
    assert not [r for r in big_requests(upstream) if "range" in r.headers]  # none asked
