"""A shopper whose name or username is long and has no spaces (the forms allow a first name of
80 characters and a username of 40) gets pages that fit the screen: the header's account menu
keeps to its row at 1280 px, and the welcome message wraps on a 390 px phone, where it sat
outside <main> and pushed the page sideways. Lean: one marketplace, the storefront's assets."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import open_tab

pytestmark = [pytest.mark.browser, pytest.mark.slow]

LIVE_CATALOG = {
    "marketplaces": ["dummymart"],
    "downstream_assets": (
        "fx_rates",
        "product_groups",
        "search_products",
        "search_product_groups",
        "storefront_products",
    ),
    "embeddings": False,
}
PASSWORD = "Sunny-Plateau-42-kettle"
LONG_FIRST_NAME = "Wanjiru" + "W" * 73  # 80 characters, the form's maximum
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}


@pytest.fixture
def page(browser: Browser, live_server: str) -> Iterator[Page]:
    with open_tab(browser, live_server, PHONE) as tab:
        yield tab


def sideways(page: Page) -> dict[str, object]:
    """How far the page scrolls sideways, and the first elements past the right edge."""
    return page.evaluate(
        """() => {
            const root = document.documentElement;
            const wide = [...document.querySelectorAll('body *')]
                .filter(e => e.getBoundingClientRect().right > root.clientWidth + 1)
                .slice(0, 3)
                .map(e => e.tagName.toLowerCase() + '.' + e.className);
            return {overflow: root.scrollWidth - root.clientWidth, wide};
        }"""
    )


def test_a_long_first_name_fits_the_header_and_the_welcome_message(page: Page) -> None:
    username = f"long{uuid.uuid4().hex[:8]}"
    page.goto("/signup")
    page.get_by_label("Username").fill(username)
    page.get_by_label("E-mail").fill(f"{username}@example.com")
    page.get_by_label("First name").fill(LONG_FIRST_NAME)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label(re.compile("Confirm", re.I)).fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    page.wait_for_url(re.compile(r"/home$"))
    page.context.clear_cookies()

    # Signing in again greets the shopper by name in a flash message, outside <main>.
    page.goto("/login")
    page.get_by_label("Username or e-mail").fill(username)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r"/home$"))
    expect(page.locator(".flash-success")).to_contain_text(LONG_FIRST_NAME)
    assert sideways(page) == {"overflow": 0, "wide": []}

    page.set_viewport_size(DESKTOP)
    page.goto("/cart")
    summary = page.locator(".account-menu summary")
    expect(summary).to_be_visible()
    # The whole name is still there for assistive technology.
    expect(summary).to_contain_text(LONG_FIRST_NAME)
    assert sideways(page) == {"overflow": 0, "wide": []}
    header = page.locator(".site-header").bounding_box()
    assert header is not None and header["height"] <= 80  # one row, as for any shopper
