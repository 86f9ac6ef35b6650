"""PEP 740 provenance: fetched, checked, stored, served next to the file, locked, required."""

from __future__ import annotations

import hashlib
import json
import sys
import urllib.request
from pathlib import Path

import pytest

from rules.lib.provenance import ProvenanceError, check_provenance
from tests.attestations import GITHUB, provenance_object
from tests.build_scenario import morgan
from tests.server_process import server_process
from tests.upstream import FakeUpstream

ENV = '\n[environments.linux]\npython = "3.11"\nplatform = "manylinux_2_28_x86_64"\n'
WHEEL = "lib-1.0-py3-none-any.whl"
SHA = "ab" * 32


def test_check_accepts_the_real_format_and_names_the_publisher() -> None:
    (publisher,) = check_provenance(provenance_object(WHEEL, SHA), WHEEL, SHA)
    assert str(publisher) == (
        "GitHub(environment=pypi, repository=example/lib, workflow=release.yml)"
    )


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (
            b"{",
            (
                "not JSON (Expecting property name enclosed in double quotes: line 1 column 2 "
                "(char 1))"
            ),
        ),
        (b'{"version": 2}', "not a PEP 740 provenance object (version 1)"),
        (b'{"version": 1, "attestation_bundles": []}', "no attestation_bundles"),
        (
            provenance_object("other-1.0-py3-none-any.whl", SHA),
            (
                "attestation_bundles[0].attestations[0]: attests 'other-1.0-py3-none-any.whl' with "
                f"sha256 '{SHA}', not this file ({WHEEL}, sha256 {SHA})"
            ),
        ),
        (
            provenance_object(WHEEL, "cd" * 32),
            (
                "attestation_bundles[0].attestations[0]: attests "
                f"'{WHEEL}' with sha256 '{'cd' * 32}', not this file ({WHEEL}, sha256 {SHA})"
            ),
        ),
    ],
    ids=["not-json", "version", "no-bundles", "other-file", "other-digest"],
)
def test_check_refuses_what_does_not_describe_the_file(data: bytes, error: str) -> None:
    with pytest.raises(ProvenanceError) as info:
        check_provenance(data, WHEEL, SHA)
    assert str(info.value) == error


def _spec(ws: Path, url: str, policy: str = "") -> None:
    ws.mkdir(parents=True, exist_ok=True)
    (ws / "mirror.toml").write_text(
        f'requirements = ["lib", "plain"]\n[upstream]\nindex-url = "{url}"\n{ENV}{policy}'
    )


@pytest.mark.parametrize("html_only", [False, True], ids=["json-upstream", "html-upstream"])
def test_provenance_is_mirrored_served_and_locked(
    upstream: FakeUpstream, tmp_path: Path, html_only: bool
) -> None:
    upstream.html_only = html_only
    upstream.add_release("lib", "1.0", sdist=False)
    upstream.add_release("plain", "1.0", sdist=False)
    upstream.attest(WHEEL)
    ws = tmp_path / "ws"
    _spec(ws, upstream.url)
    proc = morgan(ws, "build")
    assert proc.returncode == 0, proc.stderr
    upstream.stop()
    wheel = upstream.files_dir / WHEEL
    sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
    served = upstream.provenances[WHEEL]
    lock = (ws / "mirror.lock").read_text()
    url = f"{upstream.base_url}/integrity/{WHEEL}/provenance"
    assert (
        f'provenance-url = "{url}", provenance-sha256 = "{hashlib.sha256(served).hexdigest()}"'
    ) in lock
    assert lock.count("provenance-url") == 1  # plain has none
    cmd = [sys.executable, str(ws / "mirror" / "server.py"), "--port", "0"]
    with server_process(cmd, tmp_path / "server.log") as server:
        for view in ("simple", "env/linux/simple"):
            page_url = f"{server.url}{view}/lib/"
            req = urllib.request.Request(
                page_url, headers={"Accept": "application/vnd.pypi.simple.v1+json"}
            )
            with urllib.request.urlopen(req) as resp:
                page = json.loads(resp.read())
            assert page["meta"]["api-version"] == "1.3"
            (entry,) = page["files"]
            assert entry["provenance"] == f"{WHEEL}.provenance"
            with urllib.request.urlopen(page_url + entry["provenance"]) as resp:
                assert resp.read() == served
            with urllib.request.urlopen(f"{server.url}{view}/lib/index.html") as resp:
                assert f'data-provenance="{WHEEL}.provenance"' in resp.read().decode()
            plain = urllib.request.Request(
                f"{server.url}{view}/plain/",
                headers={"Accept": "application/vnd.pypi.simple.v1+json"},
            )
            with urllib.request.urlopen(plain) as resp:
                page = json.loads(resp.read())
            assert "provenance" not in page["files"][0]
            assert page["meta"]["api-version"] == "1.1"
    proc = morgan(ws, "verify", "--provenance")
    assert proc.returncode == 0, proc.stderr
    assert (
        f"provenance: {WHEEL}: well-formed, published by GitHub(environment=pypi, "
        "repository=example/lib, workflow=release.yml)\n"
        "provenance: 1 of 1 well-formed for their files' sha256; signatures not verified "
        "(--signatures; docs/trust.md)\n"
    ) in proc.stderr
    assert sha in lock


def test_provenance_for_another_file_fails_the_build(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    upstream.add_release("lib", "1.0", sdist=False)
    upstream.add_release("plain", "1.0", sdist=False)
    upstream.attest(WHEEL, provenance_object(WHEEL, "00" * 32))
    ws = tmp_path / "ws"
    _spec(ws, upstream.url)
    proc = morgan(ws, "build")
    assert proc.returncode == 1
    url = f"{upstream.base_url}/integrity/{WHEEL}/provenance"
    sha = hashlib.sha256((upstream.files_dir / WHEEL).read_bytes()).hexdigest()
    assert proc.stderr.splitlines()[-1] == (
        f"morgan: error: {WHEEL}: the provenance upstream serves ({url}) is unusable: "
        f"attestation_bundles[0].attestations[0]: attests '{WHEEL}' with sha256 '{'00' * 32}', "
        f"not this file ({WHEEL}, sha256 {sha}) — report it to the index; nothing was switched"
    )
    assert not (ws / "mirror.lock").exists()
    assert not (ws / "mirror" / "index").exists()


def test_require_provenance_refuses_releases_without(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    upstream.add_release("lib", "1.0", sdist=False)
    upstream.add_release("plain", "1.0", sdist=False)
    upstream.attest(WHEEL)
    ws = tmp_path / "ws"
    _spec(ws, upstream.url, '\n[policy]\nrequire-provenance = ["lib", "Plain"]\n')
    proc = morgan(ws, "build")
    assert proc.returncode == 1
    assert proc.stderr.splitlines()[-1] == (
        "morgan: error: plain 1.0: upstream offers no provenance (PEP 740) for "
        "plain-1.0-py3-none-any.whl and [policy] require-provenance names plain — refused; "
        "require a release published with attestations, or remove the name from "
        "require-provenance"
    )
    assert not (ws / "mirror.lock").exists()
    _spec(ws, upstream.url, '\n[policy]\nrequire-provenance = ["lib"]\n')
    proc = morgan(ws, "build")
    assert proc.returncode == 0, proc.stderr


def test_verify_provenance_reports_a_damaged_copy(upstream: FakeUpstream, tmp_path: Path) -> None:
    upstream.add_release("lib", "1.0", sdist=False)
    upstream.add_release("plain", "1.0", sdist=False)
    other = dict(GITHUB, repository="someone/else")
    upstream.attest(WHEEL)
    ws = tmp_path / "ws"
    _spec(ws, upstream.url)
    assert morgan(ws, "build").returncode == 0
    # Swap the stored object for another well-formed one of another file, as a blob
    # replaced on disk would be: verify finds both the hash and the subject wrong.
    lock = (ws / "mirror.lock").read_text()
    b3 = lock.split('provenance-blake3 = "')[1].split('"')[0]
    blob = ws / "mirror" / "store" / "objects" / b3[:2] / b3
    blob.chmod(0o644)
    blob.write_bytes(provenance_object("plain-1.0-py3-none-any.whl", "11" * 32, other))
    proc = morgan(ws, "verify", "--provenance", "--json")
    assert proc.returncode == 1
    doc = json.loads(proc.stdout)
    problems = [(p["check"], p["subject"]) for p in doc["problems"]]
    assert ("lock", f"{WHEEL}.provenance") in problems
    assert ("provenance", WHEEL) in problems
    assert doc["provenance"][0]["problem"].startswith("malformed provenance: ")


def test_fake_upstream_provenance_is_in_the_real_format() -> None:
    """pypi-attestations (PyPI's own models) reads what the fake upstream serves."""
    import pypi_attestations

    provenance = pypi_attestations.Provenance.model_validate_json(provenance_object(WHEEL, SHA))
    (bundle,) = provenance.attestation_bundles
    assert bundle.publisher.kind == "GitHub"
    assert provenance.attestation_bundles[0].attestations[0].statement["subject"] == [
        {"name": WHEEL, "digest": {"sha256": SHA}}
    ]


def test_signatures_refuse_a_provenance_not_signed_through_sigstore(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    """Well-formed is not signed: the fake upstream's certificates are random bytes."""
    upstream.add_release("lib", "1.0", sdist=False)
    upstream.add_release("plain", "1.0", sdist=False)
    upstream.attest(WHEEL)
    ws = tmp_path / "ws"
    _spec(ws, upstream.url)
    assert morgan(ws, "build").returncode == 0
    proc = morgan(ws, "verify", "--provenance")
    assert proc.returncode == 0, proc.stderr
    proc = morgan(ws, "verify", "--provenance", "--signatures")
    assert proc.returncode == 1
    assert (
        f"provenance: {WHEEL}: signature not verified (invalid X.509 certificate)\n"
    ) in proc.stderr
    assert (
        "provenance: 0 of 1 well-formed for their files' sha256 with valid Sigstore signatures "
        "(checked offline)\n"
    ) in proc.stderr
    proc = morgan(ws, "verify", "--signatures")
    assert proc.returncode == 2
    assert proc.stderr == ("morgan: error: --signatures checks provenance: pass --provenance too\n")


def test_signatures_without_the_extra_say_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from morgan.attestations import verify_signatures
    from morgan.errors import UsageError

    monkeypatch.setitem(sys.modules, "pypi_attestations", None)  # as if not installed
    with pytest.raises(UsageError) as info:
        verify_signatures(provenance_object(WHEEL, SHA), WHEEL, SHA)
    assert str(info.value) == (
        "--signatures needs the optional extra: pip install 'morgan-mirror[attestations]' "
        "(pypi-attestations and sigstore)"
    )


def test_a_delta_since_a_lock_leaves_its_provenance_behind() -> None:
    from morgan.bundle import objects_in_lock
    from morgan.lock import Lock, LockedFile, LockedRelease
    from store.digest import Digest

    f = LockedFile(
        WHEEL, "https://x/lib.whl", 1, SHA, "1" * 64, None, None, False, "", None, None,
        provenance_url="https://x/p", provenance_sha256=SHA, provenance_blake3="2" * 64,
    )  # fmt: skip
    lock = Lock("d", (LockedRelease("lib", "1.0", (), None, True, "", (), (f,)),), ())
    assert objects_in_lock(lock) == {Digest("blake3", "1" * 64), Digest("blake3", "2" * 64)}


def test_an_oversized_provenance_fails_the_build(upstream: FakeUpstream, tmp_path: Path) -> None:
    upstream.add_release("lib", "1.0", sdist=False)
    upstream.add_release("plain", "1.0", sdist=False)
    upstream.attest(WHEEL, b" " * ((1 << 20) + 1))  # over the 1 MiB cap
    ws = tmp_path / "ws"
    _spec(ws, upstream.url)
    proc = morgan(ws, "build")
    assert proc.returncode == 1
    url = f"{upstream.base_url}/integrity/{WHEEL}/provenance"
    assert proc.stderr.splitlines()[-1] == (
        f"morgan: error: GET {url}: response of 1048577 bytes exceeds 1048576 bytes"
    )
    assert not (ws / "mirror" / "index").exists()
