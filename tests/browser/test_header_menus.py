"""The header's menus (<details class="header-menu">: the phone's "Menu", the currency and
account menus) in a real browser: Escape closes the open one and gives focus back to its
summary, a click elsewhere closes it, and opening one closes the others. A bare <details> stays
open over the page until its own summary is pressed again: Escape did nothing, and the currency
panel stayed over the results while the shopper clicked on the page. Lean: one marketplace."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import open_tab

pytestmark = [pytest.mark.browser, pytest.mark.slow]

LIVE_CATALOG = {
    "marketplaces": ["dummymart"],
    "downstream_assets": ("fx_rates", "storefront_products"),
    "embeddings": False,
}


def _page(browser: Browser, live_server: str, width: int) -> Iterator[Page]:
    viewport = {"width": width, "height": 844}
    with open_tab(browser, live_server, viewport, fail_on_js_errors=False) as tab:
        yield tab


@pytest.fixture
def phone(browser: Browser, live_server: str) -> Iterator[Page]:
    yield from _page(browser, live_server, 390)


@pytest.fixture
def desktop(browser: Browser, live_server: str) -> Iterator[Page]:
    yield from _page(browser, live_server, 1280)


def test_escape_closes_the_phone_menu_and_returns_focus_to_it(phone: Page) -> None:
    phone.goto("/")
    menu = phone.locator("details.site-menu")
    summary = menu.locator("summary")
    summary.focus()
    phone.keyboard.press("Enter")
    expect(menu).to_have_attribute("open", "")
    phone.keyboard.press("Tab")  # into the menu's first link
    expect(menu.get_by_role("link", name="Stores")).to_be_focused()

    phone.keyboard.press("Escape")

    expect(menu).not_to_have_attribute("open", "")
    expect(summary).to_be_focused()


def test_a_click_elsewhere_or_another_menu_closes_the_open_one(desktop: Page) -> None:
    desktop.goto("/")
    currency = desktop.locator("details.currency-menu")
    currency.locator("summary").click()
    expect(currency).to_have_attribute("open", "")

    desktop.locator("main h1, main h2").first.click()
    expect(currency).not_to_have_attribute("open", "")

    currency.locator("summary").click()
    desktop.set_viewport_size({"width": 390, "height": 844})  # the phone's menu is shown
    desktop.locator("details.site-menu summary").click()
    expect(desktop.locator("details.site-menu")).to_have_attribute("open", "")
    expect(currency).not_to_have_attribute("open", "")
