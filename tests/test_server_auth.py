"""server.py --auth FILE and --tls-cert/--tls-key: who may read the mirror, over what.

The users file is written by ``morgan auth`` (salted PBKDF2); real pip and uv install over
TLS against a throwaway CA (trustme) with credentials in the URL and in a netrc file, and
are refused without them.
"""

from __future__ import annotations

import base64
import http.client
import io
import ssl
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from morgan import server as srv
from morgan.cli import main
from morgan.server import MirrorServer
from tests import clients
from tests.index_tree import IndexTree, build_tree
from tests.server_fixtures import port_of
from tests.server_process import SERVER_PY, server_process

PASSWORD = "correct-horse-battery-staple"
ITERATIONS = "100000"  # the minimum: the suite checks many passwords


def add_user(path: Path, user: str, password: str, *views: str) -> int:
    """``morgan auth add`` with the password on stdin, as a script would run it."""
    args = [sys.executable, "-m", "morgan", "auth", "add", user, "--file", str(path)]
    args += ["--iterations", ITERATIONS]
    for view in views:
        args += ["--view", view]
    done = subprocess.run(args, input=password + "\n", capture_output=True, text=True, check=False)
    assert PASSWORD not in done.stdout + done.stderr
    return done.returncode


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> IndexTree:
    base = tmp_path_factory.mktemp("auth")
    tree = build_tree(base / "mirror", environments={"linux": ["alpha", "beta"]})
    big = tree.generation(1) / "simple" / "alpha" / "big.whl"
    big.write_bytes(bytes(range(256)) * 12_000)  # 3 MB: streamed, not kept in memory
    return tree


@pytest.fixture(scope="module")
def users(tree: IndexTree) -> Path:
    path = tree.root.parent / "users"
    assert add_user(path, "alice", PASSWORD) == 0
    assert add_user(path, "linux-only", "pw-linux", "env/linux") == 0
    return path


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(CA certificate, server key and chain) for 127.0.0.1."""
    base = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(base / "ca.pem"))
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(
        str(base / "server.pem")
    )
    return base / "ca.pem", base / "server.pem"


@pytest.fixture(scope="module")
def served(
    tree: IndexTree, users: Path, certs: tuple[Path, Path]
) -> Iterator[tuple[MirrorServer, io.StringIO]]:
    log = io.StringIO()
    server = MirrorServer(
        str(tree.root),
        port=0,
        log=log,
        auth=srv.Auth(str(users)),
        tls=srv.tls_context(str(certs[1]), str(certs[1])),
    )
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server, log
    finally:
        server.stop()
        thread.join(timeout=10)


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def get(
    server: MirrorServer,
    ca: Path,
    path: str,
    authorization: str | None = None,
    *,
    source: str = "127.0.0.1",
) -> tuple[int, dict[str, str], bytes]:
    context = ssl.create_default_context(cafile=str(ca))
    conn = http.client.HTTPSConnection(
        "127.0.0.1", port_of(server), context=context, timeout=30, source_address=(source, 0)
    )
    headers = {"Accept": "text/html"}
    if authorization is not None:
        headers["Authorization"] = authorization
    try:
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def test_no_credentials_is_401_with_basic_challenge(
    served: tuple[MirrorServer, io.StringIO], certs: tuple[Path, Path]
) -> None:
    for path in ("/", "/simple/", "/simple/alpha/", "/env/linux/simple/", "/simple/nothing/"):
        status, headers, body = get(served[0], certs[0], path)
        assert status == 401, path
        assert headers["www-authenticate"] == 'Basic realm="morgan", charset="UTF-8"'
        assert body == b"401 Unauthorized: this mirror needs a login\n"


def test_valid_credentials_read_everything_over_tls(
    served: tuple[MirrorServer, io.StringIO], certs: tuple[Path, Path], tree: IndexTree
) -> None:
    auth = basic("alice", PASSWORD)
    assert get(served[0], certs[0], "/simple/alpha/", auth)[0] == 200
    assert get(served[0], certs[0], "/", auth)[0] == 200
    status, _, body = get(served[0], certs[0], "/simple/alpha/big.whl", auth)
    assert status == 200
    assert body == (tree.generation(1) / "simple" / "alpha" / "big.whl").read_bytes()


def test_a_kept_answer_is_never_given_without_the_credentials(
    served: tuple[MirrorServer, io.StringIO], certs: tuple[Path, Path]
) -> None:
    """The second request with the same head is answered from memory; the same request
    without credentials, or with other ones, is still refused."""
    auth = basic("alice", PASSWORD)
    for _ in range(3):
        assert get(served[0], certs[0], "/simple/beta/", auth)[0] == 200
    assert get(served[0], certs[0], "/simple/beta/")[0] == 401
    assert get(served[0], certs[0], "/simple/beta/", basic("alice", "guess"))[0] == 401


def test_a_user_limited_to_a_view_reads_only_that_view(
    served: tuple[MirrorServer, io.StringIO], certs: tuple[Path, Path]
) -> None:
    auth = basic("linux-only", "pw-linux")
    assert get(served[0], certs[0], "/env/linux/simple/alpha/", auth)[0] == 200
    for path in ("/simple/alpha/", "/", "/simple/alpha/alpha-2.0-py3-none-any.whl"):
        status, _, body = get(served[0], certs[0], path, auth)
        assert status == 403, path
        assert body == b"403 Forbidden: user linux-only may read only env/linux\n"


def test_failed_logins_are_slowed_down_and_never_logged(
    served: tuple[MirrorServer, io.StringIO], certs: tuple[Path, Path]
) -> None:
    """Each wrong password from one address waits longer before its 401 (1 s, then 2 s;
    lower bounds only: the response can never come sooner). Meanwhile a valid client is
    answered: the wait holds no worker. No password or token reaches the log."""
    server, log = served
    wrong = basic("alice", "wrong-password-1")
    started = time.monotonic()
    assert get(server, certs[0], "/simple/", wrong)[0] == 401
    first = time.monotonic() - started
    results: list[float] = []

    def second_failure() -> None:
        begun = time.monotonic()
        get(server, certs[0], "/simple/", basic("nobody", "wrong-password-2"))
        results.append(time.monotonic() - begun)

    waiting = threading.Thread(target=second_failure)
    waiting.start()
    # Another client (another loopback address: a login that passes from the same one
    # would forget its failures, racing the second one) is answered meanwhile.
    other = {"source": "127.0.0.2"}
    assert get(server, certs[0], "/simple/alpha/", basic("alice", PASSWORD), **other)[0] == 200
    waiting.join()
    assert first >= 1.0
    assert results[0] >= 2.0
    assert get(server, certs[0], "/simple/", basic("alice", PASSWORD))[0] == 200  # reset
    text = log.getvalue()
    for secret in (PASSWORD, "wrong-password", "pw-linux", wrong.split()[1]):
        assert secret not in text
    assert base64.b64encode(f"alice:{PASSWORD}".encode()).decode() not in text


def test_a_changed_users_file_applies_without_restart(tree: IndexTree, tmp_path: Path) -> None:
    path = tmp_path / "users"
    assert add_user(path, "carol", "pw-carol") == 0
    log = io.StringIO()
    server = MirrorServer(str(tree.root), port=0, log=log, auth=srv.Auth(str(path)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port_of(server), timeout=30)
        headers = {"Accept": "text/html", "Authorization": basic("carol", "pw-carol")}

        def status() -> int:
            conn.request("GET", "/simple/", headers=headers)
            resp = conn.getresponse()
            resp.read()
            return resp.status

        assert status() == 200
        assert status() == 200  # now a kept answer
        assert main(["-q", "auth", "remove", "carol", "--file", str(path)]) == 0
        deadline = time.monotonic() + 10
        while status() == 200:  # the file is looked at once a second
            assert time.monotonic() < deadline, "carol still reads after her removal"
            time.sleep(0.2)
        conn.close()
    finally:
        server.stop()
        thread.join(timeout=10)


def test_users_file_written_by_morgan_auth(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "users"
    assert add_user(path, "dave", "pw-dave", "env/linux", "simple") == 0
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    lines = [line for line in path.read_text().splitlines() if not line.startswith("#")]
    assert len(lines) == 1
    name, secret, views = lines[0].split(":")
    assert (name, views) == ("dave", "env/linux,simple")
    assert secret.startswith(f"$pbkdf2-sha256${ITERATIONS}$")
    assert "pw-dave" not in path.read_text()
    assert add_user(path, "dave", "other") == 0  # replaced: now everything
    assert main(["auth", "list", "--file", str(path)]) == 0
    assert capsys.readouterr().out == "dave\teverything\n"
    assert main(["auth", "remove", "nobody", "--file", str(path)]) == 2
    assert capsys.readouterr().err == (
        f"morgan: error: no user 'nobody' in {path}: see 'morgan auth list'\n"
    )
    assert add_user(path, "eve", "") == 2
    assert add_user(path, "bad:name", "x") == 2
    assert add_user(path, "frank", "x", "env/../x") == 2


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("alice\n", "{path}:1: expected USER:HASH or USER:HASH:VIEWS"),
        (
            "alice:plain-text-password\n",
            (
                "{path}:1: the hash of 'alice' is not $pbkdf2-sha256$ITERATIONS$SALT$HASH:"
                " write it with 'morgan auth add'"
            ),
        ),
        (
            "alice:$pbkdf2-sha256$1000$c2FsdHNhbHQ=$" + "A" * 43 + "=\n",
            (
                "{path}:1: the hash of 'alice' is out of range (100000 to 100000000"
                " iterations, 8 bytes of salt or more): write it with 'morgan auth add'"
            ),
        ),
    ],
    ids=["no-hash", "plain-password", "weak"],
)
def test_a_bad_users_file_is_one_line_and_exit_2(
    tmp_path: Path, tree: IndexTree, content: str, message: str
) -> None:
    path = tmp_path / "users"
    path.write_text(content)
    done = subprocess.run(
        [sys.executable, str(SERVER_PY), "--root", str(tree.root), "--auth", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr == "server.py: error: " + message.format(path=path) + "\n"


def test_tls_needs_both_files(tree: IndexTree, certs: tuple[Path, Path]) -> None:
    done = subprocess.run(
        [sys.executable, str(SERVER_PY), "--root", str(tree.root), "--tls-cert", str(certs[1])],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr == (
        "server.py: error: --tls-cert and --tls-key go together: give both PEM files\n"
    )


@pytest.fixture(scope="module")
def https_server(
    tree: IndexTree, users: Path, certs: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """``python server.py --auth --tls-cert --tls-key`` as a user runs it: its https URL."""
    log = tmp_path_factory.mktemp("https") / "server.log"
    command = [sys.executable, str(SERVER_PY), "--root", str(tree.root), "--port", "0"]
    command += ["--auth", str(users), "--tls-cert", str(certs[1]), "--tls-key", str(certs[1])]
    with server_process(command, log) as proc:
        assert proc.url.startswith("https://127.0.0.1:")
        yield proc.url
        assert PASSWORD not in proc.log_text()


def _client_env(tmp: Path, ca: Path, url: str, password: str | None) -> dict[str, str]:
    """pip's and uv's isolated environment trusting only the test CA (this machine sets
    REQUESTS_CA_BUNDLE and friends, which would override pip's --cert), with a netrc that
    holds alice's password or nothing."""
    env = clients.pip_env(tmp)
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_DIR"):
        env.pop(name, None)
    env["SSL_CERT_FILE"] = str(ca)
    env["REQUESTS_CA_BUNDLE"] = str(ca)
    return {**env, **_netrc(tmp, url, password)}


def _netrc(tmp: Path, url: str, password: str | None) -> dict[str, str]:
    netrc = tmp / "netrc"
    host = url.split("//")[1].split(":", maxsplit=1)[0]
    netrc.write_text(f"machine {host}\nlogin alice\npassword {password}\n" if password else "")
    netrc.chmod(0o600)
    return {"NETRC": str(netrc)}


def _with_credentials(url: str) -> str:
    return url.replace("https://", f"https://alice:{PASSWORD}@")


@pytest.mark.parametrize("how", ["url", "netrc", "none"])
def test_pip_installs_over_tls_with_credentials_only(
    https_server: str, certs: tuple[Path, Path], tmp_path: Path, how: str
) -> None:
    index = (_with_credentials(https_server) if how == "url" else https_server) + "simple/"
    env = _client_env(tmp_path, certs[0], https_server, PASSWORD if how == "netrc" else None)
    target = tmp_path / "site"
    done = subprocess.run(
        [
            *clients.pip_command("install", index, "--target", str(target), "alpha"),
            "--cert",
            str(certs[0]),
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=300,
    )
    if how == "none":
        assert done.returncode != 0
        assert "401" in done.stdout + done.stderr
        assert not target.exists() or not list(target.glob("*.dist-info"))
    else:
        assert done.returncode == 0, done.stdout + done.stderr
        assert sorted(p.name for p in target.glob("*.dist-info")) == [
            "alpha-2.0.dist-info",
            "beta-1.0.dist-info",
        ]
    assert PASSWORD not in done.stdout + done.stderr


@pytest.mark.parametrize("how", ["url", "netrc", "none"])
def test_uv_installs_over_tls_with_credentials_only(
    https_server: str, certs: tuple[Path, Path], tmp_path: Path, how: str
) -> None:
    index = (_with_credentials(https_server) if how == "url" else https_server) + "simple/"
    env = _client_env(tmp_path, certs[0], https_server, PASSWORD if how == "netrc" else None)
    target = tmp_path / "site"
    command = [clients.uv_executable(), "pip", "install", "--no-config", "--python"]
    command += [sys.executable, "--index-url", index, "--target", str(target), "alpha"]
    done = subprocess.run(
        command, capture_output=True, text=True, env=env, check=False, timeout=300, cwd=tmp_path
    )
    if how == "none":
        assert done.returncode != 0
        assert "401" in done.stderr
        assert not list(target.glob("*.dist-info"))
    else:
        assert done.returncode == 0, done.stderr
        assert sorted(p.name for p in target.glob("*.dist-info")) == [
            "alpha-2.0.dist-info",
            "beta-1.0.dist-info",
        ]


def test_plain_http_on_the_tls_port_is_dropped(https_server: str) -> None:
    port = int(https_server.rsplit(":", 1)[1].rstrip("/"))
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/simple/")
    with pytest.raises(OSError):  # RemoteDisconnected or a reset: no HTTP answer
        conn.getresponse().read()
    conn.close()
