"""In a real browser (Debian's Chromium through Playwright), at 375 and 1280 px: the cheaper-offer
hint's button replaces the cart line (same quantity), and after checkout the items bought on a
marketplace's own site leave the cart and live on in the order, where the shopper marks them
bought — against the live site, the sandbox's live offers and the wallet."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from commerce.models import CartItem, Product
from onecart.settings import REPO_ROOT
from storefront import format_money
from tests.checkout.shop import Shop
from tests.checkout.test_browser_checkout import browser_page, live_site  # noqa: F401 (fixtures)
from tests.storefront.conftest import DEFAULT_PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SCREENSHOTS = REPO_ROOT / "test-artifacts" / "screenshots"


def _no_horizontal_overflow(page: Any, root: str = "main") -> None:
    """What this feature put on the page fits the viewport (the shared header and the rest of
    the order page are tested with the layout)."""
    overflow = page.evaluate(
        f"() => [...document.querySelectorAll('{root} *')]"
        ".filter(el => el.getBoundingClientRect().right > window.innerWidth + 1)"
        ".map(el => el.tagName + '.' + el.className + ' ' + el.outerHTML.slice(0, 160) + ' right=' + el.getBoundingClientRect().right).slice(0, 5)"
    )
    assert overflow == []


def _shot(page: Any, name: str, width: int) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}-{width}.png"), full_page=True)


@pytest.mark.parametrize("width", [375, 1280])
def test_swap_replaces_the_line_and_handoff_items_move_into_the_order(
    shop: Shop,
    live_site: str,  # noqa: F811
    browser_page: Any,  # noqa: F811
    width: int,
) -> None:
    page = browser_page
    page.set_viewport_size({"width": width, "height": 900})
    dear, cheap = shop.product("shopwave", 0), shop.product("dummymart", 0)
    with shop.session() as session, session.begin():
        # The catalog's ShopWave offer becomes the same product as DummyMart's, dearer; the
        # swapped-in DummyMart line keeps its live price, so checkout's re-check agrees.
        listed = session.get(Product, dear.id)
        listed.relation_token = cheap.relation_token
        listed.currency = cheap.currency
        listed.price_minor = cheap.price_minor + 500
    user = shop.make_user(wallet=Decimal("5000"))
    shop.fill_cart(user, [("shopwave", 0, 2), ("naijamall", 0, 1)])

    page.goto(f"{live_site}/login")
    page.fill("input[name=login]", user.username)
    page.fill("input[name=password]", DEFAULT_PASSWORD)
    page.click("main form button[type=submit]")
    page.wait_for_url(re.compile(r".*/home$|.*/$"))

    page.goto(f"{live_site}/cart")
    onecart = page.locator("#pay-with-onecart")
    marketplace = page.locator("#buy-on-marketplace")
    assert onecart.locator(".cart-group[data-marketplace=shopwave]").count() == 1
    assert marketplace.locator(".cart-group[data-marketplace=naijamall]").count() == 1
    # The one bold total is what OneCart charges: the NaijaMall item is not in it.
    assert page.inner_text("#cart-total") == format_money(2 * (cheap.price_minor + 500), "USD")
    _no_horizontal_overflow(page)
    _shot(page, "cart-before-swap", width)

    page.click("text=Switch to the DummyMart offer")
    page.wait_for_selector("text=Your cart now has the DummyMart offer instead.")

    assert page.locator(".cart-group[data-marketplace=shopwave]").count() == 0
    assert onecart.locator(".cart-line").count() == 1
    assert page.input_value(f"#quantity-{cheap.id}") == "2"
    assert page.inner_text("#cart-total") == format_money(2 * cheap.price_minor, "USD")
    _no_horizontal_overflow(page)
    _shot(page, "cart-after-swap", width)

    page.click("text=Go to checkout")
    page.wait_for_url(f"{live_site}/checkout")
    page.fill("#name", "Grace Hopper")
    page.fill("#line1", "1 Compiler Lane")
    page.fill("#city", "Arlington")
    page.select_option("#country", "US")
    page.check("input[name=payment_method][value=wallet]")
    wallet_charge = page.inner_text("[data-testid=wallet-charge]")
    # Only the chosen method's amount is on the button.
    assert page.inner_text("#place-order").split() == (
        f"Place order and pay {wallet_charge} from your wallet".split()
    )
    _no_horizontal_overflow(page)
    _shot(page, "checkout-wallet", width)
    page.click("#place-order")
    page.wait_for_url(re.compile(r".*/orders/OC-[0-9A-Z-]+/confirmation$"))
    assert page.inner_text("[data-testid=order-total]") == wallet_charge

    item = page.locator(".handoff-item")
    assert item.count() == 1 and item.get_attribute("data-status") == "to_buy"
    assert shop.product("naijamall").title in item.inner_text()
    _no_horizontal_overflow(page, "#handoff-items")
    _shot(page, "order-handoff-items", width)
    item.get_by_role("button", name=re.compile("Mark bought")).click()
    page.wait_for_selector(".handoff-item[data-status=bought]")
    assert "Bought" in page.inner_text(".handoff-item")

    page.goto(f"{live_site}/cart")
    assert "Your cart is empty" in page.inner_text("main")
    with shop.session() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(CartItem)) == 0
