"""The checkout benchmark's world: the three cart marketplaces with their sandbox credentials,
a storefront DB seeded with their live offers, shoppers, and their carts."""

from __future__ import annotations

import os
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
CART_MARKETPLACES = ("shopwave", "kiondo", "fakestore")
CREDENTIALS = {
    "ONECART_MARKETPLACE_KEY_SHOPWAVE": "shpat_bench",
    "ONECART_MARKETPLACE_KEY_KIONDO": "ck_bench:cs_bench",
    "ONECART_MARKETPLACE_KEY_BAZAAR": "bazaar-bench",
}
FX_RATES = {"KES": "129.5", "EUR": "0.92", "NGN": "1550", "GBP": "0.79"}
OFFERS_PER_MARKETPLACE = 40
PASSWORD = "bench-Password-42"


def load_bench_marketplaces(sandbox_url: str) -> list[Any]:
    """marketplaces.toml's configurations pointed at the bench's sandbox, with its credentials."""
    from adapters.registry import load_marketplaces

    env = {**os.environ, **CREDENTIALS, "ONECART_SANDBOX_URL": sandbox_url}
    return load_marketplaces(REPO_ROOT / "marketplaces.toml", env)


def seed_database(db_url: str, sandbox_url: str) -> dict[str, list[int]]:
    """Migrate, then seed marketplaces (with API keys), FX rates and live offers; returns the
    product ids per marketplace."""
    import sqlalchemy as sa

    from adapters.base import BadPayload
    from adapters.registry import build_adapter
    from commerce.catalog_sync import seed_marketplaces
    from commerce.db import get_session_factory
    from commerce.models import FxRate, Marketplace, Product
    from storefront.db_migrate import upgrade_database

    upgrade_database(db_url)
    configs = load_bench_marketplaces(sandbox_url)
    products: dict[str, list[int]] = {}
    with get_session_factory(db_url)() as session, session.begin():
        seed_marketplaces(session, configs)
        for currency, rate in FX_RATES.items():
            session.merge(
                FxRate(currency=currency, rate=Decimal(rate), as_of=date.today(), source="bench")
            )
        markets = {m.slug: m for m in session.scalars(sa.select(Marketplace))}
        for config in configs:
            if config.slug not in CART_MARKETPLACES:
                continue
            adapter = build_adapter(config)
            rows: list[Product] = []
            for page in adapter.fetch_catalog_pages():
                for record in page.records:
                    try:
                        offer = adapter.normalize_record(record)
                    except BadPayload:
                        continue
                    if not offer.available or offer.currency != config.currency:
                        continue
                    if "\ufffd" in offer.title or any(
                        r.external_id == offer.external_id for r in rows
                    ):
                        continue
                    rows.append(
                        Product(
                            marketplace_id=markets[config.slug].id,
                            external_id=offer.external_id,
                            title=offer.title[:300],
                            price_minor=offer.price_minor,
                            currency=offer.currency,
                            product_url=offer.product_url,
                            available=True,
                        )
                    )
                    if len(rows) >= OFFERS_PER_MARKETPLACE:
                        break
                if len(rows) >= OFFERS_PER_MARKETPLACE:
                    break
            adapter.close()  # type: ignore[attr-defined]
            session.add_all(rows)
            session.flush()
            products[config.slug] = [row.id for row in rows]
    return products


def make_shoppers(db_url: str, count: int, run: str) -> list[tuple[int, str]]:
    """(user id, username) of `count` new shoppers."""
    from commerce.accounts import register_user
    from commerce.db import get_session_factory

    shoppers = []
    with get_session_factory(db_url)() as session, session.begin():
        for index in range(count):
            username = f"bench{run}x{index}"
            user = register_user(
                session, username=username, email=f"{username}@example.com", password=PASSWORD
            )
            session.flush()
            shoppers.append((user.id, username))
    return shoppers


def fill_cart(db_url: str, user_id: int, products: dict[str, list[int]], turn: int) -> None:
    """One line from each cart marketplace (a different offer each turn)."""
    from commerce.db import get_session_factory
    from commerce.models import CartItem, Product

    with get_session_factory(db_url)() as session, session.begin():
        for slug in CART_MARKETPLACES:
            ids = products[slug]
            product = session.get(Product, ids[(user_id * 7 + turn) % len(ids)])
            assert product is not None
            session.add(
                CartItem(
                    user_id=user_id,
                    product_id=product.id,
                    quantity=1,
                    price_seen_minor=product.price_minor,
                    currency_seen=product.currency,
                )
            )
