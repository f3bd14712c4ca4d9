"""An Offer read through a configured field mapping: the declarative JSON adapter (fields as
dotted paths) and the CSV feed (fields as column names) differ in how they reach a raw value,
not in what they make of it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from adapters.base import Offer, parse_rating
from adapters.fields import (
    availability_from_value,
    category_leaf,
    description_text,
    first_of,
    naming_the_record,
    optional_count,
    optional_int,
    optional_text,
    optional_url,
    require_external_id,
    require_title,
)
from adapters.gtin import normalize_gtin


def offer_from_mapped_fields(
    marketplace: str, field: Callable[[str], Any], price: Callable[[], tuple[int, str]]
) -> Offer:
    """The Offer whose raw values `field(name)` reads by Offer field name (None where the
    mapping names no source) and whose (price in minor units, currency) `price()` reads.

    A record is checked in the order every adapter rejects: external id, title, then price
    (`price` is called only after the first two passed). Without an availability value, an offer
    is available unless its stock says none is left; a negative stock is no stock figure.
    """
    external_id = require_external_id(field("external_id"), marketplace=marketplace)
    with naming_the_record(external_id):
        title = require_title(field("title"), marketplace=marketplace)
        price_minor, currency = price()
        stock = optional_int(field("stock"))
        available_value = field("available")
        if available_value is None:
            available = stock > 0 if stock is not None else True
        else:
            available = bool(availability_from_value(available_value))
        return Offer(
            marketplace=marketplace,
            external_id=external_id,
            title=title,
            price_minor=price_minor,
            currency=currency,
            description=description_text(field("description")),
            image_url=optional_url(first_of(field("image_url"))),
            product_url=optional_url(field("product_url")),
            category=category_leaf(field("category")),
            brand=optional_text(field("brand")),
            model=optional_text(field("model")),
            gtin=normalize_gtin(field("gtin")),
            mpn=optional_text(field("mpn")),
            sku=optional_text(field("sku")),
            rating=parse_rating(field("rating")),
            rating_count=optional_count(field("rating_count")),
            available=available,
            stock=stock if stock is None or stock >= 0 else None,
        )
