"""`morgan build` against a faulty upstream: retried when transient, one clear line when not.

Every test copies a workspace whose generation 1 was built from `demo==1.0` and `dep==1.0`,
unpins them and runs `morgan build --upgrade` (in a child process forked by
tests/build_forker.py: the real CLI, without paying for a new interpreter) while the
fake upstream, which also lists 2.0 of both, injects one fault. A persistent fault must end
the build with exit 1 and one line naming the URL and the cause, leave generation 1 served
and intact and the lock untouched; a build with the fault cleared then succeeds. A transient
fault must be retried into a new generation.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import shutil
import threading
import time
import tomllib
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from morgan import cli
from store import fsio
from tests.build_checks import (
    FAST_RETRIES,
    assert_consistent,
    morgan_env,
    run_morgan,
    served,
    write_spec,
)
from tests.build_forker import Forker
from tests.upstream import FakeUpstream, Fault, RecordedRequest

WHEEL = "demo-2.0-py3-none-any.whl"
SDIST = "demo-2.0.tar.gz"
PAGE = "/simple/demo/"


@dataclass
class Base:
    upstream: FakeUpstream
    workspace: Path


@pytest.fixture(scope="module")
def forker() -> Iterator[Forker]:
    """Runs each `morgan build` in a forked child (a real process, without the startup)."""
    running = Forker()
    try:
        yield running
    finally:
        running.close()


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Base]:
    root = tmp_path_factory.mktemp("faults")
    with FakeUpstream(root / "upstream").start() as up:
        for version in ("1.0", "2.0"):
            up.add_release("demo", version, requires_dist=["dep>=1"])
            up.add_release("dep", version)
        workspace = root / "base"
        write_spec(workspace, up.url, ["demo==1.0", "dep==1.0"])
        proc = run_morgan(workspace, "build")
        assert proc.returncode == 0, proc.stderr
        yield Base(up, workspace)


@dataclass
class Case:
    upstream: FakeUpstream
    forker: Forker
    workspace: Path
    mirror: Path
    generation_1: dict[str, str]
    lock: bytes

    def build(self, *, env: dict[str, str] | None = None) -> tuple[int, str]:
        """`morgan build --upgrade` in a child process."""
        argv = ["build", "--upgrade", "-C", str(self.workspace)]
        stderr = self.workspace.parent / "build.err"
        return self.forker.run(argv, stderr, env=morgan_env(env))

    def url(self, path: str) -> str:
        return self.upstream.base_url + path

    def requested(self, path: str) -> int:
        return sum(1 for r in self.upstream.requests if r.path == path)

    def assert_failed_cleanly(self, code: int, stderr: str, message: str) -> None:
        """Exit 1, exactly `message` on stderr, generation 1 still served and intact, the lock
        unchanged, no temp file left beside it, and `morgan verify` clean."""
        assert (code, stderr) == (1, f"morgan: error: {message}\n")
        now = assert_consistent(self.mirror)
        assert now is not None
        assert (now.number, now.entries) == (1, self.generation_1)
        assert sorted(p.name for p in (self.mirror / "generations").iterdir()) == ["1"]
        assert (self.workspace / "mirror.lock").read_bytes() == self.lock
        assert [p.name for p in self.workspace.iterdir() if p.name.startswith(".")] == []
        self.assert_verify_clean()

    def assert_verify_clean(self) -> None:
        """`morgan verify` finds nothing wrong (objects, generations, pages, installability)."""
        argv = ["verify", "-C", str(self.workspace)]
        code, stderr = self.forker.run(argv, self.workspace.parent / "verify.err")
        assert code == 0, stderr

    def assert_new_generation(self, code: int, stderr: str) -> None:
        """Exit 0 and generation 2 served, complete, with the 2.0 releases."""
        assert code == 0, stderr
        now = assert_consistent(self.mirror)
        assert now is not None
        assert now.number == 2
        assert f"simple/demo/{WHEEL}" in now.entries
        assert "simple/dep/dep-2.0-py3-none-any.whl" in now.entries
        assert 'name = "demo", version = "2.0"' in (self.workspace / "mirror.lock").read_text()
        self.assert_verify_clean()


@pytest.fixture
def case(base: Base, forker: Forker, tmp_path: Path) -> Iterator[Case]:
    workspace = tmp_path / "ws"
    shutil.copytree(base.workspace, workspace, symlinks=True)
    write_spec(workspace, base.upstream.url, ["demo", "dep"])
    mirror = workspace / "mirror"
    generation_1 = served(mirror)
    assert generation_1 is not None
    up = base.upstream
    up.clear_faults()
    up.clear_requests()
    try:
        yield Case(
            up,
            forker,
            workspace,
            mirror,
            generation_1.entries,
            (workspace / "mirror.lock").read_bytes(),
        )
    finally:
        up.clear_faults()
        up.html_only = False


def _flipped_sha256(data: bytes) -> str:
    return hashlib.sha256(bytes([data[0] ^ 0xFF]) + data[1:]).hexdigest()


def _file(up: FakeUpstream, name: str) -> bytes:
    return (up.files_dir / name).read_bytes()


# -- persistent faults: exit 1, one line, generation 1 kept, then a clean rebuild ----------

PERSISTENT = {
    "page-500": (
        PAGE,
        Fault(status=500),
        "GET {page}: HTTP 500 Internal Server Error after 5 attempts",
    ),
    "file-502": (
        f"/files/{WHEEL}",
        Fault(status=502),
        "GET {wheel}: HTTP 502 Bad Gateway after 5 attempts",
    ),
    "file-503": (
        f"/files/{SDIST}",
        Fault(status=503),
        "GET {sdist}: HTTP 503 Service Unavailable after 5 attempts",
    ),
    "page-429": (
        PAGE,
        Fault(status=429, retry_after="0"),
        "GET {page}: HTTP 429 Too Many Requests after 5 attempts",
    ),
    "page-reset": (PAGE, Fault(reset=True), "GET {page}: connection reset after 5 attempts"),
    "file-reset-mid-body": (
        f"/files/{WHEEL}",
        Fault(truncate=100, reset=True),
        "GET {wheel}: connection broken while reading the body: connection reset after 5 attempts",
    ),
    "file-truncated": (
        f"/files/{WHEEL}",
        Fault(truncate=100),
        (
            "GET {wheel}: connection broken while reading the body: body truncated (connection "
            "closed early) after 5 attempts"
        ),
    ),
    "page-truncated": (
        PAGE,
        Fault(truncate=10),
        "GET {page}: body broken: body truncated (connection closed early) after 5 attempts",
    ),
    "file-404": (f"/files/{SDIST}", Fault(status=404), "GET {sdist}: HTTP 404 Not Found"),
    "page-redirect-loop": (
        PAGE,
        Fault(redirect_to=PAGE),
        "GET {page}: redirect loop (more than 10 redirects)",
    ),
    "page-malformed-json": (
        PAGE,
        Fault(body=b'{"meta": '),
        "{page}: malformed JSON page: Expecting value: line 1 column 10 (char 9)",
    ),
}


@pytest.mark.parametrize("name", sorted(PERSISTENT))
def test_persistent_fault_fails_with_one_line_and_keeps_the_served_generation(
    case: Case, name: str
) -> None:
    pattern, fault, message = PERSISTENT[name]
    case.upstream.set_fault(pattern, fault)
    code, stderr = case.build()
    urls = {
        "page": case.url(PAGE),
        "wheel": case.url(f"/files/{WHEEL}"),
        "sdist": case.url(f"/files/{SDIST}"),
    }
    case.assert_failed_cleanly(code, stderr, message.format(**urls))
    case.upstream.clear_faults()
    case.assert_new_generation(*case.build())


def test_file_longer_than_its_listed_size(case: Case) -> None:
    size = len(_file(case.upstream, WHEEL))
    case.upstream.set_fault(f"/files/{WHEEL}", Fault(extra_bytes=7))
    code, stderr = case.build()
    message = (
        f"GET {case.url('/files/' + WHEEL)}: expected size {size} bytes, got more than {size} bytes"
    )
    case.assert_failed_cleanly(code, stderr, message)
    # A wrong file is not a network hiccup: it is fetched once, not retried.
    assert case.requested(f"/files/{WHEEL}") == 1
    case.upstream.clear_faults()
    case.assert_new_generation(*case.build())


def test_file_with_wrong_sha256(case: Case) -> None:
    data = _file(case.upstream, WHEEL)
    case.upstream.set_fault(f"/files/{WHEEL}", Fault(wrong_body=True))
    code, stderr = case.build()
    message = (
        f"GET {case.url('/files/' + WHEEL)}: expected sha256 {hashlib.sha256(data).hexdigest()}, "
        f"got {_flipped_sha256(data)}"
    )
    case.assert_failed_cleanly(code, stderr, message)
    assert case.requested(f"/files/{WHEEL}") == 1
    case.upstream.clear_faults()
    case.assert_new_generation(*case.build())


def test_metadata_whose_hash_does_not_match_the_page(case: Case) -> None:
    with zipfile.ZipFile(case.upstream.files_dir / WHEEL) as zf:
        metadata = zf.read("demo-2.0.dist-info/METADATA")
    case.upstream.set_fault(f"/files/{WHEEL}.metadata", Fault(wrong_body=True))
    code, stderr = case.build()
    message = (
        f"GET {case.url('/files/' + WHEEL + '.metadata')}: expected sha256 "
        f"{hashlib.sha256(metadata).hexdigest()}, got {_flipped_sha256(metadata)}"
    )
    case.assert_failed_cleanly(code, stderr, message)
    case.upstream.clear_faults()
    case.assert_new_generation(*case.build())


def test_connection_refused_by_a_stopped_upstream(case: Case, tmp_path: Path) -> None:
    stopped = FakeUpstream(tmp_path / "stopped").start()
    stopped.stop()
    write_spec(case.workspace, stopped.url, ["demo", "dep"])
    code, stderr = case.build()
    message = f"GET {stopped.url}demo/: connection refused after 5 attempts"
    case.assert_failed_cleanly(code, stderr, message)
    write_spec(case.workspace, case.upstream.url, ["demo", "dep"])
    case.assert_new_generation(*case.build())


def test_read_timeout(case: Case) -> None:
    env = {"MORGAN_HTTP_TIMEOUT": "0.5", "MORGAN_HTTP_RETRIES": "1"}
    case.upstream.set_fault(PAGE, Fault(delay=3))
    code, stderr = case.build(env=env)
    case.assert_failed_cleanly(code, stderr, f"GET {case.url(PAGE)}: read timeout after 2 attempts")
    assert case.requested(PAGE) == 2
    case.upstream.clear_faults()
    case.assert_new_generation(*case.build(env=env))


def test_slow_drip_slower_than_the_timeout(case: Case) -> None:
    env = {"MORGAN_HTTP_TIMEOUT": "0.5", "MORGAN_HTTP_RETRIES": "1"}
    # 256 bytes, then nothing for 5 s: each read waits longer than the timeout.
    case.upstream.set_fault(f"/files/{WHEEL}", Fault(drip_bytes_per_sec=50))
    code, stderr = case.build(env=env)
    message = (
        f"GET {case.url('/files/' + WHEEL)}: connection broken while reading the body: "
        "read timeout after 2 attempts"
    )
    case.assert_failed_cleanly(code, stderr, message)
    case.upstream.clear_faults()
    case.assert_new_generation(*case.build(env=env))


def test_drip_below_the_minimum_rate(case: Case) -> None:
    env = {
        "MORGAN_HTTP_TIMEOUT": "5",
        "MORGAN_HTTP_RETRIES": "1",
        "MORGAN_HTTP_MIN_RATE": "4096",
        "MORGAN_HTTP_MIN_RATE_AFTER": "0.3",
    }
    # 256 bytes every 2 s: every read arrives well inside the timeout, yet at that pace a
    # large file would hold the build for hours. The whole (small) wheel takes over 8 s, so
    # a client starved for seconds on a loaded machine still reads part of it, not all of it
    # at once (a body that has wholly arrived is done, whatever its pace).
    case.upstream.set_fault(f"/files/{WHEEL}", Fault(drip_bytes_per_sec=128))
    code, stderr = case.build(env=env)
    message = (
        f"GET {case.url('/files/' + WHEEL)}: connection broken while reading the body: "
        "slower than 4096 bytes/s after 0.3 s (see MORGAN_HTTP_MIN_RATE) after 2 attempts"
    )
    case.assert_failed_cleanly(code, stderr, message)
    case.upstream.clear_faults()
    case.assert_new_generation(*case.build(env=env))


# -- transient faults: retried, then a new generation --------------------------------------

TRANSIENT = {
    "page-500-twice": (PAGE, Fault(status=500, times=2), 3),
    "file-502-twice": (f"/files/{WHEEL}", Fault(status=502, times=2), 3),
    # Four failures use up every retry: the fifth and last attempt succeeds.
    "file-503-four-times": (f"/files/{SDIST}", Fault(status=503, times=4), 5),
    "page-reset-once": (PAGE, Fault(reset=True, times=1), 2),
    "file-reset-mid-body-twice": (f"/files/{WHEEL}", Fault(truncate=100, reset=True, times=2), 3),
    "file-truncated-once": (f"/files/{SDIST}", Fault(truncate=50, times=1), 2),
    "page-truncated-once": (PAGE, Fault(truncate=10, times=1), 2),
    "metadata-503-once": (f"/files/{WHEEL}.metadata", Fault(status=503, times=1), 2),
    "page-timeout-once": (PAGE, Fault(delay=3, times=1), 2),
    # 256 bytes every 0.05 s: slow, but every read arrives within the timeout.
    "file-slow-drip": (f"/files/{WHEEL}", Fault(drip_bytes_per_sec=5120), 1),
}


@pytest.mark.parametrize("name", sorted(TRANSIENT))
def test_transient_fault_is_retried_into_a_new_generation(case: Case, name: str) -> None:
    pattern, fault, attempts = TRANSIENT[name]
    case.upstream.set_fault(pattern, fault)
    code, stderr = case.build(env={"MORGAN_HTTP_TIMEOUT": "0.5"})
    case.assert_new_generation(code, stderr)
    assert case.requested(pattern) == attempts


def test_429_waits_for_retry_after(case: Case, monkeypatch: pytest.MonkeyPatch) -> None:
    arrivals: list[float] = []
    lock = threading.Lock()
    record = case.upstream.record

    def timed(request: RecordedRequest) -> None:
        if request.path == PAGE:
            with lock:
                arrivals.append(time.monotonic())
        record(request)

    monkeypatch.setattr(case.upstream, "record", timed)
    case.upstream.set_fault(PAGE, Fault(status=429, retry_after="1", times=1))
    case.assert_new_generation(*case.build())
    assert len(arrivals) == 2
    # The backoff is 0.01 s here: only Retry-After explains a pause of a second.
    assert arrivals[1] - arrivals[0] >= 1.0


def _pins(workspace: Path) -> list[dict[str, object]]:
    pins: list[dict[str, object]] = tomllib.loads((workspace / "mirror.lock").read_text())[
        "environment"
    ]["host"]["pins"]
    return pins


def test_html_only_index_gives_the_same_pins_as_json(case: Case, tmp_path: Path) -> None:
    case.upstream.html_only = True
    case.assert_new_generation(*case.build())
    case.upstream.html_only = False
    other = tmp_path / "json"
    write_spec(other, case.upstream.url, ["demo", "dep"])
    code, stderr = case.forker.run(["build", "-C", str(other)], tmp_path / "err")
    assert code == 0, stderr
    assert _pins(case.workspace) == _pins(other)
    # HTML pages carry no upload time (PEP 700 is JSON only): the lock says nothing then.
    assert "upload-time" not in (case.workspace / "mirror.lock").read_text()
    assert "upload-time" in (other / "mirror.lock").read_text()


# -- disk full: injected at the store's one write primitive and at the tree's symlinks -----

DISK_FULL = re.compile(
    r"morgan: error: (store: )?disk full while writing to (?P<path>\S+): "
    r"free space or move the store\n"
)


def _build_in_process(
    case: Case, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> tuple[int, str]:
    for key, value in FAST_RETRIES.items():
        monkeypatch.setenv(key, value)
    capsys.readouterr()
    code = cli.main(["build", "--upgrade", "-C", str(case.workspace)])
    return code, capsys.readouterr().err


def _enospc_at(
    n: int, real: Callable[..., None], counter: list[int], *, path: str | None = None
) -> Callable[..., None]:
    def write(*args: object) -> None:
        counter[0] += 1
        if counter[0] == n:
            if path is not None:
                raise OSError(errno.ENOSPC, "No space left on device", path)
            # As the OS raises it for symlink(src, dst): both names, the one created second.
            raise OSError(errno.ENOSPC, "No space left on device", args[0], None, args[1])
        real(*args)

    return write


@pytest.fixture(scope="module")
def store_writes(base: Base, tmp_path_factory: pytest.TempPathFactory) -> int:
    """How many times an upgrade build calls store.fsio.write_all (to aim faults at)."""
    workspace = tmp_path_factory.mktemp("count") / "ws"
    shutil.copytree(base.workspace, workspace, symlinks=True)
    write_spec(workspace, base.upstream.url, ["demo", "dep"])
    counter = [0]
    real = fsio.write_all

    def counting(fd: int, data: bytes | memoryview) -> None:
        counter[0] += 1
        real(fd, data)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(fsio, "write_all", counting)
        for key, value in FAST_RETRIES.items():
            mp.setenv(key, value)
        assert cli.main(["build", "--upgrade", "-q", "-C", str(workspace)]) == 0
    return counter[0]


@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_disk_full_in_the_store(
    case: Case,
    store_writes: int,
    where: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # "last": the GC root of the new generation, written just before its tree is renamed
    # into place. It is found by its content, not by counting: with downloads, metadata
    # guesses and renders running concurrently, a build's number of writes varies a little.
    # "middle": a third of the writes the counted build made, not half: an upgrade's crawl
    # ahead (metadata guesses, pages) makes the count vary from build to build, and a fault
    # aimed past a build's last write never fires (seen once in CI).
    n = {"first": 1, "middle": store_writes // 3, "last": 0}[where]
    counter = [0]
    fail = _enospc_at(n, fsio.write_all, counter, path="")
    root_record = re.compile(rb"blake3:[0-9a-f]{64}\n")

    def write_all(fd: int, data: bytes | memoryview) -> None:
        if where == "last" and root_record.fullmatch(bytes(data)):
            raise OSError(errno.ENOSPC, "No space left on device", "")
        fail(fd, data)

    monkeypatch.setattr(fsio, "write_all", write_all)
    code, stderr = _build_in_process(case, capsys, monkeypatch)
    match = DISK_FULL.fullmatch(stderr)
    assert match is not None, stderr
    assert match["path"].startswith(str(case.mirror / "store") + "/")
    message = stderr.removeprefix("morgan: error: ").rstrip("\n")
    case.assert_failed_cleanly(code, stderr, message)
    # No partial object: the temp file of the failed write is gone too.
    assert list((case.mirror / "store" / "tmp").iterdir()) == []
    monkeypatch.undo()
    case.assert_new_generation(*case.build())


def test_disk_full_installing_server_py_leaves_no_generation(
    case: Case, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    real = fsio.write_all

    def write_all(fd: int, data: bytes | memoryview) -> None:
        if Path(f"/proc/self/fd/{fd}").readlink().name.startswith(".server.py.tmp-"):
            raise OSError(errno.ENOSPC, "No space left on device")
        real(fd, data)

    monkeypatch.setattr(fsio, "write_all", write_all)
    code, stderr = _build_in_process(case, capsys, monkeypatch)
    server = case.mirror / "server.py"
    message = f"store: disk full while writing to {server}: free space or move the store"
    case.assert_failed_cleanly(code, stderr, message)  # no generations/2 either
    assert sorted(p.name for p in (case.mirror / "store" / "roots").iterdir()) == ["generation-1"]
    monkeypatch.undo()
    case.assert_new_generation(*case.build())


def test_no_inode_for_the_index_link_leaves_no_generation(
    case: Case, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    real = os.symlink

    def symlink(src: str, dst: str, *args: object, **kwargs: object) -> None:
        if Path(dst).name.startswith(".index.tmp-"):
            raise OSError(errno.ENOSPC, "No space left on device", src, None, dst)
        real(src, dst, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "symlink", symlink)
    code, stderr = _build_in_process(case, capsys, monkeypatch)
    match = DISK_FULL.fullmatch(stderr)
    assert match is not None, stderr
    assert Path(match["path"]).name.startswith(".index.tmp-")  # the link, not its target
    message = stderr.removeprefix("morgan: error: ").rstrip("\n")
    case.assert_failed_cleanly(code, stderr, message)
    monkeypatch.undo()
    case.assert_new_generation(*case.build())


@pytest.mark.parametrize(
    ("where", "n"),
    [("generations", 1), ("generations", 3), ("store/folders", 1), ("store/folders", 6)],
)
def test_disk_full_while_materializing(
    case: Case,
    where: str,
    n: int,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The disk fills while the new tree's links are made: in the generation folder, or in
    a new shared project folder of the store."""
    counter = [0]
    fail = _enospc_at(n, os.symlink, counter)

    def symlink(src: str, dst: str, *args: object, **kwargs: object) -> None:
        if f"/{where}/" in str(dst):
            fail(src, dst, *args, **kwargs)
        else:
            os_symlink(src, dst, *args, **kwargs)  # type: ignore[arg-type]

    os_symlink = os.symlink
    monkeypatch.setattr(os, "symlink", symlink)
    code, stderr = _build_in_process(case, capsys, monkeypatch)
    match = DISK_FULL.fullmatch(stderr)
    assert match is not None, stderr
    made = (
        case.mirror / "generations" / ".tmp-2-" if where == "generations" else case.mirror / where
    )
    assert match["path"].startswith(str(made))
    message = stderr.removeprefix("morgan: error: ").rstrip("\n")
    case.assert_failed_cleanly(code, stderr, message)
    assert not list((case.mirror / "store" / "folders").glob("*/.tmp-*"))  # no half folder
    monkeypatch.undo()
    case.assert_new_generation(*case.build())


def test_disk_full_writing_the_lock_switches_nothing(
    case: Case, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    real = fsio.write_all

    def write_all(fd: int, data: bytes | memoryview) -> None:
        if Path(f"/proc/self/fd/{fd}").readlink().name.startswith(".mirror.lock.tmp-"):
            raise OSError(errno.ENOSPC, "No space left on device")
        real(fd, data)

    monkeypatch.setattr(fsio, "write_all", write_all)
    code, stderr = _build_in_process(case, capsys, monkeypatch)
    lock = case.workspace / "mirror.lock"
    message = f"disk full while writing to {lock}: free space or move the store"
    case.assert_failed_cleanly(code, stderr, message)
    monkeypatch.undo()
    case.assert_new_generation(*case.build())


# -- hostile spec values: refused before anything is fetched or written --------------------

ENV = 'python = "3.11"\nplatform = "manylinux_2_28_x86_64"\n'
HOSTILE_SPECS = {
    "requirement-with-separator": (
        'requirements = ["../../etc/passwd"]\n\n[environments.host]\n' + ENV,
        (
            "mirror.toml:1: requirements[0]: '../../etc/passwd' is not a valid requirement: "
            "expected package name at the start of dependency specifier at column 1 — write it "
            "like 'requests>=2.24' or 'xonsh[full]~=0.11.0' (PEP 508)"
        ),
    ),
    "requirement-with-slash-inside": (
        'requirements = ["demo/../../x"]\n\n[environments.host]\n' + ENV,
        (
            "mirror.toml:1: requirements[0]: 'demo/../../x' is not a valid requirement: expected "
            "semicolon (after name with no version specifier) or end at column 5 — write it like "
            "'requests>=2.24' or 'xonsh[full]~=0.11.0' (PEP 508)"
        ),
    ),
    "environment-escaping-env-dir": (
        'requirements = ["demo"]\n\n[environments."../../generations"]\n' + ENV,
        (
            "mirror.toml:3: environments.\"../../generations\": '../../generations' cannot be an "
            "environment name (it becomes the folder env/<name>/) — use letters, digits, '.', "
            "'_', '-', starting with a letter or digit, at most 64 characters"
        ),
    ),
    "environment-dot-dot": (
        'requirements = ["demo"]\n\n[environments.".."]\n' + ENV,
        (
            "mirror.toml:3: environments.\"..\": '..' cannot be an environment name (it becomes "
            "the folder env/<name>/) — use letters, digits, '.', '_', '-', starting with a "
            "letter or digit, at most 64 characters"
        ),
    ),
    "platform-with-separator": (
        (
            'requirements = ["demo"]\n\n[environments.host]\npython = "3.11"\n'
            'platform = "../manylinux_2_28_x86_64"\n'
        ),
        (
            "mirror.toml:5: environments.host.platform: '../manylinux_2_28_x86_64' is not a wheel "
            "platform tag — did you mean 'manylinux_2_28_x86_64'?"
        ),
    ),
    "absurd-python-version": (
        (
            'requirements = ["demo"]\n\n[environments.host]\npython = "3.99999999999999999999"\n'
            'platform = "win_amd64"\n'
        ),
        (
            "mirror.toml:4: environments.host.python: '3.99999999999999999999' is not a Python "
            "version — write '3.Y' or '3.Y.Z' (3.5 or newer) or '2.7.Z', e.g. '3.12', '3.9.18' "
            "or '2.7.18'"
        ),
    ),
}


@pytest.mark.parametrize("name", sorted(HOSTILE_SPECS))
def test_hostile_spec_value_is_refused_before_any_request(
    base: Base, forker: Forker, tmp_path: Path, name: str
) -> None:
    text, message = HOSTILE_SPECS[name]
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / "mirror.toml").write_text(text, encoding="utf-8")
    base.upstream.clear_requests()
    # Run from the workspace: messages name the spec relative to the current directory.
    code, stderr = forker.run(["build"], tmp_path / "err", cwd=workspace)
    assert (code, stderr) == (2, f"morgan: error: {message}\n")
    assert sorted(p.name for p in workspace.iterdir()) == ["mirror.toml"]
    assert base.upstream.requests == []


ABSURD_VERSIONS = {
    "arbitrary-equality-path": "demo===../../etc",
    "three-hundred-digits": "demo==" + "9" * 300,
}


@pytest.mark.parametrize("name", sorted(ABSURD_VERSIONS))
def test_absurd_version_fails_resolution_in_one_line(
    base: Base, forker: Forker, tmp_path: Path, name: str
) -> None:
    requirement = ABSURD_VERSIONS[name]
    write_spec(tmp_path, base.upstream.url, [requirement])
    base.upstream.clear_requests()
    code, stderr = forker.run(["build", "-C", str(tmp_path)], tmp_path / "err")
    specifier = requirement.removeprefix("demo")
    message = (
        f"environment 'host' (Python 3.11, manylinux_2_28_x86_64): demo: no version matches "
        f"{specifier} (newest is 2.0); needed by {requirement!r} (required by <spec>): relax "
        "the requirement, or remove the environment that cannot have it"
    )
    assert (code, stderr) == (1, f"morgan: error: {message}\n")
    # Only the project page was read; the version string never became a path.
    assert [r.path for r in base.upstream.requests] == ["/simple/demo/"]
    assert not (tmp_path / "mirror" / "index").exists()
    assert not (tmp_path / "mirror" / "generations").exists()


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("MORGAN_HTTP_BACKOFF", "soon", "MORGAN_HTTP_BACKOFF='soon' is not a number >= 0"),
        ("MORGAN_HTTP_TIMEOUT", "0", "MORGAN_HTTP_TIMEOUT='0' is not a number >= 0.001"),
        ("MORGAN_HTTP_RETRIES", "2.5", "MORGAN_HTTP_RETRIES='2.5' is not a whole number >= 0"),
    ],
)
def test_bad_retry_setting_is_one_line(case: Case, variable: str, value: str, message: str) -> None:
    code, stderr = case.build(env={variable: value})
    case.assert_failed_cleanly(code, stderr, f"{message}: fix it or unset it")
    assert case.upstream.requests == []
