"""The exceptions of the ``store`` package (which imports nothing from ``morgan``)."""

from __future__ import annotations


class StoreError(Exception):
    """Root of every error raised by the content-addressed store."""


class IntegrityError(StoreError):
    """Content did not match what was expected (size, sha256 or blake3)."""


class MissingObjectError(StoreError):
    """A digest was asked for that the store does not hold."""


class DiskFullError(StoreError):
    """The filesystem holding the store ran out of space (or quota) during a write."""


class ReadOnlyStoreError(StoreError):
    """The store cannot be written: read-only filesystem or no permission."""


class LockedError(StoreError):
    """The store lock could not be taken before the timeout; names the holder's pid."""
