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


@pytest.mark.parametrize("width", [375, 1280])
def test_the_time_labels_stand_under_the_moments_they_name(width: int) -> None:
    """The time axis's labels were placed across the whole chart while the lines start right of
    the price labels' gutter: the first date sat a gutter's width left of the lines' first
    moment and the middle one half a gutter left of the middle of the history."""
    series = [price_series("Shop", (timedelta(days=2), 48185), (timedelta(days=1), 45000))]
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
                """() => {
                  const line = document.querySelector('polyline').getBoundingClientRect();
                  const labels = [...document.querySelectorAll('.price-chart text, .price-chart span')]
                    .filter(t => /^\\d\\d [A-Z][a-z]{2} /.test(t.textContent))
                    .map(t => { const r = t.getBoundingClientRect();
                                return {text: t.textContent, left: r.left, right: r.right}; });
                  return {line: {left: line.left, right: line.right}, labels};
                }"""
            )
        finally:
            browser.close()
    line, labels = boxes["line"], boxes["labels"]
    assert [label["text"] for label in labels] == [
        "30 Nov 09:30",
        "01 Dec 09:30",
        "02 Dec 09:30",
    ], boxes
    first, middle, last = labels
    assert abs(first["left"] - line["left"]) <= 2, boxes
    assert abs((middle["left"] + middle["right"]) / 2 - (line["left"] + line["right"]) / 2) <= 2
    assert abs(last["right"] - line["right"]) <= 2, boxes
    assert last["right"] <= width, boxes
