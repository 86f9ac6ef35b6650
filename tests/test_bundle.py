"""``morgan export`` / ``morgan import``: full and delta bundles, verified before switching."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from morgan.cli import main
from morgan.human import size
from tests import clients
from tests.build_scenario import morgan, populate, write_spec
from tests.upstream import FakeUpstream


@dataclass
class Bundles:
    workspace: Path
    full1: Path  # generation 1, everything
    lock1: Path  # the mirror.lock of generation 1
    full2: Path  # generation 2, everything
    since_bundle: Path  # generation 2, --since full1
    since_lock: Path  # generation 2, --since lock1
    outputs: dict[str, str]


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> Bundles:
    root = tmp_path_factory.mktemp("bundle")
    ws = root / "ws"
    out: dict[str, str] = {}

    def run(*args: str) -> None:
        if args[0] == "build":  # the real CLI in a subprocess, as users run it
            proc = morgan(ws, *args)
            assert proc.returncode == 0, proc.stderr
            return
        stdout = io.StringIO()
        with contextlib.redirect_stdout(stdout):
            assert main([*args, "-C", str(ws)]) == 0
        out[args[0] + (args[-1] if args[0] == "export" else "")] = stdout.getvalue()

    with FakeUpstream(root / "upstream").start() as up:
        populate(up)
        write_spec(ws, up.url)
        run("build")
        shutil.copyfile(ws / "mirror.lock", root / "mirror.lock.1")
        shutil.copyfile(ws / "mirror" / "mirror.toml", root / "mirror.toml.1")
        run("export", "-o", str(root / "full1.tar"))
        up.add_release("newproj", "1.0")
        up.add_release("util", "2.1")
        run("add", "newproj")
        run("build", "--upgrade")
    run("export", "-o", str(root / "full2.tar"))
    run("export", "-o", str(root / "delta-b.tar"), "--since", str(root / "full1.tar"))
    run("export", "-o", str(root / "delta-l.tar"), "--since", str(root / "mirror.lock.1"))
    return Bundles(
        ws,
        root / "full1.tar",
        root / "mirror.lock.1",
        root / "full2.tar",
        root / "delta-b.tar",
        root / "delta-l.tar",
        out,
    )


def _import(capsys: pytest.CaptureFixture[str], bundle: Path, mirror: Path) -> tuple[int, str, str]:
    code = main(["import", str(bundle), "-C", str(mirror)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _header(bundle: Path) -> dict[str, object]:
    with tarfile.open(bundle) as tar:
        first = tar.next()
        assert first is not None
        assert first.name == "morgan-bundle.json"
        handle = tar.extractfile(first)
        assert handle is not None
        header: dict[str, object] = json.loads(handle.read())
    return header


def _tree(root: Path) -> dict[str, bytes]:
    out = {}
    for dirpath, _dirs, files in os.walk(root, followlinks=True):
        for f in files:
            p = Path(dirpath) / f
            out[str(p.relative_to(root))] = p.read_bytes()
    return out


def _objects(header: dict[str, object]) -> set[str]:
    objects = header["objects"]
    assert isinstance(objects, list)
    return set(objects)


def _carried(header: dict[str, object]) -> set[str]:
    blobs = header["blobs"]
    assert isinstance(blobs, list)
    return {b["digest"] for b in blobs}


def test_full_bundle_recreates_the_generation_byte_for_byte(
    bundles: Bundles, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    header = _header(bundles.full1)
    assert _carried(header) == _objects(header)
    offline = tmp_path / "offline"
    code, out, err = _import(capsys, bundles.full1, offline)
    assert (code, err) == (0, "")
    total = sum(b["size"] for b in header["blobs"])  # type: ignore[attr-defined]
    assert out == (
        f"imported {len(_objects(header))} blobs ({size(total)}), all verified; the index now "
        f"points at generation 1 ({header['generation']})\n"
    )
    assert (offline / "index").readlink() == Path("generations/1")
    assert _tree(offline / "index") == _tree(bundles.workspace / "mirror" / "generations" / "1")
    assert (offline / "server.py").read_bytes() == (
        bundles.workspace / "mirror" / "server.py"
    ).read_bytes()
    assert (offline / "mirror.toml").read_bytes() == (
        bundles.lock1.with_name("mirror.toml.1").read_bytes()
    )
    assert (offline / "mirror.lock").read_bytes() == bundles.lock1.read_bytes()
    assert (offline / "store" / "roots" / "generation-1").read_text() == f"{header['generation']}\n"
    # A real client installs from the imported mirror alone.
    url = (offline / "index" / "env" / "host" / "simple").as_uri() + "/"
    cmd = clients.pip_command(
        "download", url, "--only-binary=:all:", "--no-deps", "-d", str(tmp_path / "dl"), "native"
    )
    proc = clients.run(cmd, clients.pip_env(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # Importing the same bundle again changes nothing.
    again = _import(capsys, bundles.full1, offline)[1]
    assert again.endswith(
        f"; generation 1 ({header['generation']}) was already the index: nothing switched\n"
    )
    assert "now points at" not in again


def test_delta_since_bundle_carries_only_new_blobs_and_is_smaller(
    bundles: Bundles, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old, new = _header(bundles.full1), _header(bundles.since_bundle)
    assert _carried(new) == (_objects(new) - _objects(old)) | {new["generation"]}
    assert bundles.since_bundle.stat().st_size < bundles.full2.stat().st_size
    report = bundles.outputs["export" + str(bundles.since_bundle.parent / "full1.tar")]
    carried = len(_carried(new))
    assert report.startswith(
        f"wrote {bundles.since_bundle}: {carried} of {len(_objects(new))} blobs, "
    )
    offline = tmp_path / "offline"
    assert _import(capsys, bundles.full1, offline)[0] == 0
    code, out, err = _import(capsys, bundles.since_bundle, offline)
    assert (code, err) == (0, "")
    assert out.endswith(f"the index now points at generation 2 ({new['generation']})\n")
    assert _tree(offline / "index") == _tree(bundles.workspace / "mirror" / "generations" / "2")
    assert (offline / "generations" / "1").is_dir()  # rollback stays possible
    assert (offline / "mirror.toml").read_text().count('"newproj"') == 1


def test_delta_since_lock_imports_onto_the_old_mirror(
    bundles: Bundles, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    by_lock, by_bundle = _header(bundles.since_lock), _header(bundles.since_bundle)
    # A lock names files and .metadata only: pages travel again, files do not.
    assert _carried(by_bundle) <= _carried(by_lock) < _objects(by_lock)
    offline = tmp_path / "offline"
    assert _import(capsys, bundles.full1, offline)[0] == 0
    assert _import(capsys, bundles.since_lock, offline)[0] == 0
    assert _tree(offline / "index") == _tree(bundles.workspace / "mirror" / "generations" / "2")


def test_delta_onto_a_mirror_without_its_base_is_rejected(
    bundles: Bundles, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    offline = tmp_path / "offline"
    code, out, err = _import(capsys, bundles.since_bundle, offline)
    missing = len(_objects(_header(bundles.since_bundle)) - _carried(_header(bundles.since_bundle)))
    assert (code, out) == (1, "")
    assert err.startswith(
        f"morgan: error: {bundles.since_bundle}: a delta bundle, but this mirror lacks {missing} "
        "of the objects it builds on (e.g. blake3:"
    )
    assert err.endswith(
        "import the earlier bundle first, or export with --since this mirror's mirror.lock\n"
    )
    assert not (offline / "index").exists()


def _first_blob_offset(bundle: Path) -> int:
    with tarfile.open(bundle) as tar:
        for member in tar:
            if member.name.startswith("blobs/") and member.size > 0:
                return member.offset_data
    raise AssertionError("no blob")


def test_corrupt_bundle_is_rejected_whole_and_the_old_index_stays(
    bundles: Bundles, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    offline = tmp_path / "offline"
    assert _import(capsys, bundles.full1, offline)[0] == 0
    before = _tree(offline)
    bad = tmp_path / "bad.tar"
    data = bytearray(bundles.full2.read_bytes())
    data[_first_blob_offset(bundles.full2)] ^= 0xFF
    bad.write_bytes(bytes(data))
    code, out, err = _import(capsys, bad, offline)
    assert (code, out) == (1, "")
    assert err.startswith(f"morgan: error: {bad}: blob blake3:")
    assert "is corrupt or truncated (expected sha256 " in err
    assert err.endswith("nothing was imported; copy the bundle again\n")
    assert err.count("\n") == 1
    assert (offline / "index").readlink() == Path("generations/1")
    assert not (offline / "generations" / "2").exists()
    # Only unreferenced, verified blobs may have been added; the served files are unchanged.
    after = _tree(offline)
    assert {k: v for k, v in after.items() if not k.startswith("store/")} == {
        k: v for k, v in before.items() if not k.startswith("store/")
    }


def _cut_points(bundle: Path) -> tuple[int, int, int]:
    """Offsets inside the header, inside the first blob and inside the last blob."""
    with tarfile.open(bundle) as tar:
        members = tar.getmembers()
    blobs = [m for m in members if m.name.startswith("blobs/") and m.size > 1]
    return (
        members[0].offset_data + members[0].size // 2,
        blobs[0].offset_data + blobs[0].size // 2,
        blobs[-1].offset_data + blobs[-1].size // 2,
    )


@pytest.mark.parametrize("where", [0, 1, 2], ids=["in-header", "first-blob", "last-blob"])
def test_truncated_bundle_is_rejected(
    bundles: Bundles, tmp_path: Path, capsys: pytest.CaptureFixture[str], where: int
) -> None:
    offline = tmp_path / "offline"
    assert _import(capsys, bundles.full1, offline)[0] == 0
    cut = tmp_path / "cut.tar"
    data = bundles.full2.read_bytes()
    cut.write_bytes(data[: _cut_points(bundles.full2)[where]])
    code, out, err = _import(capsys, cut, offline)
    assert (code, out) == (1, "")
    assert err.startswith(f"morgan: error: {cut}: ")
    assert "truncated" in err
    assert err.endswith("copy the bundle again\n")
    assert err.count("\n") == 1
    assert (offline / "index").readlink() == Path("generations/1")
    assert not (offline / "generations" / "2").exists()


def test_not_a_bundle(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    junk = tmp_path / "junk.tar"
    with tarfile.open(junk, "w") as tar:
        tar.add(__file__, arcname="hello.py")
    assert _import(capsys, junk, tmp_path / "m") == (
        1,
        "",
        f"morgan: error: {junk}: does not start with morgan-bundle.json — not a morgan bundle\n",
    )


def test_import_with_copies_and_export_to_a_missing_folder(
    bundles: Bundles, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    offline = tmp_path / "offline"
    code = main(["import", str(bundles.full1), "-C", str(offline), "--materialize", "copy"])
    assert code == 0
    page = offline / "index" / "simple" / "native" / "index.html"
    assert page.is_file()
    assert not page.is_symlink()
    assert _tree(offline / "index") == _tree(bundles.workspace / "mirror" / "generations" / "1")
    capsys.readouterr()
    target = tmp_path / "no" / "such" / "bundle.tar"
    assert main(["export", "-C", str(offline), "-o", str(target)]) == 1
    assert capsys.readouterr().err == (
        f"morgan: error: {target}: cannot write the bundle (No such file or directory) — check "
        "the folder exists, is writable and has space\n"
    )


def test_export_is_deterministic(bundles: Bundles, tmp_path: Path) -> None:
    again = tmp_path / "again.tar"
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["export", "-C", str(bundles.workspace), "-o", str(again)]) == 0
    assert again.read_bytes() == bundles.full2.read_bytes()
