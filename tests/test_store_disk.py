"""A real full disk and a real read-only filesystem, on a tiny tmpfs.

The tmpfs is mounted in a private user + mount namespace (``unshare -Urm``), so no root
is needed and nothing outside the test sees it. Where the kernel forbids such namespaces
the test is skipped with that reason; tests/test_store.py injects the same errors.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from store.objects import Store
    from store.actions import ActionCache
    from store.errors import StoreError

    def files(p):
        return sorted(str(f.relative_to(p)) for f in p.rglob("*") if f.is_file())

    store = Store(Path(sys.argv[2]) / "store")
    out = {}
    if sys.argv[1] == "fill":
        kept = store.put_bytes(b"a" * 300_000)
        out["kept"] = str(kept.digest)
        try:
            store.put_bytes(b"b" * 400_000)
        except StoreError as exc:
            out["error"] = [type(exc).__name__, str(exc)]
    else:
        out["read"] = len(store.read_bytes(next(iter(store))))
        try:
            store.put_bytes(b"c")
        except StoreError as exc:
            out["error"] = [type(exc).__name__, str(exc)]
        try:
            ActionCache(store).put("0" * 64, {"x": 1})
        except StoreError as exc:
            out["action_error"] = [type(exc).__name__, str(exc)]
    out["objects"] = files(store.root / "objects")
    out["tmp"] = files(store.root / "tmp")
    print(json.dumps(out))
    """
)


def _namespaces_work() -> str | None:
    if shutil.which("unshare") is None:
        return "unshare(1) is not installed"
    proc = subprocess.run(["unshare", "-Urm", "true"], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        return f"user namespaces unavailable: {proc.stderr.strip()}"
    return None


def test_full_then_read_only_tmpfs(tmp_path: Path) -> None:
    reason = _namespaces_work()
    if reason is not None:
        pytest.skip(reason)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    py = f"{sys.executable} -c {_quote(SCRIPT)}"
    shell = (
        f"mount -t tmpfs -o size=512k tmpfs {mnt} && {py} fill {mnt}"
        f" && mount -o remount,ro {mnt} && {py} readonly {mnt}"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        ["unshare", "-Urm", "sh", "-c", shell],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    fill, readonly = (json.loads(line) for line in proc.stdout.splitlines())

    kind, message = fill["error"]
    assert kind == "DiskFullError"
    assert message.startswith(f"disk full while writing to {mnt}/store/tmp")
    assert message.endswith(": free space or move the store")
    hex_ = fill["kept"].removeprefix("blake3:")
    assert fill["objects"] == [f"{hex_[:2]}/{hex_}"]  # the full write left no object
    assert fill["tmp"] == []  # nor a temp file

    assert readonly["read"] == 300_000
    kind, message = readonly["error"]
    assert kind == "ReadOnlyStoreError"
    assert message.startswith(f"cannot write to {mnt}/store/tmp")
    assert message.endswith(
        ": Read-only file system (the store is read-only):"
        " make it writable or use a store on a writable filesystem"
    )
    assert readonly["action_error"][0] == "ReadOnlyStoreError"
    assert readonly["objects"] == fill["objects"]


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"
