"""Keyboard shoppers keep their place: after adding an offer to the cart from the product page,
focus is back on that offer's "Add to cart" control (the confirmation is announced by the
flash's status region), not at the top of the page behind the header. Lean: one marketplace,
the storefront's assets."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from playwright.sync_api import Browser, Page, expect

from commerce.db import get_session_factory
from commerce.models import Product
from tests.browser.conftest import LiveCatalog, open_tab

pytestmark = [pytest.mark.browser, pytest.mark.slow]

LIVE_CATALOG = {
    "marketplaces": ["dummymart"],
    "downstream_assets": ("fx_rates", "product_groups", "storefront_products"),
    "embeddings": False,
}


@pytest.fixture
def page(browser: Browser, live_server: str) -> Iterator[Page]:
    with open_tab(browser, live_server, fail_on_js_errors=False) as tab:
        yield tab


def _product_in_stock(live_catalog: LiveCatalog) -> Product:
    factory = get_session_factory(live_catalog.database_url)
    with factory() as session:
        product = session.scalars(
            sa.select(Product)
            .where(
                Product.available.is_(True),
                Product.removed_at.is_(None),
                Product.relation_token.is_not(None),
                sa.or_(Product.stock.is_(None), Product.stock > 5),
            )
            .order_by(Product.id)
            .limit(1)
        ).one()
        session.expunge(product)
        return product


def test_adding_to_the_cart_by_keyboard_returns_focus_to_the_offer(
    page: Page, live_catalog: LiveCatalog
) -> None:
    product = _product_in_stock(live_catalog)
    page.goto(f"/product/{product.relation_token}")
    button = page.locator(f"#qty-{product.id}").locator("xpath=..").get_by_role("button")
    button.focus()
    page.keyboard.press("Enter")

    expect(page.locator(".flashes")).to_contain_text("to your cart")
    expect(
        page.locator(f"#qty-{product.id}").locator("xpath=..").get_by_role("button")
    ).to_be_focused()
