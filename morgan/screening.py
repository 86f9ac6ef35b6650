"""Policy checks on what a build selected, before anything of it is written.

:func:`screen` runs after resolution and before fetching: a rule set to refuse raises one
:class:`~morgan.errors.BuildError` naming the project, version and rule (the previous
generation stays served, the lock is not rewritten); milder findings come back as warnings.
"""

from __future__ import annotations

from collections.abc import Sequence

from morgan.advisories import find, load_advisories
from morgan.errors import BuildError
from morgan.spec import Spec

__all__ = ["screen"]


def screen(spec: Spec, pins: Sequence[tuple[str, str, str]]) -> list[str]:
    """Warnings about ``pins`` = (name, version, environment); BuildError on a refusal."""
    warnings: list[str] = []
    policy = spec.policy
    if policy.advisories is not None:
        findings = find(load_advisories(policy.advisories), pins)
        lines = [f.line() for f in findings]
        if findings and policy.vulnerable == "refuse":
            first = findings[0]
            more = f" (and {len(findings) - 1} more)" if len(findings) > 1 else ""
            raise BuildError(
                f"{first.name} {first.version}: advisory {first.advisory.id} affects it{more} "
                'and [policy] vulnerable = "refuse" — require a fixed version '
                f"({', '.join(first.advisory.fixed) or 'none yet'}), or run 'morgan audit' "
                "to see them all"
            )
        warnings += [f"known vulnerability: {line}" for line in lines]
    return warnings
