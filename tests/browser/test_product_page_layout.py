"""The product page in a real browser at a 390 px phone (and the widths around it) and a 1280 px
desktop, with a catalog the real pipeline filled from three marketplaces in three currencies.

Shopper QA (shop19): the FX rates' date, "(rates of 2026-12-07)" under the heading and "(of
2026-12-07)" under the price chart, broke at its hyphens ("2026-12-" on one line, "07)" on the
next) at 390 px. Shop17 kept dates whole on the cart, checkout and order pages with the
`.keep-together` class; the product page now does the same."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import open_tab
from tests.checkout.test_browser_checkout_layout import _LINES_OF, DATE

pytestmark = [pytest.mark.browser, pytest.mark.slow]

LIVE_CATALOG = {
    "marketplaces": ["shopwave", "kiondo", "fakestore"],
    "downstream_assets": (
        "fx_rates",
        "product_groups",
        "search_products",
        "search_product_groups",
        "storefront_products",
    ),
    "embeddings": False,
}

# 390 px, the phone QA used, and every 4 px from 320 to 1280: where a line wraps moves with the
# width and the product's words (with this catalog's first headphones the old page broke the
# date at 320, 464–508, 548–600 and 884–936 px, not at 390).
WIDTHS = (390, *range(320, 1281, 4))


@pytest.fixture
def page(browser: Browser, live_server: str) -> Iterator[Page]:
    with open_tab(browser, live_server) as tab:
        yield tab


def test_the_rates_dates_are_not_broken_across_lines(page: Page) -> None:
    page.goto("/search?q=headphones")
    card = page.locator(".product-card").filter(has_text="offers on").first
    href = card.locator("a").first.get_attribute("href")
    assert href and href.startswith("/product/")
    page.goto(href)
    expect(page.locator(".product-header")).to_contain_text(re.compile(r"\(rates of " + DATE))
    broken = []
    checked = 0
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        pieces = page.evaluate(_LINES_OF, [".product-header p, .chart figcaption p", [DATE]])
        # The heading's date and the chart's.
        assert len(pieces) == 2, (width, pieces)
        checked += len(pieces)
        broken.extend((width, piece) for piece in pieces if piece["lines"] != 1)
    assert checked == 2 * len(WIDTHS)
    assert broken == [], broken
