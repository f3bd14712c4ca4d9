"""The cart's one-click hand-off: a marketplace whose adapter can open several items in one of
its own carts (Amazon's add-to-cart form) gets one button with exactly that URL; others keep
their per-item links. No request leaves OneCart to render it (the URL is built, not fetched)."""

from __future__ import annotations

from decimal import Decimal
from html import unescape

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from commerce.handoff import handoff_cart_url
from commerce.models import Marketplace, Product
from tests.storefront.sample_catalog import insert_sample_catalog


@pytest.fixture
def amazon_products(db_session: Session) -> dict[str, Product]:
    catalog = insert_sample_catalog(db_session)
    amazon = Marketplace(
        slug="amazon",
        name="Amazon",
        kind="amazon",
        api_base_url="http://127.0.0.1:9/amazon",
        logo="/static/logos/amazon.svg",
        rating=Decimal("4.7"),
        active=True,
        country="US",
        currency="USD",
        capabilities=["catalog", "live_offer"],
        relation_identifier="asin",
    )
    db_session.add(amazon)
    db_session.flush()
    products = {}
    for asin, title, price in (
        ("B0BXYCS74H", "Sony WH-1000XM5 Headphones", 29899),
        ("B07FZ8S74R", "Echo Dot (3rd Gen)", 2499),
    ):
        product = Product(
            marketplace_id=amazon.id,
            external_id=asin,
            title=title,
            price_minor=price,
            currency="USD",
            product_url=f"http://127.0.0.1:9/amazon/dp/{asin}?tag=onecart-20",
            available=True,
        )
        db_session.add(product)
        products[asin] = product
    db_session.commit()
    return {**products, **catalog}


def add(client: FlaskClient, product: Product, quantity: int) -> None:
    response = client.post(
        "/cart/add", data={"product_id": str(product.id), "quantity": str(quantity)}
    )
    assert response.status_code == 303


def test_amazon_lines_get_one_button_with_the_exact_cart_url(
    client: FlaskClient, amazon_products: dict[str, Product]
) -> None:
    add(client, amazon_products["B0BXYCS74H"], 2)
    add(client, amazon_products["B07FZ8S74R"], 1)
    add(client, amazon_products["1001"], 1)  # ShopWave: ordered through OneCart, no button

    html = client.get("/cart").get_data(as_text=True)

    # In the cart's own order (the latest addition first), numbered from 1.
    expected = (
        "http://127.0.0.1:9/amazon/gp/aws/cart/add.html?AssociateTag=onecart-20"
        "&ASIN.1=B07FZ8S74R&Quantity.1=1&ASIN.2=B0BXYCS74H&Quantity.2=2"
    )
    assert html.count("data-handoff-cart=") == 1
    assert f'href="{expected.replace("&", "&amp;")}"' in html
    assert "Open these items in one Amazon cart" in unescape(html)


def test_marketplaces_without_a_cart_form_or_with_an_order_api_get_no_button(
    db_session: Session, amazon_products: dict[str, Product]
) -> None:
    feed_lines = [(p.id, 1) for p in amazon_products.values() if p.marketplace.slug == "naijamall"]
    order_lines = [(p.id, 1) for p in amazon_products.values() if p.marketplace.slug == "shopwave"]
    assert feed_lines and order_lines
    assert handoff_cart_url(db_session, "naijamall", feed_lines) is None
    assert handoff_cart_url(db_session, "shopwave", order_lines) is None
    assert handoff_cart_url(db_session, "amazon", []) is None
    assert handoff_cart_url(db_session, "nowhere", [(1, 1)]) is None
    # A line Amazon's form cannot take leaves the page with its per-item links.
    too_many = [(amazon_products["B07FZ8S74R"].id, 1000)]
    assert handoff_cart_url(db_session, "amazon", too_many) is None


def test_a_single_handoff_item_is_spoken_of_in_the_singular(
    client: FlaskClient, amazon_products: dict[str, Product]
) -> None:
    add(client, amazon_products["B07FZ8S74R"], 1)

    text = unescape(client.get("/cart").get_data(as_text=True))

    assert "Open this item in one Amazon cart" in text
    assert "You pay Amazon there; OneCart charges nothing for it." in text
    assert "This marketplace takes no orders through OneCart: open the item and buy it" in text
    assert "charges nothing for them" not in text and "These marketplaces" not in text
