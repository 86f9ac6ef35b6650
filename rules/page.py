"""Rule ``page``: a project's page from the first upstream that has it.

Input: the project's name and the index URLs that may serve it, in order. Output:
:class:`PageOut`, the page normalized to canonical JSON in the store
(:class:`~rules.model.ProjectPage`) and the URL it came from, or which indexes answered 404.
Pages are volatile: the node re-runs whenever resolution needs it (cached only for
``--offline``), and everything downstream is keyed by content.
"""

from __future__ import annotations

from collections.abc import Sequence
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
    indexes that do not have the project."""

    page: Digest | None
    upstream: str | None
    missing: str | None = None

    @property
    def blobs(self) -> tuple[Digest, ...]:
        return () if self.page is None else (self.page,)

    def to_json(self) -> dict[str, object]:
        if self.page is None:
            return {"blobs": [], "missing": self.missing or ""}
        return {"blobs": [str(self.page)], "page": str(self.page), "upstream": self.upstream}

    @classmethod
    def from_json(cls, data: Json) -> Self:
        page = digests([data["page"]])[0] if "page" in data else None
        missing = None if page is not None else str(data.get("missing") or "")
        return cls(page, data.get("upstream"), missing)


RULE = Rule("page", 1, PageOut)


def node(name: NormalizedName, index_urls: Sequence[str], *, offline: bool) -> Node[PageOut]:
    return RULE.node(
        f"page:{name}", {"project": name, "upstreams": list(index_urls)}, cacheable=offline
    )


class PageClient(Protocol):
    def get_page(self, url: str, *, etag: str | None = None) -> Any: ...


def run(
    client: PageClient, store: Store, name: NormalizedName, index_urls: Sequence[str]
) -> tuple[PageOut, ProjectPage | None]:
    """The page of ``name`` from the first of ``index_urls`` that has it; the output and
    the parsed page (so the caller need not read it back)."""
    tried = []
    for index_url in index_urls:
        url = f"{index_url}{name}/"
        resp = client.get_page(url)
        if resp.status == 404:
            tried.append(index_url)
            continue
        try:
            page = parse_project_page(resp.body, resp.content_type, resp.url, name)
        except UpstreamError:
            raise
        except (RuleError, ValueError) as exc:
            raise InputError(f"GET {url}: unreadable project page ({exc})") from None
        # A cache of upstream for --offline that no index entry names: written without
        # fsync, checked when read (docs/architecture.md, "What is fsynced").
        blob = store.put_bytes(canonical_json(page.to_json()), durable=False)
        return PageOut(blob.digest, url), page
    return PageOut(None, None, ", ".join(tried) or "no upstream"), None
