"""The publish record: what Morgan put in the bucket, kept in the bucket itself.

``<prefix>.morgan/publish.json`` lists every object Morgan uploaded (key → blake3, ETag,
size) and the generations published there, oldest first; each generation's own key list is
``<prefix>.morgan/generations/<digest>.json`` (written once, before any of its pages). With
the record a re-publish compares instead of uploading, and prune knows what each generation
needs. Nothing in it is secret.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

from morgan.objectstore.bucket import Bucket, BucketError

RECORD_KEY = ".morgan/publish.json"
GENERATIONS_DIR = ".morgan/generations/"
FORMAT = 1
RECORD_TYPE = "application/json"
RECORD_CACHE = "no-store"


def now_text() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


@dataclass(slots=True)
class Stored:
    """One object as Morgan last wrote it."""

    blake3: str
    etag: str
    size: int


@dataclass(slots=True)
class Generation:
    """One published (or half-published) generation."""

    digest: str
    state: str  # "pending" (its publish has not finished) or "complete"
    published: str  # when its publish started
    superseded: str | None = None  # when another publish completed after it

    def to_json(self) -> dict[str, object]:
        return {
            "digest": self.digest,
            "state": self.state,
            "published": self.published,
            "superseded": self.superseded,
        }


@dataclass(slots=True)
class Record:
    objects: dict[str, Stored] = field(default_factory=dict)
    generations: list[Generation] = field(default_factory=list)

    @property
    def current(self) -> Generation | None:
        """The generation whose publish completed last."""
        done = [g for g in self.generations if g.state == "complete" and g.superseded is None]
        return done[-1] if done else None

    def find(self, digest: str) -> Generation | None:
        return next((g for g in self.generations if g.digest == digest), None)

    def to_bytes(self) -> bytes:
        body = {
            "format": FORMAT,
            "generations": [g.to_json() for g in self.generations],
            "objects": {k: [s.blake3, s.etag, s.size] for k, s in sorted(self.objects.items())},
        }
        return (json.dumps(body, sort_keys=True, separators=(",", ":")) + "\n").encode()


def generation_key(digest: str) -> str:
    return f"{GENERATIONS_DIR}{digest}.json"


def load(bucket: Bucket) -> Record:
    """The bucket's record; an empty one when there is none yet."""
    data = bucket.get(RECORD_KEY)
    if data is None:
        return Record()
    try:
        body = json.loads(data)
        version = body.get("format")
    except ValueError as exc:
        raise BucketError(
            f"{bucket.target}{RECORD_KEY}: unreadable publish record ({exc}): restore it or"
            " delete it (the next publish then re-checks every object)"
        ) from exc
    if version != FORMAT:
        raise BucketError(
            f"{bucket.target}{RECORD_KEY}: publish record format {version!r}, this Morgan"
            f" reads {FORMAT}: publish with the Morgan that wrote it"
        )
    try:
        objects = {k: Stored(v[0], v[1], int(v[2])) for k, v in body["objects"].items()}
        gens = [
            Generation(g["digest"], g["state"], g["published"], g.get("superseded"))
            for g in body["generations"]
        ]
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise BucketError(
            f"{bucket.target}{RECORD_KEY}: unreadable publish record ({exc}): restore it or"
            " delete it (the next publish then re-checks every object)"
        ) from exc
    return Record(objects, gens)


def save(bucket: Bucket, record: Record) -> None:
    bucket.put_bytes(RECORD_KEY, record.to_bytes(), RECORD_TYPE, RECORD_CACHE)


def save_keys(bucket: Bucket, digest: str, keys: dict[str, str]) -> None:
    """A generation's key list (key → blake3)."""
    body = json.dumps({"keys": keys}, sort_keys=True, separators=(",", ":")).encode()
    bucket.put_bytes(generation_key(digest), body, RECORD_TYPE, RECORD_CACHE)


def load_keys(bucket: Bucket, digest: str) -> dict[str, str]:
    data = bucket.get(generation_key(digest))
    if data is None:
        raise BucketError(
            f"{bucket.target}{generation_key(digest)}: missing: prune cannot tell what that"
            " generation needs; nothing was deleted (re-publish it or remove it from the record)"
        )
    keys: dict[str, str] = json.loads(data)["keys"]
    return keys
