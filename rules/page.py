"""Rule ``page``: a project's page from the first upstream that has it.

Input: the project's name and the index URLs that may serve it, in order. Output:
:class:`PageOut`, the page normalized to canonical JSON in the store
(:class:`~rules.model.ProjectPage`) and the URL it came from, or which indexes answered 404.
Pages are volatile: the node re-runs whenever resolution needs it (cached only for
``--offline``), and everything downstream is keyed by content.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, Self

from rules.errors import InputError, RuleError, UpstreamError
from rules.lib.project_page import parse_project_page
from rules.model import NormalizedName, ProjectPage
from rules.rule import Json, Node, Rule, digests
from store.digest import Digest, canonical_json
from store.objects import Store


@dataclass(frozen=True, slots=True)
class PageOut:
    """A fetched page (``page``: its blob, ``upstream``: its URL), or ``missing``: the
    indexes that do not have the project.

    With ``content_type`` the blob holds the page's bytes as upstream sent them (from
    ``page_url``, the final URL without credentials), parsed again by an ``--offline``
    build; without, Morgan's normalized JSON (:class:`ProjectPage`), which is what is kept
    when the bytes hold an ``@`` (a link with credentials may) and what older builds kept.
    """

    page: Digest | None
    upstream: str | None
    missing: str | None = None
    content_type: str | None = None
    page_url: str | None = None

    @property
    def blobs(self) -> tuple[Digest, ...]:
        return () if self.page is None else (self.page,)

    def to_json(self) -> dict[str, object]:
        if self.page is None:
            return {"blobs": [], "missing": self.missing or ""}
        data: dict[str, object] = {
            "blobs": [str(self.page)],
            "page": str(self.page),
            "upstream": self.upstream,
        }
        if self.content_type is not None:
            data["content-type"] = self.content_type
            data["page-url"] = self.page_url
        return data

    @classmethod
    def from_json(cls, data: Json) -> Self:
        page = digests([data["page"]])[0] if "page" in data else None
        missing = None if page is not None else str(data.get("missing") or "")
        content_type = data.get("content-type")
        page_url = data.get("page-url")
        if not isinstance(content_type, str) or not isinstance(page_url, str):
            content_type = page_url = None
        return cls(page, data.get("upstream"), missing, content_type, page_url)


RULE = Rule("page", 1, PageOut)


def node(name: NormalizedName, index_urls: Sequence[str], *, offline: bool) -> Node[PageOut]:
    return RULE.node(
        f"page:{name}", {"project": name, "upstreams": list(index_urls)}, cacheable=offline
    )


class PageClient(Protocol):
    def get_page(self, url: str, *, etag: str | None = None) -> Any: ...


def run(
    client: PageClient,
    store: Store,
    name: NormalizedName,
    index_urls: Sequence[str],
    *,
    keep: Callable[[str], bool] | None = None,
) -> tuple[PageOut, ProjectPage | None]:
    """The page of ``name`` from the first of ``index_urls`` that has it; the output and
    the parsed page (so the caller need not read it back), with only the files ``keep``
    accepts (see :func:`parse_project_page`)."""
    tried = []
    for index_url in index_urls:
        url = f"{index_url}{name}/"
        resp = client.get_page(url)
        if resp.status == 404:
            tried.append(index_url)
            continue
        try:
            page = parse_project_page(resp.body, resp.content_type, resp.url, name, keep=keep)
        except UpstreamError:
            raise
        except (RuleError, ValueError) as exc:
            raise InputError(f"GET {url}: unreadable project page ({exc})") from None
        # A cache of upstream for --offline that no index entry names: written without
        # fsync, checked when read (docs/architecture.md, "What is fsynced"). Upstream's
        # own bytes (one write; no second serialization of thousands of files), unless
        # they may hold credentials: then the normalized page, which never does.
        if b"@" not in resp.body:
            blob = store.put_bytes(resp.body, durable=False)
            return PageOut(blob.digest, url, None, resp.content_type, resp.url), page
        whole = (
            page
            if keep is None
            else parse_project_page(resp.body, resp.content_type, resp.url, name)
        )
        blob = store.put_bytes(canonical_json(whole.to_json()), durable=False)
        return PageOut(blob.digest, url), page
    return PageOut(None, None, ", ".join(tried) or "no upstream"), None


def read_cached(
    out: PageOut, body: bytes, name: NormalizedName, *, keep: Callable[[str], bool] | None = None
) -> ProjectPage:
    """The page an ``--offline`` build reads from ``out``'s blob (``body``, checked)."""
    if out.content_type is None or out.page_url is None:
        return ProjectPage.from_json(json.loads(body))
    return parse_project_page(body, out.content_type, out.page_url, name, keep=keep)
