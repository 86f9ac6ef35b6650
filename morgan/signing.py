"""Bundle signatures: OpenSSH's ``ssh-keygen -Y sign`` / ``-Y verify`` over the bundle header.

The header (``morgan-bundle.json``) lists every blob's digest, size and sha256 and the
digests of the files that travel with it, so a signature over its exact bytes covers the
whole bundle. The signature is an armored SSH signature (``-----BEGIN SSH SIGNATURE-----``)
in the namespace ``morgan-bundle``: it holds the signer's *public* key and the signature,
never private key material. Trust is an OpenSSH ``allowed_signers`` file (see
``ssh-keygen(1)``, "ALLOWED SIGNERS"): one line per principal and public key.

ssh-keygen (OpenSSH 8.2 or newer; ``find-principals`` needs 8.2) is on both sides of nearly
every air gap already, and operators know its keys; Morgan only runs it. Data goes in on
stdin; the signature and trust file are passed as files in a private temporary folder.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from morgan.errors import MorganError, UsageError

__all__ = ["NAMESPACE", "SignatureError", "Signer", "sign", "verify"]

NAMESPACE = "morgan-bundle"
_TIMEOUT = 120  # a passphrase prompt or a slow agent, not forever
_GOOD = re.compile(r'Good "[^"]*" signature for (.+) with (\S+) key (\S+)')


class SignatureError(MorganError):
    """A bundle whose signature is missing, wrong, or from an untrusted key."""

    exit_code = 1


@dataclass(frozen=True, slots=True)
class Signer:
    """Who signed: the principal the trust file names, and the key."""

    principal: str
    key_type: str
    fingerprint: str

    def __str__(self) -> str:
        return f"{self.principal} ({self.key_type} key {self.fingerprint})"


def _ssh_keygen() -> str:
    found = shutil.which("ssh-keygen")
    if found is None:
        raise UsageError(
            "ssh-keygen not found — install the OpenSSH client (8.2 or newer) to sign or "
            "verify bundles"
        )
    return found


def _run(args: list[str], data: bytes) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [_ssh_keygen(), *args], input=data, capture_output=True, timeout=_TIMEOUT, check=False
    )


def sign(data: bytes, key: Path) -> bytes:
    """The armored SSH signature of ``data`` by ``key`` (a private key file, or a public
    key whose private half is in ssh-agent)."""
    if not key.is_file():
        raise UsageError(f"--sign {key}: no such key file — give an OpenSSH private key")
    proc = _run(["-Y", "sign", "-f", str(key), "-n", NAMESPACE, "-q"], data)
    sig = proc.stdout
    if proc.returncode != 0 or not sig.startswith(b"-----BEGIN SSH SIGNATURE-----"):
        why = _first_line(proc.stderr) or "no signature produced"
        raise UsageError(f"--sign {key}: ssh-keygen could not sign ({why}) — check the key")
    return sig


def verify(data: bytes, signature: bytes, trusted: Path, what: str) -> Signer:
    """Check ``signature`` over ``data`` against the allowed signers in ``trusted``.

    Raises :class:`SignatureError` naming ``what`` (the bundle) when the signature is not
    from a trusted key or does not match ``data``.
    """
    if not trusted.is_file():
        raise UsageError(f"--trust {trusted}: no such file — give an allowed_signers file")
    with tempfile.TemporaryDirectory(prefix="morgan-sig-") as tmp:
        sig_path = Path(tmp) / "bundle.sig"
        sig_path.write_bytes(signature)
        found = _run(["-Y", "find-principals", "-s", str(sig_path), "-f", str(trusted)], b"")
        principals = found.stdout.decode("utf-8", "replace").split()
        if found.returncode != 0 or not principals:
            raise SignatureError(
                f"{what}: signed by a key that {trusted} does not trust — refused; add the "
                "signer's public key to that allowed_signers file if you trust it"
            )
        for principal in principals:
            args = ["-Y", "verify", "-f", str(trusted), "-I", principal, "-n", NAMESPACE]
            proc = _run([*args, "-s", str(sig_path)], data)
            good = _GOOD.search((proc.stdout + proc.stderr).decode("utf-8", "replace"))
            if proc.returncode == 0 and good is not None:
                return Signer(principal, good.group(2), good.group(3))
    raise SignatureError(
        f"{what}: the signature does not match the bundle's contents (tampered or damaged) — "
        "refused; nothing was imported"
    )


def _first_line(data: bytes) -> str:
    text = data.decode("utf-8", "replace").strip()
    return text.splitlines()[0] if text else ""
