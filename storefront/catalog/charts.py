"""The product page's price-history chart, drawn on the server as SVG (no JavaScript, no CDN).

One step line per offer (a price holds until the next observation), in the display currency.
Every text that reaches the SVG is escaped; the chart carries a title and description for screen
readers, and the page shows the same numbers in a table.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from markupsafe import Markup, escape

from commerce.catalog import PriceSeries

WIDTH = 640
HEIGHT = 260
MARGIN_LEFT = 84
MARGIN_RIGHT = 16
MARGIN_TOP = 16
MARGIN_BOTTOM = 40
# Distinct on white and for the common colour-vision deficiencies (Okabe–Ito).
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")


def series_colour(position: int) -> str:
    """The colour of the n-th series (the legend and the table use the same)."""
    return PALETTE[position % len(PALETTE)]


def price_history_svg(
    series: Sequence[PriceSeries],
    *,
    format_amount: Callable[[int], str],
    now: datetime,
    title: str = "Price history",
) -> Markup:
    """An accessible SVG step chart of each offer's price over time (display-currency minor units).

    `format_amount` renders axis labels; `now` extends each line to the present. Points without a
    converted price are skipped; with nothing to draw, a short message is returned instead.
    """
    # (position, label, [(when, price)]) for every series with at least one converted price.
    drawable: list[tuple[int, str, list[tuple[datetime, int]]]] = []
    for position, offer_series in enumerate(series):
        points = [
            (point.observed_at, point.display_price_minor)
            for point in offer_series.points
            if point.display_price_minor is not None
        ]
        if points:
            drawable.append((position, offer_series.label, points))
    if not drawable:
        return Markup('<p class="chart-empty">No price history recorded yet.</p>')

    times = [when for _, _, points in drawable for when, _ in points] + [now]
    prices = [price for _, _, points in drawable for _, price in points]
    start, end = min(times), max(times)
    if end - start < timedelta(hours=1):
        start = end - timedelta(days=1)
    low, high = min(prices), max(prices)
    if low == high:
        low, high = low * 9 // 10, high * 11 // 10 + 1
    plot_w = WIDTH - MARGIN_LEFT - MARGIN_RIGHT
    plot_h = HEIGHT - MARGIN_TOP - MARGIN_BOTTOM
    span_s = (end - start).total_seconds()

    def x_of(moment: datetime) -> float:
        return MARGIN_LEFT + plot_w * (moment - start).total_seconds() / span_s

    def y_of(minor: int) -> float:
        return MARGIN_TOP + plot_h * (1 - (minor - low) / (high - low))

    description = (
        f"Prices of {len(drawable)} offer(s) from {start:%d %b %Y} to {end:%d %b %Y}, "
        f"between {format_amount(low)} and {format_amount(high)}."
    )
    parts = [
        f'<svg class="price-chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        'aria-labelledby="price-chart-title price-chart-desc" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="price-chart-title">{escape(title)}</title>',
        f'<desc id="price-chart-desc">{escape(description)}</desc>',
    ]
    # Grid and price axis: five horizontal lines with labels.
    for step in range(5):
        value = low + (high - low) * step // 4
        y = y_of(value)
        parts.append(
            f'<line x1="{MARGIN_LEFT}" y1="{y:.1f}" x2="{WIDTH - MARGIN_RIGHT}" y2="{y:.1f}" '
            'stroke="#d9dde3" stroke-width="1"/>'
        )
        parts.append(
            f'<text x="{MARGIN_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" '
            f'fill="#4a5160">{escape(format_amount(value))}</text>'
        )
    # Time axis: first and last date.
    baseline = HEIGHT - MARGIN_BOTTOM
    parts.append(
        f'<line x1="{MARGIN_LEFT}" y1="{baseline}" x2="{WIDTH - MARGIN_RIGHT}" y2="{baseline}" '
        'stroke="#8a93a3" stroke-width="1"/>'
    )
    for moment, anchor in ((start, "start"), (end, "end")):
        parts.append(
            f'<text x="{x_of(moment):.1f}" y="{baseline + 18}" text-anchor="{anchor}" '
            f'font-size="11" fill="#4a5160">{escape(f"{moment:%d %b %Y}")}</text>'
        )
    for position, label, points in drawable:
        colour = series_colour(position)
        coordinates: list[str] = []
        previous_y: float | None = None
        for when, price in points:
            x, y = x_of(when), y_of(price)
            if previous_y is not None:  # hold the old price until this observation
                coordinates.append(f"{x:.1f},{previous_y:.1f}")
            coordinates.append(f"{x:.1f},{y:.1f}")
            previous_y = y
        coordinates.append(f"{x_of(end):.1f},{previous_y:.1f}")
        parts.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="2.5" '
            f'points="{" ".join(coordinates)}"><title>{escape(label)}</title></polyline>'
        )
        for when, price in points:
            parts.append(
                f'<circle cx="{x_of(when):.1f}" cy="{y_of(price):.1f}" r="3" fill="{colour}"/>'
            )
    parts.append("</svg>")
    return Markup("".join(parts))
