"""Signed bundles: `morgan export --sign KEY`, `morgan import --trust FILE` (OpenSSH).

Each refusal (unsigned, tampered, signed by an untrusted key) is checked to leave the
target untouched: not even the mirror folder is created.
"""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.build_scenario import morgan
from tests.upstream import FakeUpstream

ENV = '\n[environments.linux]\npython = "3.11"\nplatform = "manylinux_2_28_x86_64"\n'


def keypair(folder: Path, name: str) -> tuple[Path, str]:
    """A passphrase-less Ed25519 key made by ssh-keygen; (private key path, public line)."""
    key = folder / name
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(key)], check=True
    )
    return key, key.with_suffix(".pub").read_text().strip()


@dataclass
class Signed:
    workspace: Path
    key: Path
    trust: Path  # allowed_signers trusting `key` as ops@example
    signed: Path  # a bundle signed by `key`
    unsigned: Path
    stranger: Path  # a bundle signed by a key `trust` does not list
    root: Path


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> Signed:
    root = tmp_path_factory.mktemp("signed")
    ws = root / "ws"
    ws.mkdir()
    with FakeUpstream(root / "upstream").start() as up:
        up.add_release("lib", "1.0", sdist=False)
        (ws / "mirror.toml").write_text(
            f'requirements = ["lib"]\n[upstream]\nindex-url = "{up.url}"\n{ENV}'
        )
        proc = morgan(ws, "build")
        assert proc.returncode == 0, proc.stderr
    key, public = keypair(root, "ops-key")
    other, _ = keypair(root, "stranger-key")
    trust = root / "allowed_signers"
    trust.write_text(f'ops@example namespaces="morgan-bundle" {public}\n')
    for name, args in (
        ("signed", ["--sign", str(key)]),
        ("unsigned", []),
        ("stranger", ["--sign", str(other)]),
    ):
        proc = morgan(ws, "export", "-o", str(root / f"{name}.tar"), *args)
        assert proc.returncode == 0, proc.stderr
    return Signed(
        ws, key, trust, root / "signed.tar", root / "unsigned.tar", root / "stranger.tar", root
    )


def test_signed_bundle_imports_and_names_its_signer(signed: Signed, tmp_path: Path) -> None:
    offline = tmp_path / "offline"
    proc = morgan(offline, "import", str(signed.signed), "--trust", str(signed.trust))
    assert proc.returncode == 0, proc.stderr
    first = proc.stdout.splitlines()[0]
    assert first.startswith("signed by ops@example (ED25519 key SHA256:")
    assert first.endswith(f"), trusted by {signed.trust}")
    assert (offline / "index").readlink() == Path("generations/1")
    args = ["import", str(signed.signed), "--trust", str(signed.trust), "--json"]
    doc = json.loads(morgan(tmp_path / "j", *args).stdout)
    assert doc["signer"].startswith("ops@example (ED25519 key SHA256:")
    # Without --trust a signed bundle imports too, and says its signature was not checked.
    proc = morgan(tmp_path / "unchecked", "import", str(signed.signed))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == (
        "signed, but the signature was not checked (no --trust FILE)"
    )


def test_bundle_holds_no_private_key_material(signed: Signed) -> None:
    private = signed.key.read_text()
    body = "".join(line for line in private.splitlines() if not line.startswith("-----"))
    data = signed.signed.read_bytes()
    assert b"PRIVATE KEY" not in data
    for start in range(0, len(body) - 40, 40):  # no 40-character piece of the key's text
        assert body[start : start + 40].encode() not in data
    with tarfile.open(signed.signed) as tar:
        names = tar.getnames()
        sig = tar.extractfile("morgan-bundle.json.sig")
        assert sig is not None
        assert sig.read().startswith(b"-----BEGIN SSH SIGNATURE-----\n")
    assert names[:2] == ["morgan-bundle.json", "morgan-bundle.json.sig"]


def _refused(signed: Signed, bundle: Path, target: Path) -> str:
    proc = morgan(target, "import", str(bundle), "--trust", str(signed.trust))
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert not target.exists()  # nothing written: not even the folder
    lines = proc.stderr.splitlines()
    assert len(lines) == 1
    return lines[0]


def test_unsigned_bundle_is_refused_with_trust(signed: Signed, tmp_path: Path) -> None:
    assert _refused(signed, signed.unsigned, tmp_path / "offline") == (
        f"morgan: error: {signed.unsigned}: not signed, and --trust {signed.trust} requires a "
        "signature by a key it lists — refused; export it with 'morgan export --sign KEY'"
    )


def test_bundle_signed_by_an_untrusted_key_is_refused(signed: Signed, tmp_path: Path) -> None:
    assert _refused(signed, signed.stranger, tmp_path / "offline") == (
        f"morgan: error: {signed.stranger}: signed by a key that {signed.trust} does not trust "
        "— refused; add the signer's public key to that allowed_signers file if you trust it"
    )


def _rewrite(bundle: Path, out: Path, change: dict[str, bytes]) -> Path:
    """Copy ``bundle`` with some members' content replaced (same order, same names)."""
    with tarfile.open(bundle) as src, tarfile.open(out, "w", format=tarfile.USTAR_FORMAT) as dst:
        for member in src.getmembers():
            handle = src.extractfile(member)
            assert handle is not None
            data = change.get(member.name, handle.read())
            member.size = len(data)
            dst.addfile(member, io.BytesIO(data))
    return out


def test_tampered_header_is_refused(signed: Signed, tmp_path: Path) -> None:
    with tarfile.open(signed.signed) as tar:
        handle = tar.extractfile("morgan-bundle.json")
        assert handle is not None
        header = json.loads(handle.read())
    header["blobs"][0]["sha256"] = "0" * 64  # e.g. to smuggle another file in
    raw = json.dumps(header, indent=1, sort_keys=True).encode()
    bad = _rewrite(signed.signed, tmp_path / "bad.tar", {"morgan-bundle.json": raw})
    assert _refused(signed, bad, tmp_path / "offline") == (
        f"morgan: error: {bad}: the signature does not match the bundle's contents (tampered "
        "or damaged) — refused; nothing was imported"
    )


def test_sign_with_a_missing_key_writes_nothing(signed: Signed, tmp_path: Path) -> None:
    out = tmp_path / "b.tar"
    proc = morgan(signed.workspace, "export", "-o", str(out), "--sign", str(tmp_path / "nokey"))
    assert proc.returncode == 2
    assert proc.stderr == (
        f"morgan: error: --sign {tmp_path / 'nokey'}: no such key file — give an OpenSSH "
        "private key\n"
    )
    assert list(tmp_path.iterdir()) == []


def test_blob_changed_after_signing_is_refused(signed: Signed, tmp_path: Path) -> None:
    """The signature covers the header, the header every blob's sha256: a blob swapped
    after signing (same size) is refused, and nothing is served from the bundle."""
    with tarfile.open(signed.signed) as tar:
        blob = next(m for m in tar.getmembers() if m.name.startswith("blobs/"))
        handle = tar.extractfile(blob)
        assert handle is not None
        data = bytearray(handle.read())
    data[0] ^= 0xFF
    bad = _rewrite(signed.signed, tmp_path / "blob.tar", {blob.name: bytes(data)})
    target = tmp_path / "offline"
    proc = morgan(target, "import", str(bad), "--trust", str(signed.trust))
    assert proc.returncode == 1
    (line,) = proc.stderr.splitlines()
    assert line.startswith(f"morgan: error: {bad}: blob blake3:{blob.name.removeprefix('blobs/')}")
    assert "is corrupt or truncated" in line
    assert not (target / "index").exists()
    assert not (target / "generations").exists() or not any((target / "generations").iterdir())
