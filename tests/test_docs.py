"""The documentation stands alone and stays true: no page cites a file outside the
repository, every page is reachable from the README, and figures about the code match it."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted((ROOT / "docs").glob("*.md"))


def test_no_page_cites_a_design_file_outside_the_repository() -> None:
    for page in [ROOT / "README.md", *PAGES]:
        text = page.read_text(encoding="utf-8")
        found = re.findall(r"\b(?:DESIGN|STANDARDS|STYLE)(?:\.md)?\b|\.\./shared", text)
        assert found == [], (page.name, found)


def test_every_page_is_reachable_from_the_readme() -> None:
    reached = {ROOT / "README.md"}
    queue = [ROOT / "README.md"]
    while queue:
        page = queue.pop()
        for target in re.findall(r"\]\(([^)#\s]+\.md)", page.read_text(encoding="utf-8")):
            path = (page.parent / target).resolve()
            if path.is_file() and path not in reached:
                reached.add(path)
                queue.append(path)
    assert [p.name for p in PAGES if p.resolve() not in reached] == []


def test_server_docs_line_count_is_within_ten_percent() -> None:
    text = (ROOT / "docs" / "server.md").read_text(encoding="utf-8")
    match = re.search(r"`server.py` is about (\d+) lines", text)
    assert match is not None
    stated = int(match.group(1))
    actual = len((ROOT / "morgan" / "server.py").read_text(encoding="utf-8").splitlines())
    assert abs(stated - actual) <= actual / 10, (stated, actual)
