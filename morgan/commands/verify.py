"""``morgan verify``: re-hash, check generations and pages, prove installability; ``--repair``.

Exit 0 when the mirror is sound, 1 when anything is wrong (each problem on its own line,
or as JSON with ``--json``). Plain verify holds the store's shared lock (a build or gc,
which hold it exclusively, cannot change the store under it); ``--repair`` writes, so it
holds the exclusive lock.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from morgan.commands import add_wait_option, fewer_collections
from morgan.environments import Environment
from morgan.errors import UsageError
from morgan.generations import (
    LOCK,
    current_generation,
    generation_lock,
    generation_numbers,
    generation_path,
)
from morgan.location import Location, locate
from morgan.lock import PARSED_LOCK, Lock
from morgan.lock import load as load_lock
from morgan.source_builds import source_builds
from morgan.spec import Policy
from morgan.universal import UniversalTarget
from morgan.verify import (
    MirrorCatalog,
    Problem,
    Report,
    check_generations,
    check_install,
    check_lock,
    check_objects,
    check_pages,
    lock_input_roots,
    missing_files,
    spec_requirements,
)
from morgan.verify_provenance import ProvenanceCheck, check_provenances
from rules.errors import RuleError
from store.digest import Digest
from store.errors import StoreError
from store.lock import StoreLock
from store.objects import Store


@dataclass
class Repair:
    """What ``--repair`` re-fetched and what must still be brought across."""

    fetched: list[str] = field(default_factory=list)
    unavailable: list[str] = field(default_factory=list)
    rebuild: list[str] = field(default_factory=list)  # rendered blobs: `morgan build` remakes


def configure(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument(
        "--repair",
        action="store_true",
        help="re-fetch corrupt or missing files from their locked URLs (needs the network)",
    )
    parser.add_argument(
        "--provenance",
        action="store_true",
        help="also check each stored PEP 740 provenance against its file; list publishers",
    )
    parser.add_argument(
        "--signatures",
        action="store_true",
        help="with --provenance: verify each attestation's Sigstore signature offline "
        "(needs the 'attestations' extra)",
    )
    add_wait_option(parser, "a build or gc")


def environments(where: Location, lock: Lock) -> list[Environment]:
    """The spec's environments and universal views (as the build saw them), else the lock's."""
    if where.spec is not None:
        return list(where.spec.targets)
    plain = {
        e.name: Environment(name=e.name, python=e.python, platform=e.platform)
        for e in lock.environments
        if not e.members
    }
    groups = [
        UniversalTarget(
            name=e.name,
            python=plain[e.members[0]].python,
            platform=plain[e.members[0]].platform,
            members=tuple(plain[m] for m in e.members),
        )
        for e in lock.environments
        if e.members and all(m in plain for m in e.members)
    ]
    return [*plain.values(), *groups]


def verify(where: Location, lock: Lock) -> Report:
    """Run every check on the mirror at ``where`` (the caller holds the store lock)."""
    store = where.store
    report = Report()
    current = current_generation(where.mirror)
    # The served generation is checked against the lock it was built from (after a
    # rollback that is not the workspace's lock); the spec describes it only if that
    # lock was resolved from this spec.
    own = _own_lock(where, lock, current) if current is not None else None
    spec = where.spec
    if own is not None:
        lock = own
        if spec is not None and spec.digest() != own.spec_digest:
            where = dataclasses.replace(where, spec=None)
            spec = None
    sound = check_objects(store, report)
    check_lock(lock, store, sound, report)
    check_generations(store, where.mirror, generation_numbers(where.mirror), report, report.present)
    if current is None:
        report.problems.append(Problem("index", "index", "no current generation: run a build"))
        return report
    gen = generation_path(where.mirror, current)
    envs = environments(where, lock)
    check_pages(
        lock,
        envs,
        gen,
        report,
        sdists=spec.policy.sdists if spec else True,
        own_lock=own is not None,
    )
    policy = spec.policy if spec is not None else Policy()
    for env in envs:
        if spec is not None:
            reqs = [str(r) for r in spec.requirements]
        else:
            reqs = spec_requirements(lock, env.name)
        reqs = [*reqs, *lock_input_roots(lock, env.name)]
        catalog = MirrorCatalog(lock, gen / "env" / env.name / "simple", report.bad_blobs)
        failure = check_install(lock, env, reqs, policy, catalog)
        report.environments[env.name] = "OK" if failure is None else failure
        if failure is not None:
            report.problems.append(Problem("install", env.name, failure))
    for named in lock.indexes:
        _check_index_installs(
            where, lock, named.name, envs=envs, gen=gen, policy=policy, report=report
        )
    report.source_builds = source_builds(lock, envs)
    return report


def _own_lock(where: Location, lock: Lock, current: int) -> Lock | None:
    """The lock generation ``current`` was built from: ``lock`` itself when the bytes are
    the same (the usual case: a 5 000-project lock takes seconds to parse)."""
    try:
        same = (generation_path(where.mirror, current) / LOCK).read_bytes() == (
            where.lock_path.read_bytes()
        )
    except OSError:
        same = False
    return lock if same else generation_lock(where.mirror, current)


def _check_index_installs(
    where: Location,
    lock: Lock,
    index: str,
    *,
    envs: list[Environment],
    gen: Path,
    policy: Policy,
    report: Report,
) -> None:
    """A named index's requirements (its own and inherited, and its private packages, as
    the lock recorded them) installable in each environment from that index's view alone."""
    spec_index = where.spec.index(index) if where.spec is not None else None
    if where.spec is not None and spec_index is None:
        report.problems.append(
            Problem("install", f"indexes/{index}", "not in mirror.toml: run 'morgan build'")
        )
        return
    for env in envs:
        reqs = set(spec_requirements(lock, env.name, index))
        if spec_index is not None:
            reqs |= {str(r) for r in spec_index.requirements}
        view = gen / "indexes" / index / "env" / env.name / "simple"
        catalog = MirrorCatalog(lock, view, report.bad_blobs)
        failure = check_install(lock, env, sorted(reqs), policy, catalog, index=index)
        label = f"{index}/{env.name}"
        report.indexes.setdefault(index, {})[env.name] = "OK" if failure is None else failure
        if failure is not None:
            report.problems.append(Problem("install", f"indexes/{label}", failure))


def repair(store: Store, lock: Lock, report: Report) -> Repair:
    """Re-fetch every locked file whose blob is corrupt or missing, verified by sha256."""
    from rules.lib.fetch import fetch_file
    from rules.lib.http import HttpClient

    result = Repair()
    fixable = missing_files(lock, report.bad_blobs)
    fixable_hex = {f.blake3 for _, f in fixable}
    with HttpClient(retries=1, backoff=0.2) as client:
        for _, f in fixable:
            digest = Digest("blake3", f.blake3)
            store.remove(digest)  # a corrupt copy must not satisfy "already present"
            try:
                blob = fetch_file(client, store, f.url, sha256=f.sha256, size=f.size)
            except (RuleError, StoreError) as exc:
                result.unavailable.append(
                    f"{f.filename} ({f.size} bytes, sha256 {f.sha256}, {f.url}): {exc}"
                )
                continue
            if blob.digest != digest:
                result.unavailable.append(f"{f.filename}: fetched {blob.digest}, locked {digest}")
                continue
            result.fetched.append(f.filename)
    result.rebuild = sorted(store.relpath(d) for d in report.bad_blobs if d.hex not in fixable_hex)
    return result


def run(args: argparse.Namespace) -> int:
    fewer_collections()
    where = locate(args.workspace)
    lock = load_lock(where.lock_path, parsed=where.store.root / PARSED_LOCK)
    gc.freeze()  # the lock lives to the end: the collector need not scan it again
    if lock is None:
        raise UsageError(f"{where.lock_path}: no mirror.lock; run 'morgan build' first")
    store_lock = StoreLock(where.store.root)
    fixed: Repair | None = None
    if args.repair:
        with store_lock.exclusive(timeout=args.wait):
            report = verify(where, lock)
            if report.bad_blobs:
                fixed = repair(where.store, lock, report)
                report = verify(where, lock)
    else:
        with store_lock.shared(timeout=args.wait):
            report = verify(where, lock)
    if args.signatures and not args.provenance:
        raise UsageError("--signatures checks provenance: pass --provenance too")
    provenance = None
    if args.provenance:
        provenance = check_provenances(lock, where.store, signatures=args.signatures)
        for check in provenance:
            if check.problem is not None:
                report.problems.append(Problem("provenance", check.filename, check.problem))
    if args.json:
        out = report.to_json()
        if provenance is not None:
            out["provenance"] = [c.to_json() for c in provenance]
        if fixed is not None:
            out["repair"] = {
                "fetched": fixed.fetched,
                "unavailable": fixed.unavailable,
                "rebuild": fixed.rebuild,
            }
        json.dump(out, sys.stdout, indent=2)
        sys.stdout.write("\n")
    if provenance is not None and not args.quiet:
        _print_provenance(provenance, signatures=args.signatures)
    _print(report, fixed, quiet=bool(args.quiet))
    return 0 if report.ok else 1


def _print_provenance(checks: list[ProvenanceCheck], *, signatures: bool) -> None:
    what = "well-formed and signed" if signatures else "well-formed"
    for c in checks:
        if c.problem is None:
            who = "; ".join(str(p) for p in c.publishers)
            print(f"provenance: {c.filename}: {what}, published by {who}", file=sys.stderr)
    good = sum(1 for c in checks if c.problem is None)
    tail = (
        " with valid Sigstore signatures (checked offline)"
        if signatures
        else "; signatures not verified (--signatures; docs/trust.md)"
    )
    print(
        f"provenance: {good} of {len(checks)} well-formed for their files' sha256{tail}",
        file=sys.stderr,
    )


def _print(report: Report, fixed: Repair | None, *, quiet: bool) -> None:
    err = sys.stderr
    if fixed is not None:
        for name in fixed.fetched:
            print(f"repaired: re-fetched {name}", file=err)
        for line in fixed.unavailable:
            print(f"cannot repair: bring across {line}", file=err)
        for rel in fixed.rebuild:
            print(f"cannot repair {rel}: run 'morgan build' to render it again", file=err)
    for p in report.problems:
        print(str(p), file=err)
    if quiet:
        return
    for env, state in sorted(report.environments.items()):
        print(
            f"environment {env}: {'installable' if state == 'OK' else 'NOT installable'}", file=err
        )
    for index, states in sorted(report.indexes.items()):
        for env, state in sorted(states.items()):
            verdict = "installable" if state == "OK" else "NOT installable"
            print(f"index {index}, environment {env}: {verdict}", file=err)
    for b in report.source_builds:
        print(f"note: {b}", file=err)
    gens = ", ".join(str(n) for n in report.generations) or "none"
    verdict = "OK" if report.ok else f"{len(report.problems)} problem(s)"
    print(
        f"verified {report.objects} objects, generations {gens}, "
        f"{len(report.environments)} environments"
        + (f", {len(report.indexes)} named indexes" if report.indexes else "")
        + f": {verdict}",
        file=err,
    )
