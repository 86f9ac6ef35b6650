"""The exceptions of the ``morgan`` package.

Every error a user can cause or meet is a :class:`MorganError` whose message is one line
that names the bad value and says what to do. ``exit_code`` is what the CLI exits with:
2 for usage and spec errors, 1 for build and verify failures (docs/guide.md).
"""

from __future__ import annotations


class MorganError(Exception):
    """Root of every error Morgan reports to a user."""

    exit_code = 1


class UsageError(MorganError):
    """A command line that cannot be acted on."""

    exit_code = 2


class SpecError(MorganError):
    """A mistake in ``mirror.toml``; the message starts with ``FILE:LINE: context.path:``."""

    exit_code = 2


class BuildError(MorganError):
    """A build that could not complete; the previous generation stays served."""

    exit_code = 1


class VerifyError(MorganError):
    """``morgan verify`` found a problem."""

    exit_code = 1
