"""The price chart in Chromium: its price labels sit in a gutter of their own, so no line runs
through them (a flat line at a label's height struck "$481.85" through at 1280 px). Drawn from
price_history_svg directly: no site needed."""

from __future__ import annotations

from datetime import timedelta

import pytest
from playwright.sync_api import sync_playwright

from onecart.settings import REPO_ROOT
from storefront.catalog.charts import price_history_svg
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.storefront.test_price_chart import NOW, price_series

pytestmark = [pytest.mark.browser]


@pytest.mark.parametrize("width", [375, 1280])
def test_no_line_crosses_a_price_label(width: int) -> None:
    # Lines at every height of the chart, from its first moment: any label over the plot is hit.
    series = [
        price_series(
            f"Shop {n}", (timedelta(days=30), 40000 + n * 2000), (timedelta(days=2), 48185)
        )
        for n in range(6)
    ]
    svg = str(
        price_history_svg(
            series, format_amount=lambda minor: f"${minor / 100:,.2f}", now=NOW, title="t"
        )
    )
    css = (REPO_ROOT / "storefront" / "static" / "css" / "shop.css").read_text()
    html = f'<!doctype html><style>{css}</style><body style="margin:0;width:{width}px">{svg}</body>'
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": 400})
            page.set_content(html)
            boxes = page.evaluate(
                """() => ({
                  labels: [...document.querySelectorAll('svg.price-chart > text')]
                    .filter(t => t.textContent.startsWith('$'))
                    .map(t => t.getBoundingClientRect().right),
                  lines: [...document.querySelectorAll('polyline')]
                    .map(l => l.getBoundingClientRect().left),
                  chart: document.querySelector('svg.price-chart').getBoundingClientRect().right,
                  ends: [...document.querySelectorAll('polyline')]
                    .map(l => l.getBoundingClientRect().right),
                })"""
            )
        finally:
            browser.close()
    assert len(boxes["labels"]) == 4 and len(boxes["lines"]) == 6
    assert max(boxes["labels"]) <= min(boxes["lines"]), boxes
    # The lines still reach the right edge (today's price).
    assert min(boxes["ends"]) >= boxes["chart"] - 2, boxes
