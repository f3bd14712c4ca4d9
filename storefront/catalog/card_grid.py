"""The product card grid, rendered from one precompiled fragment.

catalog/_product_card.fragment.html holds the card's markup as named parts (Python format
strings); they are read once per application and filled here, one `str.format` per card, with
every value escaped by markupsafe (the title comes pre-escaped with its <mark> highlights from
storefront.catalog.highlight). Templates call `product_grid(cards, notes=None, label=None)` as
they called the Jinja macro it replaces; its output is the same bytes.

Why not the macro: a listing renders 24 cards (up to 48), and in a Jinja loop every `{{ }}`
costs an escape call, a Markup object and one or more attribute lookups whatever the value
(~500 per listing page); the macro was ~0.3 ms of a listing's ~3 ms of site CPU (bench/RESULTS.md,
issue 9, "the server, the guest's session and the card grid").
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from flask import current_app
from markupsafe import Markup, escape

from storefront.catalog.cards import ProductCard

FRAGMENT = "catalog/_product_card.fragment.html"
_PART = re.compile(r"\{# part: (\w+) #\}\n(.*?)\n(?=\{# (?:part: \w+|end) #\})", re.S)
_PARTS_NEEDED = frozenset(
    {
        "grid_open",
        "label",
        "card",
        "unavailable",
        "original_price",
        "rating",
        "no_rating",
        "logo",
        "cheapest_on",
        "out_of_stock",
        "note",
        "grid_close",
    }
)


def parse_fragment(source: str) -> dict[str, str]:
    """The fragment's named parts (each a format string)."""
    parts = {name: text for name, text in _PART.findall(source)}
    missing = _PARTS_NEEDED - parts.keys()
    if missing:
        raise ValueError(f"{FRAGMENT} lacks the parts {sorted(missing)}")
    return parts


def _parts() -> dict[str, str]:
    """The parts, read through the app's template loader once per application."""
    parts = current_app.extensions.get("onecart_card_grid")
    if parts is None:
        environment = current_app.jinja_env
        assert environment.loader is not None
        source, _path, _uptodate = environment.loader.get_source(environment, FRAGMENT)
        parts = current_app.extensions["onecart_card_grid"] = parse_fragment(source)
    return parts


def render_grid(
    parts: Mapping[str, str],
    cards: Sequence[ProductCard],
    notes: Sequence[str] | None = None,
    label: str | None = None,
) -> Markup:
    """An <ol> of `cards` (with one note under each when `notes` is given)."""
    card_part = parts["card"]
    unavailable = parts["unavailable"]
    original_price = parts["original_price"]
    rating_part = parts["rating"]
    no_rating = parts["no_rating"]
    logo_part = parts["logo"]
    cheapest_on = parts["cheapest_on"]
    out_of_stock = parts["out_of_stock"]
    note_part = parts["note"]
    pieces = [
        parts["grid_open"].format(label=parts["label"].format(text=escape(label)) if label else "")
    ]
    for position, card in enumerate(cards):
        hit = card.hit
        offer = hit.offer
        url = escape(card.url)
        pieces.append(
            card_part.format(
                unavailable="" if offer.available else unavailable,
                url=url,
                image_url=escape(card.image_url),
                title=card.title_html,
                price=escape(card.price_text),
                original_price=(
                    original_price.format(text=escape(card.original_price_text))
                    if card.original_price_text
                    else ""
                ),
                rating=(
                    no_rating
                    if hit.rating is None
                    else rating_part.format(rating=hit.rating, reviews=escape(card.rating_text))
                ),
                logo=logo_part.format(src=escape(offer.marketplace_logo))
                if offer.marketplace_logo
                else "",
                marketplace=(
                    cheapest_on.format(name=escape(offer.marketplace_name))
                    if hit.has_other_offers
                    else escape(offer.marketplace_name)
                ),
                out_of_stock="" if offer.available else out_of_stock,
                offers=escape(card.offers_text),
                note=note_part.format(text=escape(notes[position])) if notes else "",
            )
        )
    pieces.append(parts["grid_close"])
    return Markup("".join(pieces))


def product_grid(
    cards: Sequence[ProductCard], notes: Sequence[str] | None = None, label: str | None = None
) -> Markup:
    """The template global: the current application's fragment, filled with `cards`."""
    return render_grid(_parts(), cards, notes, label)
