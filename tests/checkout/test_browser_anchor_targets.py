"""In-page links land below the sticky header, in Chromium at a 390 px phone and a 1280 px
desktop. Shopper QA (shop20): after "Yes, cancel the order" the order page opens at
#cancellation, and on a phone the header (two rows, about 100 px) covered the section's heading
and its first marketplace's answer; a link to a part (#part-…) did the same. Real shop, the live
site, the cancellation asked through the pages (no worker: the answers stay awaited)."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import pytest

from tests.checkout.shop import Shop
from tests.checkout.test_browser_checkout import browser_page, live_site  # noqa: F401 (fixtures)
from tests.checkout.test_browser_orders import _log_in

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# How far below the header's bottom edge the target's top is (negative: hidden under it).
_BELOW_HEADER = """(selector) => {
    const header = document.querySelector('.site-header').getBoundingClientRect();
    return document.querySelector(selector).getBoundingClientRect().top - header.bottom;
}"""


def test_in_page_links_land_below_the_sticky_header(
    shop: Shop,
    live_site: str,  # noqa: F811
    browser_page: Any,  # noqa: F811
) -> None:
    page = browser_page
    user = shop.make_user(wallet=Decimal("5000"))
    shop.fill_cart(user, [("shopwave", 5, 1), ("kiondo", 4, 1), ("dummymart", 2, 1)])
    order = shop.checkout(shop.client_for(user), payment_method="wallet")
    last_part = max(sub.id for sub in shop.order(order.number).charged_sub_orders)
    _log_in(page, live_site, user.username)
    url = f"{live_site}/orders/{order.number}"

    for width in (390, 1280):
        page.set_viewport_size({"width": width, "height": 700})
        page.goto(f"{url}#part-{last_part}")
        assert page.evaluate(_BELOW_HEADER, f"#part-{last_part}") >= 0, width

    page.set_viewport_size({"width": 390, "height": 700})
    page.goto(url)
    page.click("#cancel-order")
    page.click("#confirm-cancel")
    page.wait_for_url(re.compile(re.escape(url) + "#cancellation$"))
    assert page.evaluate(_BELOW_HEADER, "#cancellation") >= 0
    page.set_viewport_size({"width": 1280, "height": 700})
    page.goto(f"{url}#cancellation")
    assert page.evaluate(_BELOW_HEADER, "#cancellation") >= 0
