"""``morgan verify``: prove a mirror is whole, agrees with its lock, and installs.

Four checks, each reporting :class:`Problem` values that name exactly what is wrong:

1. **objects**: every blob re-hashed (blake3 against its name; sha256 computed in the same
   pass); every file the lock names is present with the locked sha256 and size.
2. **generations**: every generation folder against its manifest: missing entries, links
   pointing elsewhere, extra files, a manifest that differs from its GC root.
3. **pages**: the current generation's JSON pages list every locked file of every pin, per
   environment view and in the union index, with the locked sha256 — for the default index
   and for every named one (``indexes/NAME/``), each serving nothing outside its closure.
4. **install**: per environment, the spec's requirements (and the packages input locks
   pin, as ``name==version``) resolved against that
   environment's own view of the mirror only (files whose blob is present and sound), with
   the same resolver the build uses; a release that only has an sdist for the environment
   needs its ``[build-system].requires`` resolvable from the mirror too.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import blake3
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from morgan.backends import DEFAULT_BUILD_REQUIRES
from morgan.catalog import group_releases, locked_release
from morgan.environments import Environment
from morgan.errors import BuildError
from morgan.generations import generation_path, root_name
from morgan.indexes import index_prefix
from morgan.install_proof import proven_pins
from morgan.lock import Lock, LockedEnvironment, LockedFile
from morgan.resolve import (
    Catalog,
    Dependencies,
    ProjectNotFoundError,
    Release,
    resolve,
    usable_files,
)
from morgan.selected_files import env_files
from morgan.source_builds import SourceBuild
from morgan.spec import Policy
from rules.model import NormalizedName, ProjectPage, UpstreamFile
from store.digest import Digest
from store.folders import FOLDERS, is_folder_object
from store.objects import CHUNK_SIZE, Store
from store.roots import roots


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong: which check found it, about what, and what to do."""

    check: str  # "object" | "lock" | "generation" | "pages" | "install"
    subject: str
    message: str

    def __str__(self) -> str:
        return f"{self.check}: {self.subject}: {self.message}"


@dataclass
class Report:
    """Everything ``verify`` found; ``ok`` when there is no problem."""

    problems: list[Problem] = field(default_factory=list)
    objects: int = 0
    generations: list[int] = field(default_factory=list)
    environments: dict[str, str] = field(default_factory=dict)  # env -> "OK" or the failure
    indexes: dict[str, dict[str, str]] = field(default_factory=dict)  # named: env -> same
    bad_blobs: set[Digest] = field(default_factory=set)  # corrupt or missing
    source_builds: list[SourceBuild] = field(default_factory=list)  # sdist-only per target
    present: set[Digest] = field(default_factory=set)  # every blob hashed (sound or not)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "objects": self.objects,
            "generations": self.generations,
            "environments": self.environments,
            **({"indexes": self.indexes} if self.indexes else {}),
            "source-builds": [b.to_json() for b in self.source_builds],
            "problems": [
                {"check": p.check, "subject": p.subject, "message": p.message}
                for p in self.problems
            ],
        }


# -- objects and the lock -------------------------------------------------------------------


def hash_object(path: Path) -> tuple[str, str]:
    """(blake3 hex, sha256 hex) of a file, in one streaming pass."""
    b3 = blake3.blake3()
    sha = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK_SIZE):
            b3.update(chunk)
            sha.update(chunk)
    return b3.hexdigest(), sha.hexdigest()


def check_objects(store: Store, report: Report) -> dict[Digest, str]:
    """Re-hash every blob; return digest -> sha256 of the sound ones."""
    sound: dict[Digest, str] = {}
    for digest in store:
        report.objects += 1
        try:
            actual, sha = hash_object(store.path(digest))
        except FileNotFoundError:
            continue  # removed while we walked: nothing to check
        report.present.add(digest)
        if actual != digest.hex:
            report.bad_blobs.add(digest)
            report.problems.append(
                Problem(
                    "object",
                    store.relpath(digest),
                    f"corrupt: content hashes to blake3:{actual}",
                )
            )
        else:
            sound[digest] = sha
    return sound


def locked_files(lock: Lock) -> list[tuple[str, LockedFile]]:
    """(project, file) for every file the lock names, sorted."""
    return sorted(
        ((r.name, f) for r in lock.releases for f in r.files), key=lambda t: t[1].filename
    )


def check_lock(lock: Lock, store: Store, sound: dict[Digest, str], report: Report) -> None:
    """Every locked file (and wheel .metadata) present, sound, with the locked sha256."""
    for _, f in locked_files(lock):
        blobs = [(f.filename, f.blake3, f.sha256)]
        if f.metadata_blake3:
            blobs.append((f.filename + ".metadata", f.metadata_blake3, f.metadata_sha256 or ""))
        if f.provenance_blake3:
            sha = f.provenance_sha256 or ""
            blobs.append((f.filename + ".provenance", f.provenance_blake3, sha))
        for label, b3, sha in blobs:
            digest = Digest("blake3", b3)
            if digest not in sound:
                state = "corrupt" if store.has(digest) else "missing from the store"
                report.bad_blobs.add(digest)
                report.problems.append(Problem("lock", label, f"{state} ({store.relpath(digest)})"))
                continue
            if sha and sound[digest] != sha:
                report.problems.append(
                    Problem("lock", label, f"sha256 {sound[digest]} but the lock says {sha}")
                )


# -- generations ----------------------------------------------------------------------------


def _tree_entries(root: Path, folders: Path) -> dict[str, tuple[str | None, str]]:
    """Every non-directory entry under ``root``, relative path -> (its link target, None
    for a file; the folder the entry is in). A link to a folder object under ``folders``
    (:mod:`store.folders`) is entered: its entries are the generation's. Entry types come
    from the listing: a generation has tens of thousands of links, and one readlink each is
    all it costs."""
    found: dict[str, tuple[str | None, str]] = {}
    shared = os.path.abspath(folders)  # noqa: PTH100 - plain strings, see above
    shared_name = os.path.basename(shared)  # noqa: PTH119
    pending = [("", os.path.abspath(root))]  # noqa: PTH100
    while pending:
        prefix, folder = pending.pop()
        for entry in os.scandir(folder):
            rel = prefix + entry.name
            if entry.is_symlink():
                target = os.readlink(entry.path)  # noqa: PTH115 - plain strings, see above
                # A folder object is <folders>/<2 hex>/<64 hex>: a target whose last three
                # parts are plain names and the first of them not the folders' name cannot
                # resolve to one (the link to a blob, one per file), and needs no normpath.
                parts = target.rsplit("/", 3)
                if len(parts) == 4 and parts[1] != shared_name and _plain(parts[1:]):
                    found[rel] = (target, folder)
                    continue
                real = os.path.normpath(os.path.join(folder, target))  # noqa: PTH118
                if is_folder_object(real, shared) and entry.is_dir():
                    pending.append((rel + "/", real))
                else:
                    found[rel] = (target, folder)
            elif entry.is_dir(follow_symlinks=False):
                pending.append((rel + "/", entry.path))
            else:
                found[rel] = (None, folder)
    return found


def _plain(names: list[str]) -> bool:
    """Whether none of ``names`` is empty, ``.`` or ``..`` (normpath keeps them as they are)."""
    return not any(name in ("", ".", "..") for name in names)


def read_manifest_entries(path: Path) -> dict[str, Digest]:
    """The ``entries`` (relative path -> digest) of a generation's manifest.json."""
    data = json.loads(path.read_bytes())
    return {rel: Digest.parse(text) for rel, text in data["entries"].items()}


def _points_to(path: Path, blob: Path) -> bool:
    if path.is_symlink():
        # The link a build writes is exactly this relative path: a string compare is enough
        # (and much cheaper than resolving); any other spelling is resolved to be sure.
        if str(path.readlink()) == os.path.relpath(blob, path.parent):
            return True
        return os.path.realpath(path) == os.path.realpath(blob)
    try:
        if path.samefile(blob):  # hard-linked generation
            return True
    except FileNotFoundError:
        return False
    return hash_object(path)[0] == blob.name  # copied generation


def check_generation(
    store: Store,
    gen: Path,
    root: Digest | None,
    report: Report,
    present: Collection[Digest] | None = None,
) -> None:
    """One generation folder against its manifest and its GC root (``present``: the
    store's objects, when the caller has listed them; else each is looked up)."""
    label = f"generation {gen.name}"
    manifest = gen / "manifest.json"
    try:
        actual = Digest("blake3", hash_object(manifest)[0])
        entries = read_manifest_entries(manifest)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        report.problems.append(
            Problem("generation", f"{label}/manifest.json", f"unreadable ({exc}): rebuild")
        )
        return
    if root is None:
        report.problems.append(
            Problem(
                "generation",
                label,
                "has no GC root (a gc was interrupted while deleting it): run 'morgan gc' — it "
                "gives a whole generation it keeps its root back and finishes deleting the rest",
            )
        )
    elif root != actual:
        report.problems.append(
            Problem("generation", label, f"manifest.json is {actual} but its GC root says {root}")
        )
    tree = _tree_entries(gen, store.root / FOLDERS)
    # What a build's link to a blob reads, per folder: the relative path to the objects.
    to_objects: dict[str, str] = {}
    for rel, digest in sorted({**entries, "manifest.json": actual}.items()):
        if rel not in tree:
            report.problems.append(
                Problem("generation", f"{label}/{rel}", f"missing (should be {digest})")
            )
            continue
        if not (digest in present if present is not None else store.has(digest)):
            report.bad_blobs.add(digest)
            report.problems.append(
                Problem("generation", f"{label}/{rel}", f"its blob {digest} is missing")
            )
            continue
        target, folder = tree[rel]
        if target is not None:
            up = to_objects.get(folder)
            if up is None:
                up = to_objects[folder] = os.path.relpath(store.objects_dir, folder)
            if target == f"{up}/{digest.hex[:2]}/{digest.hex}":
                continue  # the link a build writes: a string compare is enough
        path = gen / rel
        if not _points_to(path, store.path(digest)):
            what = (
                f"points to {path.readlink()}, not {digest}"
                if path.is_symlink()
                else f"content differs from {digest}"
            )
            report.problems.append(Problem("generation", f"{label}/{rel}", what))
    for rel in sorted(set(tree) - set(entries) - {"manifest.json"}):
        report.problems.append(
            Problem("generation", f"{label}/{rel}", "extra: not in the manifest")
        )


def check_generations(
    store: Store,
    mirror: Path,
    numbers: Sequence[int],
    report: Report,
    present: Collection[Digest] | None = None,
) -> None:
    all_roots = roots(store)
    for n in numbers:
        root = all_roots.get(root_name(n))
        report.generations.append(n)
        check_generation(store, generation_path(mirror, n), root, report, present)


# -- pages ----------------------------------------------------------------------------------


def _page_files(page: Path) -> dict[str, dict[str, object]]:
    data = json.loads(page.read_bytes())
    return {f["filename"]: f for f in data["files"]}


def _compare_page(
    page: Path, expected: Iterable[LockedFile], subject: str, report: Report, *, exact: bool
) -> None:
    try:
        listed = _page_files(page)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        report.problems.append(Problem("pages", subject, f"page unreadable ({exc})"))
        return
    wanted = {f.filename: f for f in expected}
    for name, f in sorted(wanted.items()):
        entry = listed.get(name)
        if entry is None:
            report.problems.append(Problem("pages", subject, f"{name} is locked but not listed"))
            continue
        hashes = entry.get("hashes")
        sha = hashes.get("sha256") if isinstance(hashes, dict) else None
        if sha != f.sha256:
            report.problems.append(
                Problem("pages", subject, f"{name} listed with sha256 {sha}, locked {f.sha256}")
            )
    if exact:
        for name in sorted(set(listed) - set(wanted)):
            report.problems.append(Problem("pages", subject, f"{name} is listed but not locked"))


def check_pages(
    lock: Lock,
    envs: Sequence[Environment],
    gen: Path,
    report: Report,
    *,
    sdists: bool = True,
    own_lock: bool = False,
) -> None:
    """The current generation's pages against the lock, per view and in the union index,
    for the default index and every named one (``sdists``: the spec's ``[policy] sdists``,
    which decides whether a view lists the sdist of a release that has a fitting wheel)."""
    for index in (None, *(i.name for i in lock.indexes)):
        _check_index_pages(lock, index, envs, gen, report, sdists=sdists, own_lock=own_lock)


def _check_index_pages(
    lock: Lock,
    index: str | None,
    envs: Sequence[Environment],
    gen: Path,
    report: Report,
    *,
    sdists: bool,
    own_lock: bool,
) -> None:
    """One index's pages: each view lists exactly the files its pins select; the index
    itself exactly their union (every served file locked, every locked file served) and
    no project outside its closure."""
    prefix = index_prefix(index)
    locked_envs = {e.name: e for e in lock.audience(index) or ()}
    union: dict[str, dict[str, LockedFile]] = {}
    for env in envs:
        locked = locked_envs.get(env.name)
        where = f"{prefix}env/{env.name}"
        if locked is None:
            report.problems.append(Problem("pages", where, "the lock has no such environment"))
            continue
        per_project: dict[str, dict[str, LockedFile]] = {}
        for pin in locked.pins:
            rel = lock.release(pin.name, pin.version)
            if rel is None:
                report.problems.append(
                    Problem("pages", where, f"{pin.name} {pin.version} pinned but not locked")
                )
                continue
            by_name = {f.filename: f for f in rel.files}
            for uf in env_files(locked_release(rel), env, sdists=sdists):
                per_project.setdefault(pin.name, {})[uf.filename] = by_name[uf.filename]
                union.setdefault(pin.name, {})[uf.filename] = by_name[uf.filename]
        for name, files in sorted(per_project.items()):
            page = gen / where / "simple" / name / "index.json"
            _compare_page(page, files.values(), f"{where}/simple/{name}/", report, exact=True)
        _unlocked_projects(gen, f"{where}/simple", {p.name for p in locked.pins}, report, own_lock)
    if index is None and not lock.indexes:
        # The default index alone: its union is every file the lock names (as always).
        union = {}
        for rel in lock.releases:
            union.setdefault(rel.name, {}).update({f.filename: f for f in rel.files})
    for name, union_files in sorted(union.items()):
        _compare_page(
            gen / prefix / "simple" / name / "index.json",
            union_files.values(),
            f"{prefix}simple/{name}/",
            report,
            exact=True,
        )
    _unlocked_projects(gen, f"{prefix}simple", set(union), report, own_lock)


def _unlocked_projects(
    gen: Path, simple: str, locked: set[str], report: Report, own_lock: bool
) -> None:
    """Project folders served under ``gen/simple`` that the lock does not name.

    Checked against the generation's own lock, such a folder was written by something other
    than Morgan. Checked against the mirror's lock (a generation made before generations
    held their lock), the index was switched to a generation the lock does not describe (a
    build stopped between the switch and the rename of its lock; the next build writes the
    lock that fits)."""
    if own_lock:
        advice = (
            f"served but not in the lock generation {gen.name} was built from — not written"
            f" by Morgan: remove {gen / simple}/NAME"
        )
    else:
        advice = (
            "served but not in the lock — the lock is older than the served generation: "
            "run 'morgan build' in the workspace (it writes the lock that fits), or import "
            "the bundle again on the offline side"
        )
    try:
        served = {p.name for p in (gen / simple).iterdir() if p.is_dir()}
    except OSError:
        return  # a missing view is reported by the generation and page checks
    for name in sorted(served - locked):
        report.problems.append(
            Problem(
                "pages",
                f"{simple}/{name}/",
                advice.replace("NAME", name),
            )
        )


# -- installability -------------------------------------------------------------------------


class MirrorCatalog:
    """The resolver's catalog over one environment's view of the mirror, offline.

    A file exists only if the view lists it, its link is there and its blob is sound;
    dependencies come from the lock (the metadata the build read).
    """

    def __init__(self, lock: Lock, view: Path, bad: set[Digest]) -> None:
        self.lock = lock
        self.view = view
        self.bad = {d.hex for d in bad}
        self._cache: dict[str, list[Release]] = {}

    def locked(self, name: NormalizedName) -> Release | None:
        return None  # a client has no lock: it picks from what the index offers

    def releases(self, name: NormalizedName) -> Sequence[Release]:
        if name in self._cache:
            return self._cache[name]
        folder = self.view / name
        try:
            listed = _page_files(folder / "index.json")
        except (OSError, ValueError, KeyError, TypeError):
            raise ProjectNotFoundError(name, f"the mirror ({self.view})") from None
        files = []
        for filename, entry in sorted(listed.items()):
            if not self._sound(folder / filename):
                continue
            hashes = entry.get("hashes")
            files.append(
                UpstreamFile(
                    filename=filename,
                    url=filename,
                    sha256=hashes.get("sha256") if isinstance(hashes, dict) else None,
                    size=entry.get("size") if isinstance(entry.get("size"), int) else None,  # type: ignore[arg-type]
                    upload_time=None,
                    requires_python=entry.get("requires-python"),  # type: ignore[arg-type]
                    yanked=bool(entry.get("yanked")),
                    yanked_reason="",
                    core_metadata=False,
                    core_metadata_sha256=None,
                )
            )
        releases = group_releases(ProjectPage(name, tuple(files)))
        self._cache[name] = releases
        return releases

    def _sound(self, link: Path) -> bool:
        """Whether the view's entry leads to a blob that is there and not known bad."""
        if not link.exists():
            return False
        try:
            # A build's link names the blob itself: its last part is the content address.
            name = os.readlink(link).rpartition("/")[2]  # noqa: PTH115 - thousands of links
        except OSError:  # a copied or hard-linked tree: the file is the blob
            name = Path(os.path.realpath(link)).name
        return name not in self.bad

    def dependencies(self, release: Release, file: UpstreamFile) -> Dependencies:
        rel = self.lock.release(release.name, str(release.version))
        if rel is None:
            return Dependencies((), None, known=False, source="not in the lock")
        return Dependencies(rel.requires_dist, rel.requires_python, rel.known, rel.metadata_source)

    def prefetch(
        self,
        names: Iterable[NormalizedName],
        wanted: Mapping[NormalizedName, SpecifierSet] | None = None,
    ) -> None:
        return None

    def withheld(self, name: NormalizedName) -> str | None:
        return None  # the lock holds only what the build kept

    def guess_dependencies(self, release: Release, file: UpstreamFile) -> None:
        return None


def check_install(
    lock: Lock,
    env: Environment,
    requirements: Sequence[str],
    policy: Policy,
    catalog: Catalog,
    *,
    index: str | None = None,
) -> str | None:
    """None when ``env`` can install ``requirements`` from the mirror alone (from the view
    ``catalog`` reads, of the default index or the named ``index``), else why not."""
    building: set[tuple[str, str]] = set()

    def installable(reqs: Sequence[str], parent: str) -> str | None:
        # The linear proof first; the resolver when it does not settle it (a conflict to
        # backtrack from, or a failure to explain).
        pins = proven_pins(env, reqs, catalog)
        if pins is None:
            try:
                pins = resolve(env, list(reqs), catalog, policy, parent=parent).pins
            except BuildError as exc:
                return str(exc)
        for name, rel in pins.items():
            wheels, sdists = usable_files(rel, env, allow_yanked=True)
            if wheels:
                continue
            if not sdists:
                return f"{name} {rel.version}: no file in the mirror fits this environment"
            key = (name, str(rel.version))
            if key in building:
                continue  # a backend that builds itself: already being checked
            building.add(key)
            locked = lock.release(name, str(rel.version))
            recorded = locked.build_requires if locked else ()
            failure = installable(recorded or DEFAULT_BUILD_REQUIRES, f"{name} {rel.version}")
            if failure is not None:
                assumed = "" if recorded else " (none recorded in the lock: assumed setuptools)"
                return (
                    f"{name} {rel.version} has only an sdist ({sdists[0].filename}) here and its"
                    f" build dependencies{assumed} cannot be installed from the mirror: {failure}"
                )
        return None

    failure = installable(requirements, "<spec>")
    if failure is None:
        return None
    lost = lost_pins(lock, env, catalog, index)
    if lost:
        return f"no fitting file left in the mirror for locked {', '.join(lost)}; {failure}"
    return failure


def lost_pins(
    lock: Lock, env: Environment, catalog: Catalog, index: str | None = None
) -> list[str]:
    """Pins of ``env`` whose locked release has no usable file left in its view: the
    precise cause when resolution against the mirror fails."""
    locked = locked_environment(lock, index, env.name)
    out: list[str] = []
    for pin in sorted(locked.pins if locked else (), key=lambda p: (p.name, p.version)):
        try:
            releases = catalog.releases(canonical(pin.name))
        except ProjectNotFoundError:
            out.append(f"{pin.name} {pin.version} (its page is missing)")
            continue
        rel = next((r for r in releases if str(r.version) == pin.version), None)
        if rel is None or not any(usable_files(rel, env, allow_yanked=True)):
            out.append(f"{pin.name} {pin.version}")
    return out


def locked_environment(lock: Lock, index: str | None, env: str) -> LockedEnvironment | None:
    """The resolution of ``env`` for the default index (None) or a named one."""
    return next((e for e in lock.audience(index) or () if e.name == env), None)


def spec_requirements(lock: Lock, env: str, index: str | None = None) -> list[str]:
    """The spec's requirements as the lock recorded them (when no mirror.toml is at hand)."""
    locked = locked_environment(lock, index, env)
    if locked is None:
        return []
    return sorted({e.requirement for e in locked.edges if e.parent == "<spec>"})


def lock_input_roots(lock: Lock, env: str) -> list[str]:
    """``name==version`` of every package an input lock (``locks = [...]``) pinned in ``env``:
    what a client installing that lock asks for. Their dependencies come from each release's
    locked metadata, so a dependency missing from the input lock (and so from the mirror)
    makes the environment not installable."""
    locked = lock.environment(env)
    if locked is None:
        return []
    return sorted(
        {
            f"{e.child}=={pin.version}"
            for e in locked.edges
            if e.parent.startswith("<") and e.parent != "<spec>"
            for pin in locked.pins
            if pin.name == e.child and pin.role == "run"
        }
    )


def canonical(name: str) -> NormalizedName:
    return NormalizedName(canonicalize_name(name))


def missing_files(lock: Lock, bad: set[Digest]) -> list[tuple[str, LockedFile]]:
    """Locked files whose blob is missing or corrupt (what ``--repair`` can re-fetch)."""
    hexes = {d.hex for d in bad}
    return [(p, f) for p, f in locked_files(lock) if f.blake3 in hexes]
