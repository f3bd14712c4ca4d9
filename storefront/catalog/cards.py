"""Listing cards: every value a product card shows, and its HTML, computed once in Python.

A listing renders dozens of cards; doing the conversions, formatting and URL building here (one
url_for per page instead of two per card, no template function calls per card) roughly halves
the page's rendering time, and the JSON API reads the same values, so the page and the API
never disagree. The card's HTML is built here too (:func:`card_html`): a Jinja macro call per
card plus some twenty escapes through Jinja's runtime cost about a third of the search page's
CPU (profiled: bench/RESULTS.md, issue 9 notes), a format string a small fraction of it. Every
value from the index is escaped with markupsafe, as autoescaping would.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from flask import url_for
from markupsafe import Markup, escape

from search_index.listings import ProductHit
from storefront.catalog.highlight import highlight_title
from storefront.catalog.shopper import display_currency, format_price, fx_table

GROUP_PLACEHOLDER = "__group__"


@dataclass(frozen=True, slots=True)
class ProductCard:
    """One card: the product, its URLs, and its shown offer's price in the shopper's currency."""

    hit: ProductHit
    title_html: Markup
    url: str
    image_url: str
    display_price_minor: int | None
    price_text: str
    original_price_text: str | None
    offers_text: str | None
    rating_text: str | None

    @property
    def html(self) -> Markup:
        """The card's HTML (built on use: the JSON API never asks for it)."""
        return card_html(self)

    def as_json(self, currency: str) -> dict[str, Any]:
        """The JSON API's shape of this card (money as integer minor units + currency)."""
        hit = self.hit
        offer = hit.offer
        return {
            "id": hit.group_id,
            "title": hit.title,
            "title_html": str(self.title_html),
            "url": self.url,
            "image_url": hit.image_url,
            "brand": hit.brand,
            "offers": hit.offer_count,
            "marketplaces": hit.marketplace_count,
            "rating": str(hit.rating) if hit.rating is not None else None,
            "rating_count": hit.rating_count,
            "offer": {
                "id": offer.id,
                "marketplace": {
                    "slug": offer.marketplace,
                    "name": offer.marketplace_name,
                    "logo": offer.marketplace_logo,
                },
                "price": {"minor": offer.price_minor, "currency": offer.currency},
                "display_price": {"minor": self.display_price_minor, "currency": currency},
                "available": offer.available,
            },
        }


def offers_summary(offer_count: int, marketplace_count: int) -> str:
    """ "3 offers on 2 marketplaces" (singular where it applies)."""
    offers = f"{offer_count} offer{'' if offer_count == 1 else 's'}"
    markets = f"{marketplace_count} marketplace{'' if marketplace_count == 1 else 's'}"
    return f"{offers} on {markets}"


def build_cards(hits: Iterable[ProductHit]) -> list[ProductCard]:
    """Cards for `hits` in the current request's display currency."""
    currency = display_currency()
    fx = fx_table()
    url_template = url_for("catalog.product", group_id=GROUP_PLACEHOLDER)
    placeholder = url_for("static", filename="img/placeholder-product.svg")
    cards = []
    for hit in hits:
        offer = hit.offer
        shown = fx.convert_or_none(offer.price_minor, offer.currency, currency)
        if shown is None:
            price_text, original = format_price(offer.price_minor, offer.currency), None
        else:
            price_text = format_price(shown, currency)
            original = (
                format_price(offer.price_minor, offer.currency)
                if offer.currency != currency
                else None
            )
        rating_text = None
        if hit.rating is not None:
            reviews = hit.rating_count
            rating_text = f"{reviews:,} review{'' if reviews == 1 else 's'}"
        cards.append(
            ProductCard(
                hit=hit,
                title_html=highlight_title(hit.title, hit.title_matches),
                url=url_template.replace(GROUP_PLACEHOLDER, quote(hit.group_id, safe="")),
                image_url=hit.image_url or placeholder,
                display_price_minor=shown,
                price_text=price_text,
                original_price_text=original,
                offers_text=offers_summary(hit.offer_count, hit.marketplace_count),
                rating_text=rating_text,
            )
        )
    return cards


def card_html(card: ProductCard) -> Markup:
    """One listing card (what catalog/_product_card.html renders): the price is the product's
    cheapest offer that matches the filters, from the marketplace named under it."""
    hit = card.hit
    offer = hit.offer
    url = escape(card.url)
    original = (
        f' <span class="original-price">{escape(card.original_price_text)}</span>'
        if card.original_price_text
        else ""
    )
    if hit.rating is not None:
        rating = (
            f'<p class="rating"><span aria-hidden="true">★</span> {escape(str(hit.rating))}'
            '<span class="visually-hidden"> out of 5</span>\n'
            f'    <span class="muted">({escape(card.rating_text)})</span></p>'
        )
    else:
        rating = '<p class="rating muted">No rating published</p>'
    logo = (
        f'<img class="market-logo-sm" src="{escape(offer.marketplace_logo)}" alt="" '
        'width="20" height="20">'
        if offer.marketplace_logo
        else ""
    )
    cheapest = "Cheapest on " if hit.has_other_offers else ""
    stock = "" if offer.available else ' <span class="badge badge-muted">Out of stock</span>'
    return Markup(
        f'<article class="product-card{"" if offer.available else " is-unavailable"}">\n'
        f'  <a class="product-card-link" href="{url}">\n'
        f'    <img class="product-card-image" src="{escape(card.image_url)}" alt="" '
        'loading="lazy" width="240" height="180">\n'
        f'    <h3 class="product-card-title">{card.title_html}</h3>\n'
        "  </a>\n"
        f'  <p class="product-card-price"><strong>{escape(card.price_text)}</strong>{original}</p>\n'
        f"  {rating}\n"
        f'  <p class="product-card-market">{logo}\n'
        f"    <span>{cheapest}{escape(offer.marketplace_name)}</span>{stock}\n"
        "  </p>\n"
        f'  <p class="product-card-offers"><a href="{url}">{escape(card.offers_text or "")}</a></p>\n'
        "</article>"
    )
