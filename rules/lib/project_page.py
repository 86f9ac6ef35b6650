"""Parse an upstream Simple API page (PEP 691 JSON or PEP 503 HTML) into canonical values.

Whatever the upstream sends, the result is the same :class:`~rules.model.ProjectPage`: absolute
URLs without credentials or fragments, sha256 when the upstream gave one, yanked and core
metadata flags, files sorted by filename. Files that are neither a wheel nor an sdist of the
requested project are dropped, as pip and uv ignore them too.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from html.parser import HTMLParser
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

from packaging.tags import parse_tag
from packaging.utils import (
    canonicalize_name,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from rules.errors import UpstreamError
from rules.model import PROJECT_STATUSES, NormalizedName, ProjectPage, UpstreamFile

JSON_TYPES = frozenset(
    {"application/vnd.pypi.simple.v1+json", "application/vnd.pypi.simple.latest+json"}
)
HTML_TYPES = frozenset(
    {"text/html", "application/vnd.pypi.simple.v1+html", "application/vnd.pypi.simple.latest+html"}
)

# Filenames end up as path components in the mirror: allow only what real distribution
# filenames use, so that nothing like "../x" or "a/b" can ever get through.
_SAFE_FILENAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+!-]*")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_NORMALIZED = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
# An absolute http(s) URL that urljoin, urlsplit and strip_credentials leave as it is: a
# plain host (no credentials), a path of unreserved and percent-encoded characters only.
_PLAIN_URL = re.compile(r"https?://[A-Za-z0-9.-]+(?::[0-9]{1,5})?/[A-Za-z0-9._~%/+!=,-]*")


def strip_credentials(url: str) -> str:
    """Return ``url`` without any ``user:password@`` part (for storing and for messages)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=host))


def is_normalized_name(name: str) -> bool:
    """True if ``name`` is a PEP 503 normalized project name (safe as a path component)."""
    return _NORMALIZED.fullmatch(name) is not None


def parse_project_page(
    body: bytes,
    content_type: str,
    page_url: str,
    project: NormalizedName,
    *,
    keep: Callable[[str], bool] | None = None,
) -> ProjectPage:
    """Parse one upstream project page into a :class:`ProjectPage` for ``project``.

    ``page_url`` must be the final URL after redirects: relative links are resolved against
    it. Raises :class:`UpstreamError` naming the URL when the page cannot be understood.
    With ``keep``, a distribution file whose name it refuses is not made into a file (nor
    checked beyond its name): its version goes to ``skipped`` (a numpy-like page lists
    thousands of wheels, of which a build's environments can use a few hundred).
    """
    url = strip_credentials(page_url)
    media_type, charset = _split_content_type(content_type)
    skipped: dict[Version, None] = {}
    if media_type in JSON_TYPES:
        data = _load_json(body, url)
        files = _json_files(data, url, project, keep, skipped)
        status = _json_status(data.get("project-status"))
    elif media_type in HTML_TYPES:
        parser = _parse_html(_decode(body, charset, url), page_url)
        files = iter(parser.links)
        status = _status(parser.meta.get("pypi:project-status"))
        status = (status[0], parser.meta.get("pypi:project-status-reason", ""))
    else:
        raise UpstreamError(
            f"{url}: unsupported content type {content_type!r}; expected PEP 691 JSON "
            "(application/vnd.pypi.simple.v1+json) or PEP 503 HTML (text/html)"
        )
    chosen = _select(files, page_url, project, keep, skipped)
    return ProjectPage(
        name=project,
        files=chosen,
        status=status[0],
        status_reason=status[1],
        skipped=tuple(skipped),
    )


def _json_status(value: object) -> tuple[str, str]:
    """PEP 792 ``project-status``: ``{"status": …, "reason": …}``; anything else: active."""
    if not isinstance(value, dict):
        return ("active", "")
    reason = value.get("reason")
    return (_status(value.get("status"))[0], reason if isinstance(reason, str) else "")


def _status(value: object) -> tuple[str, str]:
    # A status this version does not know is read as active, as PEP 792 asks of clients.
    return (value if isinstance(value, str) and value in PROJECT_STATUSES else "active", "")


def parse_index_page(body: bytes, content_type: str, page_url: str) -> list[NormalizedName]:
    """Parse an upstream root index (``/simple/``) into sorted, unique normalized names.

    Names that do not normalize to a safe project name are ignored.
    """
    url = strip_credentials(page_url)
    media_type, charset = _split_content_type(content_type)
    raw: list[str] = []
    if media_type in JSON_TYPES:
        data = _load_json(body, url)
        projects = data.get("projects")
        if not isinstance(projects, list):
            raise UpstreamError(f"{url}: malformed JSON index page: 'projects' is not a list")
        for entry in projects:
            if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
                raise UpstreamError(f"{url}: malformed JSON index page: bad project {entry!r}")
            raw.append(entry["name"])
    elif media_type in HTML_TYPES:
        raw = [link.text for link in _html_links(_decode(body, charset, url), page_url)]
    else:
        raise UpstreamError(f"{url}: unsupported content type {content_type!r} for an index page")
    names = {canonicalize_name(name.strip()) for name in raw}
    return sorted(NormalizedName(n) for n in names if is_normalized_name(n))


def _split_content_type(content_type: str) -> tuple[str, str]:
    media_type, _, params = content_type.partition(";")
    charset = "utf-8"
    for param in params.split(";"):
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset" and value.strip():
            charset = value.strip().strip('"')
    return media_type.strip().lower(), charset


def _decode(body: bytes, charset: str, url: str) -> str:
    try:
        return body.decode(charset)
    except (LookupError, UnicodeDecodeError) as exc:
        raise UpstreamError(f"{url}: page is not valid {charset}: {exc}") from exc


def _load_json(body: bytes, url: str) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise UpstreamError(f"{url}: malformed JSON page: {exc}") from exc
    if not isinstance(data, dict):
        raise UpstreamError(f"{url}: malformed JSON page: top level is not an object")
    meta = data.get("meta", {})
    version = meta.get("api-version", "1.0") if isinstance(meta, dict) else None
    if not isinstance(version, str) or version.partition(".")[0] != "1":
        raise UpstreamError(
            f"{url}: unsupported Simple API version {version!r}; Morgan reads 1.x (PEP 629)"
        )
    return data


def _json_files(
    data: Mapping[str, Any],
    url: str,
    project: NormalizedName,
    keep: Callable[[str], bool] | None,
    skipped: dict[Version, None],
) -> Iterator[_Link]:
    """The file entries of a JSON page as links, but those whose name ``keep`` refuses:
    their versions go to ``skipped`` when they are distributions of ``project``. A JSON
    entry names its file, so refused names (most of a large page's) cost a name check
    only: no link, no URL or field checks."""
    name = data.get("name")
    if isinstance(name, str) and str(canonicalize_name(name)) != project:
        raise UpstreamError(f"{url}: page is for project {name!r}, expected {project!r}")
    files = data.get("files")
    if not isinstance(files, list):
        raise UpstreamError(f"{url}: malformed JSON project page: 'files' is not a list")
    for entry in files:
        if keep is not None and isinstance(entry, dict):
            # Refused names first, without a link for them: most of a large page's entries.
            filename = entry.get("filename")
            if isinstance(filename, str) and isinstance(entry.get("url"), str):
                if not keep(filename):
                    version = _distribution_version(filename, project)
                    if version is not None:
                        skipped[version] = None
                    continue
                yield _Link(href=entry["url"], text=filename, json=entry)
                continue
        link = _json_file(entry, url)
        if keep is not None and not keep(link.text):
            version = _distribution_version(link.text, project)
            if version is not None:
                skipped[version] = None
            continue
        yield link


@dataclass(slots=True)
class _Link:
    """One file link before validation: what either page format told us."""

    href: str
    text: str
    attrs: dict[str, str | None] = field(default_factory=dict)
    json: dict[str, Any] | None = None


def _json_file(entry: object, url: str) -> _Link:
    if not isinstance(entry, dict):
        raise UpstreamError(f"{url}: malformed JSON project page: file entry {entry!r}")
    filename, href = entry.get("filename"), entry.get("url")
    if not isinstance(filename, str) or not isinstance(href, str):
        raise UpstreamError(
            f"{url}: malformed JSON project page: file entry without string 'filename' and 'url'"
        )
    return _Link(href=href, text=filename, json=entry)


def _select(
    links: Iterator[_Link],
    page_url: str,
    project: NormalizedName,
    keep: Callable[[str], bool] | None,
    skipped: dict[Version, None],
) -> tuple[UpstreamFile, ...]:
    """The files of ``links``, sorted by name. ``keep`` decides on the HTML links (those
    of a JSON page were decided by :func:`_json_files`): the versions of the distribution
    files it refuses go to ``skipped``."""
    url = strip_credentials(page_url)
    page_scheme = urlsplit(page_url).scheme
    chosen: dict[str, UpstreamFile] = {}
    for link in links:
        if link.json is not None and link.text in chosen:
            continue
        if _PLAIN_URL.fullmatch(link.href):
            # The common case (every file of a PyPI JSON page): an absolute http(s) URL with
            # no credentials, query, parameters or fragment, which joining, splitting and
            # unsplitting would return unchanged. Skipping them is most of a large page's
            # parse time (numpy: ~10 000 files, boto3-like pages several MB).
            file_url = link.href
            fragment = ""
            path_tail = link.href.rpartition("/")[2]
        else:
            parts = urlsplit(urljoin(page_url, link.href))
            # A remote page must not point Morgan at local files or other odd schemes.
            if parts.scheme not in ("http", "https", page_scheme):
                continue
            file_url = strip_credentials(urlunsplit(parts._replace(fragment="")))
            fragment = parts.fragment
            path_tail = parts.path.rpartition("/")[2]
        filename = link.text if link.json is not None else unquote(path_tail)
        if filename in chosen:
            continue
        version = _distribution_version(filename, project)
        if version is None:
            continue
        if keep is not None and link.json is None and not keep(filename):
            skipped[version] = None
            continue
        if link.json is not None:
            found = _from_json(link.json, filename, file_url, url)
            provenance = link.json.get("provenance")
        else:
            found = _from_html(link.attrs, fragment, filename, file_url, url)
            provenance = link.attrs.get("data-provenance")
        chosen[filename] = _with_provenance(found, provenance, page_url, page_scheme)
    return tuple(chosen[name] for name in sorted(chosen))


def _with_provenance(
    found: UpstreamFile, provenance: object, page_url: str, page_scheme: str
) -> UpstreamFile:
    """``found`` with its PEP 740 provenance URL (absolute, no credentials), when the page
    gives one: JSON ``provenance`` (a URL or null), HTML ``data-provenance``."""
    if not isinstance(provenance, str) or not provenance.strip():
        return found
    if _PLAIN_URL.fullmatch(provenance):  # as for file URLs: nothing to resolve or strip
        return replace(found, provenance_url=provenance)
    parts = urlsplit(urljoin(page_url, provenance.strip()))
    if parts.scheme not in ("http", "https", page_scheme):
        return found
    url = strip_credentials(urlunsplit(parts._replace(fragment="")))
    return replace(found, provenance_url=url)


def _distribution_version(filename: str, project: NormalizedName) -> Version | None:
    """The version of ``filename`` when it is a wheel or sdist of ``project`` (a safe name
    that packaging parses); None otherwise."""
    if _SAFE_FILENAME.fullmatch(filename) is None:
        return None
    if filename.endswith(".whl"):
        # packaging's own parse, split in two cached halves: the files of a release
        # share name, version and build, and a page's tag sets repeat across releases.
        head, _, tags = filename[:-4].rpartition("-")
        head, _, abi = head.rpartition("-")
        head, _, interpreter = head.rpartition("-")
        if not _valid_tags(f"{interpreter}-{abi}-{tags}"):
            return None
        found = wheel_head(head)
    elif filename.endswith((".tar.gz", ".zip")):
        found = sdist_head(filename[:-7] if filename.endswith(".tar.gz") else filename[:-4])
    else:
        return None
    return found[1] if found is not None and found[0] == project else None


@functools.lru_cache(maxsize=8192)
def wheel_head(head: str) -> tuple[str, Version] | None:
    """The project and version of a wheel named ``<head>-<tags>.whl`` (name, version and
    build checked as packaging checks them); None when they are not valid."""
    try:
        name, version, _, _ = parse_wheel_filename(f"{head}-py3-none-any.whl")
    except ValueError:  # InvalidWheelFilename
        return None
    return str(name), version


def sdist_head(stem: str) -> tuple[str, Version] | None:
    """The project and version of an sdist named ``<stem>.tar.gz`` or ``<stem>.zip``, as
    packaging's ``parse_sdist_filename`` reads them (the name before the last dash,
    normalized; a valid version after it); None when they are not valid. A page's sdists
    share a name and mostly a version with its wheels: both are parsed once."""
    name_part, sep, version_part = stem.rpartition("-")
    if not sep or not name_part:
        return None
    version = _version(version_part)
    return None if version is None else (_canonical(name_part), version)


@functools.lru_cache(maxsize=1024)
def _canonical(name: str) -> str:
    return str(canonicalize_name(name))


@functools.lru_cache(maxsize=8192)
def _version(text: str) -> Version | None:
    try:
        return Version(text)
    except InvalidVersion:
        return None


@functools.lru_cache(maxsize=1024)
def _valid_tags(tag_set: str) -> bool:
    try:
        parse_tag(tag_set)
    except ValueError:  # InvalidTag
        return False
    return True


def _from_json(entry: Mapping[str, Any], filename: str, file_url: str, url: str) -> UpstreamFile:
    where = f"{url}: file {filename}"
    hashes = entry.get("hashes", {})
    if not isinstance(hashes, dict):
        raise UpstreamError(f"{where}: 'hashes' is not an object")
    size = entry.get("size")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
        raise UpstreamError(f"{where}: 'size' {size!r} is not a non-negative integer")
    upload_time = entry.get("upload-time")
    if upload_time is not None and not isinstance(upload_time, str):
        raise UpstreamError(f"{where}: 'upload-time' {upload_time!r} is not a string")
    requires_python = entry.get("requires-python")
    if requires_python is not None and not isinstance(requires_python, str):
        raise UpstreamError(f"{where}: 'requires-python' {requires_python!r} is not a string")
    yanked = entry.get("yanked", False)
    if not isinstance(yanked, bool | str):
        raise UpstreamError(f"{where}: 'yanked' {yanked!r} is neither a boolean nor a string")
    # PEP 714: the new key wins; the legacy key is read only when the new one is absent.
    metadata = entry.get("core-metadata", entry.get("dist-info-metadata", False))
    if isinstance(metadata, dict):
        has_metadata, metadata_sha256 = True, _sha256(metadata.get("sha256"), where)
    elif isinstance(metadata, bool):
        has_metadata, metadata_sha256 = metadata, None
    else:
        raise UpstreamError(f"{where}: 'core-metadata' {metadata!r} is neither bool nor object")
    return UpstreamFile(
        filename=filename,
        url=file_url,
        sha256=_sha256(hashes.get("sha256"), where),
        size=size,
        upload_time=upload_time,
        requires_python=_clean_requires_python(requires_python),
        yanked=yanked is not False,
        yanked_reason=yanked if isinstance(yanked, str) else "",
        core_metadata=has_metadata,
        core_metadata_sha256=metadata_sha256,
    )


def _from_html(
    attrs: Mapping[str, str | None], fragment: str, filename: str, file_url: str, url: str
) -> UpstreamFile:
    where = f"{url}: file {filename}"
    algorithm, _, digest = fragment.partition("=")
    sha256 = _sha256(digest, where) if algorithm == "sha256" else None
    has_metadata, metadata_sha256 = False, None
    key = "data-core-metadata" if "data-core-metadata" in attrs else "data-dist-info-metadata"
    if key in attrs:
        value = (attrs[key] or "true").strip()
        if value.lower() != "false":
            has_metadata = True
            algorithm, _, digest = value.partition("=")
            if algorithm == "sha256":
                metadata_sha256 = _sha256(digest, where)
    yanked = "data-yanked" in attrs
    return UpstreamFile(
        filename=filename,
        url=file_url,
        sha256=sha256,
        size=None,
        upload_time=None,
        requires_python=_clean_requires_python(attrs.get("data-requires-python")),
        yanked=yanked,
        yanked_reason=(attrs.get("data-yanked") or "") if yanked else "",
        core_metadata=has_metadata,
        core_metadata_sha256=metadata_sha256,
    )


def _sha256(value: object, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or _SHA256.fullmatch(value.lower()) is None:
        raise UpstreamError(f"{where}: sha256 {value!r} is not 64 hexadecimal digits")
    return value.lower()


def _clean_requires_python(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    return value.strip()


def _html_links(text: str, page_url: str) -> list[_Link]:
    return _parse_html(text, page_url).links


def _parse_html(text: str, page_url: str) -> _AnchorParser:
    parser = _AnchorParser(page_url)
    parser.feed(text)
    parser.close()
    return parser


class _AnchorParser(HTMLParser):
    """Collect ``<a href>`` links (attribute values arrive HTML-unescaped), ``<base>`` and
    ``<meta name content>`` (PEP 792's ``pypi:project-status``)."""

    def __init__(self, page_url: str) -> None:
        super().__init__(convert_charrefs=True)
        self.base = page_url
        self.links: list[_Link] = []
        self.meta: dict[str, str] = {}
        self._open: _Link | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "meta" and values.get("name"):
            self.meta.setdefault(values["name"] or "", values.get("content") or "")
        elif tag == "base" and values.get("href"):
            self.base = urljoin(self.base, values["href"] or "")
        elif tag == "a" and values.get("href"):
            href = urljoin(self.base, values["href"] or "")
            self._open = _Link(href=href, text="", attrs=values)
            self.links.append(self._open)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a":
            self._open = None

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self._open.text += data
