"""Line numbers of keys and array items, found in TOML text that tomllib has no positions for."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from morgan.errors import SpecError
from morgan.toml_reader import KeyPath, TomlReader, context, display_path, key_lines

TRICKY = '''\
# [not.a.table] in a comment
title = "x # not a comment" # a comment with [brackets]
"quoted.key" = 'C:\\path\\'
dotted . key = 1979-05-27 07:32:00Z
text = """
[fake.table]
fake = "key"
"""
escaped = "a\\"b = c"
arr = [
  # a comment between items
  "one",   # trailing comment
  [1, 2],
  { inline = true, nested = { deep = 1 } },
]

[table]
key = 1

[[many]]
name = "first"

[[many]]
name = "second"
[many.sub]
leaf = 2

[ "spaced" . 'lit' ]
x = 3
'''


def _leaf_paths(value: Any, prefix: KeyPath = ()) -> list[KeyPath]:
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _leaf_paths(v, (*prefix, k))] or [prefix]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _leaf_paths(v, (*prefix, i))] or [prefix]
    return [prefix]


def test_every_value_has_its_own_line() -> None:
    lines = key_lines(TRICKY).lines
    expected = {
        ("title",): 2,
        ("quoted.key",): 3,
        ("dotted", "key"): 4,
        ("text",): 5,
        ("escaped",): 9,
        ("arr", 0): 12,
        ("arr", 1, 0): 13,
        ("arr", 1, 1): 13,
        ("arr", 2, "inline"): 14,
        ("arr", 2, "nested", "deep"): 14,
        ("table", "key"): 18,
        ("many", 0, "name"): 21,
        ("many", 1, "name"): 24,
        ("many", 1, "sub", "leaf"): 26,
        ("spaced", "lit", "x"): 29,
    }
    leaves = _leaf_paths(tomllib.loads(TRICKY))
    assert sorted(leaves, key=str) == sorted(expected, key=str)
    assert {path: lines[path] for path in leaves} == expected
    assert not any(path[0] == "fake" for path in lines)
    assert not any(path[0] == "not" for path in lines)
    assert lines[("arr",)] == 10
    assert lines[("many", 1)] == 23


def test_unknown_paths_fall_back_to_the_nearest_ancestor() -> None:
    lines = key_lines(TRICKY)
    assert lines.line(("table", "missing")) == 17
    assert lines.line(("many", 1, "missing")) == 23
    assert lines.line(("nowhere",)) == 1


def test_context_formats_paths_like_toml() -> None:
    assert context(("upstreams", 0, "index-url")) == "upstreams[0].index-url"
    assert context(("environments", "../x", "python")) == 'environments."../x".python'
    assert context(("requirements", 3)) == "requirements[3]"


def test_display_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert display_path(tmp_path / "ws" / "mirror.toml") == "ws/mirror.toml"
    assert display_path(Path("mirror.toml")) == "mirror.toml"
    assert display_path(Path("/elsewhere/mirror.toml")) == "/elsewhere/mirror.toml"


def test_getters_name_the_type_and_line() -> None:
    reader = TomlReader('a = 1\nb = ["x", 2]\n', Path("f.toml"))
    data = reader.load()
    with pytest.raises(SpecError) as exc:
        reader.string(data["a"], ("a",), 'a = "text"')
    assert str(exc.value) == 'f.toml:1: a: expected a string, got an integer — write a = "text"'
    with pytest.raises(SpecError) as exc:
        reader.strings(data["b"], ("b",), 'b = ["x"]')
    assert str(exc.value) == 'f.toml:2: b[1]: expected a string, got an integer — write b = ["x"]'


def test_invalid_toml_at_end_of_document() -> None:
    with pytest.raises(SpecError) as exc:
        TomlReader('a = 1\nb = [\n  "x",\n', Path("f.toml")).load()
    assert str(exc.value) == (
        "f.toml:3: invalid TOML: invalid value at end of file — close every array, inline "
        "table and string that is still open"
    )
