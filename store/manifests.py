"""Manifests: blobs that list the blobs a generation (or any other owner) keeps alive.

Format: a JSON object, written as canonical JSON by :func:`write_manifest`::

    {"objects": ["blake3:<hex>", ...], "manifests": ["blake3:<hex>", ...], ...}

``objects`` (required) lists every blob the manifest keeps alive; ``manifests`` (optional)
lists further manifests whose contents are live too, followed recursively. Other keys belong
to the owner (e.g. a generation's tree: path -> digest) and are ignored by gc. A GC root
(:mod:`store.roots`) names a manifest; everything :func:`manifest_digests` returns for it is
live. A malformed or missing manifest is an error, because guessing would delete live blobs.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from operator import attrgetter

from store.digest import CanonicalJsonReader, Digest
from store.errors import MissingObjectError, StoreError
from store.objects import Blob, Store

_RESERVED = ("objects", "manifests")
_HEX = attrgetter("hex")


def write_manifest(
    store: Store,
    objects: Iterable[Digest],
    *,
    manifests: Iterable[Digest] = (),
    extra: Mapping[str, object] | None = None,
    has: Callable[[Digest], bool] | None = None,
) -> Blob:
    """Store a manifest listing ``objects`` (and nested ``manifests``); return its blob.

    Every listed blob must already be in the store (objects are committed before the
    manifest that keeps them): otherwise :class:`MissingObjectError` names the first missing
    one. Lists are sorted and deduplicated, so the same content gives the same digest.
    ``extra`` adds the owner's own keys; it may not use ``objects`` or ``manifests``.
    ``has``: whether the store holds a blob, when the caller knows better than a ``stat``
    per blob (a build's listing of the store: 31 700 blobs at 5 000 projects).
    """
    body: dict[str, object] = dict(extra or {})
    clash = [key for key in _RESERVED if key in body]
    if clash:
        raise ValueError(f"manifest extra keys {clash} are reserved for the store")
    # Digests sort by their hex (the algorithm is always the same): ordered by the string
    # alone, not by the dataclass's tuples (31 700 blobs at 5 000 projects).
    object_list = sorted(set(objects), key=_HEX)
    manifest_list = sorted(set(manifests), key=_HEX)
    present = store.has if has is None else has
    for digest in (*object_list, *manifest_list):
        if not present(digest):
            raise MissingObjectError(
                f"manifest lists {digest}, which is not in the store {store.root}:"
                " store the object before the manifest that keeps it"
            )
    body["objects"] = [str(d) for d in object_list]
    if manifest_list:
        body["manifests"] = [str(d) for d in manifest_list]
    return store.put_stream(CanonicalJsonReader(body))  # canonical_json(body), streamed


def manifest_digests(store: Store, manifest_digest: Digest) -> frozenset[Digest]:
    """The manifest itself, every object it lists, and the same for nested manifests.

    Raises :class:`StoreError` naming the manifest if it is missing or malformed.
    """
    live: set[Digest] = set()
    pending = [manifest_digest]
    while pending:
        digest = pending.pop()
        if digest in live:
            continue
        live.add(digest)
        objects, nested = _read_manifest(store, digest)
        live.update(objects)
        pending.extend(nested)
    return frozenset(live)


def _read_manifest(store: Store, digest: Digest) -> tuple[list[Digest], list[Digest]]:
    try:
        data = json.loads(store.read_bytes(digest).decode("utf-8"))
    except MissingObjectError as exc:
        raise StoreError(
            f"manifest {digest} is missing: restore it (import or rebuild) or remove its root;"
            " nothing is collected until then"
        ) from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StoreError(f"manifest {digest} is not JSON ({exc}): nothing is collected") from exc
    if not isinstance(data, dict) or not isinstance(data.get("objects"), list):
        raise StoreError(
            f"manifest {digest} has no 'objects' list: it is not a manifest; nothing is collected"
        )
    return _digest_list(digest, data, "objects"), _digest_list(digest, data, "manifests")


def _digest_list(manifest: Digest, data: dict[str, object], key: str) -> list[Digest]:
    items = data.get(key, [])
    if not isinstance(items, list):
        raise StoreError(f"manifest {manifest}: {key!r} must be a list of digests")
    result = []
    for item in items:
        try:
            result.append(Digest.parse(item if isinstance(item, str) else repr(item)))
        except ValueError as exc:
            raise StoreError(f"manifest {manifest}: {key!r}: {exc}") from exc
    return result
