"""The pages of the fake upstream index: PEP 691 JSON and PEP 503 HTML, and negotiation."""

from __future__ import annotations

import hashlib
import html
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from packaging.version import Version

JSON_V1 = "application/vnd.pypi.simple.v1+json"
HTML_V1 = "application/vnd.pypi.simple.v1+html"
TEXT_HTML = "text/html"
# The exact Content-Type sent for each page type (uv compares it exactly).
CONTENT_TYPES = {
    JSON_V1: JSON_V1,
    HTML_V1: HTML_V1,
    TEXT_HTML: "text/html; charset=utf-8",
}
# Tie-breaks between types of equal q: what a client names, JSON first; what it only
# matches by wildcard, text/html first (PyPI answers a bare `*/*` with HTML).
_NAMED_ORDER = {JSON_V1: 2, HTML_V1: 1, TEXT_HTML: 0}
_WILDCARD_ORDER = {TEXT_HTML: 2, JSON_V1: 1, HTML_V1: 0}


@dataclass(slots=True)
class ServedFile:
    """One file of a project as the index lists it."""

    filename: str
    path: Path
    version: Version
    size: int
    sha256: str
    yanked: bool | str
    requires_python: str | None
    upload_time: str
    metadata: bytes | None  # the PEP 658 .metadata bytes, None when not offered
    wrong_sha256: bool

    @property
    def listed_sha256(self) -> str:
        """The hash the pages show: the real one, unless the file is set to list a wrong one."""
        if self.wrong_sha256:
            return hashlib.sha256(b"wrong" + self.sha256.encode()).hexdigest()
        return self.sha256

    @property
    def metadata_sha256(self) -> str | None:
        """The sha256 of the .metadata bytes, None when there are none."""
        return None if self.metadata is None else hashlib.sha256(self.metadata).hexdigest()


def _parse_accept(header: str) -> list[tuple[str, float]]:
    """`Accept` → [(media range, q)], in header order; a q that does not parse counts as 0."""
    ranges: list[tuple[str, float]] = []
    for item in header.split(","):
        media, *params = (part.strip() for part in item.split(";"))
        if not media:
            continue
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        ranges.append((media.lower(), q))
    return ranges


def negotiate(accept: str | None) -> str | None:
    """The page type to send for an `Accept` header, or None (406). No header means `*/*`.

    Each type takes the q of the most specific range that matches it (so `text/html;q=0`
    refuses HTML even with `*/*`). The highest q wins; on a tie a type the client named
    beats one it only matched by wildcard, JSON first; among wildcard matches text/html
    comes first, as PyPI answers a bare `*/*`.
    """
    ranges = _parse_accept(accept if accept is not None else "*/*")
    best: tuple[float, bool, int] | None = None
    chosen: str | None = None
    for offer in _NAMED_ORDER:
        main = offer.split("/")[0]
        matched: tuple[int, float] | None = None  # (specificity, q) of the best match
        for media, q in ranges:
            if media == offer:
                specificity = 2
            elif media == f"{main}/*":
                specificity = 1
            elif media == "*/*":
                specificity = 0
            else:
                continue
            if matched is None or specificity > matched[0]:
                matched = (specificity, q)
        if matched is None or matched[1] <= 0:
            continue
        named = matched[0] == 2
        rank = (matched[1], named, (_NAMED_ORDER if named else _WILDCARD_ORDER)[offer])
        if best is None or rank > best:
            best, chosen = rank, offer
    return chosen


def html_page(title: str, body: str, status: tuple[str, str] | None = None) -> bytes:
    """A PEP 503 page with the PEP 629 repository-version meta tag (and PEP 792's project
    status meta tags, API 1.4, when `status` is given)."""
    head = '<meta name="pypi:repository-version" content="1.1">\n'
    if status is not None:
        head = '<meta name="pypi:repository-version" content="1.4">\n'
        head += f'<meta name="pypi:project-status" content="{html.escape(status[0])}">\n'
        if status[1]:
            head += f'<meta name="pypi:project-status-reason" content="{html.escape(status[1])}">\n'
    page = (
        "<!DOCTYPE html>\n<html>\n<head>\n"
        f"{head}"
        f"<title>{html.escape(title)}</title>\n</head>\n<body>\n"
        f"<h1>{html.escape(title)}</h1>\n{body}</body>\n</html>\n"
    )
    return page.encode("utf-8")


def index_json(names: Sequence[str]) -> bytes:
    """The PEP 691 project list."""
    doc = {"meta": {"api-version": "1.1"}, "projects": [{"name": n} for n in names]}
    return json.dumps(doc, indent=1).encode("utf-8")


def index_html(names: Sequence[str]) -> bytes:
    """The PEP 503 project list (links relative to /simple/)."""
    links = "".join(f'<a href="{n}/">{html.escape(n)}</a><br/>\n' for n in names)
    return html_page("Simple index", links)


def detail_json(
    name: str,
    files: Sequence[ServedFile],
    link: Callable[[ServedFile], str],
    *,
    metadata: bool,
    legacy_dist_info_metadata: bool,
    status: tuple[str, str] | None = None,
    provenance: dict[str, str] | None = None,
) -> bytes:
    """A PEP 691 (api 1.1, PEP 700) project page. `metadata`: offer PEP 658 files;
    `status`: a PEP 792 (status, reason), making it api 1.4.

    `legacy_dist_info_metadata` adds the JSON key `data-dist-info-metadata` as PyPI still
    does (a mirror must not copy it: PEP 714).
    """
    rows = []
    for f in files:
        core: dict[str, str] | bool = False
        if metadata and f.metadata_sha256 is not None:
            core = {"sha256": f.metadata_sha256}
        row: dict[str, object] = {
            "filename": f.filename,
            "url": link(f),
            "hashes": {"sha256": f.listed_sha256},
            "requires-python": f.requires_python,
            "yanked": f.yanked,
            "size": f.size,
            "upload-time": f.upload_time,
            "core-metadata": core,
        }
        if provenance is not None:
            row["provenance"] = provenance.get(f.filename)  # PEP 740: a URL or null
        if legacy_dist_info_metadata:
            row["data-dist-info-metadata"] = core
        rows.append(row)
    doc: dict[str, object] = {
        "meta": {"api-version": "1.1"},
        "name": name,
        "versions": [str(v) for v in sorted({f.version for f in files})],
        "files": rows,
    }
    if status is not None:
        doc["meta"] = {"api-version": "1.4"}
        doc["project-status"] = {"status": status[0], "reason": status[1]}
    return json.dumps(doc, indent=1).encode("utf-8")


def detail_html(
    name: str,
    files: Sequence[ServedFile],
    link: Callable[[ServedFile], str],
    *,
    metadata: bool,
    status: tuple[str, str] | None = None,
    provenance: dict[str, str] | None = None,
) -> bytes:
    """A PEP 503 project page: #sha256 fragments, data-requires-python, data-yanked and
    (when `metadata`) both data-core-metadata and the legacy data-dist-info-metadata."""
    links = []
    for f in files:
        attrs = [f'href="{html.escape(link(f))}#sha256={f.listed_sha256}"']
        if f.requires_python is not None:
            attrs.append(f'data-requires-python="{html.escape(f.requires_python)}"')
        if f.yanked is not False:
            reason = "" if f.yanked is True else str(f.yanked)
            attrs.append(f'data-yanked="{html.escape(reason)}"')
        if metadata and f.metadata_sha256 is not None:
            value = f"sha256={f.metadata_sha256}"
            attrs.append(f'data-core-metadata="{value}"')
            attrs.append(f'data-dist-info-metadata="{value}"')
        if provenance and f.filename in provenance:
            attrs.append(f'data-provenance="{html.escape(provenance[f.filename])}"')
        links.append(f"<a {' '.join(attrs)}>{html.escape(f.filename)}</a><br/>\n")
    return html_page(f"Links for {name}", "".join(links), status)
