"""The bench harness in its quick form: it runs end to end and prints the full table.

Figures are not asserted (speed is for bench/): only the table's shape and the outcomes a
user reads off it that do not depend on timing — the no-op rebuild sends no request, and
every environment installs from each result.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import run, scale

ROWS = [
    "cold build (s)",
    "no-op rebuild (s)",
    "add-one rebuild (s)",
    "requests: cold",
    "requests: no-op",
    "page requests: no-op",
    "requests: add-one",
    "MB downloaded: cold",
    "MB in result",
    "peak RSS (MB)",
    "environments that install",
]


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


@pytest.mark.slow
def test_quick_bench_prints_the_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run.main(["--quick", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    start = lines.index("|  | morgan (ours) | pip download |")
    table = {_cells(line)[0]: _cells(line)[1:] for line in lines[start + 2 : start + 2 + len(ROWS)]}
    assert list(table) == ROWS
    assert all(len(cells) == 2 and all(cells) for cells in table.values())
    assert table["requests: no-op"][0] == "0"
    assert table["page requests: no-op"][0] == "0"
    assert table["environments that install"] == ["1/1", "1/1"]
    assert "| add-one: requests ≤ new pages + their files | yes |" in out
    assert (tmp_path / "table.md").read_text(encoding="utf-8") == out
    figures = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    assert sorted(figures["tools"]) == ["morgan (ours)", "pip download"]
    assert figures["environments"] == ["windows"]


@pytest.mark.slow
def test_quick_scale_bench_prints_every_phase_for_every_size(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Shape only: every phase ran and succeeded at both sizes; the no-op sent nothing and
    the add-one rebuild asked only for the new projects (never a time)."""
    assert scale.main(["--quick", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "All phases succeeded." in out
    rows = {_cells(line)[0]: _cells(line)[1:] for line in out.splitlines() if line.startswith("| ")}
    for phase in scale.PHASES:
        assert len(rows[f"{phase} (s)"]) == 3
    assert rows["requests: no-op"][:2] == ["0", "0"]
    assert rows["requests: add-one"][0] == rows["requests: add-one"][1] != "0"
    figures = json.loads((tmp_path / "scale.json").read_text(encoding="utf-8"))
    assert [f["size"] for f in figures] == [60, 120]
