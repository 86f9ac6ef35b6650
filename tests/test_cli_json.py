"""``--json``, ``-q``, errors and ``NO_COLOR`` across the commands, run as a script would.

One small mirror (tests/small_scenario.py) is built once with ``morgan build --json``; each
test reads the JSON document a script relies on and checks it against what is on disk.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from morgan.lock import Lock
from morgan.lock import load as load_lock
from morgan.server import default_miss_record
from store.digest import Digest
from store.objects import Store
from tests.build_scenario import ROOT, morgan
from tests.small_scenario import ENVIRONMENTS, populate, write_spec
from tests.upstream import FakeUpstream


@dataclass
class Built:
    workspace: Path
    mirror: Path
    build: dict[str, Any]  # what the first `morgan build --json` printed
    requests: int  # requests the upstream saw during that build
    upstream: FakeUpstream


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    root = tmp_path_factory.mktemp("cli-json")
    with FakeUpstream(root / "upstream").start() as up:
        populate(up)
        workspace = root / "ws"
        write_spec(workspace, up.url)
        up.clear_requests()
        proc = morgan(workspace, "build", "--json")
        assert proc.returncode == 0, proc.stderr
        yield Built(workspace, workspace / "mirror", json.loads(proc.stdout), len(up.requests), up)


def lock_of(workspace: Path) -> Lock:
    lock = load_lock(workspace / "mirror.lock")
    assert lock is not None
    return lock


def json_of(proc: subprocess.CompletedProcess[str]) -> Any:
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def copy_workspace(built: Built, dest: Path) -> Path:
    shutil.copytree(built.workspace, dest, symlinks=True)
    return dest


# -- build -----------------------------------------------------------------------------------


def test_build_json_digest_is_the_served_manifest_and_counts_are_the_locks(built: Built) -> None:
    data = built.build
    assert sorted(data) == [
        "bytes", "changed", "digest", "fetched", "files", "generation", "kept", "mirror",
        "projects", "ran", "requests", "reused", "seconds", "source-builds", "unknown-metadata",
        "warnings", "wheel-warnings",
    ]  # fmt: skip
    # docs/guide.md's `--json` table names every key of the report.
    guide = (ROOT / "docs" / "guide.md").read_text(encoding="utf-8").splitlines()
    row = next(line for line in guide if line.startswith("| `build` |"))
    assert [key for key in data if f"`{key}`" not in row] == []
    manifest = (built.mirror / "index" / "manifest.json").resolve()
    assert data["digest"] == f"blake3:{manifest.name}"
    assert (built.mirror / "index").resolve() == built.mirror / "generations" / "1"
    assert (data["mirror"], data["generation"], data["changed"]) == (str(built.mirror), 1, True)
    lock = lock_of(built.workspace)
    files = [f for r in lock.releases for f in r.files]
    assert data["projects"] == len({p.name for e in lock.environments for p in e.pins}) == 8
    assert data["files"] == len(files)
    assert data["bytes"] == sum(f.size for f in files)
    assert data["fetched"] == len(files)  # a cold build fetches every file once
    assert data["requests"] == built.requests
    assert data["unknown-metadata"] == []
    assert data["kept"] == []
    assert data["warnings"] == []  # no policy of docs/trust.md found anything to say
    # srconly has no wheel: each environment builds it, with the backend the mirror carries.
    assert {(b["environment"], b["name"], b["toolchain"]) for b in data["source-builds"]} == {
        (e.name, "srconly", "a compiler only if it has native code") for e in lock.environments
    }
    fetched = {r["node"].rsplit(":", 1)[0] for r in data["ran"] if r["node"].startswith("file:")}
    assert fetched == {f"file:{f.filename}" for f in files}


def test_build_json_again_reports_the_same_generation_unchanged(
    built: Built, tmp_path: Path
) -> None:
    ws = copy_workspace(built, tmp_path / "ws")
    data = json_of(morgan(ws, "build", "--json", "--offline"))
    assert (data["generation"], data["changed"], data["digest"]) == (
        1,
        False,
        built.build["digest"],
    )
    assert (data["fetched"], data["requests"], data["ran"]) == (0, 0, [])
    assert (data["files"], data["bytes"]) == (built.build["files"], built.build["bytes"])


# -- export / import ---------------------------------------------------------------------------


def test_export_and_import_json_count_the_blobs_and_bytes(built: Built, tmp_path: Path) -> None:
    # The generation's objects: what its manifest lists, and the manifest itself.
    store = Store(built.mirror / "store")
    manifest = (built.mirror / "index" / "manifest.json").resolve()
    objects = [Digest.parse(d) for d in json.loads(manifest.read_bytes())["objects"]]
    objects.append(Digest("blake3", manifest.name))
    total = sum(store.size(d) for d in objects)
    bundle = tmp_path / "bundle.tar"
    exported = json_of(morgan(built.workspace, "export", "-o", str(bundle), "--json"))
    assert exported == {
        "written": str(bundle),
        "generation": built.build["digest"],
        "blobs": len(objects),
        "blob-bytes": total,
        "objects": len(objects),
        "object-bytes": total,
        "bundle-bytes": bundle.stat().st_size,
        "signed": False,
    }
    with tarfile.open(bundle) as tar:
        assert sum(1 for m in tar.getmembers() if m.name.startswith("blobs/")) == len(objects)

    offline = tmp_path / "offline"
    offline.mkdir()
    imported = json_of(morgan(offline, "import", str(bundle), "--json"))
    assert imported == {
        "generation": built.build["digest"],
        "number": 1,
        "changed": True,
        "blobs": len(objects),
        "blob-bytes": total,
        "signer": None,
        "signature": "not signed",
    }
    again = json_of(morgan(offline, "import", str(bundle), "--json"))
    assert (again["generation"], again["number"], again["changed"]) == (
        built.build["digest"],
        1,
        False,
    )

    delta = tmp_path / "delta.tar"
    since = json_of(
        morgan(built.workspace, "export", "-o", str(delta), "--since", str(bundle), "--json")
    )
    # Only the manifest travels again (a bundle always carries it): every other blob is there.
    assert (since["blobs"], since["blob-bytes"], since["objects"]) == (
        1,
        manifest.stat().st_size,
        len(objects),
    )


# -- export-lock, init, add/remove, env add/remove -------------------------------------------


def test_export_lock_json_names_the_file_and_its_package_count(
    built: Built, tmp_path: Path
) -> None:
    out = tmp_path / "pylock.toml"
    data = json_of(
        morgan(built.workspace, "export-lock", "--env", "windows", "-o", str(out), "--json")
    )
    env = lock_of(built.workspace).environment("windows")
    assert env is not None
    run_pins = {p.name for p in env.pins if p.role == "run"}
    assert data == {"written": str(out), "environment": "windows", "packages": len(run_pins)}
    assert out.read_text().count("[[packages]]") == len(run_pins) == 7


def test_init_json_names_the_written_spec(tmp_path: Path) -> None:
    ws = tmp_path / "new"
    data = json_of(morgan(ws, "init", "--json"))
    assert data == {"written": str(ws / "mirror.toml")}
    assert (ws / "mirror.toml").read_text().startswith("# mirror.toml")


def test_remove_and_env_edits_print_json(built: Built, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    shutil.copyfile(built.workspace / "mirror.toml", ws / "mirror.toml")
    assert json_of(morgan(ws, "remove", "dropme", "--json")) == {"removed": ["dropme"]}
    added = json_of(morgan(ws, "env", "add", "mac", "--python", "3.13", "--platform",
                           "macosx_14_0_arm64", "--json"))  # fmt: skip
    assert sorted(added) == ["added", "written"]
    assert added["written"] == str(ws / "mirror.toml")
    assert {k: added["added"][k] for k in ("name", "python", "platform")} == {
        "name": "mac",
        "python": "3.13",
        "platform": "macosx_14_0_arm64",
    }
    assert added["added"]["markers"]["sys_platform"] == "darwin"
    listed = json_of(morgan(ws, "env", "list", "--json"))
    assert sorted(e["name"] for e in listed) == sorted([*ENVIRONMENTS, "mac"])
    removed = json_of(morgan(ws, "env", "remove", "mac", "--json"))
    assert removed == {"removed": "mac", "written": str(ws / "mirror.toml")}


# -- serve ----------------------------------------------------------------------------------


def test_serve_json_prints_where_it_listens(built: Built, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "morgan", "serve", "--json", "-q", "--port", "0"]
    command += ["-C", str(built.workspace)]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    ) as proc:
        try:
            assert proc.stdout is not None
            data = json.loads(proc.stdout.readline())
            assert sorted(data) == ["index-url", "root", "url"]
            assert data["url"].startswith("http://127.0.0.1:")
            assert data["index-url"] == data["url"] + "simple/"
            assert data["root"] == str(built.mirror.resolve())
            with urllib.request.urlopen(data["index-url"] + "app/", timeout=10) as resp:
                assert resp.status == 200
        finally:
            proc.terminate()
            _, err = proc.communicate(timeout=10)
    # -q: the address line and no access-log line for the request above.
    # The miss record: by default under XDG_STATE_HOME (tests/conftest.py), named per mirror.
    record = default_miss_record(data["root"])
    served = (
        f"Serving {data['root']} at {data['url']} (simple index: {data['index-url']}); "
        f"recording misses at {record}\n"
    )
    assert err == served


# -- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("export-lock", "--env", "nope"),
            "no environment 'nope' in mirror.toml — known: linux, windows",
        ),
        (
            ("build", "--jobs", "x"),
            "argument --jobs/-j: invalid int value: 'x' — see 'morgan build --help'",
        ),
    ],
)
def test_errors_are_one_line_and_with_json_one_error_document(
    built: Built, args: tuple[str, ...], message: str
) -> None:
    plain = morgan(built.workspace, *args)
    assert (plain.returncode, plain.stdout) == (2, "")
    assert plain.stderr.splitlines()[-1] == f"morgan: error: {message}"
    proc = morgan(built.workspace, *args, "--json")
    assert proc.returncode == 2
    assert proc.stderr == plain.stderr
    assert proc.stdout.count("\n") == 1
    assert json.loads(proc.stdout) == {"error": message, "exit-code": 2}


def test_init_over_an_existing_spec_with_json_is_an_error_document(built: Built) -> None:
    proc = morgan(built.workspace, "init", "--json")
    message = (
        f"{built.workspace / 'mirror.toml'} already exists — edit it, or pass --force to replace it"
    )
    assert (proc.returncode, proc.stderr) == (2, f"morgan: error: {message}\n")
    assert json.loads(proc.stdout) == {"error": message, "exit-code": 2}


# -- -q and NO_COLOR ------------------------------------------------------------------------


def commands(built: Built, tmp: Path) -> list[tuple[Path, tuple[str, ...]]]:
    """Every command that prints something on success, in an order that works (each on its
    own copy of the workspace where it writes)."""
    ws = copy_workspace(built, tmp / "ws")
    offline = tmp / "offline"
    offline.mkdir()
    bundle = str(tmp / "b.tar")
    return [
        (tmp / "new", ("init",)),
        (ws, ("add", "other>=1")),
        (ws, ("remove", "other")),
        (ws, ("env", "add", "mac", "--python", "3.13", "--platform", "macosx_14_0_arm64")),
        (ws, ("env", "remove", "mac")),
        (ws, ("build", "--offline")),  # the spec is back as built: the no-op path
        (ws, ("build", "--offline", "--materialize", "copy")),  # the full pipeline
        (ws, ("export-lock", "--env", "linux")),
        (ws, ("export", "-o", bundle)),
        (offline, ("import", bundle)),
        (ws, ("verify",)),
        (ws, ("gc",)),
    ]


def test_quiet_commands_print_nothing_on_success(built: Built, tmp_path: Path) -> None:
    for ws, args in commands(built, tmp_path):
        proc = morgan(ws, *args, "-q")
        assert (args, proc.returncode, proc.stdout, proc.stderr) == (args, 0, "", "")


def test_no_color_output_has_no_escape_sequences(built: Built, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1", "TERM": "xterm-256color"}
    listing = [(built.workspace, ("env", "list")), (built.workspace, ("graph",))]
    for ws, args in [*commands(built, tmp_path), *listing]:
        proc = subprocess.run(
            [sys.executable, "-m", "morgan", *args, "-C", str(ws)],
            capture_output=True,
            text=True,
            env=env,
            check=False,
            timeout=300,
        )
        assert (args, proc.returncode) == (args, 0), proc.stderr
        assert proc.stdout + proc.stderr  # it printed something …
        assert "\x1b" not in proc.stdout + proc.stderr  # … and no colour or cursor codes


# -- one style across commands ---------------------------------------------------------------


def _keys(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, inner in value.items():
            yield key
            if key != "markers":  # PEP 508 marker names, spelled as the standard spells them
                yield from _keys(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from _keys(inner)


def test_every_json_output_uses_kebab_case_keys(built: Built, tmp_path: Path) -> None:
    ws = copy_workspace(built, tmp_path / "ws")
    documents = [built.build]
    for args in (
        ("graph", "--format", "json"),
        ("graph", "--why", "util", "--json"),
        ("gc", "--dry-run", "--json"),
        ("verify", "--json"),
        ("env", "list", "--json"),
        ("env", "show", "linux", "--json"),
        ("export", "-o", str(tmp_path / "b.tar"), "--json"),
    ):
        documents.append(json_of(morgan(ws, *args)))
    keys = {k for doc in documents for k in _keys(doc)}
    assert "bytes-freed" in keys
    assert "absent-from" in keys
    assert sorted(k for k in keys if "_" in k or k != k.lower()) == []


def test_the_mirror_folder_is_mirror_dir_everywhere(built: Built, tmp_path: Path) -> None:
    """``--mirror DIR`` on build, serve, export and import (``--out``/``--root`` still work)."""
    ws = copy_workspace(built, tmp_path / "ws")
    other = tmp_path / "elsewhere"
    proc = morgan(ws, "build", "--mirror", str(other), "--json")
    assert json_of(proc)["mirror"] == str(other)
    proc = morgan(ws, "export", "--mirror", str(other), "-o", str(tmp_path / "b.tar"), "--json")
    assert json_of(proc)["generation"] == built.build["digest"]
    proc = morgan(ws, "import", "--mirror", str(tmp_path / "copy"), str(tmp_path / "b.tar"))
    assert proc.returncode == 0, proc.stderr
    for command in ("build", "serve", "export", "import"):
        help_text = morgan(ws, command, "--help").stdout
        assert "--mirror DIR" in help_text, command
    assert "the bundle to write" in morgan(ws, "export", "--help").stdout


def test_jobs_zero_is_refused_even_when_nothing_is_to_do(built: Built) -> None:
    proc = morgan(built.workspace, "build", "--jobs", "0")
    assert proc.returncode == 2
    assert proc.stderr == ("morgan: error: --jobs 0: must be at least 1 (parallel downloads)\n")


def test_human_summaries_use_sizes_and_plurals(built: Built, tmp_path: Path) -> None:
    ws = copy_workspace(built, tmp_path / "ws")
    proc = morgan(ws, "build", "--upgrade")
    assert proc.returncode == 0, proc.stderr
    first = proc.stderr.splitlines()[-3]
    assert re.fullmatch(
        r"unchanged, still generation 1: \d+ projects, \d+ files, [\d.]+ (kB|MB); "
        r"(\d+ files|1 file) fetched, (\d+ steps|1 step) reused from cache, "
        r"(\d+ requests|1 request), [\d.]+s",
        first,
    ), first
    assert " bytes" not in first
