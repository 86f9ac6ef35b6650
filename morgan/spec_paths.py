"""The path-valued keys of ``mirror.toml``: ``private``, ``locks`` and ``[output] path``.

Each is checked when the spec is loaded, so that nothing later opens, reads or creates a
path the user did not mean: no NUL or control character, no over-long path or name, no
device, FIFO or socket (``private = ["/dev/zero"]`` would be read without end), no output
folder that is a file, lies inside a file, or sits on a kernel pseudo-filesystem.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Any

from morgan.toml_reader import KeyPath, TomlReader, short

__all__ = ["MAX_PATH_LENGTH", "SpecPaths"]

MAX_PATH_LENGTH = 1024  # characters of a resolved path (Linux allows 4096, Windows 260)
_NAME_MAX = 255  # bytes of one path component on every common filesystem
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Kernel pseudo-filesystems: nothing there can hold a mirror or a package.
_PSEUDO = (Path("/proc"), Path("/sys"), Path("/dev"))


class SpecPaths(TomlReader):
    """The ``private``, ``locks`` and ``output`` getters of the spec parser."""

    def __init__(self, text: str, path: Path) -> None:
        super().__init__(text, path)
        self.spec_dir = path.absolute().parent

    def path_value(self, value: str, at: KeyPath, what: str) -> Path:
        """``value`` resolved against the spec's folder, or a located SpecError."""
        if _CONTROL.search(value):
            self.fail(at, f"{short(value)} contains a control character — remove it")
        if len(value) > MAX_PATH_LENGTH:
            self.fail(
                at,
                f"{short(value)} is longer than {MAX_PATH_LENGTH} characters — give a "
                f"shorter path to {what}",
            )
        try:
            path = (self.spec_dir / value).resolve()
        except (OSError, RuntimeError, ValueError) as exc:
            self.fail(at, f"{short(value)} cannot be resolved ({exc}) — fix the path to {what}")
        if len(str(path)) > MAX_PATH_LENGTH or any(
            len(part.encode("utf-8", "surrogateescape")) > _NAME_MAX for part in path.parts
        ):
            self.fail(
                at,
                f"{short(value)} is too long (at most {MAX_PATH_LENGTH} characters, "
                f"{_NAME_MAX} bytes per name) — give a shorter path to {what}",
            )
        if any(path == p or p in path.parents for p in _PSEUDO):
            self.fail(
                at,
                f"{short(value)} is on the kernel's {path.parts[1]!r} pseudo-filesystem — "
                f"give a path to {what} on a real disk",
            )
        return path

    def private(self, data: dict[str, Any], table: KeyPath = ()) -> tuple[Path, ...]:
        """``private`` of the top level, or of the table at ``table`` (``[indexes.NAME]``)."""
        where: KeyPath = (*table, "private")
        items = self.strings(data.get("private", []), where, 'private = ["wheels/"]')
        result: list[Path] = []
        for index, item in enumerate(items):
            at: KeyPath = (*where, index)
            path = self.path_value(item, at, "a wheel, an sdist or a folder of them")
            try:
                mode = path.stat().st_mode
            except OSError:
                self.fail(
                    at,
                    f"{short(item)} does not exist (looked for {path}) — create it or fix the "
                    "path (relative paths start at the folder of mirror.toml)",
                )
            if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                self.fail(
                    at,
                    f"{short(item)} is not a regular file or a folder (looked for {path}) — "
                    "give a wheel, an sdist or a folder of them",
                )
            result.append(path)
        return tuple(result)

    def locks(self, data: dict[str, Any]) -> tuple[Path, ...]:
        example = 'locks = ["pylock.toml"]'
        items = self.strings(data.get("locks", []), ("locks",), example)
        result: list[Path] = []
        for index, item in enumerate(items):
            path = self.path_value(item, ("locks", index), "a pylock.toml or uv.lock")
            if not path.is_file():
                self.fail(
                    ("locks", index),
                    f"{short(item)} is not a file (looked for {path}) — give the path of a "
                    "pylock.toml or uv.lock, relative to the folder of mirror.toml",
                )
            if path.name != "uv.lock" and not (
                path.name.startswith("pylock.") and path.name.endswith(".toml")
            ):
                self.fail(
                    ("locks", index),
                    f"{short(item)} is neither a pylock.toml (PEP 751) nor a uv.lock — rename "
                    "it or give one of those",
                )
            result.append(path)
        return tuple(result)

    def output(self, data: dict[str, Any]) -> Path:
        table = self.table(data.get("output", {}), ("output",), '[output] path = "mirror"')
        self.check_keys(table, ("path",), ("output",))
        at: KeyPath = ("output", "path")
        value = self.string(table.get("path", "mirror"), at, 'path = "mirror"')
        if not value.strip():
            self.fail(at, 'empty path — write path = "mirror" or remove the key')
        out = self.path_value(value, at, "the mirror folder")
        spec_dir = self.spec_dir.resolve()
        if out == spec_dir or out in spec_dir.parents:
            # The mirror's store/, generations/ and index would land among the user's files.
            self.fail(
                at,
                f"{short(value)} is the workspace itself or a folder above it — use a folder of "
                'its own, e.g. path = "mirror"',
            )
        # The nearest existing folder on the way: everything below it is created by a build.
        for candidate in (out, *out.parents):
            if os.path.lexists(candidate):
                if not candidate.is_dir():
                    where = "is" if candidate == out else f"lies inside {candidate}, which is"
                    self.fail(
                        at,
                        f"{short(value)} {where} not a folder — give a folder for the mirror, "
                        'e.g. path = "mirror"',
                    )
                break
        return out
