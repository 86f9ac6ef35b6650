"""The exceptions of the ``rules`` package."""

from __future__ import annotations


class RuleError(Exception):
    """Root of every error raised while running a rule."""


class UpstreamError(RuleError):
    """An upstream index answered wrongly or not at all (after retries)."""


class MetadataError(RuleError):
    """Core metadata could not be read without executing package code."""


class InputError(RuleError):
    """What a rule was given is unusable: an unreadable page, a local file that changed
    since it was locked, a provenance that does not fit its file."""
