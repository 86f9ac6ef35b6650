"""Manifests: written after their objects, deterministic, read strictly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from store.digest import Digest, canonical_json
from store.errors import MissingObjectError, StoreError
from store.manifests import manifest_digests, write_manifest
from store.objects import Store


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "store")


def test_write_manifest_is_sorted_deduplicated_and_canonical(store: Store) -> None:
    a, b = store.put_bytes(b"a").digest, store.put_bytes(b"b").digest
    first, second = sorted([a, b])
    blob = write_manifest(store, [second, first, second], extra={"tree": {"x": str(a)}})
    assert store.read_bytes(blob.digest) == canonical_json(
        {"objects": [str(first), str(second)], "tree": {"x": str(a)}}
    )
    assert write_manifest(store, [first, second], extra={"tree": {"x": str(a)}}) == blob


def test_a_large_manifest_is_the_canonical_json_of_its_content(store: Store) -> None:
    """Written as a stream (several MB at scale): the same bytes, so the same digest."""
    blobs = [store.put_bytes(str(i).encode()).digest for i in range(3)]
    tree = {f"env/é/simple/p{i}/p{i}-1.0.tar.gz": blobs[i % 3] for i in range(40_000)}
    blob = write_manifest(store, tree.values(), extra={"version": 1, "entries": tree})
    body = {"entries": {k: str(v) for k, v in tree.items()}, "version": 1}
    expected = canonical_json({**body, "objects": sorted(str(b) for b in blobs)})
    assert store.read_bytes(blob.digest) == expected
    assert blob.digest == Digest.of(expected)


def test_write_manifest_refuses_an_object_not_yet_stored(store: Store) -> None:
    absent = Digest.of(b"later")
    with pytest.raises(MissingObjectError) as exc:
        write_manifest(store, [absent])
    assert str(exc.value) == (
        f"manifest lists {absent}, which is not in the store {store.root}:"
        " store the object before the manifest that keeps it"
    )
    assert list(store) == []


def test_write_manifest_reserves_its_keys(store: Store) -> None:
    with pytest.raises(ValueError, match=r"^manifest extra keys \['objects'\] are reserved"):
        write_manifest(store, [], extra={"objects": []})


def test_manifest_digests_follow_nested_manifests(store: Store) -> None:
    a, b, c = (store.put_bytes(x).digest for x in (b"a", b"b", b"c"))
    inner = write_manifest(store, [b, c]).digest
    outer = write_manifest(store, [a], manifests=[inner]).digest
    assert json.loads(store.read_bytes(outer))["manifests"] == [str(inner)]
    assert manifest_digests(store, outer) == {outer, inner, a, b, c}


def test_a_manifest_shared_by_two_parents_is_read_once(store: Store) -> None:
    a = store.put_bytes(b"a").digest
    shared = write_manifest(store, [a]).digest
    left = write_manifest(store, [], manifests=[shared], extra={"side": "left"}).digest
    right = write_manifest(store, [], manifests=[shared], extra={"side": "right"}).digest
    top = write_manifest(store, [], manifests=[left, right]).digest
    assert manifest_digests(store, top) == {top, left, right, shared, a}


def test_a_missing_manifest_is_an_error(store: Store) -> None:
    gone = Digest.of(b"gone")
    with pytest.raises(StoreError) as exc:
        manifest_digests(store, gone)
    assert str(exc.value) == (
        f"manifest {gone} is missing: restore it (import or rebuild) or remove its root;"
        " nothing is collected until then"
    )


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"[1]", "has no 'objects' list: it is not a manifest; nothing is collected"),
        (b'{"files": {}}', "has no 'objects' list: it is not a manifest; nothing is collected"),
        (
            b'{"objects": ["blake3:xyz"]}',
            (
                "'objects': not a digest: 'blake3:xyz' — expected 'blake3:' and 64 lowercase"
                " hex digits"
            ),
        ),
        (b'{"objects": [7]}', "'objects': not a digest: '7' — expected"),
        (b'{"objects": [], "manifests": "x"}', "'manifests' must be a list of digests"),
    ],
)
def test_a_malformed_manifest_is_an_error(store: Store, body: bytes, problem: str) -> None:
    digest = store.put_bytes(body).digest
    with pytest.raises(StoreError) as exc:
        manifest_digests(store, digest)
    assert str(exc.value).startswith(f"manifest {digest}")
    assert problem in str(exc.value)


def test_a_manifest_that_is_not_json(store: Store) -> None:
    digest = store.put_bytes(b"\x00binary").digest
    with pytest.raises(StoreError, match=rf"^manifest {digest} is not JSON \(.*\): nothing is"):
        manifest_digests(store, digest)
