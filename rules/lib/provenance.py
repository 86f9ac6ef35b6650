"""PEP 740 provenance objects: checked for form, and their publishers read, without I/O.

A provenance object (what an index serves at the URL a page's ``provenance`` key names) is
JSON::

    {"version": 1,
     "attestation_bundles": [
       {"publisher": {"kind": "GitHub", "repository": "org/repo", "workflow": "release.yml", …},
        "attestations": [
          {"version": 1,
           "verification_material": {"certificate": "<base64 DER>",
                                     "transparency_entries": [{…}]},
           "envelope": {"statement": "<base64 in-toto Statement>",
                        "signature": "<base64>"}}]}]}

Each statement is an in-toto Statement v1 whose single subject names the distribution file
and its sha256. :func:`check_provenance` checks all of that structure against the file it
belongs to. It does **not** check signatures, certificates or the transparency log: that
needs Sigstore's trust root (see :mod:`morgan.attestations`).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from rules.errors import RuleError

__all__ = ["MAX_PROVENANCE_BYTES", "ProvenanceError", "Publisher", "check_provenance"]

MAX_PROVENANCE_BYTES = 1 << 20  # PyPI's are a few KB per attestation
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPES = frozenset(
    {"https://docs.pypi.org/attestations/publish/v1", "https://slsa.dev/provenance/v1"}
)


class ProvenanceError(RuleError):
    """A provenance object that is malformed or does not describe the file it came with."""


@dataclass(frozen=True, slots=True)
class Publisher:
    """A trusted publisher an attestation bundle names (``kind`` and its claims)."""

    kind: str
    claims: tuple[tuple[str, str], ...]  # sorted (key, value), e.g. ("repository", "org/repo")

    def __str__(self) -> str:
        claims = ", ".join(f"{k}={v}" for k, v in self.claims)
        return f"{self.kind}({claims})" if claims else self.kind


def check_provenance(data: bytes, filename: str, sha256: str) -> tuple[Publisher, ...]:
    """The publishers of a well-formed provenance for ``filename`` with ``sha256``.

    Raises :class:`ProvenanceError` saying what is wrong otherwise.
    """
    if len(data) > MAX_PROVENANCE_BYTES:
        raise ProvenanceError(f"over {MAX_PROVENANCE_BYTES} bytes")
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise ProvenanceError(f"not JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("version") != 1:
        raise ProvenanceError("not a PEP 740 provenance object (version 1)")
    bundles = doc.get("attestation_bundles")
    if not isinstance(bundles, list) or not bundles:
        raise ProvenanceError("no attestation_bundles")
    publishers = []
    for i, bundle in enumerate(bundles):
        where = f"attestation_bundles[{i}]"
        if not isinstance(bundle, dict):
            raise ProvenanceError(f"{where} is not an object")
        publishers.append(_publisher(bundle.get("publisher"), where))
        attestations = bundle.get("attestations")
        if not isinstance(attestations, list) or not attestations:
            raise ProvenanceError(f"{where} has no attestations")
        for j, attestation in enumerate(attestations):
            _check_attestation(attestation, f"{where}.attestations[{j}]", filename, sha256)
    return tuple(publishers)


def _publisher(value: object, where: str) -> Publisher:
    if not isinstance(value, dict) or not isinstance(value.get("kind"), str):
        raise ProvenanceError(f"{where}.publisher has no kind")
    claims = tuple(
        sorted((k, str(v)) for k, v in value.items() if k != "kind" and isinstance(v, str | int))
    )
    return Publisher(value["kind"], claims)


def _check_attestation(value: object, where: str, filename: str, sha256: str) -> None:
    if not isinstance(value, dict) or value.get("version") != 1:
        raise ProvenanceError(f"{where} is not a version 1 attestation")
    material = value.get("verification_material")
    if not isinstance(material, dict):
        raise ProvenanceError(f"{where} has no verification_material")
    _base64(material.get("certificate"), f"{where}.verification_material.certificate")
    if not isinstance(material.get("transparency_entries"), list):
        raise ProvenanceError(f"{where} has no transparency_entries")
    envelope = value.get("envelope")
    if not isinstance(envelope, dict):
        raise ProvenanceError(f"{where} has no envelope")
    _base64(envelope.get("signature"), f"{where}.envelope.signature")
    statement = _statement(envelope.get("statement"), f"{where}.envelope.statement")
    subjects = statement.get("subject")
    if not isinstance(subjects, list) or len(subjects) != 1 or not isinstance(subjects[0], dict):
        raise ProvenanceError(f"{where}: the statement must have exactly one subject")
    subject = subjects[0]
    digest = subject.get("digest")
    named = subject.get("name")
    listed = digest.get("sha256") if isinstance(digest, dict) else None
    if named != filename or not isinstance(listed, str) or listed.lower() != sha256:
        raise ProvenanceError(
            f"{where}: attests {named!r} with sha256 {listed!r}, not this file "
            f"({filename}, sha256 {sha256})"
        )
    if statement.get("predicateType") not in PREDICATE_TYPES:
        raise ProvenanceError(f"{where}: unknown predicateType {statement.get('predicateType')!r}")


def _base64(value: object, where: str) -> bytes:
    if not isinstance(value, str) or not value:
        raise ProvenanceError(f"{where} is missing")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ProvenanceError(f"{where} is not base64") from None


def _statement(value: object, where: str) -> dict[str, Any]:
    raw = _base64(value, where)
    try:
        statement = json.loads(raw)
    except (ValueError, RecursionError):
        raise ProvenanceError(f"{where} is not a JSON in-toto statement") from None
    if not isinstance(statement, dict) or statement.get("_type") != STATEMENT_TYPE:
        raise ProvenanceError(f"{where} is not an in-toto Statement v1")
    return statement
