"""Listing cards: every value a product card shows, computed once in Python.

A listing renders dozens of cards; doing the conversions, formatting and URL building here (one
url_for per page instead of two per card, no template function calls per card) roughly halves
the page's rendering time, and the JSON API reads the same values, so the page and the API
never disagree.

The card's HTML stays in its template (catalog/_product_card.html, one `product_grid` macro call
per grid), where it is read and escaped like every other page: building it in Python saved about
0.3 ms of a 6–7 ms listing (bench/RESULTS.md, issue 9 notes), not enough to change what the page
costs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple
from urllib.parse import quote, urlencode

from flask import url_for
from markupsafe import Markup

from commerce.cart_pricing import charged_price_minor
from search_index.listings import ProductHit
from storefront.catalog.highlight import highlight_title
from storefront.catalog.shopper import display_currency, format_price, fx_table

GROUP_PLACEHOLDER = "__group__"
# The order of ProductCard.grid_values, as catalog/_product_card.html unpacks them.
GRID_VALUES = (
    "url",
    "image_url",
    "title_html",
    "price_text",
    "original_price_text",
    "rating",
    "rating_text",
    "available",
    "marketplace_logo",
    "market_text",
    "offers_text",
)


class ProductCard(NamedTuple):
    """One card: the product, its URLs, and its shown offer's price in the shopper's currency.

    A NamedTuple like the ProductHit it shows (search_index.listings): built once per card.
    """

    hit: ProductHit
    title_html: Markup
    url: str
    image_url: str
    display_price_minor: int | None
    price_text: str
    original_price_text: str | None
    offers_text: str | None
    rating_text: str | None
    # What the card's markup shows, in GRID_VALUES order, read by the product_grid macro in one
    # tuple unpacking: the ~20 `card.x` / `hit.y` lookups a card took there were each a Jinja
    # `environment.getattr` call, some 450 a listing.
    grid_values: tuple[Any, ...]

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
            "offers_in_stock": (
                hit.offer_count if hit.available_offer_count is None else hit.available_offer_count
            ),
            "offers_text": hit.offers_text,
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


def market_text(hit: ProductHit, marketplaces: Sequence[str]) -> str:
    """The card's line naming the marketplace of the offer it shows.

    "Cheapest on X" when the product is sold more than once and X is the cheapest; with a
    marketplace filter that left a cheaper offer out, the claim is narrowed to the chosen
    marketplaces, and with one chosen it is not a claim of cheapest at all."""
    name = hit.offer.marketplace_name
    if not hit.cheaper_elsewhere:
        return f"Cheapest on {name}" if hit.has_other_offers else name
    if len(marketplaces) > 1:
        return f"Cheapest on {name} among the marketplaces you chose"
    return f"On {name}, the marketplace you chose (cheaper elsewhere)"


def build_cards(
    hits: Iterable[ProductHit], *, marketplaces: Sequence[str] = ()
) -> list[ProductCard]:
    """Cards for `hits` in the current request's display currency. A listing filtered to
    `marketplaces` carries them to the product page, which then suggests the offer the card
    showed (one of theirs) rather than a marketplace the shopper left out."""
    currency = display_currency()
    fx = fx_table()
    url_template = url_for("catalog.product", group_id=GROUP_PLACEHOLDER)
    if marketplaces:
        url_template += "?" + urlencode([("marketplace", slug) for slug in marketplaces])
    placeholder = url_for("static", filename="img/placeholder-product.svg")
    cards = []
    for hit in hits:
        offer = hit.offer
        shown = charged_price_minor(fx, offer.price_minor, offer.currency, currency)
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
        reviews = hit.rating_count
        # A rating published without its count (DummyJSON) is shown without "(0 reviews)".
        if hit.rating is not None and reviews:
            rating_text = f"{reviews:,} review{'' if reviews == 1 else 's'}"
        title_html = highlight_title(hit.title, hit.title_matches)
        url = url_template.replace(GROUP_PLACEHOLDER, quote(hit.group_id, safe=""))
        image_url = hit.image_url or placeholder
        offers_text = hit.offers_text
        cards.append(
            ProductCard(
                hit=hit,
                title_html=title_html,
                url=url,
                image_url=image_url,
                display_price_minor=shown,
                price_text=price_text,
                original_price_text=original,
                offers_text=offers_text,
                rating_text=rating_text,
                grid_values=(
                    url,
                    image_url,
                    title_html,
                    price_text,
                    original,
                    hit.rating,
                    rating_text,
                    offer.available,
                    offer.marketplace_logo,
                    market_text(hit, marketplaces),
                    offers_text,
                ),
            )
        )
    return cards
