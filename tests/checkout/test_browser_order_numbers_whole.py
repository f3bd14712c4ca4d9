"""An order's number is never broken in two on the order pages, in Chromium from a 320 px phone
to a 1280 px desktop. Shopper QA (shop20): at 390 px the cancel page's heading read "Cancel
order OC-22N3-" on one line and "JB5G?" on the next (the number broke at its hyphen), which
reads as two numbers. Real shop, the live site, the order paid from the wallet (no worker)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from tests.checkout.shop import Shop
from tests.checkout.test_browser_checkout import browser_page, live_site  # noqa: F401 (fixtures)
from tests.checkout.test_browser_orders import _log_in

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# Every place `number` is written in the page's main part, as the lines it takes.
_LINES_OF_NUMBER = """(number) => {
    const main = document.querySelector('main');
    const walker = document.createTreeWalker(main, NodeFilter.SHOW_TEXT);
    const found = [];
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
        let at = node.data.indexOf(number);
        while (at !== -1) {
            const range = document.createRange();
            range.setStart(node, at);
            range.setEnd(node, at + number.length);
            const tops = new Set([...range.getClientRects()]
                .filter(rect => rect.width > 0).map(rect => Math.round(rect.top)));
            if (tops.size) found.push(tops.size);
            at = node.data.indexOf(number, at + 1);
        }
    }
    return found;
}"""
WIDTHS = (320, 340, 360, 375, 390, 414, 768, 1280)


def test_an_orders_number_stays_whole_on_its_pages(
    shop: Shop,
    live_site: str,  # noqa: F811
    browser_page: Any,  # noqa: F811
) -> None:
    page = browser_page
    user = shop.make_user(wallet=Decimal("5000"))
    shop.fill_cart(user, [("shopwave", 5, 1), ("kiondo", 4, 1)])
    order = shop.checkout(shop.client_for(user), payment_method="wallet")
    _log_in(page, live_site, user.username)

    broken = []
    for path in (
        f"/orders/{order.number}/cancel",
        f"/orders/{order.number}",
        f"/orders/{order.number}/confirmation",
        f"/order-status/{order.status_token}",
        "/orders",
    ):
        page.goto(f"{live_site}{path}")
        for width in WIDTHS:
            page.set_viewport_size({"width": width, "height": 800})
            lines = page.evaluate(_LINES_OF_NUMBER, order.number)
            assert lines, (path, width)
            if any(count > 1 for count in lines):
                broken.append((path, width))
    assert broken == [], broken


def test_an_orders_number_stays_whole_inside_a_notification_s_sentence(
    shop: Shop,
    live_site: str,  # noqa: F811
    browser_page: Any,  # noqa: F811
) -> None:
    """The notifications page wrote the number inside the sentence ("We received order
    OC-7K3M-9Q2P ($…) and are placing it with …") as plain text: on a phone it broke at its
    hyphen there, though its link after the sentence kept it whole."""
    page = browser_page
    user = shop.make_user(wallet=Decimal("5000"))
    shop.fill_cart(user, [("shopwave", 5, 1), ("kiondo", 4, 1)])
    order = shop.checkout(shop.client_for(user), payment_method="wallet")
    _log_in(page, live_site, user.username)

    page.goto(f"{live_site}/notifications")
    assert f"We received order {order.number}" in page.inner_text("main")
    broken = []
    for width in (*range(300, 430, 6), 768, 1280):
        page.set_viewport_size({"width": width, "height": 800})
        lines = page.evaluate(_LINES_OF_NUMBER, order.number)
        assert len(lines) >= 2, width  # in the sentence and in its link
        if any(count > 1 for count in lines):
            broken.append(width)
    assert broken == [], broken
