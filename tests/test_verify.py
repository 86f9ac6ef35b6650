"""`morgan verify`: each kind of damage reported precisely; a clean mirror verifies clean."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from morgan.lock import LockedFile
from morgan.lock import load as load_lock
from morgan.verify import hash_object
from store.digest import Digest
from store.manifests import write_manifest
from store.objects import Store
from store.roots import set_root
from tests.build_scenario import morgan
from tests.small_scenario import copy_mirror, populate, write_spec
from tests.upstream import FakeUpstream

ASSUMED = "(none recorded in the lock: assumed setuptools)"


@dataclass
class Built:
    upstream: FakeUpstream
    mirror: Path


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    root = tmp_path_factory.mktemp("verify")
    with FakeUpstream(root / "upstream").start() as up:
        populate(up)
        write_spec(root / "ws", up.url)
        proc = morgan(root / "ws", "build")
        assert proc.returncode == 0, proc.stderr
        yield Built(up, root / "ws" / "mirror")


@pytest.fixture
def mirror(built: Built, tmp_path: Path) -> Path:
    """A private copy of the built mirror folder, to damage."""
    return copy_mirror(built.mirror, tmp_path / "mirror")


def locked(mirror: Path, filename: str) -> LockedFile:
    lock = load_lock(mirror / "mirror.lock")
    assert lock is not None
    return next(f for r in lock.releases for f in r.files if f.filename == filename)


def blob(mirror: Path, filename: str) -> Path:
    b3 = locked(mirror, filename).blake3
    return mirror / "store" / "objects" / b3[:2] / b3


def rel(b3: str) -> str:
    return f"objects/{b3[:2]}/{b3}"


def verify_json(mirror: Path, *args: str) -> tuple[int, dict[str, Any], str]:
    proc = morgan(mirror, "verify", "--json", *args)
    return proc.returncode, json.loads(proc.stdout), proc.stderr


def problems(data: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(p["check"], p["subject"], p["message"]) for p in data["problems"]]


def test_clean_mirror_verifies_clean(built: Built) -> None:
    objects = len(list(Store(built.mirror / "store")))
    proc = morgan(built.mirror.parent, "verify")  # from the workspace
    assert proc.returncode == 0, proc.stderr
    note = (
        "srconly 1.0 only as sdist (srconly-1.0.tar.gz) — needs a compiler only if it has "
        "native code and its build requirements (morgan-test-backend), mirrored\n"
    )
    assert proc.stderr == (
        "environment linux: installable\n"
        "environment windows: installable\n"
        f"note: linux: {note}"
        f"note: windows: {note}"
        f"verified {objects} objects, generations 1, 2 environments: OK\n"
    )
    code, data, _ = verify_json(built.mirror)  # inside the mirror folder alone
    assert code == 0
    assert data["ok"] is True
    assert data["environments"] == {"linux": "OK", "windows": "OK"}
    assert data["problems"] == []


def test_flipped_byte_is_reported_as_corrupt(mirror: Path) -> None:
    path = blob(mirror, "util-1.5-py3-none-any.whl")
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    data[20] ^= 0xFF
    path.write_bytes(bytes(data))
    actual = hash_object(path)[0]
    code, out, stderr = verify_json(mirror)
    assert code == 1
    found = problems(out)
    assert found[:2] == [
        ("object", rel(path.name), f"corrupt: content hashes to blake3:{actual}"),
        ("lock", "util-1.5-py3-none-any.whl", f"corrupt ({rel(path.name)})"),
    ]
    # Without its wheel, util 1.5 would have to be built from its sdist: no backend for it.
    for env, (check, subject, message) in zip(("linux", "windows"), found[2:], strict=True):
        assert (check, subject) == ("install", env)
        assert message.startswith(
            f"util 1.5 has only an sdist (util-1.5.tar.gz) here and its build dependencies"
            f" {ASSUMED} cannot be installed from the mirror: environment '{env}'"
        )
    assert f"object: {rel(path.name)}: corrupt: content hashes to blake3:{actual}\n" in stderr


def test_deleted_blob_is_reported_missing_everywhere_it_is_linked(mirror: Path) -> None:
    path = blob(mirror, "util-1.5.tar.gz")
    path.unlink()
    code, out, _ = verify_json(mirror)
    assert code == 1
    digest = f"blake3:{path.name}"
    assert problems(out) == [
        ("lock", "util-1.5.tar.gz", f"missing from the store ({rel(path.name)})"),
        *[
            ("generation", f"generation 1/{p}util-1.5.tar.gz", f"its blob {digest} is missing")
            for p in ("env/linux/simple/util/", "env/windows/simple/util/", "simple/util/")
        ],
    ]
    assert out["environments"] == {"linux": "OK", "windows": "OK"}  # the wheel still installs


def unshare(folder: Path) -> None:
    """Replace the link to a shared folder object by a folder of its own (the same links),
    so damage done to it stays in this one place."""
    shared = folder.resolve()
    folder.unlink()
    folder.mkdir()
    for link in shared.iterdir():
        (folder / link.name).symlink_to(os.path.relpath(link.resolve(), folder))


def test_wrong_link_and_extra_file(mirror: Path) -> None:
    gen = mirror / "generations" / "1"
    unshare(gen / "simple" / "util")
    page = gen / "simple" / "util" / "index.json"
    right = page.resolve().name
    wrong = os.path.relpath((gen / "simple" / "dropme" / "index.json").resolve(), page.parent)
    page.unlink()
    page.symlink_to(wrong)
    (gen / "simple" / "util" / "stray.whl").write_bytes(b"not listed anywhere")
    code, out, _ = verify_json(mirror)
    assert code == 1
    found = problems(out)
    assert (
        "generation",
        "generation 1/simple/util/index.json",
        f"points to {wrong}, not blake3:{right}",
    ) in found
    assert ("generation", "generation 1/simple/util/stray.whl", "extra: not in the manifest") in (
        found
    )
    assert ("pages", "simple/util/", "util-1.5.tar.gz is locked but not listed") in found
    assert ("pages", "simple/util/", "dropme-1.0.tar.gz is listed but not locked") in found
    assert out["environments"] == {"linux": "OK", "windows": "OK"}


def test_damage_to_a_shared_folder_is_reported_wherever_it_is_linked(mirror: Path) -> None:
    gen = mirror / "generations" / "1"
    shared = (gen / "simple" / "util").resolve()
    assert shared.parent.parent.name == "folders"
    users = sorted(
        str(p.relative_to(gen))
        for p in (gen / "simple" / "util", *gen.glob("env/*/simple/util"))
        if p.resolve() == shared
    )
    shared.chmod(0o755)
    (shared / "stray.whl").write_bytes(b"not listed anywhere")
    code, out, _ = verify_json(mirror)
    assert code == 1
    extra = sorted(p for kind, p, what in problems(out) if what == "extra: not in the manifest")
    assert extra == [f"generation 1/{u}/stray.whl" for u in users]


def test_a_folder_link_out_of_the_store_is_not_entered(mirror: Path, tmp_path: Path) -> None:
    """A project folder linked to a look-alike of a folder object outside the store (same
    name shape, same entries) is a wrong link, not the generation's files."""
    gen = mirror / "generations" / "1"
    shared = (gen / "simple" / "util").resolve()
    fake = tmp_path / "elsewhere" / "folders" / shared.name[:2] / shared.name
    fake.mkdir(parents=True)
    for entry in shared.iterdir():
        (fake / entry.name).symlink_to(entry.resolve())
    link = gen / "simple" / "util"
    link.unlink()
    link.symlink_to(fake)
    code, out, _ = verify_json(mirror)
    assert code == 1
    found = problems(out)
    assert ("generation", "generation 1/simple/util", "extra: not in the manifest") in found
    assert any(
        subject == "generation 1/simple/util/index.json" and "missing" in what
        for _, subject, what in found
    ), found


def test_removed_wheel_breaks_only_the_environment_that_needs_it(mirror: Path) -> None:
    name = "native-1.0-py3-none-win_amd64.whl"
    (mirror / "generations" / "1" / "env" / "windows" / "simple" / "native" / name).unlink()
    code, out, _ = verify_json(mirror)
    assert code == 1
    failure = (
        "no fitting file left in the mirror for locked native 1.0; "
        "environment 'windows' (Python 3.12, win_amd64): no release of native is available;"
        " needed by 'native' (required by <spec>): relax the requirement, or remove the"
        " environment that cannot have it"
    )
    digest = locked(mirror, name).blake3
    assert problems(out) == [
        (
            "generation",
            f"generation 1/env/windows/simple/native/{name}",
            f"missing (should be blake3:{digest})",
        ),
        ("install", "windows", failure),
    ]
    assert out["environments"] == {"linux": "OK", "windows": failure}


def test_repair_refetches_a_corrupt_file(mirror: Path) -> None:
    path = blob(mirror, "util-1.5-py3-none-any.whl")
    path.chmod(0o644)
    path.write_bytes(b"garbage")
    proc = morgan(mirror, "verify", "--repair")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.startswith("repaired: re-fetched util-1.5-py3-none-any.whl\n")
    assert proc.stderr.endswith("2 environments: OK\n")
    assert hash_object(path) == (path.name, locked(mirror, "util-1.5-py3-none-any.whl").sha256)


def test_repair_offline_lists_what_to_bring_across(mirror: Path, built: Built) -> None:
    lock_path = mirror / "mirror.lock"
    netloc = urlsplit(built.upstream.url).netloc
    lock_path.write_text(lock_path.read_text().replace(netloc, "127.0.0.1:9"))  # nothing listens
    name = "native-1.0-py3-none-win_amd64.whl"
    f = locked(mirror, name)
    blob(mirror, name).unlink()
    proc = morgan(mirror, "verify", "--repair")
    assert proc.returncode == 1
    first = proc.stderr.splitlines()[0]
    assert first.startswith(
        f"cannot repair: bring across {name} ({f.size} bytes, sha256 {f.sha256}, {f.url}): GET "
    )
    assert f"lock: {name}: missing from the store ({rel(f.blake3)})" in proc.stderr


def test_copied_generation_is_checked_by_content(built: Built, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    write_spec(ws, built.upstream.url, ["util"])
    proc = morgan(ws, "build", "--materialize", "copy")
    assert proc.returncode == 0, proc.stderr
    assert morgan(ws, "verify").returncode == 0
    copied = ws / "mirror" / "generations" / "1" / "simple" / "util" / "util-1.5.tar.gz"
    assert not copied.is_symlink()
    copied.chmod(0o644)
    copied.write_bytes(b"tampered")
    code, out, _ = verify_json(ws)
    assert code == 1
    digest = locked(ws / "mirror", "util-1.5.tar.gz").blake3
    assert problems(out) == [
        (
            "generation",
            "generation 1/simple/util/util-1.5.tar.gz",
            f"content differs from blake3:{digest}",
        )
    ]


def _leaf_then_extra(upstream: FakeUpstream, tmp_path: Path) -> tuple[Path, bytes, bytes]:
    """A workspace built with ``leaf``, then with ``leaf`` and ``extra`` (generation 2); its
    path and the lock and spec of the first build."""
    upstream.add_release("leaf", "1.0")
    upstream.add_release("extra", "1.0")
    ws = tmp_path / "ws"
    env = '[environments.linux]\npython = "3.11"\nplatform = "manylinux_2_28_x86_64"\n'
    spec = f'[upstream]\nindex-url = "{upstream.url}"\n{env}'
    ws.mkdir()
    (ws / "mirror.toml").write_text('requirements = ["leaf"]\n' + spec)
    assert morgan(ws, "build").returncode == 0
    old_lock = (ws / "mirror.lock").read_bytes()
    old_spec = (ws / "mirror.toml").read_bytes()
    (ws / "mirror.toml").write_text('requirements = ["leaf", "extra"]\n' + spec)
    assert morgan(ws, "build").returncode == 0
    return ws, old_lock, old_spec


def test_projects_served_but_not_locked_are_reported_unless_the_generation_locks_them(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    # The window between the index switch and the rename of the lock: the lock and the
    # copies beside the mirror do not name a project the served generation has yet. The
    # generation holds the lock it was built from (generations/<n>/mirror.lock), so verify
    # checks the pages against that one: nothing is wrong with what is served.
    ws, old_lock, old_spec = _leaf_then_extra(upstream, tmp_path)
    served_lock = (ws / "mirror" / "index" / "mirror.lock").read_bytes()
    assert b'name = "extra"' in served_lock
    for path, old in ((ws / "mirror.lock", old_lock), (ws / "mirror" / "mirror.lock", old_lock)):
        path.write_bytes(old)
    (ws / "mirror" / "mirror.toml").write_bytes(old_spec)

    code, data, err = verify_json(ws / "mirror")
    assert (code, problems(data)) == (0, []), err
    assert data["environments"] == {"linux": "OK"}

    # A project folder in the served generation that its own lock does not name is
    # reported (beside the manifest's complaint), with advice that works.
    gen = (ws / "mirror" / "index").resolve()
    shutil.copytree(gen / "simple" / "extra", gen / "simple" / "planted", symlinks=True)
    code, data, _err = verify_json(ws / "mirror")
    assert code == 1
    assert problems(data)[-1] == (
        "pages",
        "simple/planted/",
        (
            "served but not in the lock generation 2 was built from — not written by Morgan:"
            f" remove {gen}/simple/planted"
        ),
    )
    assert {p[0] for p in problems(data)} == {"generation", "pages"}
    shutil.rmtree(gen / "simple" / "planted")
    code, data, err = verify_json(ws / "mirror")
    assert (code, problems(data)) == (0, []), err
    # A build writes the lock that fits again, and verify stays clean.
    proc = morgan(ws, "build")
    assert proc.returncode == 0, proc.stderr
    code, data, err = verify_json(ws / "mirror")
    assert (code, problems(data)) == (0, []), err


def _as_before_generations_held_their_lock(mirror: Path) -> Path:
    """Make the served generation one of those built before generations recorded the lock
    they were built from: no ``mirror.lock`` in its tree, and a manifest (and GC root)
    that does not list one."""
    store = Store(mirror / "store")
    gen = (mirror / "index").resolve()
    data = json.loads((gen / "manifest.json").read_bytes())
    entries = {k: Digest.parse(v) for k, v in data["entries"].items() if k != "mirror.lock"}
    blob = write_manifest(
        store,
        entries.values(),
        extra={"version": 1, "entries": {k: str(v) for k, v in sorted(entries.items())}},
    )
    (gen / "mirror.lock").unlink()
    (gen / "manifest.json").unlink()
    (gen / "manifest.json").symlink_to(
        os.path.relpath(store.path(blob.digest), gen), target_is_directory=False
    )
    set_root(store, f"generation-{gen.name}", blob.digest)
    return gen


def test_a_generation_without_its_own_lock_is_checked_against_the_mirrors_lock(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    # Generations made before they recorded their lock are verified against the mirror's
    # lock; when that lock is older than what is served, the advice says what fixes it, and
    # following it (a build) gives a generation that holds its own lock.
    ws, old_lock, old_spec = _leaf_then_extra(upstream, tmp_path)
    gen = _as_before_generations_held_their_lock(ws / "mirror")
    assert gen.name == "2"

    # The mirror's lock is the one generation 2 was built from: nothing is wrong.
    code, data, err = verify_json(ws / "mirror")
    assert (code, problems(data)) == (0, []), err
    assert data["environments"] == {"linux": "OK"}

    # The lock beside it is older than what is served (a build stopped between the switch
    # and the rename of its lock, with a Morgan that did not record the lock in the tree).
    for path in (ws / "mirror.lock", ws / "mirror" / "mirror.lock"):
        path.write_bytes(old_lock)
    (ws / "mirror" / "mirror.toml").write_bytes(old_spec)
    code, data, _err = verify_json(ws / "mirror")
    advice = (
        "served but not in the lock — the lock is older than the served generation: run "
        "'morgan build' in the workspace (it writes the lock that fits), or import the "
        "bundle again on the offline side"
    )
    assert (code, problems(data)) == (
        1,
        [("pages", "env/linux/simple/extra/", advice), ("pages", "simple/extra/", advice)],
    )
    proc = morgan(ws / "mirror", "verify")
    assert proc.returncode == 1
    assert f"pages: simple/extra/: {advice}\n" in proc.stderr

    # The advice works: the build writes the lock that fits, in a generation that holds it.
    proc = morgan(ws, "build")
    assert proc.returncode == 0, proc.stderr
    served = (ws / "mirror" / "index").resolve()
    assert served.name == "3"
    assert (served / "mirror.lock").read_bytes() == (ws / "mirror.lock").read_bytes()
    code, data, err = verify_json(ws / "mirror")
    assert (code, problems(data)) == (0, []), err
