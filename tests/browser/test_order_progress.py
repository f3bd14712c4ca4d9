"""The order page follows parts being placed without a reload: order_status.js polls the
order's JSON status (the public status page its own, under the link's token) and updates the
part's status and marketplace order number in place, saying what changed in its polite live
region, then stops (the "Refresh" link goes). Lean: one
marketplace, the storefront's assets; the order is written straight into the storefront DB and
its part then "placed" there, as the placement job would."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from playwright.sync_api import Browser, Page, expect

from commerce.accounts import register_user
from commerce.db import get_session_factory
from commerce.models import Marketplace
from commerce.order_models import MarketplaceOrder, Order, PaymentMethod, SubOrderStatus
from tests.browser.conftest import PAGE_TIMEOUT_MS, LiveCatalog, open_tab

pytestmark = [pytest.mark.browser, pytest.mark.slow]

LIVE_CATALOG = {
    "marketplaces": ["dummymart"],
    "downstream_assets": ("fx_rates", "storefront_products"),
    "embeddings": False,
}
PASSWORD = "Sunny-Plateau-42-kettle"


@pytest.fixture
def page(browser: Browser, live_server: str) -> Iterator[Page]:
    with open_tab(browser, live_server) as tab:
        yield tab


# A part's change the page cannot have seen before: its "last update" moves to it.
LATER = datetime(2031, 3, 4, 5, 6, tzinfo=UTC)


@pytest.mark.parametrize("whose", ["owner", "status link"])
def test_the_order_page_updates_while_a_part_is_placed(
    page: Page, live_catalog: LiveCatalog, whose: str
) -> None:
    """The owner's order page and the public status link's page (which polled nothing before)."""
    factory = get_session_factory(live_catalog.database_url)
    username = f"placing{uuid.uuid4().hex[:8]}"
    with factory() as session, session.begin():
        user = register_user(
            session, username=username, email=f"{username}@example.com", password=PASSWORD
        )
        session.flush()
        market = session.scalars(
            sa.select(Marketplace).where(Marketplace.slug == "dummymart")
        ).one()
        order = Order(
            user_id=user.id,
            total_minor=1999,
            currency="USD",
            payment_method=PaymentMethod.WALLET,
            validation_token=uuid.uuid4().hex,
            email=user.email,
            ship_name="Ada Lovelace",
            ship_line1="12 Analytical Way",
            ship_city="London",
            ship_country="GB",
        )
        session.add(order)
        session.flush()
        sub = MarketplaceOrder(
            order_id=order.id,
            marketplace_id=market.id,
            status=SubOrderStatus.PENDING,
            amount_minor=1999,
            currency="USD",
            charge_minor=1999,
            charge_currency="USD",
            idempotency_key=f"browser-{uuid.uuid4().hex}",
        )
        session.add(sub)
        session.flush()
        number, sub_id, token = order.number, sub.id, order.status_token

    if whose == "owner":
        page.goto("/login")
        page.get_by_label("Username or e-mail").fill(username)
        page.get_by_label("Password", exact=True).fill(PASSWORD)
        page.get_by_role("button", name=re.compile("Sign in|Log in", re.I)).click()
        page.goto(f"/orders/{number}")
    else:
        page.goto(f"/order-status/{token}")
    badge = page.locator(f'[data-sub-order-id="{sub_id}"] [data-testid=sub-order-status]')
    expect(badge).to_have_text("Being placed")
    region = page.locator("#order-progress")
    expect(region).to_have_attribute("aria-live", "polite")
    # The script runs, so the page says it updates itself (not "Refresh to see where they stand").
    expect(page.get_by_text("This page updates itself as they answer.")).to_be_visible()
    expect(page.get_by_role("link", name="Refresh")).to_be_hidden()

    with factory() as session, session.begin():
        session.execute(
            sa.update(MarketplaceOrder)
            .where(MarketplaceOrder.id == sub_id)
            .values(status=SubOrderStatus.PLACED, marketplace_order_id="4242", updated_at=LATER)
        )

    # The script asks every 4 s: allow it a few rounds under load.
    expect(badge).not_to_have_text("Being placed", timeout=PAGE_TIMEOUT_MS)
    expect(badge).to_contain_text("Placed")
    expect(region).to_contain_text("DummyMart: Placed")
    expect(page.locator(f'[data-sub-order-id="{sub_id}"] .sub-order-number')).to_have_text("#4242")
    expect(page.get_by_role("link", name="Refresh")).to_be_hidden()
    expect(page.get_by_text("This page updates itself")).to_be_hidden()
    # The rest of the page follows too: the part's own status and timeline, and for the owner
    # what can now be done (DummyMart reports no delivery: "I received these items"). Before,
    # only the badge and number changed and the timeline still said "Being prepared (to come)".
    part = page.locator(f'[data-sub-order-id="{sub_id}"]')
    expect(part).to_contain_text("does not tell us when it ships or arrives")
    expect(part.locator(".timeline")).not_to_contain_text("Being prepared")
    if whose == "owner":
        expect(part.get_by_role("button", name="I received these items")).to_be_visible()
    else:
        # The status link's "last update" follows the part (shopper QA, fifth pass: it did not).
        expect(page.locator("[data-last-update]")).to_have_text("04 Mar 2031 05:06")
