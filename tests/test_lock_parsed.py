"""The parsed-lock cache: a rebuild reads the last lock without the TOML parse, and never
reads a lock other than the one on disk (a hand edit, a torn or foreign cache)."""

from __future__ import annotations

import dataclasses
import json
import tomllib
from pathlib import Path

import pytest

from morgan import lock as lock_mod
from morgan.lock import (
    Lock,
    LockedEdge,
    LockedEnvironment,
    LockedFile,
    LockedIndex,
    LockedPin,
    LockedRelease,
    LockedStatus,
    dumps,
    from_data,
    load,
    parsed_bytes,
    write_parsed,
)
from store.digest import blake3_hex
from tests.build_scenario import morgan
from tests.small_scenario import write_spec
from tests.upstream import FakeUpstream


def _file(name: str, **extra: object) -> LockedFile:
    base: dict[str, object] = {
        "filename": name,
        "url": f"https://files.example/{name}",
        "size": 123,
        "sha256": "a" * 64,
        "blake3": "b" * 64,
        "upload_time": "2024-01-02T03:04:05Z",
        "requires_python": None,
        "yanked": False,
        "yanked_reason": "",
        "metadata_sha256": None,
        "metadata_blake3": None,
    }
    return LockedFile(**{**base, **extra})  # type: ignore[arg-type]


def rich_lock() -> Lock:
    """Every optional field of the lock in use at least once, in the order a lock is read."""
    return lock_mod.loads(dumps(_rich_lock()))


def _rich_lock() -> Lock:
    env = LockedEnvironment(
        name="linux",
        python="3.12",
        platform="manylinux_2_28_x86_64",
        pins=(
            LockedPin("app", "1.0", "run", ("fast",)),
            LockedPin("setuptools", "70.0", "build"),
            LockedPin("app", "0.9", "version-policy"),
        ),
        edges=(
            LockedEdge("<spec>", "app", "app[fast]>=1", "run"),
            LockedEdge("app", "setuptools", "setuptools>=40.8.0", "build-system"),
            LockedEdge("<spec>", "app", "app==0.9", "version-policy", "", "0.9"),
        ),
        unknown_metadata=("weird",),
    )
    universal = LockedEnvironment(
        name="all", python="3.12", platform="universal", pins=(), edges=(), members=("linux",)
    )
    app = LockedRelease(
        name="app",
        version="1.0",
        requires_dist=('fast-lib; extra == "fast"',),
        requires_python=">=3.9",
        known=True,
        metadata_source="pep658",
        build_requires=("setuptools>=40.8.0",),
        files=(
            _file(
                "app-1.0-py3-none-any.whl",
                requires_python=">=3.9",
                metadata_sha256="c" * 64,
                metadata_blake3="d" * 64,
                provenance_url="https://files.example/app.provenance",
                provenance_sha256="e" * 64,
                provenance_blake3="f" * 64,
            ),
            _file("app-1.0.tar.gz", yanked=True, yanked_reason='broken "quotes" é', kept=True),
            _file("app-1.0-cp312-linux.whl", built_from="9" * 64, built_with="cp312 linux"),
        ),
    )
    old = LockedRelease("app", "0.9", (), None, False, "sdist", (), (_file("app-0.9.tar.gz"),))
    return Lock(
        spec_digest="blake3:" + "0" * 64,
        releases=(app, old),
        environments=(env, universal),
        statuses=(LockedStatus("app", "deprecated", "use other"), LockedStatus("old", "archived")),
        indexes=(LockedIndex("team", (env,)),),
    )


def test_the_lock_read_from_its_toml_tables_is_the_lock_written() -> None:
    lock = rich_lock()
    assert from_data(tomllib.loads(dumps(lock))) == lock


def test_a_saved_lock_is_read_without_parsing_toml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lock, path, parsed = rich_lock(), tmp_path / "mirror.lock", tmp_path / "store" / "p.json"
    parsed.parent.mkdir()
    text = dumps(lock).encode()
    path.write_bytes(text)
    write_parsed(parsed, parsed_bytes(lock, text))

    def no_toml(_text: str) -> object:
        raise AssertionError("parsed the TOML although the cache holds this lock")

    monkeypatch.setattr(tomllib, "loads", no_toml)
    assert load(path, parsed=parsed) == lock


def test_a_hand_edited_lock_is_read_as_edited(tmp_path: Path) -> None:
    lock, path, parsed = rich_lock(), tmp_path / "mirror.lock", tmp_path / "p.json"
    text = dumps(lock).encode()
    write_parsed(parsed, parsed_bytes(lock, text))
    path.write_bytes(text.replace(b'version = "0.9"', b'version = "0.8"'))
    read = load(path, parsed=parsed)
    assert read is not None
    assert {r.version for r in read.releases} == {"1.0", "0.8"}


@pytest.mark.parametrize("cache", [b"", b"{not json", b'{"blake3": 1}', b"[]"])
def test_a_torn_or_foreign_cache_falls_back_to_the_toml(tmp_path: Path, cache: bytes) -> None:
    lock, path, parsed = rich_lock(), tmp_path / "mirror.lock", tmp_path / "p.json"
    path.write_bytes(dumps(lock).encode())
    parsed.write_bytes(cache)
    assert load(path, parsed=parsed) == lock


def test_a_build_leaves_the_parsed_lock_of_what_it_wrote(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    upstream.add_release("app", "1.0", requires_dist=["util>=1"])
    upstream.add_release("util", "1.5")
    ws = tmp_path / "ws"
    write_spec(ws, upstream.url, ["app"])
    proc = morgan(ws, "build")
    assert proc.returncode == 0, proc.stderr
    lock_bytes = (ws / "mirror.lock").read_bytes()
    parsed = ws / "mirror" / "store" / lock_mod.PARSED_LOCK
    saved = json.loads(parsed.read_bytes())
    assert saved["blake3"] == blake3_hex(lock_bytes)
    assert lock_mod.read_parsed(parsed, blake3_hex(lock_bytes)) == lock_mod.loads(
        lock_bytes.decode()
    )


def test_the_cache_reads_back_as_the_toml_does_whatever_order_the_lock_was_made_in(
    tmp_path: Path,
) -> None:
    """A build saves the lock it made (edges in set order, releases as selected); what is
    read back is the lock the TOML parses to, tuple for tuple."""
    lock = _rich_lock()
    shuffled = Lock(
        spec_digest=lock.spec_digest,
        releases=tuple(reversed(lock.releases)),
        environments=tuple(
            dataclasses.replace(e, pins=tuple(reversed(e.pins)), edges=tuple(reversed(e.edges)))
            for e in reversed(lock.environments)
        ),
        statuses=tuple(reversed(lock.statuses)),
        indexes=lock.indexes,
    )
    text = dumps(shuffled).encode()
    parsed = tmp_path / "p.json"
    write_parsed(parsed, parsed_bytes(shuffled, text))
    assert lock_mod.read_parsed(parsed, blake3_hex(text)) == lock_mod.loads(text.decode())


def test_a_cache_of_the_earlier_format_is_not_read(tmp_path: Path) -> None:
    """The tables of the TOML, as Morgan before the rows wrote them: parsed again."""
    lock, path, parsed = rich_lock(), tmp_path / "mirror.lock", tmp_path / "p.json"
    text = dumps(lock).encode()
    path.write_bytes(text)
    tables = tomllib.loads(text.decode())
    parsed.write_text(json.dumps({"blake3": blake3_hex(text), "lock": tables}))
    assert lock_mod.read_parsed(parsed, blake3_hex(text)) is None
    assert load(path, parsed=parsed) == lock


def _source_builds(ws: Path) -> list[object]:
    proc = morgan(ws, "verify", "--json")
    assert proc.returncode == 0, proc.stderr
    return sorted(json.loads(proc.stdout)["source-builds"], key=json.dumps)


def test_a_lock_built_again_takes_the_parsed_form_kept_before_it(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    """Add a requirement and remove it again: the last lock is one an earlier build made
    (its lock node is taken from the cache). The parsed lock kept for the next build is
    still exactly this lock's, and the build reports its source builds as verify does,
    whether the previous parsed form is kept, damaged or gone."""
    upstream.add_release("setuptools", "80.0", sdist=False)
    upstream.add_release("wheel", "0.45.1", sdist=False)
    upstream.add_release("morgan-test-backend", "1.0", sdist=False)
    upstream.add_release("app", "1.0", requires_dist=["native"])
    upstream.add_release("native", "2.0", wheels=["cp312-cp312-manylinux_2_17_x86_64"])
    upstream.add_release("other", "1.0", wheels=[])  # an sdist only: built everywhere
    ws = tmp_path / "ws"
    store = ws / "mirror" / "store"

    def built(requirements: list[str]) -> tuple[bytes, list[object]]:
        write_spec(ws, upstream.url, requirements)
        proc = morgan(ws, "build", "--json")
        assert proc.returncode == 0, proc.stderr
        lock_bytes = (ws / "mirror.lock").read_bytes()
        read = lock_mod.read_parsed(store / lock_mod.PARSED_LOCK, blake3_hex(lock_bytes))
        assert read == lock_mod.loads(lock_bytes.decode())
        reported = sorted(json.loads(proc.stdout)["source-builds"], key=json.dumps)
        assert reported == _source_builds(ws)
        return lock_bytes, reported

    first, first_builds = built(["app"])
    assert first_builds  # native has no wheel for every environment
    kept = (store / lock_mod.PARSED_LOCK).stat().st_ino
    second, second_builds = built(["app", "other"])
    assert second != first
    assert len(second_builds) > len(first_builds)
    assert built(["app"]) == (first, first_builds)  # from the previous parsed form
    assert (store / lock_mod.PARSED_LOCK).stat().st_ino == kept  # taken, not made again
    assert lock_mod.parsed_data(store / lock_mod.PARSED_PREVIOUS, blake3_hex(second))
    assert built(["app", "other"]) == (second, second_builds)
    (store / lock_mod.PARSED_PREVIOUS).write_bytes(b'{"blake3":"' + b"0" * 10)
    assert built(["app"]) == (first, first_builds)  # damaged: made again
    (store / lock_mod.PARSED_PREVIOUS).unlink()
    assert built(["app", "other"]) == (second, second_builds)  # gone: made again


def test_a_build_walks_the_selections_for_its_lock_once(
    upstream: FakeUpstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lock is made twice per build (blanked for the lock node's key, then with the
    files' digests) from one walk over the selections' pins and files: the lock is the one
    the TOML writer gives for the build's selections either way."""
    from morgan import build as build_mod
    from morgan import cli

    upstream.add_release("app", "1.0", requires_dist=["util>=1"])
    upstream.add_release("util", "1.5")
    walks: list[int] = []
    real = build_mod.lock_layout

    def layout(selections: object, infos: object) -> object:
        walks.append(1)
        return real(selections, infos)  # type: ignore[arg-type]

    monkeypatch.setattr(build_mod, "lock_layout", layout)
    ws = tmp_path / "ws"
    write_spec(ws, upstream.url, ["app"])
    assert cli.main(["build", "-q", "-C", str(ws)]) == 0
    assert walks == [1]
    lock = lock_mod.loads((ws / "mirror.lock").read_text(encoding="utf-8"))
    assert [(r.name, r.version) for r in lock.releases] == [("app", "1.0"), ("util", "1.5")]
    assert all(f.blake3 and f.sha256 and f.size for r in lock.releases for f in r.files)
