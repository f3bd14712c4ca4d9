"""The order page in a real browser (Debian's Chromium through Playwright) at 375 and 1280 px:
the timelines reaching delivered with the tracking number shown while shipped, cancelling with a
confirmation step and each marketplace's outcome, and no horizontal overflow — against the live
site, real workers (placement and the tracker on RQ's cron), the sandbox and localstripe.

The sandbox's step is an hour: orders move only when the test advances them through the
sandbox's control API, and the page is reloaded until the tracker has caught up."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import pytest

from onecart.money import from_minor_units
from tests.checkout.shop import Shop, wait_for
from tests.checkout.test_browser_checkout import browser_page, live_site  # noqa: F401 (fixtures)
from tests.loopback_http import loopback_http
from tests.storefront.conftest import DEFAULT_PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PHONE = {"width": 375, "height": 812}
DESKTOP = {"width": 1280, "height": 900}


def _log_in(page: Any, site: str, username: str) -> None:
    page.goto(f"{site}/login")
    page.fill("input[name=login]", username)
    page.fill("input[name=password]", DEFAULT_PASSWORD)
    page.click("main form button[type=submit]")
    page.wait_for_url(re.compile(r".*/home$|.*/$"))


def _overflow(page: Any) -> int:
    """How many pixels the page is wider than the viewport (0: no horizontal scrolling)."""
    return int(
        page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    )


def _assert_fits(page: Any, where: str) -> None:
    for size in (PHONE, DESKTOP):
        page.set_viewport_size(size)
        assert _overflow(page) <= 0, f"{where} overflows at {size['width']} px"
    page.set_viewport_size(PHONE)


def _advance(shop: Shop, marketplace_order_id: str, steps: int) -> None:
    number = marketplace_order_id.rsplit("/", 1)[-1]
    response = loopback_http().post(
        f"{shop.sandbox_url}/_sandbox/orders/shopwave/{number}/advance",
        json={"steps": steps},
        timeout=10,
    )
    assert response.status_code == 200, response.text


def _placed(shop: Shop, user: Any, lines: list[tuple[str, int, int]]) -> Any:
    shop.fill_cart(user, lines)
    order = shop.checkout(shop.client_for(user), payment_method="wallet")
    shop.wait_until_settled()
    return shop.order(order.number)


def test_order_timeline_reaches_delivered_with_the_tracking_number_shown_while_shipped(
    shop: Shop,
    live_site: str,  # noqa: F811
    browser_page: Any,  # noqa: F811
) -> None:
    page = browser_page
    shop.knobs("shopwave", order_step_seconds=3600, cancel_rate=0, delay_rate=0)
    user = shop.make_user(wallet=Decimal("5000"))
    shop.start_workers(1)
    order = _placed(shop, user, [("shopwave", 7, 1), ("dummymart", 7, 1)])
    shopwave = shop.sub_order(order, "shopwave")
    page.set_viewport_size(PHONE)
    _log_in(page, live_site, user.username)
    url = f"{live_site}/orders/{order.number}"
    page.goto(url)
    dummymart = page.locator("details.sub-order[data-marketplace=dummymart]")
    assert "doesn't report delivery" in dummymart.inner_text()
    _assert_fits(page, "the order page")

    shopwave_state = "details.sub-order[data-marketplace=shopwave] [data-testid=sub-order-status]"

    def shows(state: str) -> Any:
        def check() -> bool:
            page.goto(url)
            return page.inner_text(shopwave_state) == state

        return check

    _advance(shop, shopwave.marketplace_order_id, 1)
    wait_for(shows("Being prepared"), timeout=60, interval=1.0, what="ShopWave preparing")
    _advance(shop, shopwave.marketplace_order_id, 1)

    def shows_tracking() -> bool:
        page.goto(url)
        return page.locator("[data-testid=tracking-number]").count() == 1

    wait_for(shows_tracking, timeout=60, interval=1.0, what="the tracking number to show")
    tracking = shop.sub_order(order, "shopwave")
    summary = page.inner_text("details.sub-order[data-marketplace=shopwave] summary")
    assert tracking.tracking_number in summary and tracking.carrier in summary
    assert "Shipped" in summary
    merged = page.locator("[data-testid=merged-timeline]")
    assert merged.locator("li.tl-done[data-step=shipped]").count() == 1
    assert tracking.tracking_number in merged.inner_text()
    assert merged.locator("li.tl-upcoming[data-step=complete]").count() == 1
    _assert_fits(page, "the shipped order page")

    _advance(shop, shopwave.marketplace_order_id, 1)
    wait_for(shows("In transit"), timeout=60, interval=1.0, what="ShopWave in transit")
    assert page.locator("[data-testid=tracking-number]").count() == 1
    _advance(shop, shopwave.marketplace_order_id, 1)

    def delivered() -> bool:
        page.goto(url)
        # DummyMart reports no delivery: it does not hold the order up, and is named.
        return (
            page.inner_text("[data-testid=order-status]") == "Delivered (DummyMart not confirmed)"
        )

    wait_for(delivered, timeout=60, interval=1.0, what="the order to show Delivered")
    shopwave_panel = page.locator("details.sub-order[data-marketplace=shopwave]")
    assert shopwave_panel.locator("[data-testid=sub-order-status]").inner_text() == "Delivered"
    steps = shopwave_panel.locator("li.tl-done").evaluate_all(
        "items => items.map(item => item.dataset.step)"
    )
    assert steps == ["ordered", "placed", "processing", "shipped", "in_transit", "delivered"]
    assert page.locator("[data-testid=merged-timeline] li.tl-done[data-step=complete]").count() == 1
    assert page.locator("[data-testid=tracking-number]").count() == 0  # shown while shipped
    _assert_fits(page, "the delivered order page")


def test_cancel_asks_for_confirmation_then_shows_each_marketplaces_outcome(
    shop: Shop,
    live_site: str,  # noqa: F811
    browser_page: Any,  # noqa: F811
) -> None:
    page = browser_page
    shop.knobs("shopwave", order_step_seconds=3600, cancel_rate=0)
    user = shop.make_user(wallet=Decimal("5000"))
    shop.start_workers(1)
    order = _placed(shop, user, [("shopwave", 6, 1), ("dummymart", 6, 1)])
    page.set_viewport_size(PHONE)
    _log_in(page, live_site, user.username)
    url = f"{live_site}/orders/{order.number}"
    page.goto(url)

    page.click("#cancel-order")
    page.wait_for_url(f"{url}/cancel")
    preview = page.inner_text("[data-testid=cancel-preview]")
    assert "we ask ShopWave to cancel" in preview
    assert "DummyMart does not accept cancellations" in preview
    _assert_fits(page, "the cancel confirmation page")
    page.click("#keep-order")
    page.wait_for_url(url)
    assert shop.order(order.number).cancel_requested_at is None

    page.click("#cancel-order")
    page.click("#confirm-cancel")
    page.wait_for_url(re.compile(re.escape(url) + r"(#cancellation)?$"))

    def answered() -> bool:
        page.goto(url)
        return page.locator("[data-testid=cancellation] li[data-outcome=cancelled]").count() == 1

    wait_for(answered, timeout=60, interval=1.0, what="ShopWave's cancellation to show")
    outcomes = page.inner_text("[data-testid=cancellation]")
    assert "ShopWave" in outcomes and "DummyMart" in outcomes and "goes ahead" in outcomes
    assert page.locator("[data-testid=cancellation] li[data-outcome=refused]").count() == 1
    assert page.inner_text("[data-testid=order-status]") == "Partly cancelled"
    shopwave = shop.sub_order(order, "shopwave")

    def refunded() -> bool:
        page.goto(url)
        return page.locator("[data-testid=refund-total]").count() == 1

    wait_for(refunded, timeout=60, interval=1.0, what="the refund to show")
    amount = from_minor_units(shopwave.charge_minor, shopwave.charge_currency)
    assert f"{amount:,}" in page.inner_text("[data-testid=refund-total]")
    assert page.locator("#cancel-order").count() == 0
    _assert_fits(page, "the cancelled order page")
