"""PEP 740 provenance objects in PyPI's real format, for the fake upstream to serve.

The structure is exactly what PyPI serves (its Integrity API): attestation bundles with a
publisher, each attestation with Sigstore verification material and a DSSE envelope whose
statement is an in-toto Statement v1 naming the file and its sha256. The certificate,
signature and transparency entry are random bytes: no test can obtain real Sigstore
signatures offline, and Morgan's structural check (morgan verify --provenance) does not
depend on them.
"""

from __future__ import annotations

import base64
import hashlib
import json

GITHUB = {
    "kind": "GitHub",
    "repository": "example/lib",
    "workflow": "release.yml",
    "environment": "pypi",
}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def provenance_object(filename: str, sha256: str, publisher: dict[str, str] | None = None) -> bytes:
    """A provenance object attesting ``filename`` with ``sha256`` (PyPI's publish/v1)."""
    statement = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": filename, "digest": {"sha256": sha256}}],
        "predicateType": "https://docs.pypi.org/attestations/publish/v1",
        "predicate": None,
    }
    seed = hashlib.sha256(filename.encode()).digest()
    attestation = {
        "version": 1,
        "verification_material": {
            "certificate": _b64(b"0\x82" + seed * 8),  # DER-shaped, not a real certificate
            "transparency_entries": [
                {
                    "logIndex": "123456",
                    "logId": {"keyId": _b64(seed)},
                    "kindVersion": {"kind": "dsse", "version": "0.0.1"},
                    "integratedTime": "1717171717",
                    "inclusionPromise": {"signedEntryTimestamp": _b64(seed[::-1])},
                    "canonicalizedBody": _b64(b"{}"),
                }
            ],
        },
        "envelope": {
            "statement": _b64(json.dumps(statement).encode()),
            "signature": _b64(seed + seed[::-1]),
        },
    }
    doc = {
        "version": 1,
        "attestation_bundles": [{"publisher": publisher or GITHUB, "attestations": [attestation]}],
    }
    return json.dumps(doc).encode()
