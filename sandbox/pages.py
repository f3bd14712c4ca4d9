"""Minimal HTML product pages behind the product URLs the catalogs advertise (Shopify handles,
WooCommerce permalinks, feed links, bazaar listing URLs), so a shopper handed off to a sandbox
marketplace lands on a real page instead of a 404."""

from __future__ import annotations

from html import escape

from werkzeug.wrappers import Response

from onecart.money import from_minor_units
from sandbox.service import encode_text
from sandbox.world import ListedOffer


def format_amount(minor: int, currency: str) -> str:
    """An exact decimal string of minor units ("19.99")."""
    return str(from_minor_units(minor, currency))


def product_page(marketplace_name: str, offer: ListedOffer, image_url: str) -> Response:
    """The offer's product page as the marketplace would show it."""
    product = offer.product
    availability = "In stock" if offer.available else "Out of stock"
    was = (
        f' <s class="was">{escape(format_amount(offer.list_price_minor, offer.currency))}</s>'
        if offer.list_price_minor
        else ""
    )
    features = "".join(
        f"<li>{escape(sentence)}</li>" for sentence in product.description_sentences()
    )
    html = (
        "<!doctype html>"
        '<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(offer.title)} | {escape(marketplace_name)}</title></head>"
        f"<body><header><p>{escape(marketplace_name)}</p></header><main>"
        f"<h1>{escape(offer.title)}</h1>"
        f'<img src="{escape(image_url)}" alt="{escape(product.display_name)}" width="300" height="300">'
        f'<p class="price">{escape(format_amount(offer.price_minor, offer.currency))} '
        f"{escape(offer.currency)}{was}</p>"
        f"<p>{availability}</p>"
        f"<p>Brand: {escape(product.brand)} · Model: {escape(product.model)} · "
        f"GTIN: {escape(product.gtin)}</p>"
        f"<ul>{features}</ul>"
        "</main></body></html>"
    )
    return Response(encode_text(html), content_type="text/html; charset=utf-8")
