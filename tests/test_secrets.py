"""Credentials written into ``index-url`` never leave memory (issue 14, item 1).

An upstream that demands HTTP basic auth, a spec whose ``index-url`` carries
``user:password@``, and every way Morgan writes or prints: builds that succeed and builds
that fail (unknown project, wrong password, a spec error), ``--json`` and ``--explain``, an
export bundle. Every file under the workspace (but the user's own ``mirror.toml``), the
mirror and the bundle's members, and every line printed, is searched for the password in
plain, percent-encoded and basic-auth (base64) form.
"""

from __future__ import annotations

import base64
import json
import tarfile
from pathlib import Path

import pytest

from tests.build_scenario import run_cli
from tests.upstream import FakeUpstream

USER = "alice"
PASSWORD = "Zq8-s3cr3t@pw"  # an "@" too: it must be percent-encoded in the URL
QUOTED = PASSWORD.replace("@", "%40")
ENV = '[environments.linux]\npython = "3.11"\nplatform = "manylinux_2_28_x86_64"\n'


def _forms(password: str) -> list[bytes]:
    token = base64.b64encode(f"{USER}:{password}".encode())
    return [password.encode(), password.replace("@", "%40").encode(), token]


def _leaks(data: bytes, password: str = PASSWORD) -> list[bytes]:
    return [form for form in _forms(password) if form in data]


def _write_spec(ws: Path, url: str, requirements: str = '"leaf"') -> None:
    (ws / "mirror.toml").write_text(
        f'requirements = [{requirements}]\n[upstream]\nindex-url = "{url}"\n{ENV}',
        encoding="utf-8",
    )


def _tree_leaks(root: Path, password: str = PASSWORD, skip: Path | None = None) -> list[str]:
    found = []
    for path in sorted(root.rglob("*")):
        if path == skip or path.is_symlink() or not path.is_file():
            continue
        if _leaks(path.read_bytes(), password):
            found.append(str(path.relative_to(root)))
    return found


@pytest.fixture
def guarded(upstream: FakeUpstream) -> FakeUpstream:
    upstream.add_release("leaf", "1.0")
    upstream.basic_auth = (USER, PASSWORD)
    return upstream


def test_credentials_stay_out_of_files_messages_keys_and_bundles(
    guarded: FakeUpstream, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    host = guarded.url.removeprefix("http://")
    _write_spec(ws, f"http://{USER}:{QUOTED}@{host}")
    printed: list[str] = []

    def cli(*argv: str) -> tuple[int, str, str]:
        code, out, err = run_cli(capsys, *argv, "-C", str(ws))
        printed.extend([out, err])
        return code, out, err

    # A build that succeeds: the upstream answers only with the right credentials.
    code, out, err = cli("build", "--json", "-v", "--explain")
    assert code == 0, err
    assert json.loads(out)["files"] == 2
    assert all(r.headers.get("authorization") for r in guarded.requests)
    code, _, err = cli("build", "--upgrade", "--explain", "-v")
    assert code == 0, err
    # The mirror's copy of the spec has the userinfo removed; it still loads.
    copy = (ws / "mirror" / "mirror.toml").read_text(encoding="utf-8")
    assert f'index-url = "http://{host}"' in copy
    code, _, err = cli("verify")
    assert code == 0, err
    bundle = tmp_path / "bundle.tar"
    code, _, err = cli("export", "-o", str(bundle))
    assert code == 0, err

    # Builds that fail: a project the upstream lacks (one line naming the index without
    # its userinfo), and the same with --json.
    _write_spec(ws, f"http://{USER}:{QUOTED}@{host}", '"leaf", "absent"')
    code, out, err = cli("build", "--json")
    assert code == 1
    assert len(err.splitlines()) == 1
    assert f"project 'absent' not found on {guarded.url}; needed by 'absent'" in err
    assert json.loads(out)["error"] == err.removeprefix("morgan: error: ").rstrip("\n")
    # A spec error in the URL shows the user and masks the password.
    _write_spec(ws, f"http://{USER}:{QUOTED}@127.0.0.1:99999/simple/")
    code, _, err = cli("build")
    assert code == 2
    assert f"'http://{USER}:***@127.0.0.1:99999/simple/' is not a valid URL" in err

    # Nothing written or printed holds the password in any form.
    assert _tree_leaks(ws, skip=ws / "mirror.toml") == []
    with tarfile.open(bundle) as tar:
        members = {m.name: tar.extractfile(m) for m in tar.getmembers() if m.isfile()}
        leaked = [n for n, f in members.items() if f is not None and _leaks(f.read())]
    assert leaked == []
    assert [line for line in "".join(printed).splitlines() if _leaks(line.encode())] == []


def test_a_new_password_changes_no_key_and_a_wrong_one_is_not_shown(
    guarded: FakeUpstream, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    host = guarded.url.removeprefix("http://")
    _write_spec(ws, f"http://{USER}:{QUOTED}@{host}")
    code, _, err = run_cli(capsys, "build", "-C", str(ws))
    assert code == 0, err
    generation = (ws / "mirror" / "index").readlink()

    # Only the password changes; without the lock, an offline build must find every page in
    # the action cache under the same keys as before.
    new = "other-s3cr3t"
    guarded.basic_auth = (USER, new)
    _write_spec(ws, f"http://{USER}:{new}@{host}")
    (ws / "mirror.lock").unlink()
    code, out, err = run_cli(capsys, "build", "--offline", "-C", str(ws))
    assert code == 0, err
    assert (ws / "mirror" / "index").readlink() == generation
    assert "unchanged, still generation 1" in err

    # A wrong password: the upstream's 401 in one line, with no password in it.
    wrong = "wr0ng-s3cr3t"
    _write_spec(ws, f"http://{USER}:{wrong}@{host}")
    code, out, err = run_cli(capsys, "build", "--upgrade", "--json", "-C", str(ws))
    assert code == 1
    assert err.startswith(f"morgan: error: GET {guarded.url}leaf/: HTTP 401 Unauthorized")
    assert len(err.splitlines()) == 1
    assert not _leaks((out + err).encode(), wrong)
    assert _tree_leaks(ws, wrong, skip=ws / "mirror.toml") == []
    assert _tree_leaks(ws, new, skip=ws / "mirror.toml") == []
