"""TOML decoding whose every error says ``FILE:LINE: context.path: what — fix``.

:class:`TomlReader` decodes with ``tomllib``, then finds line numbers and offers typed
getters that raise :class:`~morgan.errors.SpecError` pointing at the offending line.

``tomllib`` gives values without positions. :func:`key_lines` walks the text of an
already-valid TOML document once more and records, for every key path
(``("environments", "mac", "platform")``, ``("requirements", 2)``,
``("upstreams", 0, "index-url")``), the line where it first appears. It assumes the text
parsed with ``tomllib`` and never raises on valid TOML; on anything it does not follow it
stops early, and :meth:`KeyLines.line` falls back to the nearest enclosing path that it saw.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, cast

from morgan.errors import SpecError

PathPart = str | int
KeyPath = tuple[PathPart, ...]

_TOML_ERROR_RE = re.compile(r"^(.*) \(at (?:line (\d+), column (\d+)|end of document)\)$")
_BARE = re.compile(r"[A-Za-z0-9_-]+")
_ESCAPE = re.compile(r"\\(u[0-9A-Fa-f]{4}|U[0-9A-Fa-f]{8}|.)", re.DOTALL)
_SPACE = re.compile(r"(?:[ \t]+|#[^\n]*)*")  # a comment runs to the end of its line
_SPACE_AND_NEWLINES = re.compile(r"(?:[ \t\r\n]+|#[^\n]*)*")
_BASIC_BODY = re.compile(r'(?:[^"\\]|\\.)*', re.DOTALL)
_SIMPLE_ESCAPES = {"b": "\b", "t": "\t", "n": "\n", "f": "\f", "r": "\r", '"': '"', "\\": "\\"}


@dataclass
class KeyLines:
    """Key path -> 1-based line of its first appearance."""

    lines: dict[KeyPath, int] = field(default_factory=dict)

    def line(self, path: KeyPath) -> int:
        """The line of ``path``, else of its nearest recorded ancestor, else 1."""
        for end in range(len(path), 0, -1):
            found = self.lines.get(path[:end])
            if found is not None:
                return found
        return 1


def key_lines(text: str) -> KeyLines:
    """Record the line of every key, table header and array item of a valid TOML text."""
    result = KeyLines()
    # On _StopError keep what was recorded: lookups fall back to enclosing paths.
    with contextlib.suppress(_StopError):
        _Walker(text, result).document()
    return result


class _StopError(Exception):
    """The walker met something it does not follow."""


class _Walker:
    def __init__(self, text: str, out: KeyLines) -> None:
        self.text = text
        self.pos = 0
        self.out = out
        self.table_counts: dict[KeyPath, int] = {}
        # pos only moves forward: count the newlines since the last call, not from the
        # start (a spec of 100 000 lines would otherwise take quadratic time).
        self._counted_to = 0
        self._line = 1

    # -- positions --------------------------------------------------------------------------
    def line(self) -> int:
        if self.pos > self._counted_to:
            self._line += self.text.count("\n", self._counted_to, self.pos)
            self._counted_to = self.pos
        return self._line

    def peek(self, n: int = 1) -> str:
        return self.text[self.pos : self.pos + n]

    def record(self, path: KeyPath) -> None:
        self.out.lines.setdefault(path, self.line())

    def skip_space(self, newlines: bool) -> None:
        pattern = _SPACE_AND_NEWLINES if newlines else _SPACE
        match = pattern.match(self.text, self.pos)
        if match is not None:
            self.pos = match.end()

    # -- grammar ----------------------------------------------------------------------------
    def document(self) -> None:
        table: KeyPath = ()
        while True:
            self.skip_space(newlines=True)
            if self.pos >= len(self.text):
                return
            if self.peek(2) == "[[":
                self.pos += 2
                key = self.key()
                index = self.table_counts.get(key, 0)
                self.table_counts[key] = index + 1
                table = (*key, index)
                self.record(key)
                self.record(table)
                self.expect("]]")
            elif self.peek() == "[":
                self.pos += 1
                key = self.key()
                table = self.with_array_indexes(key)
                self.record(table)
                self.expect("]")
            else:
                key = self.key()
                self.record((*table, *key))
                self.expect("=")
                self.value((*table, *key))

    def with_array_indexes(self, key: tuple[str, ...]) -> KeyPath:
        """``[upstreams.extra]`` after ``[[upstreams]]`` means the latest upstreams item."""
        path: KeyPath = ()
        for part in key:
            path = (*path, part)
            count = self.table_counts.get(path)
            if count is not None and path != key:
                path = (*path, count - 1)
        return path

    def expect(self, token: str) -> None:
        self.skip_space(newlines=False)
        if not self.text.startswith(token, self.pos):
            raise _StopError
        self.pos += len(token)

    def key(self) -> tuple[str, ...]:
        parts: list[str] = []
        while True:
            self.skip_space(newlines=False)
            parts.append(self.simple_key())
            self.skip_space(newlines=False)
            if self.peek() != ".":
                return tuple(parts)
            self.pos += 1

    def simple_key(self) -> str:
        char = self.peek()
        if char in "\"'":
            return self.string()
        match = _BARE.match(self.text, self.pos)
        if match is None:
            raise _StopError
        self.pos = match.end()
        return match.group()

    def value(self, path: KeyPath) -> None:
        self.skip_space(newlines=False)
        char = self.peek()
        if char == "[":
            self.pos += 1
            index = 0
            while True:
                self.skip_space(newlines=True)
                if self.peek() == "]":
                    self.pos += 1
                    return
                self.record((*path, index))
                self.value((*path, index))
                self.skip_space(newlines=True)
                if self.peek() == ",":
                    self.pos += 1
                index += 1
        elif char == "{":
            self.pos += 1
            while True:
                self.skip_space(newlines=False)
                if self.peek() == "}":
                    self.pos += 1
                    return
                key = self.key()
                self.record((*path, *key))
                self.expect("=")
                self.value((*path, *key))
                self.skip_space(newlines=False)
                if self.peek() == ",":
                    self.pos += 1
        elif char in "\"'":
            self.string()
        else:
            match = re.compile(r"[^,\]}\r\n#]+").match(self.text, self.pos)
            if match is None:
                raise _StopError
            self.pos = match.end()

    def string(self) -> str:
        quote = self.peek()
        if self.peek(3) == quote * 3:
            end = self.text.find(quote * 3, self.pos + 3)
            while end >= 0 and self.text.startswith(quote, end + 3):
                end += 1  # up to two quotes may close a multi-line string's content
            if end < 0:
                raise _StopError
            body = self.text[self.pos + 3 : end]
            self.pos = end + 3
            return body
        self.pos += 1
        if quote == "'":
            end = self.text.find("'", self.pos)
            if end < 0:
                raise _StopError
            body = self.text[self.pos : end]
            self.pos = end + 1
            return body
        match = _BASIC_BODY.match(self.text, self.pos)
        body = match.group() if match else ""
        self.pos += len(body) + 1
        return _ESCAPE.sub(_unescape, body) if "\\" in body else body


def _unescape(match: re.Match[str]) -> str:
    code = match.group(1)
    if code[0] in "uU":
        return chr(int(code[1:], 16))
    return _SIMPLE_ESCAPES.get(code, code)


MAX_NESTING = 32  # arrays and inline tables inside each other; a spec needs 3
_NESTING_TOKENS = re.compile(r"""[\[\]{}"'#\n]""")


def check_nesting(text: str, path: Path) -> None:
    """Raise a SpecError at the line where arrays or inline tables nest deeper than
    :data:`MAX_NESTING` (decoders recurse per level: 500 levels overflow Python's stack).

    Strings and comments are skipped; anything malformed is left to the decoder.
    """
    if text.count("[") + text.count("{") <= MAX_NESTING:
        return
    depth = 0
    pos = 0
    while (match := _NESTING_TOKENS.search(text, pos)) is not None:
        char, pos = match.group(), match.end()
        if char in "[{":
            depth += 1
            if depth > MAX_NESTING:
                line = text.count("\n", 0, pos) + 1
                raise SpecError(
                    f"{display_path(path)}:{line}: arrays or tables nested more than "
                    f"{MAX_NESTING} deep — flatten them"
                )
        elif char in "]}":
            depth = max(0, depth - 1)
        elif char == "#":
            end = text.find("\n", pos)
            pos = len(text) if end < 0 else end
        elif char in "\"'":
            pos = _string_end(text, pos - 1)


_BASIC_STRING_END = re.compile(r'(?:[^"\\\n]|\\.)*(?:"|\n|$)', re.DOTALL)
_LITERAL_STRING_END = re.compile(r"[^'\n]*(?:'|\n|$)")


def _string_end(text: str, start: int) -> int:
    """The position after the TOML string that opens at ``start`` (or the end of text)."""
    quote = text[start]
    if text.startswith(quote * 3, start):
        end = text.find(quote * 3, start + 3)
        return len(text) if end < 0 else end + 3
    pattern = _BASIC_STRING_END if quote == '"' else _LITERAL_STRING_END
    match = pattern.match(text, start + 1)
    return len(text) if match is None else match.end()


def display_path(path: Path) -> str:
    """``path`` relative to the current directory when it lies below it, else as given."""
    if path.is_absolute():
        try:
            return str(path.relative_to(Path.cwd()))
        except ValueError:
            return str(path)
    return str(path)


def context(path: KeyPath) -> str:
    """``("upstreams", 0, "index-url")`` -> ``upstreams[0].index-url`` (odd keys quoted)."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            shown = part if _BARE.fullmatch(part) else json.dumps(part)
            out += f".{shown}" if out else shown
    return out


def kind(value: object) -> str:
    """The TOML type of a decoded value, for "expected X, got Y" messages."""
    names = {bool: "a boolean", int: "an integer", float: "a float", str: "a string"}
    for type_, name in names.items():
        if type(value) is type_:
            return name
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return "a date/time"


def short(value: str, limit: int = 60) -> str:
    """``repr`` of a user's string, cut to ``limit`` characters so a message stays one line."""
    return repr(value if len(value) <= limit else value[:limit] + "…")


class TomlReader:
    """A TOML document and the file it came from; getters fail with located SpecErrors."""

    def __init__(self, text: str, path: Path) -> None:
        self.text = text
        self.path = path
        self.lines = KeyLines()

    def load(self) -> dict[str, Any]:
        """Decode the text; invalid TOML fails with tomllib's line and column, nesting
        deeper than :data:`MAX_NESTING` with the line where it gets too deep."""
        check_nesting(self.text, self.path)
        try:
            data = tomllib.loads(self.text)
        except tomllib.TOMLDecodeError as exc:
            self.toml_error(exc)
        except RecursionError:  # below MAX_NESTING only on a nearly full stack
            raise SpecError(
                f"{display_path(self.path)}:1: arrays or tables nested too deep — flatten them"
            ) from None
        self.lines = key_lines(self.text)
        return data

    def fail(self, path: KeyPath, what: str) -> NoReturn:
        """Raise ``FILE:LINE: ctx: what`` for the key at ``path`` (``what`` holds the fix)."""
        where = f"{display_path(self.path)}:{self.lines.line(path)}"
        raise SpecError(f"{where}: {context(path)}: {what}" if path else f"{where}: {what}")

    def toml_error(self, exc: tomllib.TOMLDecodeError) -> NoReturn:
        message = str(exc)
        match = _TOML_ERROR_RE.match(message)
        fix = "fix the syntax on that line"
        if match is None:
            line, what = 1, message
        elif match.group(2) is None:
            line, what = max(1, len(self.text.splitlines())), f"{match.group(1)} at end of file"
            fix = "close every array, inline table and string that is still open"
        else:
            line = int(match.group(2))
            what = f"{match.group(1)} at column {match.group(3)}"
        what = what[0].lower() + what[1:]
        raise SpecError(f"{display_path(self.path)}:{line}: invalid TOML: {what} — {fix}")

    def check_keys(self, table: Mapping[str, Any], allowed: tuple[str, ...], at: KeyPath) -> None:
        """Fail on the first key of ``table`` not in ``allowed``, with a did-you-mean."""
        for key in table:
            if key not in allowed:
                close = difflib.get_close_matches(key, allowed, 1, 0.6)
                hint = f"did you mean {close[0]!r}?" if close else "allowed: " + ", ".join(allowed)
                self.fail((*at, key), f"unknown key — {hint}")

    def table(self, value: object, at: KeyPath, example: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.fail(at, f"expected a table, got {kind(value)} — write {example}")
        return value

    def string(self, value: object, at: KeyPath, example: str) -> str:
        if not isinstance(value, str):
            self.fail(at, f"expected a string, got {kind(value)} — write {example}")
        return value

    def boolean(self, value: object, at: KeyPath, key: str) -> bool:
        if not isinstance(value, bool):
            self.fail(at, f"expected true or false, got {kind(value)} — write {key} = true")
        return value

    def strings(self, value: object, at: KeyPath, example: str) -> list[str]:
        if not isinstance(value, list):
            self.fail(at, f"expected an array of strings, got {kind(value)} — write {example}")
        for index, item in enumerate(value):
            if not isinstance(item, str):
                self.fail((*at, index), f"expected a string, got {kind(item)} — write {example}")
        return cast("list[str]", value)
