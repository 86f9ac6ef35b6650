"""Why a resolution failed, in words a user can act on.

A requirement that no release can satisfy for an environment is explained release by
release: no version matches the specifier (and which is the newest), or the matching ones
need another Python (``Requires-Python``), have no wheel for the environment's tags and no
sdist, are yanked, or are prereleases the policy does not allow. An unknown project gets
the closest names the upstream index lists.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Iterable, Sequence

from packaging.utils import canonicalize_name
from packaging.version import Version

from morgan.environments import Environment
from rules.model import UpstreamFile

Usable = Callable[[bool], tuple[list[UpstreamFile], list[UpstreamFile]]]


def versions_text(versions: Sequence[Version], limit: int = 3) -> str:
    """``6.0.1, 6.0`` or ``6.0.1, 6.0, 5.2 and 4 more`` (newest first)."""
    shown = ", ".join(str(v) for v in versions[:limit])
    more = len(versions) - limit
    return f"{shown} and {more} more" if more > 0 else shown


def exclusion(
    version: Version,
    files: Sequence[UpstreamFile],
    env: Environment,
    *,
    prerelease_ok: bool,
    yank_ok: bool,
    usable: Usable,
) -> str | None:
    """Why this release cannot serve ``env`` (None: it can). ``usable(allow_yanked)`` is the
    resolver's own file selection, so the reason given is the one that excluded it."""
    if version.is_prerelease and not prerelease_ok:
        return "prerelease"
    if not yank_ok and files and all(f.yanked for f in files):
        return "yanked"
    wheels, sdists = usable(yank_ok)
    if wheels or sdists:
        return None
    live = [f for f in files if yank_ok or not f.yanked]
    needs = sorted({f.requires_python for f in live if f.requires_python})
    if live and all(
        f.requires_python and not env.accepts_requires_python(f.requires_python) for f in live
    ):
        return f"requires-python:{' or '.join(needs)}"
    return "tags"


def why_nothing_fits(
    name: str,
    spec_text: str,
    newest: Version | None,
    reasons: dict[str, list[Version]],
    env: Environment,
) -> str:
    """One clause: ``django>=6: 6.0.1, 6.0 need Python >=3.12 (this environment has 3.10)``."""
    if newest is None:
        return f"no release of {name} is available"
    if not reasons:
        return f"{name}: no version matches {spec_text or 'any'} (newest is {newest})"
    parts = []
    for reason, versions in reasons.items():
        listed = versions_text(versions)
        if reason == "prerelease":
            parts.append(
                f"{listed} only prerelease(s) — ask for one explicitly (e.g. =={versions[0]}) "
                'or set [policy] prereleases = "allow"'
            )
        elif reason == "yanked-skip":
            parts.append(f'{listed} yanked upstream, and [policy] yanked = "skip" keeps none')
        elif reason == "yanked":
            parts.append(f"{listed} yanked upstream — pin one with == to mirror it anyway")
        elif reason.startswith("requires-python:"):
            parts.append(
                f"{listed} need Requires-Python {reason.split(':', 1)[1]} (environment "
                f"{env.name!r} has Python {env.python})"
            )
        else:
            parts.append(
                f"{listed} have no wheel for {env.platform} (Python {env.python}) and no sdist"
            )
    head = f"{name}{spec_text}" if spec_text else name
    return f"{head}: " + "; ".join(parts) + f" (newest release: {newest})"


def project_names(body: bytes, content_type: str) -> list[str]:
    """Project names of an index's root page (PEP 691 JSON or PEP 503 HTML)."""
    if "json" in content_type:
        data = json.loads(body)
        return [str(p.get("name", "")) for p in data.get("projects", []) if isinstance(p, dict)]
    return re.findall(r"<a\b[^>]*>([^<]+)</a>", body.decode("utf-8", "replace"))


def close_names(name: str, names: Iterable[str], n: int = 3) -> list[str]:
    """Names like ``name`` (typos, swapped letters), closest first. Compared normalized and
    only among names of about the same length that share the first or last character, so
    a root index of several hundred thousand projects is searched in well under a second."""
    wanted = canonicalize_name(name)
    pool = {
        canonicalize_name(x)
        for x in names
        if x
        and abs(len(x) - len(wanted)) <= 2
        and (x[0].lower() == wanted[0] or x[-1].lower() == wanted[-1])
    }
    pool.discard(wanted)
    return difflib.get_close_matches(wanted, sorted(pool), n, 0.75)
