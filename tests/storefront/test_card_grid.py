"""The card grid from its precompiled fragment (storefront/catalog/card_grid.py): every value a
marketplace sends is escaped, and each of the card's variants renders as the layout expects."""

from __future__ import annotations

import re
from decimal import Decimal

from flask import Flask
from markupsafe import Markup

from search_index.listings import ProductHit, ShownOffer
from storefront.catalog.card_grid import FRAGMENT, parse_fragment, product_grid
from storefront.catalog.cards import ProductCard

EVIL = '<script>alert("x")</script>&'


def make_card(**changes: object) -> ProductCard:
    offer = ShownOffer(
        id="o-1",
        marketplace="kiondo",
        marketplace_name=str(changes.pop("marketplace_name", "Kiondo Market")),
        marketplace_logo=changes.pop("marketplace_logo", "/static/logos/kiondo.svg"),  # type: ignore[arg-type]
        price_minor=1014900,
        currency="KES",
        price_usd_minor=7837,
        available=bool(changes.pop("available", True)),
    )
    hit = ProductHit(
        group_id="g-1",
        title="Sony WH-1000XM5",
        title_matches=(),
        brand="Sony",
        category="Headphones",
        image_url=None,
        offer_count=int(changes.pop("offer_count", 3)),  # type: ignore[call-overload]
        marketplace_count=2,
        rating=changes.pop("rating", Decimal("4.5")),  # type: ignore[arg-type]
        rating_count=1234,
        offer=offer,
    )
    fields: dict[str, object] = {
        "hit": hit,
        "title_html": Markup("<mark>Sony</mark> WH-1000XM5"),
        "url": "/product/g-1",
        "image_url": "https://img.example/sony.jpg",
        "display_price_minor": 7837,
        "price_text": "$78.37",
        "original_price_text": "KES10,149.00",
        "offers_text": "3 offers on 2 marketplaces",
        "rating_text": "1,234 reviews",
    }
    fields.update(changes)
    return ProductCard(**fields)  # type: ignore[arg-type]


def test_a_card_shows_its_parts(app: Flask) -> None:
    with app.app_context():
        html = str(product_grid([make_card()], label="Search results"))

    assert html.startswith('<ol class="product-grid" aria-label="Search results">')
    assert html.endswith("</li>\n</ol>")
    assert '<article class="product-card">' in html
    assert '<h3 class="product-card-title"><mark>Sony</mark> WH-1000XM5</h3>' in html
    assert html.count('href="/product/g-1"') == 2
    assert '<strong>$78.37</strong> <span class="original-price">KES10,149.00</span></p>' in html
    assert '<span aria-hidden="true">★</span> 4.5<span class="visually-hidden">' in html
    assert '<span class="muted">(1,234 reviews)</span>' in html
    assert 'src="/static/logos/kiondo.svg"' in html
    assert "<span>Cheapest on Kiondo Market</span>" in html
    assert "Out of stock" not in html and "deal-saving" not in html


def test_the_variants_a_card_can_take(app: Flask) -> None:
    card = make_card(
        available=False,
        rating=None,
        rating_text=None,
        original_price_text=None,
        marketplace_logo=None,
        offer_count=1,
    )
    with app.app_context():
        html = str(product_grid([card, make_card()], notes=["Save $5.00 (10%)", "Save $1.00"]))

    assert html.startswith('<ol class="product-grid">')
    assert '<article class="product-card is-unavailable">' in html
    assert '<p class="rating muted">No rating published</p>' in html
    assert "<strong>$78.37</strong></p>" in html
    assert "<span>Kiondo Market</span>" in html  # one offer: no "Cheapest on"
    assert ' <span class="badge badge-muted">Out of stock</span>' in html
    assert html.count('<p class="deal-saving">') == 2
    assert '</article>\n    <p class="deal-saving">Save $5.00 (10%)</p></li>' in html
    assert len(re.findall(r"<li><article", html)) == 2


def test_nothing_a_marketplace_sends_becomes_markup(app: Flask) -> None:
    card = make_card(
        marketplace_name=EVIL,
        marketplace_logo=f'x" onerror="{EVIL}',
        image_url=f'x" onerror="{EVIL}',
        url=f"/product/{EVIL}",
        price_text=EVIL,
        original_price_text=EVIL,
        offers_text=EVIL,
        rating_text=EVIL,
    )
    with app.app_context():
        html = str(product_grid([card], notes=[EVIL], label=EVIL))

    assert "<script>" not in html and 'onerror="' not in html
    # Eleven places: the URL twice, image, logo, name, price, original, offers, reviews, note, label.
    assert html.count("&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&amp;") == 11


def test_the_fragment_names_every_part(app: Flask) -> None:
    environment = app.jinja_env
    assert environment.loader is not None
    source = environment.loader.get_source(environment, FRAGMENT)[0]
    parts = parse_fragment(source)
    # No part keeps a trailing line break or loses its leading one.
    assert parts["cheapest_on"] == "Cheapest on {name}"
    assert parts["card"].startswith("\n  <li><article")
    assert parts["grid_close"] == "\n</ol>"
