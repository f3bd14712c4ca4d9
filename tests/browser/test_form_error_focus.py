"""A rejected form in a real browser: focus starts at the error summary (its `autofocus`), not
at the top of the page, so the next Tab reaches the link to the first field to fix. Lean: one
marketplace, the storefront's assets."""

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


@pytest.fixture
def page(browser: Browser, live_server: str) -> Iterator[Page]:
    with open_tab(browser, live_server, fail_on_js_errors=False) as tab:
        yield tab


def test_a_rejected_sign_up_focuses_its_error_summary(page: Page) -> None:
    page.goto("/signup")
    page.locator("#username").fill("focus-check")
    page.locator("#email").fill("not-an-email")
    page.locator("#password").fill("Sunny-Plateau-42-kettle")
    page.locator("#confirm_password").fill("Sunny-Plateau-42-kettle")
    page.get_by_role("button", name="Sign up").click()

    summary = page.locator(".error-summary")
    expect(summary).to_be_focused()
    expect(page.locator("#email")).to_have_attribute("aria-invalid", "true")
    page.keyboard.press("Tab")
    expect(summary.get_by_role("link").first).to_be_focused()
