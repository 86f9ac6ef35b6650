"""Remove from the bucket what no kept generation needs, only after a grace period.

Kept: the ``keep`` generations whose publish completed last, every generation superseded
less than ``grace`` seconds ago (a reader may still follow the links of a page it fetched
before the switch), and a pending generation no later publish has completed after (a
publish may be running). Candidates for deletion are the objects in the record and the keys
of dropped generations (a publish killed before it recorded its uploads); any key a kept
generation names stays. Objects go first, then the record, so a prune killed halfway
leaves only a record that names objects already gone, which the next publish notices.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from morgan.errors import UsageError
from morgan.objectstore import record as rec
from morgan.objectstore.bucket import Bucket

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd]?)$")
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """``90``, ``90s``, ``15m``, ``1h``, ``2d`` → seconds."""
    m = _DURATION.match(text.strip())
    if m is None:
        raise UsageError(f"--grace {text!r}: not a duration: write e.g. 30s, 15m, 1h or 2d")
    return float(m.group(1)) * _UNIT[m.group(2)]


@dataclass(slots=True)
class PruneReport:
    kept: list[str] = field(default_factory=list)  # generation digests
    dropped: list[str] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)  # beyond --keep but still in grace
    deleted: list[str] = field(default_factory=list)  # object keys
    bytes: int = 0


def choose(record: rec.Record, keep: int, grace: float, now: datetime) -> PruneReport:
    """Which generations stay (no I/O)."""
    report = PruneReport()
    complete = [g for g in record.generations if g.state == "complete"]
    newest = {g.digest for g in complete[-keep:]}
    for g in record.generations:
        if g.digest in newest or g.superseded is None:
            report.kept.append(g.digest)
        elif (now - rec.parse_time(g.superseded)).total_seconds() < grace:
            report.kept.append(g.digest)
            report.waiting.append(g.digest)
        else:
            report.dropped.append(g.digest)
    return report


def prune(
    bucket: Bucket, record: rec.Record, keep: int, grace: float, now: datetime, *, dry_run: bool
) -> PruneReport:
    report = choose(record, keep, grace, now)
    if not report.dropped:
        return report
    needed: set[str] = set()
    for digest in report.kept:
        needed |= rec.load_keys(bucket, digest).keys()
    candidates = set(record.objects)
    for digest in report.dropped:
        candidates |= rec.load_keys(bucket, digest).keys()
    doomed = sorted(candidates - needed)
    report.deleted = doomed
    report.bytes = sum(record.objects[k].size for k in doomed if k in record.objects)
    if dry_run:
        return report
    bucket.delete(doomed)
    for key in doomed:
        record.objects.pop(key, None)
    record.generations = [g for g in record.generations if g.digest not in report.dropped]
    rec.save(bucket, record)
    # Key lists last: a prune killed before this leaves a few small orphans, never a
    # record naming a generation whose key list is gone.
    bucket.delete([rec.generation_key(d) for d in report.dropped])
    return report
