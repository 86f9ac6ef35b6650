"""The first steps of a cold build's crawl, taken while the build imports its engine.

A cold build asks for its root projects' pages while it still imports the resolver
(:meth:`rules.lib.http.HttpClient.get_pages_early`, ~0.1-0.2 s of CPU). From each root page
that comes in, it goes two steps further there, as the crawl ahead of the resolver would
(:meth:`morgan.catalog.EnvCatalog._guess_metadata`): the PEP 658 ``.metadata`` of the
release the crawl guesses first (the newest final one the requirement allows that has a
wheel with one), then the pages of what that release needs in some target environment
(its markers holding, without extras). The engine takes these answers when it asks for the
same URLs: a project two steps from the roots (``bench/run.py``'s large ``bigmodel``)
starts downloading as resolution starts, not three round trips and the imports later. A
wrong guess costs the few small requests made for it, as a wrong guess of the crawl does.

Only for a build that resolves from scratch without named indexes or private folders (see
:func:`morgan.commands.build.early_crawl`), and only from PEP 691 JSON pages of at most
:data:`MAX_PAGE` bytes (a larger page is parsed once, by the engine).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import Version

from morgan.environments import Environment
from morgan.universal import evaluate_marker
from rules.lib.http import PageResponse
from rules.lib.project_page import JSON_TYPES, parse_project_page
from rules.model import NormalizedName

MAX_PAGE = 256 * 1024
# The most distinct ``.metadata`` (by their advertised hash) read ahead for one root.
MAX_METADATA = 4


class EarlyClient(Protocol):
    def get_pages_early(
        self, urls: Sequence[str], then: Callable[[str, PageResponse], None] | None = None
    ) -> None: ...

    def get_bytes_early(
        self,
        files: Sequence[Sequence[str]],
        *,
        max_bytes: int,
        then: Callable[[str, bytes], None] | None = None,
    ) -> None: ...


class EarlyCrawl:
    """Root pages, then each root's likely ``.metadata``, then its dependencies' pages."""

    def __init__(
        self,
        client: EarlyClient,
        roots: Mapping[NormalizedName, SpecifierSet],
        environments: Sequence[Environment],
        page_url: Callable[[NormalizedName], str | None],
        *,
        max_metadata_bytes: int,
    ) -> None:
        self._client = client
        self._roots = roots
        self._environments = tuple(environments)
        self._page_url = page_url
        self._max_metadata_bytes = max_metadata_bytes
        self._names: dict[str, NormalizedName] = {}  # root page URL -> its project

    def start(self) -> list[str]:
        """Ask for the root pages now (the crawl follows as they come in); their URLs."""
        for name in self._roots:
            url = self._page_url(name)
            if url is not None:
                self._names[url] = name
        urls = list(self._names)
        self._client.get_pages_early(urls, then=self._root_page)
        return urls

    def _root_page(self, url: str, answer: PageResponse) -> None:
        name = self._names.get(url)
        media_type = answer.content_type.partition(";")[0].strip().lower()
        if name is None or answer.status != 200 or media_type not in JSON_TYPES:
            return
        if len(answer.body) > MAX_PAGE:
            return
        page = parse_project_page(answer.body, answer.content_type, answer.url, name)
        wanted = self._roots[name]
        by_version: dict[Version, list[tuple[str, str]]] = {}
        for f in page.files:
            if not f.filename.endswith(".whl") or f.yanked or not f.core_metadata:
                continue
            try:
                version = parse_wheel_filename(f.filename)[1]
            except InvalidWheelFilename:
                continue
            if version.is_prerelease or version not in wanted:
                continue
            by_version.setdefault(version, []).append(
                (f.core_metadata_sha256 or f.url, f.url + ".metadata")
            )
        if not by_version:
            return
        newest = by_version[max(by_version)]
        same: dict[str, list[str]] = {}  # the .metadata URLs with one content
        for digest, metadata_url in newest:
            same.setdefault(digest, []).append(metadata_url)
        files = list(same.values())[:MAX_METADATA]
        self._client.get_bytes_early(files, max_bytes=self._max_metadata_bytes, then=self._metadata)

    def _metadata(self, _url: str, data: bytes) -> None:
        from rules.lib.metadata import parse_core_metadata

        urls = []
        for text in parse_core_metadata(data).requires_dist:
            try:
                req = Requirement(text)
            except InvalidRequirement:
                continue
            if req.url or not any(evaluate_marker(req.marker, e, "") for e in self._environments):
                continue
            url = self._page_url(NormalizedName(canonicalize_name(req.name)))
            if url is not None:
                urls.append(url)
        self._client.get_pages_early(urls)
