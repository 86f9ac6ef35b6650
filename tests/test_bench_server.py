"""bench/server.py runs end to end on a small file (the figures themselves are not tested)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import server as bench_server
from bench.load import run_load
from tests.index_tree import build_tree
from tests.server_fixtures import PIP_ACCEPT, running_server

pytestmark = pytest.mark.slow


def test_bench_server_measures_ours_and_http_server(tmp_path: Path) -> None:
    out = tmp_path / "out"
    argv = ["--servers", "ours,http.server", "--connections", "2", "--seconds", "1"]
    assert bench_server.main([*argv, "--file-mb", "1", "--out", str(out)]) == 0
    table = (out / "server.md").read_text(encoding="utf-8").splitlines()
    assert (
        table[0]
        == "| what | conns | ours (server.py) | http.server | ours / 0.15.0 | ours / nginx |"
    )
    assert [row.split(" | ")[:2] for row in table[2:7]] == [
        ["| small page", "2"],
        ["| small page, a new User-Agent per request", "2"],
        ["| small page, a new query string per request", "2"],
        ["| large JSON page", "2"],
        ["| 1 MB file", "2"],
    ]
    cells = json.loads((out / "server.json").read_text(encoding="utf-8"))
    assert len(cells) == 10
    for cell in cells:
        assert cell["load"]["requests"] > 0, cell
        assert cell["load"]["errors"] == 0, cell


def test_python_load_counts_requests_and_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without wrk the bench falls back to its own keep-alive client."""
    monkeypatch.setattr("bench.load.shutil.which", lambda name: None)
    tree = build_tree(tmp_path / "mirror")
    with running_server(tree.root) as (server, _):
        page = server.url + "simple/alpha/"
        load = run_load(page, connections=2, seconds=1, headers={"Accept": PIP_ACCEPT})
        missing = run_load(server.url + "simple/nope/", connections=1, seconds=1)
    assert (load.tool, load.errors) == ("python", 0)
    assert load.requests > 0
    size = len((tree.generation(1) / "simple" / "alpha" / "index.json").read_bytes())
    assert load.bytes_read == load.requests * size
    assert missing.requests > 0
    assert missing.errors == missing.requests
    with running_server(tree.root) as (server, log):
        many = run_load(server.url + "simple/alpha/", connections=2, seconds=1, vary="agent")
    agents = [line.rsplit('"', 2)[-2] for line in log.getvalue().splitlines()]
    assert many.errors == 0
    assert len(agents) == len(set(agents)) == many.requests  # no two requests alike
