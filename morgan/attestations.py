"""Signature checks of PEP 740 provenance, offline, with the optional ``pypi-attestations``.

``pip install 'morgan-mirror[attestations]'`` brings ``pypi-attestations`` and ``sigstore``.
Each attestation is then verified as PyPI and ``pypi-attestations verify`` do: its Sigstore
certificate chains to Fulcio, its transparency-log entry is proven included in Rekor, its
signature covers the statement, the statement names the file and its sha256, and the
certificate's identity matches the publisher the bundle names. ``offline=True``: the trust
root is the one the installed ``sigstore`` ships (no TUF refresh, no network), so this works
on the offline side of the gap — as far as that root is current: keys Sigstore rotated after
that ``sigstore`` release are unknown to it, and such attestations fail until it is upgraded.
"""

from __future__ import annotations

import logging

from morgan.errors import UsageError

__all__ = ["verify_signatures"]


def verify_signatures(data: bytes, filename: str, sha256: str) -> str | None:
    """None when every attestation of the provenance ``data`` verifies for the file, else
    what failed. UsageError when ``pypi-attestations`` is not installed."""
    try:
        import pypi_attestations as pa
    except ImportError:
        raise UsageError(
            "--signatures needs the optional extra: pip install 'morgan-mirror[attestations]' "
            "(pypi-attestations and sigstore)"
        ) from None
    # sigstore logs "TUF repository is loaded in offline mode" on every call: expected here.
    logging.getLogger("sigstore").setLevel(logging.ERROR)
    try:
        provenance = pa.Provenance.model_validate_json(data)
    except ValueError as exc:
        return f"not a provenance pypi-attestations can read ({_first_line(exc)})"
    dist = pa.Distribution(name=filename, digest=sha256)
    for bundle in provenance.attestation_bundles:
        for attestation in bundle.attestations:
            try:
                attestation.verify(bundle.publisher, dist, offline=True)
            except (pa.VerificationError, pa.ConversionError, ValueError) as exc:
                return f"signature not verified ({_first_line(exc)})"
    return None


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
