"""commerce.catalog_sync: the pipeline's catalog copied into the storefront DB (both backends)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from adapters.base import MarketplaceConfig
from adapters.registry import load_marketplaces
from commerce.catalog_sync import seed_marketplaces, sync_catalog
from commerce.models import FxRate, Marketplace, PricePoint, Product
from commerce.secrets import decrypt_secret

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@pytest.fixture
def configs() -> list[MarketplaceConfig]:
    """The real marketplaces.toml, with a Shopify token in the environment."""
    env = {
        "ONECART_SANDBOX_URL": "http://127.0.0.1:8800",
        "ONECART_MARKETPLACE_KEY_SHOPWAVE": "shpat_test_0000abcd",
    }
    return load_marketplaces(env=env)


def _offer(slug: str, external_id: str, **fields: Any) -> dict[str, Any]:
    row = {
        "marketplace": slug,
        "external_id": external_id,
        "title": f"Sony WH-1000XM5 ({slug} {external_id})",
        "description": "Noise cancelling headphones",
        "price_minor": 34999,
        "currency": "USD",
        "image_url": "http://127.0.0.1:8800/_sandbox/images/x.svg",
        "product_url": f"http://127.0.0.1:8800/{slug}/{external_id}",
        "category": "headphones",
        "brand": "Sony",
        "model": "WH-1000XM5",
        "gtin": "4548736132610",
        "mpn": "WH-1000XM5",
        "sku": "WH-1000XM5",
        "rating": Decimal("4.60"),
        "rating_count": 120,
        "available": True,
        "stock": 4,
    }
    row.update(fields)
    return row


def _products(session: Session) -> dict[tuple[str, str], Product]:
    rows = session.execute(sa.select(Marketplace.slug, Product).join(Product.marketplace)).all()
    return {(slug, product.external_id): product for slug, product in rows}


def test_seeding_creates_every_configured_marketplace_with_capabilities_and_encrypted_key(
    db_session: Session, configs: list[MarketplaceConfig]
) -> None:
    report = seed_marketplaces(db_session, configs)
    db_session.commit()

    # The six demo marketplaces plus Amazon and Sokoni (issue 13).
    assert report.marketplaces_created == len(configs) == 8
    shopwave = db_session.scalar(sa.select(Marketplace).where(Marketplace.slug == "shopwave"))
    assert shopwave is not None
    assert "catalog" in shopwave.capabilities and "order" in shopwave.capabilities
    assert shopwave.relation_identifier == "gtin"
    assert shopwave.api_key_env == "ONECART_MARKETPLACE_KEY_SHOPWAVE"
    assert "shpat" not in (shopwave.api_key_encrypted or "")
    assert decrypt_secret(shopwave.api_key_encrypted or "") == "shpat_test_0000abcd"
    assert shopwave.masked_api_key == "••••abcd"
    naija = db_session.scalar(sa.select(Marketplace).where(Marketplace.slug == "naijamall"))
    assert naija is not None and naija.capabilities == ["catalog"]
    amazon = db_session.scalar(sa.select(Marketplace).where(Marketplace.slug == "amazon"))
    assert amazon is not None and "order" not in amazon.capabilities
    assert amazon.relation_identifier == "asin"


def test_reseeding_keeps_admin_edits_and_refreshes_config_owned_fields(
    db_session: Session, configs: list[MarketplaceConfig]
) -> None:
    seed_marketplaces(db_session, configs)
    shopwave = db_session.scalar(sa.select(Marketplace).where(Marketplace.slug == "shopwave"))
    assert shopwave is not None
    shopwave.active = False
    shopwave.description = "Edited by an admin"
    shopwave.name = "ShopWave (admin)"
    shopwave.api_key_encrypted = None
    db_session.commit()

    changed = [
        dataclasses.replace(c, rating=Decimal("3.3"), api_key=None) if c.slug == "shopwave" else c
        for c in configs
    ]
    report = seed_marketplaces(db_session, changed)
    db_session.commit()

    assert report.marketplaces_created == 0
    assert shopwave.active is False
    assert shopwave.description == "Edited by an admin"
    assert shopwave.name == "ShopWave (admin)"
    assert shopwave.api_key_encrypted is None
    assert shopwave.rating == Decimal("3.30")


def test_sync_inserts_updates_removes_and_restores_offers(
    db_session: Session, configs: list[MarketplaceConfig]
) -> None:
    groups = {
        ("shopwave", "1"): ("g-0000000000000001", "gtin", Decimal("1.00")),
        ("dummymart", "7"): ("g-0000000000000001", "gtin", "1.00"),
    }
    first = sync_catalog(
        db_session,
        marketplaces=configs,
        offers=[_offer("shopwave", "1"), _offer("shopwave", "2"), _offer("dummymart", "7")],
        groups=groups,
    )
    db_session.commit()
    assert (first.products_inserted, first.products_ungrouped) == (3, 1)
    products = _products(db_session)
    assert products[("shopwave", "1")].relation_token == "g-0000000000000001"
    assert products[("dummymart", "7")].match_confidence == Decimal("1.00")
    assert products[("shopwave", "1")].rating == Decimal("4.60")

    second = sync_catalog(
        db_session,
        marketplaces=configs,
        offers=[_offer("shopwave", "1", price_minor=29999), _offer("dummymart", "7")],
        groups=groups,
    )
    db_session.commit()
    assert (second.products_updated, second.products_unchanged, second.products_removed) == (
        1,
        1,
        1,
    )
    products = _products(db_session)
    assert products[("shopwave", "1")].price_minor == 29999
    assert products[("shopwave", "2")].removed_at is not None
    assert not products[("shopwave", "2")].is_purchasable

    third = sync_catalog(
        db_session,
        marketplaces=configs,
        offers=[_offer("shopwave", "1", price_minor=29999), _offer("shopwave", "2")],
        groups=groups,
    )
    db_session.commit()
    assert third.products_restored == 1
    assert _products(db_session)[("shopwave", "2")].removed_at is None
    # dummymart sent nothing this time (a failed fetch): its offer is kept, not removed.
    assert _products(db_session)[("dummymart", "7")].removed_at is None


def test_explicitly_complete_marketplace_with_no_offers_loses_them(
    db_session: Session, configs: list[MarketplaceConfig]
) -> None:
    sync_catalog(
        db_session, marketplaces=configs, offers=[_offer("kiondo", "k1", currency="KES")], groups={}
    )
    report = sync_catalog(
        db_session, marketplaces=configs, offers=[], groups={}, complete_marketplaces=["kiondo"]
    )
    assert report.products_removed == 1


def test_unusable_rows_are_reported_with_reasons_and_the_rest_is_synced(
    db_session: Session, configs: list[MarketplaceConfig]
) -> None:
    report = sync_catalog(
        db_session,
        marketplaces=configs,
        offers=[
            _offer("nowhere", "1"),
            _offer("shopwave", ""),
            _offer("shopwave", "neg", price_minor=-5),
            _offer("shopwave", "float", price_minor=19.99),
            _offer("shopwave", "cur", currency="XYZ"),
            _offer("shopwave", "notitle", title="  "),
            _offer("shopwave", "ok", title="<script>alert(1)</script> Mug"),
            _offer("shopwave", "ok"),
        ],
        groups={},
    )
    db_session.commit()

    reasons = {row.key: row.reason for row in report.skipped}
    assert "unknown marketplace" in reasons["nowhere/1"]
    assert reasons["shopwave/"] == "missing external_id"
    assert "positive integer" in reasons["shopwave/neg"]
    assert "positive integer" in reasons["shopwave/float"]
    assert "unknown currency" in reasons["shopwave/cur"]
    assert reasons["shopwave/notitle"] == "missing title"
    assert "duplicate" in reasons["shopwave/ok"]
    assert report.products_inserted == 1
    # Markup is stored as text; templates escape it.
    assert _products(db_session)[("shopwave", "ok")].title == "<script>alert(1)</script> Mug"


def test_fx_rates_are_upserted_and_never_replaced_by_older_ones(
    db_session: Session, configs: list[MarketplaceConfig]
) -> None:
    rates = [
        {
            "base": "USD",
            "currency": "KES",
            "rate": Decimal("129.5"),
            "as_of": date(2026, 11, 20),
            "source": "ecb",
        },
        {
            "base": "USD",
            "currency": "EUR",
            "rate": "0.92000000",
            "as_of": "2026-11-20",
            "source": "ecb",
        },
        {"base": "EUR", "currency": "GBP", "rate": "0.85", "as_of": date(2026, 11, 20)},
        {"base": "USD", "currency": "NGN", "rate": "-1", "as_of": date(2026, 11, 20)},
    ]
    report = sync_catalog(db_session, marketplaces=configs, offers=[], groups={}, fx_rates=rates)
    db_session.commit()
    assert report.fx_rates_upserted == 2
    assert {row.key for row in report.skipped} == {"EUR->GBP", "USD->NGN"}

    older = [{"base": "USD", "currency": "KES", "rate": "100", "as_of": date(2026, 11, 1)}]
    sync_catalog(db_session, marketplaces=configs, offers=[], groups={}, fx_rates=older)
    db_session.commit()
    kes = db_session.get(FxRate, "KES")
    assert (
        kes is not None and kes.rate == Decimal("129.50000000") and kes.as_of == date(2026, 11, 20)
    )


def test_only_new_price_points_are_inserted(
    db_session: Session, configs: list[MarketplaceConfig]
) -> None:
    offers = [_offer("shopwave", "1")]
    points = [
        {"marketplace": "shopwave", "external_id": "1", "price_minor": 34999, "currency": "USD",
         "available": True, "observed_at": T0},
        {"marketplace": "shopwave", "external_id": "1", "price_minor": 29999, "currency": "USD",
         "available": True, "observed_at": (T0 + timedelta(days=1)).replace(tzinfo=None)},
        {"marketplace": "shopwave", "external_id": "missing", "price_minor": 100, "currency": "USD",
         "available": True, "observed_at": T0},
    ]  # fmt: skip
    first = sync_catalog(
        db_session, marketplaces=configs, offers=offers, groups={}, price_points=points
    )
    db_session.commit()
    assert first.price_points_inserted == 2
    assert [row.key for row in first.skipped] == ["shopwave/missing"]

    later = {**points[0], "price_minor": 27999, "observed_at": T0 + timedelta(days=2)}
    second = sync_catalog(
        db_session,
        marketplaces=configs,
        offers=offers,
        groups={},
        price_points=[*points[:2], later],
    )
    db_session.commit()
    assert second.price_points_inserted == 1
    history = db_session.scalars(sa.select(PricePoint).order_by(PricePoint.observed_at)).all()
    assert [p.price_minor for p in history] == [34999, 29999, 27999]
    assert all(p.observed_at.tzinfo is not None for p in history)


def test_sync_of_many_offers_goes_in_batches(
    db_session: Session, configs: list[MarketplaceConfig]
) -> None:
    offers = [_offer("bazaar", f"b{n}", currency="EUR") for n in range(2500)]
    report = sync_catalog(db_session, marketplaces=configs, offers=iter(offers), groups={})
    db_session.commit()
    assert report.products_inserted == 2500
    again = sync_catalog(db_session, marketplaces=configs, offers=iter(offers), groups={})
    assert again.products_unchanged == 2500 and again.products_inserted == 0
    assert again.as_metadata()["products_unchanged"] == 2500
