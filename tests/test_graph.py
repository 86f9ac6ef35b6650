"""`morgan graph`: --why paths, every output format, offline from a mirror folder alone."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import struct
import subprocess
import zlib
from dataclasses import dataclass
from pathlib import Path

import pytest

from morgan.graph import (
    MAX_PATHS,
    format_path,
    graph_json,
    load_graph,
    paths_to,
    render_text,
    render_why_text,
    why,
    why_json,
)
from morgan.lock import Lock, LockedEdge, LockedEnvironment, LockedPin
from tests.build_scenario import morgan
from tests.small_scenario import copy_mirror, populate, write_spec
from tests.upstream import FakeUpstream

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@dataclass
class Built:
    workspace: Path
    mirror: Path


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    root = tmp_path_factory.mktemp("graph")
    with FakeUpstream(root / "upstream").start() as up:
        populate(up)
        write_spec(root / "ws", up.url)
        proc = morgan(root / "ws", "build")
        assert proc.returncode == 0, proc.stderr
    # The upstream is stopped: everything below runs offline, from the lock alone.
    return Built(root / "ws", root / "ws" / "mirror")


def test_why_lists_every_path_with_versions_and_requirements(built: Built) -> None:
    proc = morgan(built.workspace, "graph", "--why", "Util")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == (
        "util in environment linux (Python 3.11, manylinux_2_28_x86_64): 1.5 (run)\n"
        "  <spec> --[app]--> app 1.0 --[util>=1]--> util 1.5\n"
        "util in environment windows (Python 3.12, win_amd64): 1.5 (run)\n"
        "  <spec> --[app]--> app 1.0 --[util>=1]--> util 1.5\n"
    )


def test_why_names_the_sdist_that_needs_a_build_dependency(built: Built) -> None:
    proc = morgan(built.workspace, "graph", "--why", "morgan-test-backend", "--env", "windows")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == (
        "morgan-test-backend in environment windows (Python 3.12, win_amd64): 1.0 (build)\n"
        "  <spec> --[srconly]--> srconly 1.0 ==[build-system: morgan-test-backend]==>"
        " morgan-test-backend 1.0\n"
        "  only a build dependency of: srconly 1.0 (srconly-1.0.tar.gz)\n"
    )


def test_why_marker_dependency_only_in_its_environment(built: Built) -> None:
    proc = morgan(built.workspace, "graph", "--why", "winonly")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == (
        "winonly in environment windows (Python 3.12, win_amd64): 1.0 (run)\n"
        "  <spec> --[app]--> app 1.0 --[winonly; sys_platform == 'win32']--> winonly 1.0\n"
        "not in environment(s): linux\n"
    )
    proc = morgan(built.workspace, "graph", "--why", "winonly", "--env", "linux")
    assert proc.returncode == 1
    assert proc.stderr == (
        "morgan: error: 'winonly' is not in the mirror (environment 'linux'; it is in windows)\n"
    )


def test_why_unknown_name_suggests_close_names(built: Built) -> None:
    proc = morgan(built.workspace, "graph", "--why", "utl")
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr == (
        "morgan: error: 'utl' is not in the mirror (no environment has it); close names: util\n"
    )


def test_unknown_environment_is_a_usage_error(built: Built) -> None:
    proc = morgan(built.workspace, "graph", "--env", "solaris")
    assert proc.returncode == 2
    assert proc.stderr == (
        "morgan: error: --env solaris: no such environment; the lock has linux, windows\n"
    )


def test_works_inside_a_mirror_folder_alone(built: Built, tmp_path: Path) -> None:
    alone = copy_mirror(built.mirror, tmp_path / "carried")
    proc = morgan(alone, "graph", "--why", "util", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["environments"]["linux"]["paths"] == [
        [
            {
                "parent": "<spec>",
                "parent-version": "",
                "child": "app",
                "child-version": "1.0",
                "requirement": "app",
                "kind": "run",
            },
            {
                "parent": "app",
                "parent-version": "1.0",
                "child": "util",
                "child-version": "1.5",
                "requirement": "util>=1",
                "kind": "run",
            },
        ]
    ]


def test_text_tree(built: Built) -> None:
    proc = morgan(built.workspace, "graph", "--env", "linux")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == (
        "environment linux (Python 3.11, manylinux_2_28_x86_64)\n"
        "<spec>\n"
        "|-- app 1.0  (app)\n"
        "|   `-- util 1.5  (util>=1)\n"
        "|-- dropme 1.0  (dropme)\n"
        "|-- native 1.0  (native)\n"
        "|-- other 1.0  (other)\n"
        "`-- srconly 1.0  (srconly)\n"
        "    `-- morgan-test-backend 1.0  (morgan-test-backend) [build-system]\n"
    )


def test_json_schema(built: Built) -> None:
    proc = morgan(built.workspace, "graph", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["version"] == 1
    assert [e["name"] for e in data["environments"]] == ["linux", "windows"]
    win = data["environments"][1]
    winonly = {
        "name": "winonly",
        "versions": {"run": "1.0"},
        "pins": [{"version": "1.0", "role": "run"}],
        "extras": [],
    }
    assert winonly in win["nodes"]
    assert {
        "parent": "srconly",
        "child": "morgan-test-backend",
        "requirement": "morgan-test-backend",
        "kind": "build-system",
        "sdist": "srconly 1.0",
    } in win["edges"]
    native = next(r for r in data["releases"] if r["name"] == "native")
    assert [f["filename"] for f in native["files"]] == [
        "native-1.0-py3-none-manylinux_2_17_x86_64.whl",
        "native-1.0-py3-none-win_amd64.whl",
    ]


def test_dot_and_mermaid(built: Built) -> None:
    dot = morgan(built.workspace, "graph", "--format", "dot", "--env", "linux").stdout
    assert '    "linux/app" -> "linux/util" [label="util>=1"];\n' in dot
    assert (
        '    "linux/srconly" -> "linux/morgan-test-backend"'
        ' [label="morgan-test-backend", style=dashed];\n'
    ) in dot
    assert dot.startswith("digraph morgan {\n")
    assert dot.endswith("}\n")
    mermaid = morgan(built.workspace, "graph", "--format", "mermaid", "--env", "linux").stdout
    assert mermaid.startswith('flowchart LR\n  subgraph e0["linux"]\n')
    assert '    e0n1 -->|"util#gt;=1"| e0n7\n' in mermaid
    assert '    e0n6 -.->|"morgan-test-backend"| e0n3\n' in mermaid


# -- the model on hand-made locks -------------------------------------------------------------


def _lock(pins: list[tuple[str, str]], edges: list[tuple[str, str]]) -> Lock:
    env = LockedEnvironment(
        name="e",
        python="3.12",
        platform="manylinux_2_28_x86_64",
        pins=tuple(LockedPin(n, v, "run") for n, v in pins),
        edges=tuple(LockedEdge(p, c, c, "run") for p, c in edges),
    )
    return Lock(spec_digest="x", releases=(), environments=(env,))


def test_diamond_gives_every_path_and_folds_the_repeated_subtree() -> None:
    lock = _lock(
        [("a", "1"), ("b", "1"), ("c", "1"), ("d", "1"), ("e", "1")],
        [("<spec>", "a"), ("a", "b"), ("a", "c"), ("b", "d"), ("c", "d"), ("d", "e")],
    )
    graph = load_graph(lock)
    paths, truncated = paths_to(graph, "e", "e")
    assert not truncated
    assert [format_path(p) for p in paths] == [
        "<spec> --[a]--> a 1 --[b]--> b 1 --[d]--> d 1 --[e]--> e 1",
        "<spec> --[a]--> a 1 --[c]--> c 1 --[d]--> d 1 --[e]--> e 1",
    ]
    assert render_text(graph, ["e"]).splitlines()[2:] == [
        "`-- a 1  (a)",
        "    |-- b 1  (b)",
        "    |   `-- d 1  (d)",
        "    |       `-- e 1  (e)",
        "    `-- c 1  (c)",
        "        `-- d 1  (d) (see above)",
    ]


def test_cycles_terminate_and_paths_are_capped() -> None:
    # A ladder of 8 diamonds has 2**8 paths; a cycle x <-> y must not loop.
    pins = [("x", "1"), ("y", "1")] + [(f"n{i}{s}", "1") for i in range(9) for s in "ab"]
    edges = [("<spec>", "n0a"), ("<spec>", "x"), ("x", "y"), ("y", "x"), ("y", "n0a")]
    for i in range(8):
        for s in "ab":
            edges += [(f"n{i}{s}", f"n{i + 1}a"), (f"n{i}{s}", f"n{i + 1}b")]
    edges.append(("n0a", "n0b"))
    graph = load_graph(_lock(pins, edges))
    paths, truncated = paths_to(graph, "e", "n8a")
    assert truncated
    assert len(paths) == MAX_PATHS
    assert why(graph, "x").environments[0].paths[0][-1].child == "x"


# -- html in a real browser ---------------------------------------------------------------------


def _non_white_pixels(png: bytes) -> int:
    """Count non-white pixels of an 8-bit RGB/RGBA PNG (stdlib only: zlib + unfiltering)."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, height, channels = 8, b"", 0, 0, 0
    while pos < len(png):
        length, kind = struct.unpack(">I4s", png[pos : pos + 8])
        body = png[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", body[:10])
            assert depth == 8, depth
            channels = {2: 3, 6: 4}[color]
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * channels
    prev = bytearray(stride)
    count = 0
    for row in range(height):
        start = row * (stride + 1)
        ftype, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up = prev[i]
            ul = prev[i - channels] if i >= channels else 0
            if ftype == 1:
                line[i] = (line[i] + left) & 0xFF
            elif ftype == 2:
                line[i] = (line[i] + up) & 0xFF
            elif ftype == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif ftype == 4:
                p = left + up - ul
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - ul)
                pred = left if pa <= pb and pa <= pc else (up if pb <= pc else ul)
                line[i] = (line[i] + pred) & 0xFF
        for x in range(0, stride, channels):
            if line[x] < 240 or line[x + 1] < 240 or line[x + 2] < 240:
                count += 1
        prev = line
    return count


def _chromium(args: list[str], profile: Path) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.slow
def test_html_renders_in_headless_chromium(built: Built, tmp_path: Path) -> None:
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is required in CI (apt-get install chromium)")
        pytest.skip("chromium not installed: apt-get install chromium")
    page = tmp_path / "graph.html"
    proc = morgan(built.workspace, "graph", "--format", "html", "-o", str(page))
    assert proc.returncode == 0, proc.stderr
    text = page.read_text()
    assert "http://" not in text.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in text
    dom = _chromium(["--dump-dom", page.as_uri()], tmp_path / "p1")
    assert dom.returncode == 0, dom.stderr
    assert 'data-rendered="ok"' in dom.stdout
    assert 'data-nodes="9"' in dom.stdout  # <spec> and 8 projects
    # Clicking a package (the page's #name link selects it the same way) explains it.
    clicked = _chromium(["--dump-dom", page.as_uri() + "#util"], tmp_path / "p3")
    assert 'data-rendered="ok"' in clicked.stdout
    assert "<h2>util</h2>" in clicked.stdout
    assert "<li>required by app: util&gt;=1</li>" in clicked.stdout
    assert (
        "why 1.5: &lt;spec&gt; --[app]--&gt; app 1.0 --[util&gt;=1]--&gt; util 1.5"
        in clicked.stdout
    )
    size = next(
        f.stat().st_size
        for f in (built.mirror / "index" / "simple" / "util").iterdir()
        if f.name.endswith(".whl")
    )
    assert f"util-1.5-py3-none-any.whl — {size:,} bytes" in clicked.stdout
    shot = tmp_path / "shot.png"
    run = _chromium(
        [f"--screenshot={shot}", "--window-size=1200,800", page.as_uri()], tmp_path / "p2"
    )
    assert run.returncode == 0, run.stderr
    assert _non_white_pixels(shot.read_bytes()) > 2000


def test_why_follows_version_policy_edges_of_a_lock_that_records_no_edge_versions() -> None:
    # A lock written before version-policy edges carried their versions: the requirement
    # (app==1.0) still says which pin each edge reaches.
    env = LockedEnvironment(
        name="e",
        python="3.12",
        platform="manylinux_2_28_x86_64",
        pins=(
            LockedPin("app", "3.0", "run"),
            LockedPin("app", "2.0", "version-policy"),
            LockedPin("app", "1.0", "version-policy"),
        ),
        edges=(
            LockedEdge("<spec>", "app", "app", "run"),
            LockedEdge("<spec>", "app", "app==1.0", "version-policy"),
            LockedEdge("<spec>", "app", "app==2.0", "version-policy"),
        ),
    )
    graph = load_graph(Lock(spec_digest="x", releases=(), environments=(env,)))
    answer = why(graph, "app")
    assert render_why_text(graph, answer).splitlines() == [
        (
            "app in environment e (Python 3.12, manylinux_2_28_x86_64):"
            " 3.0 (run), 2.0 (version-policy), 1.0 (version-policy)"
        ),
        "  <spec> --[app]--> app 3.0",
        "  <spec> --[app==2.0]--> app 2.0",
        "  <spec> --[app==1.0]--> app 1.0",
    ]
    pins = [
        {"version": "3.0", "role": "run"},
        {"version": "2.0", "role": "version-policy"},
        {"version": "1.0", "role": "version-policy"},
    ]
    assert why_json(answer)["environments"]["e"]["pins"] == pins
    node = next(n for n in graph_json(graph, ["e"])["environments"][0]["nodes"])
    assert (node["name"], node["pins"]) == ("app", pins)


@pytest.fixture(scope="module")
def three_versions(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real build with ``[policy] versions = 3``: app 3.0 (run), 2.0 and 1.0 (policy);
    app 1.0 needs util<1, so util is pinned twice too (1.5 run, 0.9 version-policy)."""
    root = tmp_path_factory.mktemp("versions")
    ws = root / "ws"
    ws.mkdir()
    with FakeUpstream(root / "upstream").start() as up:
        up.add_release("app", "1.0", requires_dist=["util<1"])
        up.add_release("app", "2.0", requires_dist=["util>=1"])
        up.add_release("app", "3.0", requires_dist=["util>=1"])
        up.add_release("util", "0.9")
        up.add_release("util", "1.5")
        (ws / "mirror.toml").write_text(
            f'requirements = ["app"]\n\n[upstream]\nindex-url = "{up.url}"\n\n'
            '[environments.linux]\npython = "3.11"\nplatform = "manylinux_2_28_x86_64"\n\n'
            "[policy]\nversions = 3\n",
            encoding="utf-8",
        )
        proc = morgan(ws, "build")
        assert proc.returncode == 0, proc.stderr
    return ws


def test_why_reaches_every_version_the_versions_policy_pins_by_its_own_path(
    three_versions: Path,
) -> None:
    proc = morgan(three_versions, "graph", "--why", "app")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        (
            "app in environment linux (Python 3.11, manylinux_2_28_x86_64):"
            " 3.0 (run), 2.0 (version-policy), 1.0 (version-policy)"
        ),
        "  <spec> --[app]--> app 3.0",
        "  <spec> --[app==2.0]--> app 2.0",
        "  <spec> --[app==1.0]--> app 1.0",
    ]
    # One level down, each app version's own dependency edge leads to the util it got.
    proc = morgan(three_versions, "graph", "--why", "util")
    assert proc.stdout.splitlines() == [
        (
            "util in environment linux (Python 3.11, manylinux_2_28_x86_64):"
            " 1.5 (run), 0.9 (version-policy)"
        ),
        "  <spec> --[app]--> app 3.0 --[util>=1]--> util 1.5",
        "  <spec> --[app==2.0]--> app 2.0 --[util>=1]--> util 1.5",
        "  <spec> --[app==1.0]--> app 1.0 --[util<1]--> util 0.9",
    ]
    answer = json.loads(morgan(three_versions, "graph", "--why", "app", "--json").stdout)
    linux = answer["environments"]["linux"]
    assert linux["pins"] == [
        {"version": "3.0", "role": "run"},
        {"version": "2.0", "role": "version-policy"},
        {"version": "1.0", "role": "version-policy"},
    ]
    assert [
        [(s["requirement"], s["kind"], s["child-version"]) for s in p] for p in linux["paths"]
    ] == [
        [("app", "run", "3.0")],
        [("app==2.0", "version-policy", "2.0")],
        [("app==1.0", "version-policy", "1.0")],
    ]
    # The whole graph's JSON carries the versions each version-policy edge joins.
    whole = json.loads(morgan(three_versions, "graph", "--format", "json").stdout)
    assert [
        (e["parent"], e.get("parent-version"), e["child"], e.get("child-version"), e["kind"])
        for e in whole["environments"][0]["edges"]
    ] == [
        ("<spec>", None, "app", None, "run"),
        ("<spec>", None, "app", "1.0", "version-policy"),
        ("<spec>", None, "app", "2.0", "version-policy"),
        ("app", "1.0", "util", "0.9", "version-policy"),
        ("app", None, "util", None, "run"),
        ("app", "2.0", "util", "1.5", "version-policy"),
    ]
    answer = json.loads(morgan(three_versions, "graph", "--why", "util", "--json").stdout)
    steps = [
        [(s["parent"], s["parent-version"], s["child-version"]) for s in p]
        for p in answer["environments"]["linux"]["paths"]
    ]
    assert steps == [
        [("<spec>", "", "3.0"), ("app", "3.0", "1.5")],
        [("<spec>", "", "2.0"), ("app", "2.0", "1.5")],
        [("<spec>", "", "1.0"), ("app", "1.0", "0.9")],
    ]


@pytest.mark.slow
def test_html_page_explains_each_version_the_versions_policy_pins(
    three_versions: Path, tmp_path: Path
) -> None:
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is required in CI (apt-get install chromium)")
        pytest.skip("chromium not installed: apt-get install chromium")
    page = tmp_path / "graph.html"
    proc = morgan(three_versions, "graph", "--format", "html", "-o", str(page))
    assert proc.returncode == 0, proc.stderr
    for name, lines in {
        "app": [
            "version: 3.0 (run), 2.0 (version-policy), 1.0 (version-policy)",
            "why 3.0: <spec> --[app]--> app 3.0",
            "why 2.0: <spec> --[app==2.0]--> app 2.0",
            "why 1.0: <spec> --[app==1.0]--> app 1.0",
        ],
        "util": [
            "version: 1.5 (run), 0.9 (version-policy)",
            "why 1.5: <spec> --[app]--> app 3.0 --[util>=1]--> util 1.5",
            "why 0.9: <spec> --[app==1.0]--> app 1.0 --[util<1]--> util 0.9",
        ],
    }.items():
        clicked = _chromium(["--dump-dom", f"{page.as_uri()}#{name}"], tmp_path / name)
        assert 'data-rendered="ok"' in clicked.stdout, clicked.stderr
        shown = re.findall(r"<p>(.*?)</p>", clicked.stdout)
        assert [html.unescape(p) for p in shown if p.startswith(("version", "why"))] == lines


def test_tree_shows_each_version_the_versions_policy_keeps_with_its_own_dependencies(
    three_versions: Path,
) -> None:
    proc = morgan(three_versions, "graph")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "environment linux (Python 3.11, manylinux_2_28_x86_64)",
        "<spec>",
        "|-- app 3.0  (app)",
        "|   `-- util 1.5  (util>=1)",
        "|-- app 1.0  (app==1.0) [version-policy]",
        "|   `-- util 0.9  (util<1) [version-policy]",
        "`-- app 2.0  (app==2.0) [version-policy]",
        "    `-- util 1.5  (util>=1) [version-policy]",
    ]
