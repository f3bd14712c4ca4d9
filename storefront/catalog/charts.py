"""The product page's price-history chart, drawn on the server as SVG (no JavaScript, no CDN).

One step line per offer (a price holds until the next observation), in the display currency,
from the first observation to now.

Readable at any width: the outer SVG has no viewBox, so its labels are drawn at their real size
(13 px on a phone as on a desktop) and placed in CSS pixels or in percentages of the width; only
the lines live in an inner SVG that stretches to the width (preserveAspectRatio="none") and keep
their thickness with `vector-effect: non-scaling-stroke`. Price labels sit on their grid lines at
the left, in a gutter as wide as the widest label: the lines start right of it, so none runs
through a price, and the dates of the time axis stand under the lines' own width.

Every text that reaches the SVG is escaped; the chart carries a title and description for screen
readers, and the page shows the same numbers in a table.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from markupsafe import Markup, escape

from commerce.catalog import PriceSeries

HEIGHT = 260
PLOT_TOP = 22
PLOT_BOTTOM = 222  # the time axis; its labels go below it
# The inner SVG's own width units: only proportions matter, it is stretched to the chart's width.
PLOT_UNITS = 1000
FONT_PX = 13
DOT_RADIUS = 5
LABEL_COLOUR = "#3d4452"
GRID_COLOUR = "#d9dde3"
# The shortest time axis: a product first seen seconds ago still gets lines across the chart.
MIN_SPAN = timedelta(minutes=1)
# Distinct on white and for the common colour-vision deficiencies (Okabe–Ito).
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")


def series_colour(position: int) -> str:
    """The colour of the n-th series (the legend and the table use the same)."""
    return PALETTE[position % len(PALETTE)]


def _time_label(moment: datetime, span: timedelta) -> str:
    if span < timedelta(hours=1):  # a fresh install: minutes of history
        return f"{moment:%H:%M:%S}"
    if span < timedelta(days=1):
        return f"{moment:%H:%M}"
    return f"{moment:%d %b %H:%M}" if span < timedelta(days=4) else f"{moment:%d %b}"


def price_history_svg(
    series: Sequence[PriceSeries],
    *,
    format_amount: Callable[[int], str],
    now: datetime,
    title: str = "Price history",
) -> Markup:
    """An accessible SVG step chart of each offer's price over time (display-currency minor units).

    `format_amount` renders the price labels; `now` extends each line to the present. Points
    without a converted price are skipped; with nothing to draw, a short message is returned.
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
            drawable.append((position, offer_series.label, sorted(points)))
    if not drawable:
        return Markup('<p class="chart-empty">No price history recorded yet.</p>')

    # From the first observation to now: lines run across the whole width however short the
    # history is (padding the axis backwards would squeeze a new product's lines to the right).
    start = min(points[0][0] for _, _, points in drawable)
    end = max([now, *(points[-1][0] for _, _, points in drawable)])
    if end - start < MIN_SPAN:
        end = start + MIN_SPAN
    span = end - start
    prices = [price for _, _, points in drawable for _, price in points]
    low, high = min(prices), max(prices)
    # Headroom of a tenth of the range (or of the price when it never moved), so no line runs
    # along the chart's edge and the top label never sits on a line.
    pad = max((high - low) // 10, max(high // 20, 1)) if high == low else max((high - low) // 10, 1)
    low, high = max(0, low - pad), high + pad

    def x_of(moment: datetime) -> float:
        return PLOT_UNITS * (moment - start).total_seconds() / span.total_seconds()

    def y_of(minor: int) -> float:
        return PLOT_TOP + (PLOT_BOTTOM - PLOT_TOP) * (1 - (minor - low) / (high - low))

    description = (
        f"Prices of {len(drawable)} offer(s) from {start:%d %b %Y %H:%M} to "
        f"{end:%d %b %Y %H:%M}, between {format_amount(min(prices))} and "
        f"{format_amount(max(prices))}."
    )
    text_style = f'font-size="{FONT_PX}" fill="{LABEL_COLOUR}"'
    halo = 'paint-order="stroke" stroke="#fff" stroke-width="3" stroke-linejoin="round"'
    parts = [
        f'<svg class="price-chart" width="100%" height="{HEIGHT}" role="img" '
        'aria-labelledby="price-chart-title price-chart-desc" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="price-chart-title">{escape(title)}</title>',
        f'<desc id="price-chart-desc">{escape(description)}</desc>',
    ]
    # Price grid: four lines, each labelled at its left end, above the line.
    grid_values = [low + (high - low) * (step + 1) // 5 for step in range(4)]
    for value in grid_values:
        y = y_of(value)
        parts.append(
            f'<line x1="0" y1="{y:.1f}" x2="100%" y2="{y:.1f}" stroke="{GRID_COLOUR}" '
            'stroke-width="1"/>'
        )
    parts.append(
        f'<line x1="0" y1="{PLOT_BOTTOM}" x2="100%" y2="{PLOT_BOTTOM}" stroke="#8a93a3" '
        'stroke-width="1"/>'
    )
    # The lines, stretched to the width right of the price labels' gutter; their strokes keep
    # their pixel width. SVG has no "100% minus the labels" for a width, so an HTML flex row
    # (shop.css) sizes it: a hidden copy of the widest label, then the lines' SVG.
    labels = [format_amount(value) for value in grid_values]
    widest = max(labels, key=len)
    parts.append(
        f'<foreignObject x="0" y="0" width="100%" height="{HEIGHT}">'
        '<div xmlns="http://www.w3.org/1999/xhtml" class="price-chart-plot">'
        f'<span class="price-chart-gutter" aria-hidden="true">{escape(widest)}</span>'
        '<div class="price-chart-area">'
        f'<svg class="price-chart-lines" width="100%" height="{HEIGHT}" '
        f'viewBox="0 0 {PLOT_UNITS} {HEIGHT}" preserveAspectRatio="none">'
    )
    ends: list[str] = []
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
        coordinates.append(f"{PLOT_UNITS},{previous_y:.1f}")
        parts.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="3" stroke-linejoin="round" '
            f'vector-effect="non-scaling-stroke" data-series="{escape(label)}" '
            f'points="{" ".join(coordinates)}"><title>{escape(label)}</title></polyline>'
        )
        # Today's price: a dot at the right end, drawn outside the stretched SVG so it stays
        # round, and pulled in by its radius so it is never clipped.
        ends.append(
            f'<circle cx="100%" cy="{previous_y:.1f}" r="{DOT_RADIUS}" fill="{colour}" '
            f'stroke="#fff" stroke-width="1.5" transform="translate(-{DOT_RADIUS + 1} 0)"/>'
        )
    parts.append("</svg>")
    # Time axis: start, middle and now, under the lines' own width (the same HTML row), so each
    # date stands under the moment it names and none runs past either end.
    parts.append('<div class="price-chart-times">')
    for moment in (start, start + span / 2, end):
        parts.append(f"<span>{escape(_time_label(moment, span))}</span>")
    parts.append("</div></div></div></foreignObject>")
    parts.extend(ends)
    for value, text in zip(grid_values, labels, strict=True):
        parts.append(
            f'<text x="2" y="{y_of(value) - 5:.1f}" {text_style} {halo}>{escape(text)}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))
