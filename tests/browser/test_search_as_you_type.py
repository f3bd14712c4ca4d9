"""Search-as-you-type (storefront/static/js/search.js) in a real browser: results swapped in
place for a new query or filter come with what the page shows around them, the heading, the
tab title, the header's search box and the "Clear all filters" link, and none of them still
speaks of the first query. Lean: two marketplaces, and only the assets the listing reads."""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import open_tab

pytestmark = [pytest.mark.browser, pytest.mark.slow]

LIVE_CATALOG = {
    "marketplaces": ["shopwave", "dummymart"],
    "downstream_assets": (
        "fx_rates",
        "product_groups",
        "search_products",
        "search_product_groups",
        "storefront_products",
    ),
    "embeddings": False,
}


@pytest.fixture
def page(browser: Browser, live_server: str) -> Iterator[Page]:
    with open_tab(browser, live_server) as tab:
        yield tab


def query_of(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


def test_a_new_query_typed_on_the_listing_renames_the_page_and_its_clear_filters_link(
    page: Page,
) -> None:
    page.goto("/search?q=laptop&marketplace=shopwave")
    heading = page.locator("#results-heading")
    clear = page.locator("#clear-filters")
    expect(heading).to_have_text("Results for “laptop”")
    expect(clear.get_by_role("link")).to_have_attribute("href", "/search?q=laptop")

    page.locator("#search-q").fill("headphones")
    page.wait_for_url(lambda url: query_of(url).get("q") == ["headphones"])
    expect(page.locator(".result-count")).to_contain_text("headphones")

    expect(heading).to_have_text("Results for “headphones”")
    expect(page).to_have_title(re.compile(r"^headphones — Search · OneCart$"))
    expect(page.locator("#site-search")).to_have_value("headphones")
    # Clearing the filters keeps the query on screen, not the one the page was opened with.
    expect(clear.get_by_role("link")).to_have_attribute("href", "/search?q=headphones")
    clear.get_by_role("link").click()
    page.wait_for_url(lambda url: query_of(url) == {"q": ["headphones"]})
    expect(heading).to_have_text("Results for “headphones”")
    expect(clear).to_be_hidden()

    # A first filter ticked in place shows the link; unticking it hides it again.
    page.locator('#facet-marketplace input[value="dummymart"]').check()
    page.wait_for_url(lambda url: query_of(url).get("marketplace") == ["dummymart"])
    expect(clear).to_be_visible()
    expect(clear.get_by_role("link")).to_have_attribute("href", "/search?q=headphones")
    page.locator('#facet-marketplace input[value="dummymart"]').uncheck()
    page.wait_for_url(lambda url: "marketplace" not in query_of(url))
    expect(clear).to_be_hidden()

    # Emptying the box lists every product under its own heading.
    page.locator("#search-q").fill("")
    page.wait_for_url(lambda url: "q" not in query_of(url))
    expect(heading).to_have_text("All products")
    expect(page).to_have_title(re.compile(r"^Search · OneCart$"))

    # A right-to-left override typed in stays inside the heading's <bdi> (the closing quote
    # is outside it) and out of the tab title.
    page.locator("#search-q").fill("head\u202ephones")
    page.wait_for_url(lambda url: query_of(url).get("q") == ["head\u202ephones"])
    expect(heading.locator("bdi")).to_have_text("head\u202ephones")
    expect(heading).to_have_text("Results for “head\u202ephones”")
    expect(page).to_have_title(re.compile(r"^headphones — Search · OneCart$"))


def test_a_query_that_finds_nothing_hides_the_sort_controls_until_one_finds_something(
    page: Page,
) -> None:
    """Shopper QA, fifth pass: "No products found" still offered Sort by and Per page. The
    swapped-in results hide them as search.html does, keeping the choice for the next query."""
    page.goto("/search?q=headphones&sort=price_asc")
    controls = page.locator("#toolbar-controls")
    expect(controls).to_be_visible()

    page.locator("#search-q").fill("zzzzqqqxx")
    page.wait_for_url(lambda url: query_of(url).get("q") == ["zzzzqqqxx"])
    expect(page.locator(".result-count")).to_contain_text("No products found")
    expect(controls).to_be_hidden()

    page.locator("#search-q").fill("headphones")
    page.wait_for_url(lambda url: query_of(url).get("q") == ["headphones"])
    expect(controls).to_be_visible()
    expect(page.locator("#sort")).to_have_value("price_asc")
