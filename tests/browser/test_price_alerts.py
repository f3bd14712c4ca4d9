"""A price alert end to end: a shopper watches a product on their phone (375 px), the sandbox
marketplace lowers its price, the real pipeline refreshes that marketplace and syncs the
storefront (which evaluates the alerts), and on a desktop (1280 px) the notification says where
and by how much and opens the product, whose chart now shows the drop; the e-mail goes out
through the notifications' mail path.

Lean on purpose: the module's catalog holds three marketplaces, the refresh runs one
marketplace's partition, and both run only the downstream assets the storefront needs. Chromium is started twice rather than kept open across the refresh,
because the pipeline's in-process Dagster runs must not run beside Playwright's event loop.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from playwright.sync_api import Page, expect, sync_playwright

from commerce.accounts import register_user
from commerce.db import get_session_factory
from commerce.fx import load_fx_table
from commerce.models import Marketplace, Product, User
from commerce.notification_models import Notification
from commerce.notifications import send_notification_emails
from commerce.price_alerts import cheapest_offer, offers_by_group
from onecart.money import format_money, from_minor_units
from sandbox.world import World
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, LiveCatalog
from tests.conftest import TEST_SANDBOX_OFFERS, TEST_SANDBOX_SEED

pytestmark = [pytest.mark.browser, pytest.mark.slow]

MARKETPLACE = "dummymart"  # DummyJSON: external id = catalog index + 1
MARKETPLACE_NAME = "DummyMart"
# At price epoch 100 every offer's price has changed exactly once (sandbox.world).
DROP_EPOCH = 100
SHOPPER_CURRENCY = "EUR"
PASSWORD = "Sunny-Plateau-42-kettle"
TIMEOUT_MS = 15_000
REFRESH_ASSETS = ("fx_rates", "product_groups", "price_history", "storefront_products")
# This module browses the storefront DB only (product page, notifications, watch list): three
# marketplaces and the storefront's assets are enough, and much quicker than the whole catalog.
LIVE_CATALOG = {
    "marketplaces": [MARKETPLACE, "shopwave", "fakestore"],
    "downstream_assets": REFRESH_ASSETS,
    "embeddings": False,
}


@contextmanager
def chromium_page(live_server: str, width: int) -> Iterator[Page]:
    """One Chromium tab on the live site at `width` px; JavaScript errors fail the test."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context(
            base_url=live_server, viewport={"width": width, "height": 812}
        )
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        try:
            yield page
        finally:
            context.close()
            browser.close()
        assert errors == [], f"JavaScript errors: {errors}"


def sign_in(page: Page, username: str) -> None:
    page.goto("/login")
    page.get_by_label("Username or e-mail").fill(username)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name=re.compile("Sign in|Log in", re.I)).click()
    page.wait_for_url(re.compile(r"/home$"))


def find_product_that_will_drop(database_url: str, currency: str) -> dict[str, Any]:
    """A product sold on several marketplaces whose cheapest offer is at DummyMart and whose
    DummyMart price falls at DROP_EPOCH (the sandbox's prices are a pure function of its seed)."""
    world = World(TEST_SANDBOX_SEED, TEST_SANDBOX_OFFERS)
    factory = get_session_factory(database_url)
    with factory() as session:
        fx = load_fx_table(session)
        rows = session.execute(
            sa.select(Product.relation_token, Product.external_id)
            .join(Marketplace, Product.marketplace_id == Marketplace.id)
            .where(
                Marketplace.slug == MARKETPLACE,
                Product.relation_token.is_not(None),
                Product.available.is_(True),
                Product.removed_at.is_(None),
            )
            .order_by(Product.id)
        ).all()
        groups = offers_by_group(session, [group for group, _ in rows])
        for group_id, external_id in rows:
            offers = groups.get(group_id, [])
            if len({offer.marketplace_name for offer in offers}) < 2:
                continue
            now = cheapest_offer(offers, fx, currency)
            if now is None or now.marketplace_name != MARKETPLACE_NAME:
                continue
            index = int(external_id) - 1
            before = world.offer(MARKETPLACE, index).price_minor
            after = world.offer(MARKETPLACE, index, price_epoch=DROP_EPOCH)
            if after.price_minor >= before or after.stock == 0:
                continue
            (mine,) = [o for o in offers if o.product_id == now.product_id]
            return {
                "group_id": group_id,
                "title": now.title,
                "now_minor": now.price_minor,
                "after_minor": fx.convert(after.price_minor, mine.currency, currency),
            }
    raise AssertionError("no DummyMart offer is the cheapest of a product and drops at epoch 100")


def refresh_marketplace(live_catalog: LiveCatalog) -> dict[str, Any]:
    """The catalog refresh a schedule would run: DummyMart's partition, then the storefront."""
    from pipelines.run import dagster_instance, materialize_all

    instance = dagster_instance(live_catalog.settings.home_dir / "dagster")
    lines: list[str] = []
    try:
        report = materialize_all(
            instance=instance,
            progress=lines.append,
            marketplaces=[MARKETPLACE],
            downstream_assets=REFRESH_ASSETS,
            embeddings=False,
        )
    finally:
        instance.dispose()
    assert report.success, "\n".join(lines)
    return report.downstream_metadata["storefront_products"]


def test_a_price_alert_fires_after_a_sandbox_price_drop(
    live_catalog: LiveCatalog,
    live_server: str,
    sandbox_control: httpx.Client,
    mailbox: tuple[int, list[Any]],
    capture: Callable[[Page, str], list[Path]],
) -> None:
    factory = get_session_factory(live_catalog.database_url)
    username = f"watcher{uuid.uuid4().hex[:8]}"
    with factory() as session, session.begin():
        user = register_user(
            session, username=username, email=f"{username}@example.com", password=PASSWORD
        )
        user.display_currency = SHOPPER_CURRENCY
    product = find_product_that_will_drop(live_catalog.database_url, SHOPPER_CURRENCY)
    product_path = f"/product/{product['group_id']}"
    # A target just under today's price: the coming drop (3-15%) goes below it.
    target_minor = product["now_minor"] * 99 // 100
    target_text = str(from_minor_units(target_minor, SHOPPER_CURRENCY))

    # On a phone: open the product and watch its price with a target.
    with chromium_page(live_server, 375) as page:
        sign_in(page, username)
        page.goto(product_path)
        control = page.get_by_test_id("watch-price")
        control.scroll_into_view_if_needed()
        control.get_by_label(re.compile(r"Target price")).fill(target_text)
        control.get_by_role("button", name="Watch price").click()
        page.wait_for_url(re.compile(re.escape(product_path) + "$"))
        expect(page.get_by_test_id("watch-price")).to_contain_text("Watching")
        # The chart fits the phone and its labels are drawn at a readable size.
        chart = page.locator("svg.price-chart")
        box = chart.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 375
        label = chart.locator("text").first.bounding_box()
        assert label is not None and label["height"] >= 12
        shots = capture(page, "alerts-01-watch")

    # The marketplace lowers its prices; the pipeline refreshes it and syncs the storefront.
    sandbox_control.post(
        f"/_sandbox/knobs/{MARKETPLACE}", json={"price_epoch": DROP_EPOCH}
    ).raise_for_status()
    synced = refresh_marketplace(live_catalog)
    assert synced["price_alerts_fired"] >= 1

    with factory() as session:
        user = session.scalars(sa.select(User).where(User.username == username)).one()
        (alert,) = session.scalars(
            sa.select(Notification).where(
                Notification.user_id == user.id, Notification.kind == "price_alert"
            )
        ).all()
    drop = product["now_minor"] - product["after_minor"]
    expected = (
        f"is now {format_money(product['after_minor'], SHOPPER_CURRENCY)} at {MARKETPLACE_NAME}, "
        f"{format_money(drop, SHOPPER_CURRENCY)}"
    )
    assert expected in alert.message

    # On a desktop: the notification says where and by how much, and opens the product.
    with chromium_page(live_server, 1280) as page:
        sign_in(page, username)
        page.goto("/notifications")
        note = page.locator('li[data-kind="price_alert"]')
        expect(note).to_contain_text(expected)
        shots += capture(page, "alerts-02-notification")
        note.get_by_role("link", name="Open the product").click()
        page.wait_for_url(re.compile(re.escape(product_path) + "$"))
        # DummyMart's line now steps down: two observations, held until now.
        line = page.locator(f'svg.price-chart polyline[data-series="{MARKETPLACE_NAME}"]')
        points = (line.first.get_attribute("points") or "").split()
        assert len(points) >= 3, points
        assert page.locator("svg.price-chart polyline").count() >= 2
        shots += capture(page, "alerts-03-product-after-drop")
        page.goto("/profile/watchlist")
        expect(page.locator(".watch-item")).to_contain_text(product["title"])
        expect(page.get_by_test_id("watch-price-now")).to_have_text(
            re.compile(re.escape(format_money(product["after_minor"], SHOPPER_CURRENCY)))
        )
        shots += capture(page, "alerts-04-watchlist")
    assert all(shot.exists() for shot in shots)

    # The e-mail goes out the way every notification's does (the order sweeper runs this).
    port, received = mailbox
    mail_settings = live_catalog.settings.model_copy(
        update={"smtp_host": "127.0.0.1", "smtp_port": port}
    )
    assert send_notification_emails(factory, mail_settings, [alert.id]) == 1
    body = received[0].get_payload(decode=True).decode()
    assert expected in body and product_path in body
