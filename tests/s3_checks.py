"""Walking a published bucket as clients do: every root, every project page, every link."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from urllib.parse import urljoin

import requests

ROOTS = ("simple/", "env/linux/simple/", "env/windows/simple/")
_LINK = re.compile(r'href="([^"#]+)(?:#sha256=([0-9a-f]+))?"')


@dataclass
class Walk:
    pages: dict[str, bytes] = field(default_factory=dict)  # key -> body as fetched
    problems: list[str] = field(default_factory=list)
    requests: int = 0


def fetch(session: requests.Session, url: str, walk: Walk) -> requests.Response:
    walk.requests += 1
    return session.get(url, timeout=60)


def check_project(
    session: requests.Session, base: str, root: str, project: str, walk: Walk
) -> None:
    """One project page (bare key) and every file and .metadata it links to."""
    key = root + project
    page = fetch(session, base + key, walk)
    if page.status_code != 200:
        walk.problems.append(f"{key}: {page.status_code} (linked from {root})")
        return
    walk.pages[key] = page.content
    for href, sha in _LINK.findall(page.text):
        url = urljoin(base + key, href)
        got = fetch(session, url, walk)
        if got.status_code != 200:
            walk.problems.append(f"{url}: {got.status_code} (linked from {key})")
        elif sha and hashlib.sha256(got.content).hexdigest() != sha:
            walk.problems.append(f"{url}: sha256 differs from {key}")
        if "data-core-metadata" in page.text and href.endswith(".whl"):
            meta = fetch(session, url + ".metadata", walk)
            if meta.status_code != 200:
                walk.problems.append(f"{url}.metadata: {meta.status_code} (from {key})")


def walk_bucket(base: str) -> Walk:
    """Everything reachable from the roots, fetched once."""
    walk = Walk()
    with requests.Session() as session:
        for root in ROOTS:
            index = fetch(session, base + root, walk)
            if index.status_code != 200:
                walk.problems.append(f"{root}: {index.status_code}")
                continue
            walk.pages[root] = index.content
            for project, _ in _LINK.findall(index.text):
                check_project(session, base, root, project, walk)
    return walk
