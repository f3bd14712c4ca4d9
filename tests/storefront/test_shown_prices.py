"""One price per item in the display currency: the listing card and the product page show what
the cart and the checkout will charge. In three-decimal currencies (KWD) a card can only be
charged in steps of 10 fils, so the cart rounds down to that step; the pages round the same way
(commerce.cart_pricing.charged_price_minor) instead of showing the exact conversion."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal

import pytest
from flask import Flask
from sqlalchemy.orm import Session

from commerce.cart_pricing import CartEntry, price_cart
from commerce.catalog import group_offers
from commerce.fx import FxTable
from commerce.models import Marketplace, Product
from search_index.listings import ProductHit, ShownOffer
from storefront.catalog import cards

# 289.99 USD is 88.836 KWD at this rate; the cart charges 88.830 (steps of 10 fils).
FX = FxTable(per_usd={"KWD": Decimal("0.30634")})
PRICE_USD_MINOR = 28999


def _cart_price(product: Product, marketplace: Marketplace, currency: str) -> int | None:
    cart = price_cart([CartEntry(product, marketplace, 1)], currency=currency, fx=FX)
    [group] = cart.groups
    [line] = group.lines
    return line.converted_minor


@pytest.fixture
def offer(
    make_marketplace: Callable[..., Marketplace], make_product: Callable[..., Product]
) -> Iterator[tuple[Product, Marketplace]]:
    marketplace = make_marketplace()
    yield make_product(marketplace, price_minor=PRICE_USD_MINOR), marketplace


@pytest.mark.parametrize("currency", ["KWD", "USD"])
def test_the_product_page_shows_the_price_the_cart_charges(
    db_session: Session, offer: tuple[Product, Marketplace], currency: str
) -> None:
    product, marketplace = offer
    assert product.relation_token is not None

    [shown] = group_offers(db_session, product.relation_token, fx=FX, display_currency=currency)

    assert shown.display_price_minor == _cart_price(product, marketplace, currency)
    assert shown.display_price_minor == {"KWD": 88830, "USD": PRICE_USD_MINOR}[currency]


def test_the_listing_card_shows_the_price_the_cart_charges(
    app: Flask,
    offer: tuple[Product, Marketplace],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    product, marketplace = offer
    hit = ProductHit(
        group_id="g-1",
        title=product.title,
        title_matches=(),
        brand=None,
        category=None,
        image_url=None,
        offer_count=1,
        marketplace_count=1,
        rating=None,
        rating_count=0,
        offer=ShownOffer(
            id="1",
            marketplace=marketplace.slug,
            marketplace_name=marketplace.name,
            marketplace_logo=None,
            price_minor=PRICE_USD_MINOR,
            currency="USD",
            price_usd_minor=PRICE_USD_MINOR,
            available=True,
        ),
    )
    monkeypatch.setattr(cards, "display_currency", lambda: "KWD")
    monkeypatch.setattr(cards, "fx_table", lambda: FX)

    with app.test_request_context("/search"):
        [card] = cards.build_cards([hit])

    assert card.display_price_minor == _cart_price(product, marketplace, "KWD") == 88830
    assert card.price_text == "KWD88.830"
    assert card.original_price_text == "$289.99"
