"""The exceptions of the ``store`` package (which imports nothing from ``morgan``)."""

from __future__ import annotations


class StoreError(Exception):
    """Root of every error raised by the content-addressed store."""


class IntegrityError(StoreError):
    """Content did not match what was expected (size, sha256 or blake3)."""


class MissingObjectError(StoreError):
    """A digest was asked for that the store does not hold."""
