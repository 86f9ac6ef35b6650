"""Plan and run one publish: compare the tree with the record and the listing, upload what
differs in the safe order (files, project pages, root indexes, the human page), then record.

Nothing is ever deleted here (that is :mod:`morgan.objectstore.prune`, after a grace
period), and a page is written only after every object it links to: a reader at any moment
sees either the previous page or the new one, and every link on it resolves.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from morgan.objectstore import record as rec
from morgan.objectstore.bucket import Bucket, BucketError, Listed
from morgan.objectstore.tree import Phase, Tree, TreeObject


@dataclass(slots=True)
class Plan:
    """What a publish will do."""

    uploads: list[TreeObject] = field(default_factory=list)
    unchanged: int = 0
    adopted: dict[str, rec.Stored] = field(default_factory=dict)  # present, verified by HEAD
    repaired: list[str] = field(default_factory=list)  # changed or deleted outside Morgan

    @property
    def upload_bytes(self) -> int:
        return sum(o.size for o in self.uploads)


def make_plan(bucket: Bucket, tree: Tree, record: rec.Record, listing: dict[str, Listed]) -> Plan:
    """Compare each tree object with the record and the listing.

    Unchanged: the record holds the same blake3 and the listing the recorded ETag and size.
    Present but not as recorded (a publish killed before it recorded its uploads): adopted
    when the object's blake3 metadata and size are the ones wanted now (one HEAD), uploaded
    when it has other blake3 metadata (another unrecorded Morgan write). An object without
    that metadata where the record has one, or a recorded object gone from the listing, was
    changed or deleted behind Morgan's back: uploaded again and reported.
    """
    plan = Plan()
    for obj in tree.objects:
        stored = record.objects.get(obj.key)
        seen = listing.get(obj.key)
        if stored is not None and seen is not None:
            if (seen.etag, seen.size) == (stored.etag, stored.size):
                if stored.blake3 == obj.blake3:
                    plan.unchanged += 1
                else:
                    plan.uploads.append(obj)
                continue
            found = bucket.head(obj.key)
            if found is not None and (found[2], found[1]) == (obj.blake3, obj.size):
                plan.adopted[obj.key] = rec.Stored(obj.blake3, found[0], obj.size)
                continue
            if found is None or not found[2]:
                # No blake3 metadata: not written by Morgan.
                plan.repaired.append(obj.key)
            plan.uploads.append(obj)
            continue
        if stored is not None:  # recorded, gone from the listing
            plan.repaired.append(obj.key)
            plan.uploads.append(obj)
            continue
        if seen is None or not _adopt(bucket, obj, seen, plan):
            plan.uploads.append(obj)
    plan.uploads.sort(key=lambda o: (o.phase, o.key))
    return plan


def _adopt(bucket: Bucket, obj: TreeObject, seen: Listed, plan: Plan) -> bool:
    """Whether the object in place already holds ``obj`` (its blake3 metadata and size)."""
    if seen.size != obj.size:
        return False
    found = bucket.head(obj.key)
    if found is None or found[2] != obj.blake3 or found[1] != obj.size:
        return False
    plan.adopted[obj.key] = rec.Stored(obj.blake3, found[0], obj.size)
    return True


# Listed in parallel: files by the first hex digit of their blake3, the union, the views.
SHARDS = (*(f"files/{c}" for c in "0123456789abcdef"), "simple/", "env/")


def list_bucket(bucket: Bucket, jobs: int = 8) -> dict[str, Listed]:
    """What the prefix holds where Morgan writes (foreign keys elsewhere are not listed)."""
    found = bucket.listing(SHARDS, jobs)
    return {o.key: o for o in found if not o.key.startswith(".morgan/")}


def publish(
    bucket: Bucket,
    tree: Tree,
    record: rec.Record,
    plan: Plan,
    *,
    jobs: int,
    on_upload: Callable[[TreeObject], None] = lambda _: None,
) -> None:
    """Run ``plan``: key list, pending record, uploads phase by phase, complete record."""
    gen = record.find(tree.digest)
    if gen is None:
        rec.save_keys(bucket, tree.digest, {o.key: o.blake3 for o in tree.objects})
    record.objects.update(plan.adopted)
    if not plan.uploads and gen is not None and gen is record.current:
        if plan.adopted:
            rec.save(bucket, record)
        return
    if gen is not None:
        record.generations.remove(gen)
    gen = rec.Generation(tree.digest, "pending", rec.now_text())
    record.generations.append(gen)
    if plan.uploads:
        # Listed (pending) before any of its pages can appear, so a prune running
        # meanwhile keeps everything those pages link to.
        rec.save(bucket, record)
    done = 0
    total = len(plan.uploads)
    try:
        for phase in Phase:
            batch = [o for o in plan.uploads if o.phase == phase]
            if batch:
                for obj, etag in _upload_all(bucket, batch, jobs, on_upload):
                    record.objects[obj.key] = rec.Stored(obj.blake3, etag, obj.size)
                    done += 1
    except BucketError as exc:
        raise BucketError(
            f"{exc} ({done} of {total} uploads done; what was published before is intact:"
            " re-run to complete)"
        ) from exc
    finished = rec.now_text()
    for other in record.generations:
        if other is not gen and other.superseded is None:
            other.superseded = finished
    gen.state = "complete"
    rec.save(bucket, record)


def _upload_all(
    bucket: Bucket, batch: list[TreeObject], jobs: int, on_upload: Callable[[TreeObject], None]
) -> list[tuple[TreeObject, str]]:
    """Upload one phase in parallel; on the first failure, start nothing more and raise it."""

    def one(obj: TreeObject) -> tuple[TreeObject, str]:
        etag = bucket.put(obj)
        on_upload(obj)
        return obj, etag

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = [pool.submit(one, o) for o in batch]
        finished, _ = wait(futures, return_when=FIRST_EXCEPTION)
        failed = next((f for f in finished if f.exception() is not None), None)
        if failed is not None:
            for f in futures:
                f.cancel()
            error = failed.exception()
            if error is not None:
                raise error
        return [f.result() for f in futures]
