"""Where a command that only needs the mirror finds it: a workspace, or a mirror folder alone.

``graph``, ``gc`` and ``verify`` run from the workspace (``-C DIR`` holds ``mirror.toml``;
the mirror is the spec's output) and, on the offline side, inside a mirror folder that
crossed the air gap alone (it holds ``mirror.toml``, ``mirror.lock``, ``store/``,
``generations/`` and ``index``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from morgan.errors import SpecError, UsageError
from morgan.spec import Spec, load_spec
from store.objects import Store

# Re-exported: commands find the served generation where they find the mirror.
__all__ = ["Location", "is_mirror", "locate"]


@dataclass(frozen=True, slots=True)
class Location:
    """The mirror folder, the lock that describes it and the spec (when there is one)."""

    mirror: Path
    lock_path: Path
    spec: Spec | None
    in_mirror: bool  # True: DIR is the mirror folder itself

    @property
    def store(self) -> Store:
        return Store(self.mirror / "store")


def is_mirror(directory: Path) -> bool:
    """A mirror folder holds ``store/`` and ``generations/`` (``mirror.toml`` is optional)."""
    return (directory / "store").is_dir() and (directory / "generations").is_dir()


def locate(directory: Path) -> Location:
    """Find the mirror for ``-C directory``; UsageError when it is neither kind of folder."""
    directory = directory.resolve()
    if is_mirror(directory):
        spec_path = directory / "mirror.toml"
        spec = _mirror_copy(spec_path) if spec_path.is_file() else None
        return Location(directory, directory / "mirror.lock", spec, in_mirror=True)
    spec_path = directory / "mirror.toml"
    if not spec_path.is_file():
        raise UsageError(
            f"{directory}: neither a workspace (no mirror.toml) nor a mirror folder (no store/"
            " and generations/): pass -C DIR to one of them"
        )
    spec = load_spec(spec_path)
    return Location(spec.output.resolve(), directory / "mirror.lock", spec, in_mirror=False)


def _mirror_copy(spec_path: Path) -> Spec | None:
    """The mirror's copy of the spec, or None when it does not load here: its ``private``,
    ``locks`` and ``advisories`` paths name files of the connected side's workspace, which
    a mirror folder carried across the gap does not hold. The lock then describes the
    mirror alone (as for a mirror without a copy)."""
    try:
        return load_spec(spec_path)
    except SpecError:
        return None
