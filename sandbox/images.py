"""Locally generated product images: an SVG card in the category's colour with brand and model.

Catalogs point every image URL at ``/_sandbox/images/<product key>.svg``, so the storefront shows
real pictures without the internet, and the same product looks the same on every marketplace.
"""

from __future__ import annotations

from xml.sax.saxutils import escape

from sandbox.world_products import WorldProduct

IMAGE_SIZE = 600
MAX_LINE_CHARS = 26


def _wrap(text: str, width: int = MAX_LINE_CHARS, max_lines: int = 2) -> list[str]:
    words = text.split()
    lines: list[str] = []
    current = ""
    for word in words:
        candidate = f"{current} {word}".strip()
        if len(candidate) > width and current:
            lines.append(current)
            current = word
        else:
            current = candidate
    if current:
        lines.append(current)
    if len(lines) > max_lines:
        lines = [*lines[: max_lines - 1], lines[max_lines - 1][: width - 1] + "…"]
    return lines


def render_product_svg(product: WorldProduct) -> str:
    """The product's image as SVG text (category colour, brand, model, what it is)."""
    colour = product.category.colour
    title_lines = _wrap(product.descriptor)
    subtitle = product.line if product.category.is_book else product.model
    text_rows = "".join(
        f'<text x="300" y="{410 + 34 * row}" font-size="26" fill="#1f2937" text-anchor="middle">'
        f"{escape(line)}</text>"
        for row, line in enumerate(title_lines)
    )
    variant = " · ".join(part for part in (product.spec, product.colour) if part)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{IMAGE_SIZE}" height="{IMAGE_SIZE}" '
        f'viewBox="0 0 {IMAGE_SIZE} {IMAGE_SIZE}" role="img" '
        f'aria-label="{escape(product.display_name, {chr(34): "&quot;"})}">'
        f'<rect width="600" height="600" fill="#f8fafc"/>'
        f'<rect x="24" y="24" width="552" height="330" rx="28" fill="{colour}"/>'
        f'<circle cx="300" cy="170" r="92" fill="#ffffff" fill-opacity="0.18"/>'
        f'<text x="300" y="150" font-family="Helvetica, Arial, sans-serif" font-size="44" '
        f'font-weight="700" fill="#ffffff" text-anchor="middle">{escape(product.brand)}</text>'
        f'<text x="300" y="215" font-family="Menlo, Consolas, monospace" font-size="32" '
        f'fill="#ffffff" text-anchor="middle">{escape(subtitle)}</text>'
        f'<text x="300" y="300" font-family="Helvetica, Arial, sans-serif" font-size="20" '
        f'fill="#ffffff" fill-opacity="0.85" text-anchor="middle">'
        f"{escape(product.category.name)}</text>"
        f'<g font-family="Helvetica, Arial, sans-serif">{text_rows}</g>'
        f'<text x="300" y="540" font-family="Helvetica, Arial, sans-serif" font-size="20" '
        f'fill="#64748b" text-anchor="middle">{escape(variant)}</text>'
        f"</svg>"
    )
