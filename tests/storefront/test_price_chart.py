"""The price-history chart: every marketplace's line over the whole time axis, drawn at real
pixel size so its labels stay readable on a phone."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from commerce.catalog import HistoryPoint, PriceSeries
from storefront.catalog.charts import price_history_svg

NOW = datetime(2026, 12, 2, 9, 30, tzinfo=UTC)


def price_series(label: str, *points: tuple[timedelta, int]) -> PriceSeries:
    """One marketplace's USD prices, each `ago` before NOW."""
    return PriceSeries(
        product_id=hash(label) % 1000,
        label=label,
        points=[
            HistoryPoint(
                observed_at=NOW - ago,
                price_minor=price,
                currency="USD",
                display_price_minor=price,
                available=True,
            )
            for ago, price in points
        ],
    )


def _polylines(svg: str) -> dict[str, list[tuple[float, float]]]:
    lines = {}
    for label, points in re.findall(r'data-series="([^"]+)" points="([^"]+)"', svg):
        lines[label] = [tuple(map(float, pair.split(","))) for pair in points.split()]
    return lines


def test_every_marketplace_gets_a_line_from_its_first_price_to_now() -> None:
    svg = str(
        price_history_svg(
            [
                price_series("ShopWave", (timedelta(days=30), 10000), (timedelta(days=3), 9000)),
                price_series("Kiondo Market", (timedelta(days=30), 11000)),
            ],
            format_amount=lambda minor: f"${minor // 100}",
            now=NOW,
        )
    )

    lines = _polylines(svg)
    assert set(lines) == {"ShopWave", "Kiondo Market"}
    shopwave = lines["ShopWave"]
    # A step: the old price holds until the drop, the new one until now (the right edge).
    assert shopwave[0][0] == 0 and shopwave[-1][0] == 1000
    assert (
        len(shopwave) == 4 and shopwave[1][1] == shopwave[0][1] and shopwave[2][1] > shopwave[1][1]
    )
    assert lines["Kiondo Market"][0][0] == 0 and lines["Kiondo Market"][-1][0] == 1000
    assert "02 Nov" in svg and "02 Dec" in svg


def test_a_product_first_seen_minutes_ago_still_fills_the_width() -> None:
    svg = str(
        price_history_svg(
            [price_series("DummyMart", (timedelta(seconds=40), 5000))],
            format_amount=lambda minor: f"${minor // 100}",
            now=NOW,
        )
    )

    (line,) = _polylines(svg).values()
    assert line[0][0] == 0 and line[-1][0] == 1000


def test_labels_are_drawn_at_real_size_whatever_the_width() -> None:
    svg = str(
        price_history_svg(
            [price_series("ShopWave", (timedelta(days=2), 10000))],
            format_amount=lambda minor: f"${minor // 100}",
            now=NOW,
        )
    )

    outer = svg[: svg.index(">")]
    # No viewBox on the outer SVG: its text is never scaled down to a phone's width.
    assert "viewBox" not in outer and 'width="100%"' in outer
    assert set(re.findall(r'font-size="(\d+)"', svg)) == {"13"}
    assert 'preserveAspectRatio="none"' in svg and 'vector-effect="non-scaling-stroke"' in svg
