"""Digests name their algorithm and parse strictly; canonical JSON is byte-stable."""

from __future__ import annotations

import json

import pytest

from store.digest import CanonicalJsonReader, Digest, blake3_hex, canonical_json

EMPTY = "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
ABC = "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85"


def test_blake3_hex_matches_the_reference_vectors() -> None:
    assert blake3_hex(b"") == EMPTY
    assert blake3_hex(b"abc") == ABC


def test_digest_text_round_trips() -> None:
    digest = Digest.of(b"abc")
    assert str(digest) == f"blake3:{ABC}"
    assert Digest.parse(f"blake3:{ABC}") == digest
    assert digest == Digest("blake3", ABC)


def test_digests_sort_by_hex() -> None:
    a, b = Digest.parse(f"blake3:{ABC}"), Digest.parse(f"blake3:{EMPTY}")
    assert sorted([b, a]) == [a, b]


@pytest.mark.parametrize(
    "text",
    [
        ABC,  # no algorithm
        f"sha256:{ABC}",
        f"blake3:{ABC.upper()}",
        f"blake3:{ABC[:-1]}",
        f"blake3:{ABC}/../x",
        "",
    ],
)
def test_parse_rejects_anything_else_naming_the_text(text: str) -> None:
    with pytest.raises(ValueError, match=r"^not a digest: ") as exc:
        Digest.parse(text)
    assert str(exc.value) == (
        f"not a digest: {text!r} — expected 'blake3:' and 64 lowercase hex digits"
    )


def test_constructor_validates_too() -> None:
    with pytest.raises(ValueError, match=r"^unsupported digest algorithm 'md5': only 'blake3'"):
        Digest("md5", ABC)
    with pytest.raises(ValueError, match=r"^bad blake3 digest '\.\./etc': expected 64 lowercase"):
        Digest("blake3", "../etc")


def test_canonical_json_sorts_keys_and_keeps_unicode() -> None:
    value = {"b": 1, "a": [1, "é", None, True], "c": {"z": 1.5, "y": Digest.of(b"")}}
    assert (
        canonical_json(value)
        == ('{"a":[1,"é",null,true],"b":1,"c":{"y":"blake3:' + EMPTY + '","z":1.5}}').encode()
    )


def test_canonical_json_refuses_what_is_not_plain_json() -> None:
    with pytest.raises(TypeError, match=r"^canonical_json cannot encode set: "):
        canonical_json({"a": {1}})
    with pytest.raises(ValueError, match="Out of range float values"):
        canonical_json(float("nan"))


def _streamed(value: object, size: int) -> bytes:
    reader = CanonicalJsonReader(value)
    out = []
    while chunk := reader.read(size):
        out.append(chunk)
    return b"".join(out)


def test_a_large_manifest_streams_as_the_same_bytes_as_canonical_json() -> None:
    # A generation's manifest: a tree of thousands of paths and a list of every object,
    # beside small keys; it is stored from the stream, and its digest must be the one
    # canonical_json gives, whatever the stream's pieces.
    blobs = [Digest.of(str(i).encode()) for i in range(5000)]
    tree = {f"simple/p{i % 997}/é-{i}.whl": blobs[i] for i in range(5000)}
    value = {
        "tree": tree,
        "objects": [str(b) for b in sorted(blobs)],
        "views": {"a": {"b": [1, 2.5, None, True]}, "empty": {}, "nested": {"t": tree}},
        "n": 1,
        "ints": {1: "one", 2: "two"},
    }
    expected = canonical_json(value)
    for size in (7, 4096, 1 << 20, -1):
        assert _streamed(value, size) == expected
    assert _streamed([], -1) == b"[]"
    assert _streamed({}, -1) == b"{}"
    assert _streamed(list(range(6000)), 100) == canonical_json(list(range(6000)))
    with pytest.raises(TypeError, match=r"^canonical_json cannot encode set: "):
        _streamed({"tree": tree, "bad": {1}}, -1)


@pytest.mark.parametrize("odd", ['q"uote', "back\\slash", "new\nline", "nul\x00", "é", "\x7f"])
def test_a_large_tree_with_a_key_that_needs_an_escape_streams_as_canonical_json(
    odd: str,
) -> None:
    """A tree of digests is written without the encoder's call per digest when no key needs
    an escape; one key that does, a value that is not a digest or a key that is not a
    string give the encoder's text all the same."""
    blobs = [Digest.of(str(i).encode()) for i in range(3000)]
    tree: dict[object, object] = {f"simple/p{i % 97}/f-{i}.whl": blobs[i] for i in range(3000)}
    for value in (
        {**tree, f"simple/{odd}/x.whl": blobs[0]},
        {**tree, "simple/p1/other": str(blobs[1])},
        {**tree, "simple/p1/none": None},
    ):
        expected = json.dumps(
            {"t": {k: str(v) if isinstance(v, Digest) else v for k, v in value.items()}},
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        ).encode()
        assert canonical_json({"t": value}) == expected
        assert _streamed({"t": value}, 4096) == expected
    numbered = {i: blobs[i] for i in range(3000)}
    assert _streamed({"t": numbered}, -1) == canonical_json({"t": numbered})
