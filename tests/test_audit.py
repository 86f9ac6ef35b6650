"""Offline advisories: `morgan audit` over a small OSV export, and `[policy] vulnerable`."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from morgan.advisories import find, load_advisories
from tests.build_scenario import morgan
from tests.upstream import FakeUpstream

ENV = (
    '\n[environments.linux]\npython = "3.11"\nplatform = "manylinux_2_28_x86_64"\n'
    '\n[environments.win]\npython = "3.12"\nplatform = "win_amd64"\n'
)

ADVISORIES = [
    {  # an ECOSYSTEM range: every lib before 1.5
        "id": "GHSA-aaaa-aaaa-aaaa",
        "summary": "lib parses input badly",
        "aliases": ["CVE-2024-0001"],
        "affected": [
            {
                "package": {"ecosystem": "PyPI", "name": "Lib"},
                "ranges": [
                    {"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1.5"}]}
                ],
            }
        ],
    },
    {  # an explicit version list, no range; the summary comes from `details`
        "id": "PYSEC-2024-2",
        "details": "helper 2.0 leaks tokens\nMore text.",
        "affected": [{"package": {"ecosystem": "PyPI", "name": "helper"}, "versions": ["2.0"]}],
    },
    {  # withdrawn: never reported
        "id": "GHSA-wwww-wwww-wwww",
        "summary": "a false alarm",
        "withdrawn": "2024-02-01T00:00:00Z",
        "affected": [
            {
                "package": {"ecosystem": "PyPI", "name": "lib"},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}]}],
            }
        ],
    },
    {  # another ecosystem's package of the same name
        "id": "GHSA-nnnn-nnnn-nnnn",
        "summary": "npm lib",
        "affected": [{"package": {"ecosystem": "npm", "name": "lib"}, "versions": ["1.0"]}],
    },
    {  # a range that ends at a last_affected version
        "id": "GHSA-llll-llll-llll",
        "summary": "lib 3.x",
        "affected": [
            {
                "package": {"ecosystem": "PyPI", "name": "lib"},
                "ranges": [
                    {
                        "type": "ECOSYSTEM",
                        "events": [{"introduced": "3.0"}, {"last_affected": "3.1"}],
                    }
                ],
            }
        ],
    },
]


def osv_zip(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for doc in ADVISORIES:
            zf.writestr(f"{doc['id']}.json", json.dumps(doc))
    return path


def test_ranges_versions_and_withdrawn(tmp_path: Path) -> None:
    db = load_advisories(osv_zip(tmp_path / "all.zip"))
    pins = [
        ("lib", "1.0", "linux"),
        ("lib", "1.5", "win"),
        ("lib", "3.1", "linux"),
        ("lib", "3.2", "linux"),
        ("helper", "2.0", "linux"),
        ("helper", "2.0.0", "win"),
        ("helper", "2.1", "linux"),
    ]
    found = [(f.name, f.version, f.advisory.id, f.environments) for f in find(db, pins)]
    assert found == [
        ("helper", "2.0", "PYSEC-2024-2", ("linux",)),
        ("helper", "2.0.0", "PYSEC-2024-2", ("win",)),  # the same version, spelled otherwise
        ("lib", "1.0", "GHSA-aaaa-aaaa-aaaa", ("linux",)),
        ("lib", "3.1", "GHSA-llll-llll-llll", ("linux",)),
    ]


@pytest.fixture
def built(upstream: FakeUpstream, tmp_path: Path) -> Path:
    upstream.add_release(
        "lib", "1.0", sdist=False, requires_dist=["helper; sys_platform == 'win32'"]
    )
    upstream.add_release("helper", "2.0", sdist=False)
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "mirror.toml").write_text(
        f'requirements = ["lib==1.0"]\n[upstream]\nindex-url = "{upstream.url}"\n{ENV}'
    )
    proc = morgan(ws, "build")
    assert proc.returncode == 0, proc.stderr
    osv_zip(ws / "osv.zip")
    return ws


def test_audit_lists_affected_pins(built: Path) -> None:
    proc = morgan(built, "audit", "--advisories", str(built / "osv.zip"))
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        "helper 2.0: PYSEC-2024-2 helper 2.0 leaks tokens (fixed in: no fixed version) [win]",
        "lib 1.0: GHSA-aaaa-aaaa-aaaa lib parses input badly (fixed in: 1.5) [linux, win]",
        "2 locked releases checked: 2 affected by 2 advisories",
    ]


def test_audit_one_environment_as_json(built: Path) -> None:
    proc = morgan(
        built, "audit", "--env", "linux", "--json", "--advisories", str(built / "osv.zip")
    )
    assert proc.returncode == 1, proc.stderr
    assert json.loads(proc.stdout) == {
        "checked": 1,
        "findings": [
            {
                "name": "lib",
                "version": "1.0",
                "id": "GHSA-aaaa-aaaa-aaaa",
                "aliases": ["CVE-2024-0001"],
                "summary": "lib parses input badly",
                "fixed": ["1.5"],
                "environments": ["linux"],
            }
        ],
    }


def test_audit_in_the_mirror_folder_alone_with_nothing_found(built: Path, tmp_path: Path) -> None:
    clean = tmp_path / "clean.zip"
    with zipfile.ZipFile(clean, "w") as zf:
        zf.writestr("GHSA-wwww.json", json.dumps(ADVISORIES[2]))  # withdrawn only
    proc = morgan(built / "mirror", "audit", "--advisories", str(clean))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "2 locked releases checked: 0 affected by 0 advisories\n"


def test_audit_refuses_a_file_that_is_not_a_zip(built: Path) -> None:
    (built / "bad.zip").write_text("not a zip")
    proc = morgan(built, "audit", "--advisories", str(built / "bad.zip"))
    assert proc.returncode == 2
    assert proc.stderr == (
        f"morgan: error: {built / 'bad.zip'}: not a readable zip (File is not a zip file) — "
        "give the OSV export for PyPI (all.zip)\n"
    )


def test_build_warns_or_refuses_by_policy(built: Path) -> None:
    spec = (built / "mirror.toml").read_text()
    (built / "mirror.toml").write_text(spec + '\n[policy]\nadvisories = "osv.zip"\n')
    proc = morgan(built, "build")
    assert proc.returncode == 0, proc.stderr
    assert (
        "morgan: warning: known vulnerability: lib 1.0: GHSA-aaaa-aaaa-aaaa lib parses input "
        "badly (fixed in: 1.5)\n"
    ) in proc.stderr
    before = (built / "mirror.lock").read_text()
    generation = (built / "mirror" / "index").readlink()
    policy = '\n[policy]\nadvisories = "osv.zip"\nvulnerable = "refuse"\n'
    (built / "mirror.toml").write_text(spec + policy)
    proc = morgan(built, "build")
    assert proc.returncode == 1
    assert proc.stderr.splitlines()[-1] == (
        "morgan: error: helper 2.0: advisory PYSEC-2024-2 affects it (and 1 more) and "
        '[policy] vulnerable = "refuse" — require a fixed version (none yet), or run '
        "'morgan audit' to see them all"
    )
    # Nothing half-written: the lock and the served generation are the ones from before.
    assert (built / "mirror.lock").read_text() == before
    assert (built / "mirror" / "index").readlink() == generation
