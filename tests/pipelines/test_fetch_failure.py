"""A marketplace failing half-way through a fetch of every page: the failed partition says how
far the fetch got (pipelines/assets/catalog.py). Before, an outage at page 19 of 75 read like one
at the first page ("catalog fetch failed: Transient: POST catalog/v1/searchItems -> 503"), so an
operator could not tell a marketplace that is down from one that breaks under a long fetch."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from adapters.base import CatalogPage, MarketplaceError, Transient
from adapters.shopify import ShopifyAdapter
from adapters.woocommerce import WooCommerceAdapter
from pipelines.assets.catalog import PagesRead, describe_fetch_failure, fetch_catalog_changes
from sandbox.app import SandboxConfig, create_app
from tests.adapters.configs import marketplace_config


def _pages_failing_at(page: int) -> Iterator[CatalogPage]:
    for number in range(1, page):
        yield CatalogPage(records=[{"id": number}], page=number)
    raise Transient("POST catalog/v1/searchItems -> 503: down")


def test_a_fetch_failing_half_way_says_after_how_many_pages() -> None:
    read = PagesRead()
    staged = []
    with pytest.raises(Transient) as failure:
        for page in read.count(_pages_failing_at(19)):
            staged.append(page.page)
    assert staged == list(range(1, 19))
    assert read.pages == 18
    assert describe_fetch_failure("amazon", failure.value, read.pages) == (
        "amazon: catalog fetch failed after 18 pages: Transient: "
        "POST catalog/v1/searchItems -> 503: down"
    )


def test_a_fetch_failing_at_its_first_page_says_only_why() -> None:
    read = PagesRead()
    with pytest.raises(Transient) as failure:
        list(read.count(_pages_failing_at(1)))
    assert describe_fetch_failure("kiondo", failure.value, read.pages) == (
        "kiondo: catalog fetch failed: Transient: POST catalog/v1/searchItems -> 503: down"
    )


class _DownAfter(httpx.BaseTransport):
    """The real sandbox (WSGI, in process) until `pages` product pages have been answered, then
    503 on every request: a marketplace going down half-way through a changed-since fetch."""

    def __init__(self, pages: int) -> None:
        self.inner = httpx.WSGITransport(app=create_app(SandboxConfig(offers=300)))
        self.left = pages

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self.left <= 0:
            return httpx.Response(503, text="down", request=request)
        if request.url.path.endswith("/products.json") or request.url.path.endswith("/products"):
            self.left -= 1
        return self.inner.handle_request(request)


@pytest.mark.parametrize(
    ("kind", "slug", "api_key"),
    [("shopify", "shopwave", "shpat_test"), ("woocommerce", "kiondo", None)],
)
def test_a_changed_since_fetch_failing_half_way_says_after_how_many_pages(
    kind: str, slug: str, api_key: str | None
) -> None:
    """Shopify and WooCommerce refresh by changes since (the changed records, then every id,
    page by page): a failure at the second page says so, as a fetch of every page does."""
    config = marketplace_config(
        kind, slug=slug, base_url=f"http://sandbox/{slug}", api_key=api_key, page_size=5
    )
    adapter_class = ShopifyAdapter if kind == "shopify" else WooCommerceAdapter
    adapter = adapter_class(config, transport=_DownAfter(1), sleep=lambda _seconds: None)
    read = PagesRead()
    since = datetime.now(UTC) - timedelta(days=3650)
    with pytest.raises(MarketplaceError) as failure:
        fetch_catalog_changes(adapter, since, at_most=10_000, read=read)
    assert read.pages == 1
    assert describe_fetch_failure(slug, failure.value, read.pages).startswith(
        f"{slug}: catalog fetch failed after 1 page: Transient: "
    )
