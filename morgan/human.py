"""Numbers for people: sizes in decimal units and counted nouns, for human output only.

``--json`` output keeps exact integers (bytes); stderr summaries use these.
"""

from __future__ import annotations

_UNITS = ("kB", "MB", "GB", "TB", "PB")


def size(nbytes: int) -> str:
    """``214 MB`` for 213815352: decimal units (as disks and ``ls -h --si`` count), three
    significant digits at most; ``1 byte``, ``512 bytes`` below a kilobyte."""
    if nbytes < 1000:
        return count(nbytes, "byte")
    value = float(nbytes)
    unit = ""
    for unit in _UNITS:
        value /= 1000
        if value < 999.5 or unit == _UNITS[-1]:
            break
    return f"{value:.1f} {unit}" if value < 9.95 else f"{value:.0f} {unit}"


def count(n: int, noun: str, plural: str | None = None) -> str:
    """``1 file``, ``2 files``, ``0 files`` (``plural`` for irregular nouns)."""
    return f"{n} {noun if n == 1 else (plural or noun + 's')}"
