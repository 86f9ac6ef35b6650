"""Policy checks on what a build selected, before anything of it is written.

:func:`screen` runs after resolution and before fetching: a rule set to refuse raises one
:class:`~morgan.errors.BuildError` naming the project, version and rule (the previous
generation stays served, the lock is not rewritten); milder findings come back as warnings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from morgan.advisories import find, load_advisories
from morgan.errors import BuildError
from morgan.spec import Spec

__all__ = ["screen"]


def screen(
    spec: Spec,
    pins: Sequence[tuple[str, str, str]],
    statuses: Mapping[str, tuple[str, str]],
    unattested: Sequence[tuple[str, str, str]] = (),
) -> list[str]:
    """Warnings about ``pins`` = (name, version, environment) and the PEP 792 ``statuses``
    of their projects (name → (status, reason)); BuildError on a refusal, including a file
    of a project ``[policy] require-provenance`` names among ``unattested`` = (name,
    version, filename): selected files that upstream offers no PEP 740 provenance for."""
    required = [u for u in unattested if u[0] in spec.policy.require_provenance]
    if required:
        name, version, filename = required[0]
        more = f" (and {len(required) - 1} more)" if len(required) > 1 else ""
        raise BuildError(
            f"{name} {version}: upstream offers no provenance (PEP 740) for {filename}{more} "
            f"and [policy] require-provenance names {name} — refused; require a release "
            "published with attestations, or remove the name from require-provenance"
        )
    warnings = _status_warnings(spec, statuses)
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


def _status_warnings(spec: Spec, statuses: Mapping[str, tuple[str, str]]) -> list[str]:
    """Archived and deprecated projects are warned about; a quarantined one is refused
    unless ``[policy] allow-quarantined`` names it."""
    warnings = []
    for name, (status, reason) in sorted(statuses.items()):
        why = f" ({reason})" if reason else ""
        if status == "quarantined" and name not in spec.policy.allow_quarantined:
            raise BuildError(
                f"{name}: upstream marks the project quarantined{why} (PEP 792) — refused; "
                "remove what requires it, or allow it by name: [policy] "
                f'allow-quarantined = ["{name}"]'
            )
        if status == "quarantined":
            warnings.append(
                f"{name} is quarantined upstream{why}; mirrored because [policy] "
                "allow-quarantined names it"
            )
        elif status == "archived":
            warnings.append(f"{name} is archived upstream{why}: expect no more releases")
        elif status == "deprecated":
            warnings.append(f"{name} is deprecated upstream{why}")
    return warnings
