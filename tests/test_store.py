"""The blob store: round trips, expectations, corruption, and write failures."""

from __future__ import annotations

import errno
import hashlib
import io
import os
import re
import stat
import threading
from pathlib import Path

import pytest

from store import fsio
from store.digest import Digest
from store.errors import DiskFullError, IntegrityError, MissingObjectError, ReadOnlyStoreError
from store.objects import CHUNK_SIZE, Store
from store.roots import set_root


def files_under(path: Path) -> list[str]:
    """Every regular file below ``path``, relative, sorted ([] if ``path`` is missing)."""
    if not path.exists():
        return []
    return sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file())


class PieceReader:
    """A reader that hands out ``data`` in pieces of ``piece`` bytes, like a socket."""

    def __init__(self, data: bytes, piece: int, fail_after: int | None = None) -> None:
        self.data = data
        self.piece = piece
        self.pos = 0
        self.fail_after = fail_after
        self.calls = 0

    def read(self, size: int = -1) -> bytes:
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise ConnectionResetError(errno.ECONNRESET, "Connection reset by peer")
        n = self.piece if size < 0 else min(size, self.piece)
        chunk = self.data[self.pos : self.pos + n]
        self.pos += len(chunk)
        return chunk


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "store")


def test_opening_a_store_writes_nothing(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    assert list(store) == []
    assert not store.has(Digest.of(b"x"))
    assert not (tmp_path / "store").exists()


def test_the_first_write_makes_every_fan_out_folder_and_a_missing_one_comes_back(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[Path] = []
    real = fsio.fsync_dir

    def fsync_dir(path: Path) -> None:
        synced.append(path)
        real(path)

    monkeypatch.setattr(fsio, "fsync_dir", fsync_dir)
    first = store.put_bytes(b"first")
    fanouts = sorted(p.name for p in store.objects_dir.iterdir())
    assert fanouts == [f"{i:02x}" for i in range(256)]
    # One fsync of objects/ for all 256 (and one of the blob's own folder).
    assert synced.count(store.objects_dir) == 1
    # Someone removed a fan-out folder by hand: the next blob filed there makes it again.
    data = next(d for d in (b"%d" % i for i in range(10_000)) if Digest.of(d).hex[:2] == "7f")
    (store.objects_dir / "7f").rmdir()
    blob = store.put_bytes(data)
    assert store.read_bytes(blob.digest) == data
    assert store.read_bytes(first.digest) == b"first"


def test_round_trip(store: Store) -> None:
    blob = store.put_bytes(b"hello")
    assert blob.digest == Digest.of(b"hello")
    assert blob.size == 5
    assert blob.sha256 == hashlib.sha256(b"hello").hexdigest()
    hex_ = blob.digest.hex
    assert store.relpath(blob.digest) == f"objects/{hex_[:2]}/{hex_}"
    assert store.path(blob.digest) == store.root / "objects" / hex_[:2] / hex_
    assert store.read_bytes(blob.digest) == b"hello"
    with store.open(blob.digest) as f:
        assert f.read() == b"hello"
    assert store.size(blob.digest) == 5
    assert store.has(blob.digest)
    assert blob.digest in store
    assert list(store) == [blob.digest]
    assert stat.S_IMODE(store.path(blob.digest).stat().st_mode) == 0o444
    assert files_under(store.tmp_dir) == []


def test_empty_blob(store: Store) -> None:
    blob = store.put_bytes(b"", expect_size=0)
    assert (blob.size, store.read_bytes(blob.digest)) == (0, b"")
    assert str(blob.digest) == (
        "blake3:af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
    )


def test_put_is_idempotent_and_keeps_the_first_file(store: Store) -> None:
    first = store.put_bytes(b"same")
    inode = store.path(first.digest).stat().st_ino
    second = store.put_stream(io.BytesIO(b"same"))
    assert second == first
    assert store.path(first.digest).stat().st_ino == inode
    assert files_under(store.root / "objects") == [store.relpath(first.digest)[len("objects/") :]]
    assert files_under(store.tmp_dir) == []


@pytest.mark.parametrize("overlap", [True, False])
@pytest.mark.parametrize("known_size", [True, False])
def test_stream_of_many_chunks_from_a_short_reading_source(
    store: Store, overlap: bool, known_size: bool
) -> None:
    # Large enough to be copied by three threads unless the caller says not to overlap
    # (an https download): the same blob either way, and no helper thread when not.
    data = bytes(range(256)) * (CHUNK_SIZE * 5 // 256 + 77)
    helpers: set[str] = set()

    class Watching(PieceReader):
        def read(self, n: int = -1) -> bytes:
            names = {t.name for t in threading.enumerate()}
            helpers.update(names & {"morgan-hash", "morgan-write"})
            return super().read(n)

    blob = store.put_stream(
        Watching(data, 65_536),
        expect_size=len(data) if known_size else None,
        expect_sha256=hashlib.sha256(data).hexdigest().upper(),  # case does not matter
        overlap=overlap,
    )
    assert blob.digest == Digest.of(data)
    assert blob.size == len(data)
    assert store.read_bytes(blob.digest) == data
    assert helpers == ({"morgan-hash", "morgan-write"} if overlap else set())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"expect_size": 11}, "expected size 11 bytes, got 10 bytes"),
        ({"expect_size": 9}, "expected size 9 bytes, got more than 9 bytes"),
        (
            {"expect_sha256": "0" * 64},
            f"expected sha256 {'0' * 64}, got {hashlib.sha256(b'0123456789').hexdigest()}",
        ),
    ],
)
def test_mismatch_names_both_values_and_leaves_nothing(
    store: Store, kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(IntegrityError) as exc:
        store.put_stream(io.BytesIO(b"0123456789"), **kwargs)  # type: ignore[arg-type]
    assert str(exc.value) == message
    assert files_under(store.root / "objects") == []
    assert files_under(store.tmp_dir) == []


def test_overlong_stream_is_abandoned_without_reading_it_all(store: Store) -> None:
    reader = PieceReader(b"x" * (10 * CHUNK_SIZE), CHUNK_SIZE)
    with pytest.raises(IntegrityError, match=r"^expected size 100 bytes, got more than 100 bytes$"):
        store.put_stream(reader, expect_size=100)
    assert reader.calls == 1
    assert files_under(store.tmp_dir) == []


def test_bad_expectations_are_programming_errors(store: Store) -> None:
    with pytest.raises(ValueError, match=r"^expect_sha256 'abc' is not 64 hex digits$"):
        store.put_bytes(b"x", expect_sha256="abc")
    with pytest.raises(ValueError, match=r"^expect_size must be >= 0, not -1$"):
        store.put_bytes(b"x", expect_size=-1)


def test_reader_failure_propagates_unchanged_and_leaves_nothing(store: Store) -> None:
    reader = PieceReader(b"y" * 1000, 100, fail_after=3)
    with pytest.raises(ConnectionResetError) as exc:
        store.put_stream(reader)
    assert exc.value.errno == errno.ECONNRESET
    assert files_under(store.root / "objects") == []
    assert files_under(store.tmp_dir) == []


def test_missing_object_is_named(store: Store) -> None:
    digest = Digest.of(b"never stored")
    expected = f"object {digest} is missing from the store {store.root}: fetch or import it again"
    for call in (store.open, store.read_bytes, store.size, store.verify):
        with pytest.raises(MissingObjectError) as exc:
            call(digest)
        assert str(exc.value) == expected


def test_verify_reports_a_flipped_byte(store: Store) -> None:
    blob = store.put_bytes(b"precious content")
    store.verify(blob.digest)  # intact: no error
    path = store.path(blob.digest)
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    data[3] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError) as exc:
        store.verify(blob.digest)
    assert str(exc.value) == (
        f"object {blob.digest} is corrupt: expected {blob.digest}, got {Digest.of(bytes(data))}"
        f" ({path}): delete it and fetch it again"
    )


def test_a_truncated_object_is_repaired_by_storing_it_again(store: Store) -> None:
    blob = store.put_bytes(b"0123456789")
    path = store.path(blob.digest)
    path.chmod(0o644)
    path.write_bytes(b"01234")
    assert store.put_bytes(b"0123456789") == blob
    store.verify(blob.digest)
    assert stat.S_IMODE(path.stat().st_mode) == 0o444


def test_remove_returns_bytes_freed(store: Store) -> None:
    blob = store.put_bytes(b"abcdef")
    assert store.remove(blob.digest) == 6
    assert not store.has(blob.digest)
    assert store.remove(blob.digest) == 0


def test_iteration_is_sorted_and_skips_stray_files(store: Store) -> None:
    digests = [store.put_bytes(bytes([i]) * 10).digest for i in range(20)]
    (store.root / "objects" / "zz").mkdir()
    (store.root / "objects" / "zz" / "junk").write_text("x")
    fanout = store.path(digests[0]).parent
    (fanout / "README").write_text("x")
    (fanout / (fanout.name + "not-hex")).write_text("x")
    assert list(store) == sorted(digests)


# -- write failures -------------------------------------------------------------------------


def _fail_on_second_write(code: int, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    real = fsio.write_all
    calls: list[int] = []

    def write_all(fd: int, data: bytes | memoryview) -> None:
        calls.append(len(data))
        if len(calls) == 2:
            raise OSError(code, os.strerror(code))
        real(fd, data)

    monkeypatch.setattr(fsio, "write_all", write_all)
    return calls


@pytest.mark.parametrize("overlap", [True, False])
def test_disk_full_mid_stream(store: Store, monkeypatch: pytest.MonkeyPatch, overlap: bool) -> None:
    calls = _fail_on_second_write(errno.ENOSPC, monkeypatch)
    with pytest.raises(DiskFullError) as exc:
        store.put_stream(PieceReader(b"z" * (3 * CHUNK_SIZE), CHUNK_SIZE), overlap=overlap)
    assert calls == [CHUNK_SIZE, CHUNK_SIZE]
    assert re.fullmatch(
        rf"disk full while writing to {re.escape(str(store.tmp_dir))}/"
        r"\d+-[0-9a-f]{12}-[0-9a-f]+\.tmp: free space or move the store",
        str(exc.value),
    )
    assert files_under(store.root / "objects") == []
    assert files_under(store.tmp_dir) == []


def test_read_only_store(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    _fail_on_second_write(errno.EROFS, monkeypatch)
    with pytest.raises(ReadOnlyStoreError) as exc:
        store.put_stream(PieceReader(b"z" * (2 * CHUNK_SIZE), CHUNK_SIZE))
    assert re.fullmatch(
        rf"cannot write to {re.escape(str(store.tmp_dir))}/\S+\.tmp: Read-only file system"
        r" \(the store is read-only\): make it writable or use a store on a writable filesystem",
        str(exc.value),
    )
    assert files_under(store.root / "objects") == []
    assert files_under(store.tmp_dir) == []


def test_disk_full_when_linking_into_place(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    def link(src: object, dst: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "link", link)
    with pytest.raises(DiskFullError) as exc:
        store.put_bytes(b"data")
    target = store.path(Digest.of(b"data"))
    assert str(exc.value) == f"disk full while writing to {target}: free space or move the store"
    assert files_under(store.root / "objects") == []
    assert files_under(store.tmp_dir) == []


def test_filesystem_without_hard_links_falls_back_to_rename(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    def link(src: object, dst: object, **kwargs: object) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", link)
    blob = store.put_bytes(b"no links here")
    assert store.read_bytes(blob.digest) == b"no links here"
    assert stat.S_IMODE(store.path(blob.digest).stat().st_mode) == 0o444
    assert files_under(store.tmp_dir) == []


def test_put_bytes_of_present_content_writes_nothing(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    blob = store.put_bytes(b"rendered page")

    def create(tmp_dir: Path) -> tuple[int, Path]:
        raise AssertionError("no write expected for content already stored")

    monkeypatch.setattr(fsio, "create_temp", create)
    monkeypatch.setattr(fsio, "create_unnamed", create)
    assert store.put_bytes(b"rendered page") == blob
    # expectations are still checked on the short path
    with pytest.raises(IntegrityError, match="expected size 3 bytes, got more than 3 bytes"):
        store.put_bytes(b"rendered page", expect_size=3)


def test_replace_file_outside_the_store_is_all_or_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "mirror.lock"
    target.write_bytes(b"old\n")
    fsio.replace_file(target, b"new\n")
    assert target.read_bytes() == b"new\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mirror.lock"]

    def full(fd: int, data: bytes | memoryview) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(fsio, "write_all", full)
    with pytest.raises(DiskFullError, match=f"disk full while writing to {target}: "):
        fsio.replace_file(target, b"newer\n")
    monkeypatch.undo()

    def interrupted() -> None:
        with fsio.replacing(target) as handle:
            handle.write(b"half")
            raise ValueError("not this")

    with pytest.raises(ValueError, match="not this"):
        interrupted()
    assert target.read_bytes() == b"new\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mirror.lock"]


def _fsyncs_and_renames(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """What is fsynced (by path) and renamed into place (by target), in order."""
    events: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append(("fsync", str(Path(f"/proc/self/fd/{fd}").readlink())))
        real_fsync(fd)

    def replace(src: str | Path, dst: str | Path, **kwargs: object) -> None:
        events.append(("rename", str(dst)))
        real_replace(src, dst, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    return events


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="reads fds through /proc")
@pytest.mark.parametrize("unnamed", [True, False])
def test_a_blobs_name_is_durable_before_a_gc_root_names_it(
    store: Store, monkeypatch: pytest.MonkeyPatch, unnamed: bool
) -> None:
    monkeypatch.setattr(fsio, "_UNNAMED", [fsio._UNNAMED[0] and unnamed])
    events = _fsyncs_and_renames(monkeypatch)
    small = store.put_bytes(b"a page")
    large = store.put_stream(io.BytesIO(b"l" * (2 * CHUNK_SIZE)))  # size unknown: named
    set_root(store, "generation-1", small.digest)
    root = str(store.root / "roots" / "generation-1")
    renamed = events.index(("rename", root))
    for blob in (small, large):  # its name in its fan-out folder, then the root naming it
        assert events.index(("fsync", str(store.path(blob.digest).parent))) < renamed
    assert store.read_bytes(small.digest) == b"a page"
    assert stat.S_IMODE(store.path(small.digest).stat().st_mode) == 0o444
    assert files_under(store.tmp_dir) == []


def test_a_name_found_in_the_store_is_made_durable_before_a_root_names_it(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A blob a killed build linked (its folder never fsynced) and this one finds there.
    blob = store.put_bytes(b"left by a killed build")
    fsio.sync_names()
    events = _fsyncs_and_renames(monkeypatch)
    assert store.put_bytes(b"left by a killed build") == blob
    set_root(store, "generation-1", blob.digest)
    folder = str(store.path(blob.digest).parent)
    assert events.index(("fsync", folder)) < events.index(
        ("rename", str(store.root / "roots" / "generation-1"))
    )


def test_fanout_folders_an_earlier_build_left_unsynced_are_durable_before_a_root(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A build killed between making objects/00..ff and fsyncing objects/ left them so; a
    # blob linked into one of them must not be named by a root before objects/ is synced.
    for name in fsio.FANOUTS:
        (store.objects_dir / name).mkdir(parents=True)
    monkeypatch.setattr(fsio, "_SWEPT", set())  # this process has not swept the store yet
    events = _fsyncs_and_renames(monkeypatch)
    blob = store.put_bytes(b"linked into a folder made by a killed build")
    set_root(store, "generation-1", blob.digest)
    renamed = events.index(("rename", str(store.root / "roots" / "generation-1")))
    assert events.index(("fsync", str(store.objects_dir))) < renamed
    assert events.index(("fsync", str(store.path(blob.digest).parent))) < renamed


def test_a_new_store_is_prepared_whole_and_an_old_one_is_left_as_it_is(store: Store) -> None:
    store.prepare()
    for area in ("objects", "actions", "folders"):
        assert sorted(p.name for p in (store.root / area).iterdir()) == list(fsio.FANOUTS)
    assert (store.root / "tmp").is_dir()
    assert (store.root / "traces").is_dir()
    blob = store.put_bytes(b"after prepare")
    (store.root / "folders" / "7f").rmdir()  # a store someone tidied: prepare adds nothing
    store.prepare()
    assert not (store.root / "folders" / "7f").exists()
    assert store.read_bytes(blob.digest) == b"after prepare"
