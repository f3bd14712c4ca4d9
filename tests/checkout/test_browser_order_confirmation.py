"""Placing an order from the keyboard: the confirmation page takes the focus to its message.

Shopper QA (shop17): after "Place order" the confirmation page loaded with the focus on the
page's body. A screen reader started again from the header and a keyboard shopper's first Tab
went to the logo; the order's number and "is confirmed" came only after the whole header and
search bar. The message now takes the focus when the page loads, as the site's error summaries
do (a polite status region is not read on a fresh page). Real browser (Debian's Chromium), the
real checkout form with CSRF on; the order stays pending (no workers)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from tests.checkout.shop import Shop
from tests.checkout.test_browser_checkout import browser_page, live_site  # noqa: F401 (fixtures)
from tests.checkout.test_browser_orders import _log_in

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ADDRESS = {
    "name": "Ada Lovelace",
    "line1": "12 Analytical Way",
    "city": "London",
    "postal_code": "N1 9GU",
    "phone": "+44 20 7946 0000",
}


@pytest.mark.parametrize("width", [390, 1280])
def test_the_confirmation_takes_the_focus_after_placing_an_order_by_keyboard(
    shop: Shop,
    live_site: str,  # noqa: F811
    browser_page: Any,  # noqa: F811
    width: int,
) -> None:
    page = browser_page
    user = shop.make_user(wallet=Decimal("5000"))
    shop.fill_cart(user, [("shopwave", 1, 1)])
    _log_in(page, live_site, user.username)
    page.set_viewport_size({"width": width, "height": 900})
    page.goto(f"{live_site}/checkout")
    for field, value in ADDRESS.items():
        page.fill(f"#checkout-form [name={field}]", value)
    page.select_option("#checkout-form [name=country]", "GB")
    page.check("input[name=payment_method][value=wallet]")
    page.focus("#place-order")
    page.keyboard.press("Enter")
    page.wait_for_url("**/confirmation")

    number = page.url.rstrip("/").split("/")[-2]
    focused = page.evaluate(
        "() => ({text: document.activeElement.innerText, role: "
        "document.activeElement.getAttribute('role')})"
    )
    assert focused["role"] == "status"
    assert f"Your order {number} is confirmed." in focused["text"]
    # Tab goes on from the message, not from the top of the page.
    page.keyboard.press("Tab")
    after = page.evaluate("() => document.activeElement.closest('header') === null")
    assert after
