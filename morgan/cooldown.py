"""``exclude-newer``: a cooldown that hides files uploaded after a cut-off, as uv does.

A cut-off is written either as an RFC 3339 timestamp (``"2024-05-01T00:00:00Z"``, or a date
``"2024-05-01"``, meaning midnight UTC) or as an age (``"7 days"``), which becomes "now minus
that age" once per build. A file is kept only when its upstream ``upload-time`` (PEP 700) is
strictly before the cut-off; a file without an ``upload-time`` is **excluded**, as uv does:
its age is unknown, and a cooldown that let unknown ages through would not be one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from rules.model import UpstreamFile

__all__ = ["ExcludeNewer", "parse_exclude_newer", "parse_upload_time", "split_by_cutoff"]

_AGE = re.compile(r"\s*(\d+)\s*(second|minute|hour|day|week)s?\s*", re.IGNORECASE)
_UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400, "week": 7 * 86400}
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_HELP = 'write an RFC 3339 time like "2024-05-01T00:00:00Z", a date, or an age like "7 days"'


@dataclass(frozen=True, slots=True)
class ExcludeNewer:
    """A cut-off as the spec wrote it: a fixed moment, or an age counted back from now."""

    text: str
    at: datetime | None = None
    age: timedelta | None = None

    def cutoff(self, now: datetime) -> datetime:
        """The moment files must be older than, for a build started at ``now``."""
        if self.at is not None:
            return self.at
        return now - (self.age or timedelta())


def parse_exclude_newer(text: str) -> ExcludeNewer:
    """Parse a spec value; ValueError says what is wrong and how to write it instead."""
    match = _AGE.fullmatch(text)
    if match is not None:
        count = int(match.group(1))
        if count == 0:
            raise ValueError(f"{text!r} is no cooldown at all — {_HELP}, or remove the key")
        return ExcludeNewer(text, age=timedelta(seconds=count * _UNITS[match.group(2).lower()]))
    if _DATE.fullmatch(text):
        try:
            day = datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
        except ValueError:
            raise ValueError(f"{text!r} is not a calendar date — {_HELP}") from None
        return ExcludeNewer(text, at=day)
    moment = parse_upload_time(text)
    if moment is None and re.fullmatch(r"\d{4}-\d{2}-\d{2}[Tt ][\d:.]+", text):
        raise ValueError(f"{text!r} has no UTC offset — add one, e.g. {text + 'Z'!r}")
    if moment is None:
        raise ValueError(f"{text!r} is neither a time nor an age — {_HELP}")
    return ExcludeNewer(text, at=moment)


def parse_upload_time(text: str) -> datetime | None:
    """An RFC 3339 time with an explicit offset (``Z`` or ``+hh:mm``) in UTC; else None."""
    if "T" not in text.upper() or not re.search(r"(?:[zZ]|[+-]\d{2}:\d{2})$", text):
        return None
    try:
        moment = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        return None
    return moment.astimezone(UTC)


def split_by_cutoff(
    files: Iterable[UpstreamFile], cutoff: datetime
) -> tuple[list[UpstreamFile], int, int]:
    """(files uploaded before ``cutoff``, how many are newer, how many have no upload time)."""
    kept: list[UpstreamFile] = []
    newer = untimed = 0
    for f in files:
        moment = parse_upload_time(f.upload_time) if f.upload_time else None
        if moment is None:
            untimed += 1
        elif moment >= cutoff:
            newer += 1
        else:
            kept.append(f)
    return kept, newer, untimed
