"""verify's installability: the linear proof, and the resolver whenever the proof gives up.

What a user sees is verify's verdict per environment; these cases pin down that the fast
path never changes it (a conflict only backtracking solves, a Python the release refuses).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from packaging.specifiers import SpecifierSet
from packaging.version import Version

from morgan.environments import Environment
from morgan.install_proof import proven_pins
from morgan.lock import LOCK_VERSION, loads
from morgan.resolve import Dependencies, ProjectNotFoundError, Release
from morgan.spec import Policy
from morgan.verify import check_install
from rules.model import NormalizedName, UpstreamFile

ENV = Environment("linux", "3.12", "manylinux_2_28_x86_64")
LOCK = loads(f'version = {LOCK_VERSION}\nspec-digest = "x"\n')


class ViewCatalog:
    """A view of the mirror as the resolver's catalog: name -> version -> (deps, python)."""

    def __init__(self, projects: dict[str, dict[str, tuple[list[str], str | None]]]) -> None:
        self.projects = projects

    def locked(self, name: NormalizedName) -> Release | None:
        return None

    def releases(self, name: NormalizedName) -> Sequence[Release]:
        if name not in self.projects:
            raise ProjectNotFoundError(name, "the view")
        return [
            Release(name, Version(v), (_wheel(name, v, python),))
            for v, (_, python) in self.projects[name].items()
        ]

    def dependencies(self, release: Release, file: UpstreamFile) -> Dependencies:
        deps, python = self.projects[release.name][str(release.version)]
        return Dependencies(tuple(deps), python)

    def prefetch(
        self,
        names: Iterable[NormalizedName],
        wanted: Mapping[NormalizedName, SpecifierSet] | None = None,
    ) -> None:
        return None

    def withheld(self, name: NormalizedName) -> str | None:
        return None

    def guess_dependencies(self, release: Release, file: UpstreamFile) -> None:
        return None


def _wheel(name: str, version: str, python: str | None) -> UpstreamFile:
    filename = f"{name}-{version}-py3-none-any.whl"
    return UpstreamFile(filename, filename, "0" * 64, 1, None, python, False, "", False, None)


def _versions(pins: object) -> dict[str, str]:
    assert isinstance(pins, dict)
    return {name: str(rel.version) for name, rel in pins.items()}


def test_the_proof_follows_markers_extras_and_takes_the_newest_fitting_release() -> None:
    catalog = ViewCatalog(
        {
            "top": {"1.0": (["mid[fast]>=1", "winonly; sys_platform == 'win32'"], None)},
            "mid": {
                "1.0": ([], None),
                "2.0": (["leaf", "speedup; extra == 'fast'"], ">=3.8"),
                "3.0": ([], ">=3.13"),  # refuses this Python: never pinned
            },
            "leaf": {"1.0": ([], None)},
            "speedup": {"0.5": ([], None)},
        }
    )
    pins = proven_pins(ENV, ["top"], catalog)
    assert _versions(pins) == {"top": "1.0", "mid": "2.0", "leaf": "1.0", "speedup": "0.5"}
    assert check_install(LOCK, ENV, ["top"], Policy(), catalog) is None


def test_a_conflict_only_backtracking_solves_is_left_to_the_resolver() -> None:
    # Breadth first, the proof gives `a` its newest release before `b` says a<2: it gives
    # up, and the resolver (backtracking to a 1.0) finds the environment installable.
    catalog = ViewCatalog(
        {
            "top": {"1.0": (["a", "b"], None)},
            "a": {"1.0": ([], None), "2.0": ([], None)},
            "b": {"1.0": (["a<2"], None)},
        }
    )
    assert proven_pins(ENV, ["top"], catalog) is None
    assert check_install(LOCK, ENV, ["top"], Policy(), catalog) is None


def test_what_the_proof_cannot_settle_gets_the_resolvers_verdict_and_message() -> None:
    catalog = ViewCatalog({"top": {"1.0": (["gone"], None)}, "new": {"1.0": ([], ">=3.13")}})
    assert proven_pins(ENV, ["top"], catalog) is None
    failure = check_install(LOCK, ENV, ["top"], Policy(), catalog)
    assert failure is not None
    assert "'gone' not found on the view" in failure
    assert proven_pins(ENV, ["new"], catalog) is None
    failure = check_install(LOCK, ENV, ["new"], Policy(), catalog)
    assert failure is not None
    assert failure.startswith("environment 'linux' (Python 3.12, manylinux_2_28_x86_64): ")
