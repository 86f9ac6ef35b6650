"""The files each environment's selection uses, and the views and wanted files made of them
(kept apart from :mod:`morgan.build`, which uses them with verify, pylock and graph)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from morgan.environments import Environment
from morgan.plan import View
from morgan.resolve import Release, usable_files
from rules.model import UpstreamFile, ViewId

if TYPE_CHECKING:
    from morgan.build import EnvSelection

# (id(release), id(env), sdists) -> (release, env, its files): a build asks for the same
# pin's files five times over (selection, views, lock, skeleton, wanted files); the entry
# holds the release and environment so their ids stay theirs. Emptied after each build.
_FILES_SEEN: dict[tuple[int, int, bool], tuple[Release, Environment, tuple[UpstreamFile, ...]]] = {}
_FILES_SEEN_MAX = 1 << 18


def env_files(
    release: Release, env: Environment, *, sdists: bool = True
) -> tuple[UpstreamFile, ...]:
    """Every file of ``release`` ``env`` may use: all fitting wheels, and the sdist (with
    ``sdists=False``, the sdist only when no wheel fits: ``[policy] sdists = false``)."""
    key = (id(release), id(env), sdists)
    seen = _FILES_SEEN.get(key)
    if seen is not None and seen[0] is release and seen[1] is env:
        return seen[2]
    files = tuple(_env_files(release, env, sdists=sdists))
    if len(_FILES_SEEN) >= _FILES_SEEN_MAX:
        _FILES_SEEN.clear()
    _FILES_SEEN[key] = (release, env, files)
    return files


def _env_files(release: Release, env: Environment, *, sdists: bool) -> list[UpstreamFile]:
    if not any(f.yanked for f in release.files):
        # Nothing to leave out: the files usable with yanked ones are the same lists, which
        # a rebuild's resolution has already made for every kept pin in each environment
        # (:func:`usable_with_yanked`; ranking them again was 24 000 calls at 5 000
        # projects and six environments).
        wheels, srcs = usable_with_yanked(release, env)
    else:
        wheels, srcs = usable_files(release, env, allow_yanked=False)
    if not wheels and not srcs:
        # Selected anyway: pinned with == to a yanked release.
        wheels, srcs = usable_files(release, env, allow_yanked=True)
    if sdists or not wheels:
        return wheels + srcs
    return wheels


def wanted_files(selections: Sequence[EnvSelection]) -> dict[str, tuple[str, UpstreamFile]]:
    """filename → (project, file) of every file any environment selected."""
    wanted: dict[str, tuple[str, UpstreamFile]] = {}
    for sel in selections:
        for pin in sel.pins:
            for f in env_files(pin.release, sel.env, sdists=sel.sdists):
                wanted.setdefault(f.filename, (pin.release.name, f))
    return wanted


def views_of(
    selections: Sequence[EnvSelection], statuses: Mapping[str, tuple[str, str]]
) -> list[View]:
    """Per index (the default one, then each named one): each environment's and universal
    view, then the index itself, the union of its views (every file its resolutions
    selected)."""
    views: list[View] = []
    order = list(dict.fromkeys(sel.index for sel in selections))
    for index in order:
        union: dict[str, dict[str, None]] = {}
        for sel in (s for s in selections if s.index == index):
            view: dict[str, dict[str, None]] = {}
            for pin in sel.pins:
                files = env_files(pin.release, sel.env, sdists=sel.sdists)
                if not files:
                    continue
                names = dict.fromkeys([f.filename for f in files])
                name = pin.release.name
                for where in (view, union):
                    listed = where.get(name)
                    if listed is None:
                        where[name] = names.copy()
                    else:
                        listed.update(names)
            projects = {k: tuple(v) for k, v in view.items()}
            views.append(View(ViewId(index, sel.env.name), projects, statuses))
        views.append(View(ViewId(index), {k: tuple(v) for k, v in union.items()}, statuses))
    return views


# (id(release), id(env)) -> (release, env, usable_files(allow_yanked=True)): a rebuild asks
# this of every kept pin in each environment twice (the kept resolution, the build
# dependencies); the entry holds the release and environment so their ids stay theirs.
_USABLE_SEEN: dict[
    tuple[int, int], tuple[Release, Environment, tuple[list[UpstreamFile], list[UpstreamFile]]]
] = {}


def usable_with_yanked(
    release: Release, env: Environment
) -> tuple[list[UpstreamFile], list[UpstreamFile]]:
    """``usable_files(release, env, allow_yanked=True)``, made once per build (the lists
    are shared: do not change them)."""
    key = (id(release), id(env))
    seen = _USABLE_SEEN.get(key)
    if seen is not None and seen[0] is release and seen[1] is env:
        return seen[2]
    found = usable_files(release, env, allow_yanked=True)
    if len(_USABLE_SEEN) >= _FILES_SEEN_MAX:
        _USABLE_SEEN.clear()
    _USABLE_SEEN[key] = (release, env, found)
    return found


def forget_files() -> None:
    """Let the releases :func:`env_files` and :func:`usable_with_yanked` remember go (after
    a build)."""
    _FILES_SEEN.clear()
    _USABLE_SEEN.clear()
