"""The pages the mirror serves: PEP 503/629/658/691/700/714, as deterministic bytes.

Every link is relative (``<filename>#sha256=…`` on a project page, ``<project>/`` on the
index), so a generation works behind any URL prefix, from any static server and through
``file://``. The same input always gives the same bytes: files and names are sorted, JSON keys
are sorted, nothing depends on time or host.
"""

from __future__ import annotations

import html
import itertools
import json
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from packaging.utils import parse_sdist_filename, parse_wheel_filename
from packaging.version import Version

from rules.lib.project_page import is_normalized_name
from rules.model import MirrorFile, NormalizedName

API_VERSION = "1.1"
PROVENANCE_API_VERSION = "1.3"  # PEP 740: pages that point at provenance say so
STATUS_API_VERSION = "1.4"  # PEP 792: pages that carry a project status say so
JSON_CONTENT_TYPE = "application/vnd.pypi.simple.v1+json"
HTML_CONTENT_TYPE = "text/html; charset=utf-8"


def render_project_html(
    name: NormalizedName,
    files: Sequence[MirrorFile],
    *,
    status: str = "active",
    status_reason: str = "",
) -> bytes:
    """The PEP 503 HTML page of one project (``simple/<name>/index.html``); a status other
    than active adds PEP 792's ``pypi:project-status`` (and ``-reason``) meta tags."""
    extra = []
    if status != "active":
        extra.append(f'    <meta name="pypi:project-status" content="{_escape(status)}">')
        if status_reason:
            extra.append(
                f'    <meta name="pypi:project-status-reason" content="{_escape(status_reason)}">'
            )
    lines = _html_head(f"Links for {name}", extra, STATUS_API_VERSION if extra else API_VERSION)
    lines.append(f"    <h1>Links for {_escape(name)}</h1>")
    for f in _sorted_files(name, files):
        attrs = [f'href="{_escape(_href(f.filename))}#sha256={f.sha256}"']
        if f.requires_python is not None:
            attrs.append(f'data-requires-python="{_escape(f.requires_python)}"')
        if f.yanked:
            attrs.append(f'data-yanked="{_escape(f.yanked_reason)}"')
        if f.metadata_sha256 is not None:
            # PEP 714 name for current clients, the PEP 658 name for pip < 23.
            attrs.append(f'data-core-metadata="sha256={f.metadata_sha256}"')
            attrs.append(f'data-dist-info-metadata="sha256={f.metadata_sha256}"')
        if f.provenance_sha256 is not None:
            attrs.append(f'data-provenance="{_escape(_href(f.filename))}.provenance"')
        lines.append(f"    <a {' '.join(attrs)}>{_escape(f.filename)}</a><br>")
    return _html_tail(lines)


def render_project_json(
    name: NormalizedName,
    files: Sequence[MirrorFile],
    *,
    status: str = "active",
    status_reason: str = "",
) -> bytes:
    """The PEP 691 JSON page of one project (``simple/<name>/index.json``), API 1.1; with a
    status other than active, API 1.4 and PEP 792's ``project-status``."""
    ordered = _sorted_files(name, files)
    entries = [_json_file(f) for f in ordered]
    versions = {_version_of(f.filename) for f in ordered}
    page: dict[str, Any] = {
        "meta": {"api-version": _api_version(files, status)},
        "name": name,
        "files": entries,
        "versions": [str(v) for v in sorted(versions)],
    }
    if status != "active":
        page["project-status"] = {"status": status} | (
            {"reason": status_reason} if status_reason else {}
        )
    return _dump(page)


def render_index_html(names: Sequence[NormalizedName]) -> bytes:
    """The PEP 503 root index (``simple/index.html``): one relative ``<name>/`` link per project."""
    lines = _html_head("Simple index")
    for name in _sorted_names(names):
        lines.append(f'    <a href="{name}/">{name}</a><br>')
    return _html_tail(lines)


def render_index_json(names: Sequence[NormalizedName]) -> bytes:
    """The PEP 691 root index (``simple/index.json``), API 1.1."""
    projects = [{"name": name} for name in _sorted_names(names)]
    return _dump({"meta": {"api-version": API_VERSION}, "projects": projects})


def _api_version(files: Sequence[MirrorFile], status: str) -> str:
    """The lowest Simple API version that has every key the page carries."""
    if status != "active":
        return STATUS_API_VERSION
    if any(f.provenance_sha256 is not None for f in files):
        return PROVENANCE_API_VERSION
    return API_VERSION


def _json_file(f: MirrorFile) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "filename": f.filename,
        "url": _href(f.filename),
        "hashes": {"sha256": f.sha256},
        "size": f.size,
        # PEP 691: yanked is false, true, or a non-empty reason.
        "yanked": (f.yanked_reason or True) if f.yanked else False,
        # PEP 714: only ever the core-metadata key; the old one crashes some pip versions.
        "core-metadata": (
            {"sha256": f.metadata_sha256} if f.metadata_sha256 is not None else False
        ),
    }
    if f.requires_python is not None:
        entry["requires-python"] = f.requires_python
    if f.upload_time is not None:
        entry["upload-time"] = f.upload_time
    if f.provenance_sha256 is not None:
        entry["provenance"] = _href(f.filename) + ".provenance"  # PEP 740
    return entry


def _sorted_files(name: NormalizedName, files: Sequence[MirrorFile]) -> list[MirrorFile]:
    _check_name(name)
    ordered = sorted(files, key=lambda f: f.filename)
    for before, after in itertools.pairwise(ordered):
        if before.filename == after.filename:
            raise ValueError(f"file {after.filename!r} is listed twice for project {name!r}")
    return ordered


def _sorted_names(names: Sequence[NormalizedName]) -> list[NormalizedName]:
    for name in names:
        _check_name(name)
    return sorted(set(names))


def _check_name(name: str) -> None:
    # Names become path components and hrefs: only normalized names may get this far.
    if not is_normalized_name(name):
        raise ValueError(f"project name {name!r} is not a normalized name (PEP 503)")


def _version_of(filename: str) -> Version:
    try:
        if filename.endswith(".whl"):
            return parse_wheel_filename(filename)[1]
        return parse_sdist_filename(filename)[1]
    except ValueError as exc:
        raise ValueError(f"{filename!r} is not a wheel or sdist filename: {exc}") from exc


def _href(filename: str) -> str:
    # '+' (local versions) and '!' (epochs) are legal in a URL path and keep links readable.
    return quote(filename, safe="+!")


def _escape(text: str) -> str:
    return html.escape(text, quote=True)


def _html_head(title: str, meta: Sequence[str] = (), version: str = API_VERSION) -> list[str]:
    return [
        "<!DOCTYPE html>",
        "<html>",
        "  <head>",
        f'    <meta name="pypi:repository-version" content="{version}">',
        *meta,
        f"    <title>{_escape(title)}</title>",
        "  </head>",
        "  <body>",
    ]


def _html_tail(lines: list[str]) -> bytes:
    lines += ["  </body>", "</html>", ""]
    return "\n".join(lines).encode("utf-8")


def _dump(data: dict[str, Any]) -> bytes:
    return (json.dumps(data, sort_keys=True, ensure_ascii=False, indent=None) + "\n").encode(
        "utf-8"
    )
