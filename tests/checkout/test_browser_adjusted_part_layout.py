"""A part its marketplace accepted only some of, on the order page in Chromium at a 390 px phone
and a 1280 px desktop: the line left out ("2 × … (left out by Kiondo Market)", no amount) and the
heading of what the part is charged ("KES4,349.00 ($33.58 of $425.07 paid; the rest refunded)")
stay inside the page. The item lists keep their amounts on one line (`white-space: nowrap` on a
line's last part), and a line left out has no amount: its title was that last part, so it ran off
a phone's screen. Real shop, the sandbox over HTTP, placement in this process (shop19)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from tests.checkout.shop import Shop
from tests.checkout.test_browser_checkout import browser_page, live_site  # noqa: F401 (fixtures)
from tests.checkout.test_browser_orders import _log_in, _overflow

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# Each item line of the parts and each part's heading amount: how far it reaches past the box
# it belongs in (its list, its summary), in pixels.
_SPILLS = """() => {
    const spills = [];
    for (const li of document.querySelectorAll('.order-items li')) {
        const room = li.parentElement.getBoundingClientRect().right;
        spills.push({what: li.innerText, past: li.scrollWidth - li.clientWidth
                     + Math.max(0, li.getBoundingClientRect().right - room)});
    }
    for (const amount of document.querySelectorAll('.sub-order-amount')) {
        const room = amount.closest('summary').getBoundingClientRect().right;
        spills.push({what: amount.innerText,
                     past: Math.max(0, amount.getBoundingClientRect().right - room)});
    }
    return spills;
}"""


def test_a_line_left_out_and_the_parts_heading_fit_a_phone(
    placing_shop: Shop,
    live_site: str,  # noqa: F811
    browser_page: Any,  # noqa: F811
) -> None:
    shop = placing_shop
    page = browser_page
    user = shop.make_user(wallet=Decimal("5000"))
    shop.fill_cart(user, [("kiondo", 3, 2), ("kiondo", 2, 1)])
    order = shop.checkout(shop.client_for(user), payment_method="wallet")
    dropped = shop.product("kiondo", 3)
    shop.knobs("kiondo", drop_unknown_lines=True, delisted_products=[dropped.external_id])
    shop.place_here(order, "kiondo")

    _log_in(page, live_site, user.username)
    page.goto(f"{live_site}/orders/{order.number}")
    assert page.locator(".order-items li", has_text="left out by Kiondo Market").count() == 1
    assert "the rest refunded" in page.locator(".sub-order-amount").inner_text()
    for width in (390, 1280):
        page.set_viewport_size({"width": width, "height": 900})
        assert _overflow(page) <= 0, width
        spills = page.evaluate(_SPILLS)
        assert len(spills) == 3, spills
        assert [spill for spill in spills if spill["past"] > 0] == [], width
