"""In a real browser (Debian's Chromium through Playwright): a cart with offers from three
marketplaces → checkout with a Stripe test card → confirmation → the statuses advance to
delivered, with notifications — against the live site, real workers, sandbox and localstripe."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from werkzeug.serving import make_server

from commerce.exactly_once_models import ProcessedWebhookEvent
from commerce.order_models import Order
from onecart import processes
from onecart.settings import get_settings
from storefront import create_app
from tests.checkout.shop import Shop, wait_for
from tests.loopback_http import loopback_http
from tests.storefront.conftest import DEFAULT_PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture
def live_site(shop: Shop) -> Iterator[str]:
    """The storefront served over HTTP (CSRF on, as in production) on a free loopback port."""
    config: dict[str, Any] = {
        key: shop.app.config[key]
        for key in (
            "DATABASE_URL",
            "SECRET_KEY",
            "REDIS_URL",
            "RATE_LIMIT_PREFIX",
            "MEILI_URL",
            "ORDER_JOB_POLICY",
            "CHECKOUT_REVALIDATION_SECONDS",
            "FX_CACHE_SECONDS",
        )
    }
    app = create_app({**config, "WTF_CSRF_ENABLED": True})
    port = processes.free_port()
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


@pytest.fixture
def browser_page() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.set_default_timeout(30_000)
            yield page
        finally:
            browser.close()


def test_three_marketplace_cart_to_delivered_in_a_browser(
    shop: Shop, live_site: str, browser_page: Any
) -> None:
    page = browser_page
    for slug in ("shopwave", "kiondo"):
        shop.knobs(slug, order_step_seconds=3, cancel_rate=0)
    # localstripe delivers its events to the live site's webhook endpoint.
    loopback_http().post(
        f"{get_settings().stripe_api_base}/_config/webhooks/{shop.queue_name}",
        data={
            "url": f"{live_site}/webhooks/stripe",
            "secret": get_settings().stripe_webhook_secret,
        },
        timeout=10,
    ).raise_for_status()
    user = shop.make_user(first_name="Grace")
    shop.fill_cart(user, [("shopwave", 5, 1), ("kiondo", 4, 2), ("naijamall", 2, 1)])
    shop.start_workers(2)

    page.goto(f"{live_site}/login")
    page.fill("input[name=login]", user.username)
    page.fill("input[name=password]", DEFAULT_PASSWORD)
    page.click("main form button[type=submit]")
    page.wait_for_url(re.compile(r".*/home$|.*/$"))

    page.goto(f"{live_site}/cart")
    assert page.locator(".cart-group").count() == 3
    page.click("text=Go to checkout")
    page.wait_for_url(f"{live_site}/checkout")
    assert page.locator("section.cart-group").count() == 2  # ShopWave and Kiondo are paid here
    assert page.locator(".handoff-group[data-marketplace=naijamall] a").count() == 1
    total_text = page.inner_text("#checkout-total")
    page.fill("#name", "Grace Hopper")
    page.fill("#line1", "1 Compiler Lane")
    page.fill("#city", "Arlington")
    page.fill("#postal_code", "22201")
    page.select_option("#country", "US")
    page.check("input[name=payment_method][value=stripe]")
    page.select_option("#test_card", "pm_card_visa")
    page.click("#place-order")

    page.wait_for_url(re.compile(r".*/orders/OC-[0-9A-Z-]+/confirmation$"))
    number = page.inner_text("[data-testid=order-number]")
    assert page.inner_text("[data-testid=order-total]") == total_text
    assert "is confirmed" in page.content()

    def delivered() -> bool:
        page.goto(f"{live_site}/orders/{number}")
        return page.inner_text("[data-testid=order-status]") == "Delivered"

    wait_for(delivered, timeout=120, interval=1.0, what="the order to show Delivered")
    statuses = page.locator("details.sub-order [data-testid=sub-order-status]").all_inner_texts()
    assert statuses == ["Delivered", "Delivered"]
    assert page.locator("details.sub-order dd a").count() == 2  # tracking links

    page.click("a.notifications-link")
    page.wait_for_url(f"{live_site}/notifications")
    notes = page.locator(".notification-list li").all_inner_texts()
    assert any("has been delivered" in note and number in note for note in notes)
    assert any("have shipped" in note for note in notes)
    assert int(page.inner_text(".notifications-link .unread-count")) == len(notes)
    page.click("text=Mark all as read")
    assert page.locator(".notifications-link .unread-count").count() == 0

    with shop.session() as session:
        order = session.scalar(sa.select(Order).where(Order.number == number))
        assert order is not None
        reference = order.payment.provider_reference if order.payment else ""
    # The capture's webhook reached the site, verified and reconciled.
    wait_for(
        lambda: _webhook_types(shop) & {"payment_intent.succeeded"},
        timeout=30,
        what=f"localstripe's webhook for {reference}",
    )


def _webhook_types(shop: Shop) -> set[str]:
    with shop.session() as session:
        return set(session.scalars(sa.select(ProcessedWebhookEvent.event_type)))
