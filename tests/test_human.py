"""Sizes and counted nouns in human output (``morgan.human``), exactly."""

from __future__ import annotations

import pytest

from morgan.human import count, size


@pytest.mark.parametrize(
    ("nbytes", "text"),
    [
        (0, "0 bytes"),
        (1, "1 byte"),
        (999, "999 bytes"),
        (1000, "1.0 kB"),
        (27071, "27 kB"),
        (213815352, "214 MB"),
        (999_499_999, "999 MB"),
        (999_500_000, "1.0 GB"),
        (5_300_000_000, "5.3 GB"),
    ],
)
def test_size_is_decimal_with_at_most_three_digits(nbytes: int, text: str) -> None:
    assert size(nbytes) == text


def test_count_says_one_file_and_two_files() -> None:
    assert [count(n, "file") for n in (0, 1, 2)] == ["0 files", "1 file", "2 files"]
    assert count(2, "action entry", "action entries") == "2 action entries"
