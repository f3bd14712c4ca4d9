"""Shopify's catalog through the Admin REST API: `GET /admin/api/<version>/products.json`.

Documented parameters used (shopify.dev, REST Admin API, Product resource, and "Make paginated
requests to the REST Admin API"): `limit` (at most 250), `updated_at_min` ("show products last
updated after date", ISO 8601 with offset), `ids` (comma-separated), `fields` (comma-separated
top-level fields). Pages are cursor-based: the next page is the URL of the `Link` header's
rel="next", whose `page_info` carries the first request's filters; beside it only `limit` and
`fields` may be sent. Products come by id, ascending.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlparse

import httpx

from adapters.base import BadPayload
from adapters.changed_since import (
    CatalogChanges,
    ChangesUnavailable,
    collect_changed,
    listed_ids,
    server_time,
)

if TYPE_CHECKING:
    from adapters.shopify import ShopifyAdapter

MAX_PAGE_SIZE = 250
# Ids asked for in one `ids` filter (one URL).
IDS_PER_REQUEST = 100


def next_page_info(link: str | None) -> str | None:
    """The `page_info` of the Link header's rel="next" URL, if there is one."""
    for part in (link or "").split(","):
        url, _, params = part.partition(";")
        if 'rel="next"' in params.replace(" ", "") or "rel=next" in params.replace(" ", ""):
            values = parse_qs(urlparse(url.strip().strip("<>")).query).get("page_info")
            if values:
                return values[0]
    return None


def admin_pages(
    adapter: ShopifyAdapter, params: Mapping[str, str | int]
) -> Iterator[tuple[list[dict[str, Any]], httpx.Response]]:
    """Every page of the Admin product list for `params` (limit, filters, fields)."""
    path = f"admin/api/{adapter.api_version}/products.json"
    query: dict[str, str | int] = dict(params)
    page = 1
    while True:
        body, response = adapter.get_json(path, params=query, headers=adapter.admin_headers())
        products = body.get("products") if isinstance(body, Mapping) else None
        if not isinstance(products, list):
            raise BadPayload(
                "bad_page", detail=f"page {page}: no 'products' list", marketplace=adapter.slug
            )
        adapter.pages_answered += 1
        yield products, response
        cursor = next_page_info(response.headers.get("Link"))
        if not cursor or not products:
            return
        query = {"limit": params["limit"], "page_info": cursor}
        if "fields" in params:
            query["fields"] = params["fields"]
        page += 1


def fetch_changes(adapter: ShopifyAdapter, since: datetime, *, at_most: int) -> CatalogChanges:
    """Products updated since `since`, then every product's id (`fields=id`, 250 a page)."""
    started: list[datetime] = []

    def changed_pages() -> Iterator[list[dict[str, Any]]]:
        params = {"limit": MAX_PAGE_SIZE, "updated_at_min": since.isoformat()}
        for products, response in admin_pages(adapter, params):
            if not started:
                started.append(server_time(response))
            yield products

    changed = collect_changed(changed_pages(), at_most=at_most)
    ids = listed_ids(
        products for products, _ in admin_pages(adapter, {"limit": MAX_PAGE_SIZE, "fields": "id"})
    )
    if not started:
        raise ChangesUnavailable("no answer to the changed-since request")
    return CatalogChanges(changed, ids, adapter.page_size, started[0])


def fetch_by_ids(adapter: ShopifyAdapter, ids: list[str]) -> list[dict[str, Any]]:
    """Every product listed with one of `ids`, in listing order."""
    records: list[dict[str, Any]] = []
    for start in range(0, len(ids), IDS_PER_REQUEST):
        chunk = ",".join(ids[start : start + IDS_PER_REQUEST])
        for products, _ in admin_pages(adapter, {"limit": MAX_PAGE_SIZE, "ids": chunk}):
            records.extend(products)
    return records
