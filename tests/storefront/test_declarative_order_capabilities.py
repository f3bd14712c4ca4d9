"""A declarative marketplace's capabilities come from its configuration (adapters/declarative.py
sets them per instance: an `orders` table adds ordering), not from the adapter class, both when
marketplaces.toml is seeded (commerce.catalog_sync) and when an admin saves the form
(commerce.marketplace_admin). Both backends."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from adapters.registry import load_marketplaces
from commerce.catalog_sync import seed_marketplaces
from commerce.marketplace_access import configured_options
from commerce.marketplace_admin import (
    MarketplaceEditError,
    MarketplaceInput,
    create_marketplace,
    update_marketplace,
)
from commerce.models import Marketplace
from onecart.settings import get_settings

BAZAAR = """
[[marketplace]]
slug = "bazaar"
name = "Euro Bazaar"
kind = "declarative"
base_url = "${ONECART_SANDBOX_URL}/bazaar"
currency = "EUR"
country = "FR"
match_identifier = "gtin"

[marketplace.options]
list_path = "api/v1/listings"
pagination = "cursor"
cursor_path = "next_cursor"
records_path = "data.items"
price_encoding = "amount_currency_text"

[marketplace.options.fields]
external_id = "sku"
title = "name"
price = "pricing.display"
"""

BAZAAR_ORDERS = """
[marketplace.options.orders]
create_path = "api/v1/orders"
reference_key = "external_reference"
lines_key = "items"
line_id_key = "sku"
line_quantity_key = "quantity"
order_record_path = "data"
id_field = "id"
status_field = "status"
get_path = "api/v1/orders/{id}"
cancel_path = "api/v1/orders/{id}/cancel"
"""

# A second declarative marketplace left catalog-only: no orders table, no ordering.
CATALOG_ONLY = (
    BAZAAR.replace('"bazaar"', '"atelier"')
    .replace("Euro Bazaar", "Atelier")
    .replace("/bazaar", "/atelier")
)

ENV = {"ONECART_SANDBOX_URL": "http://127.0.0.1:8800"}


@pytest.fixture
def marketplaces_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A marketplaces.toml with Bazaar's order API configured and a catalog-only Atelier, made
    the settings' file (what the admin form reads the options from)."""
    path = tmp_path / "marketplaces.toml"
    path.write_text(BAZAAR + BAZAAR_ORDERS + CATALOG_ONLY, encoding="utf-8")
    monkeypatch.setenv("ONECART_MARKETPLACES", str(path))
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    configured_options.cache_clear()
    yield path
    get_settings.cache_clear()
    configured_options.cache_clear()


def _marketplace(session: Session, slug: str) -> Marketplace:
    marketplace = session.scalar(sa.select(Marketplace).where(Marketplace.slug == slug))
    assert marketplace is not None
    return marketplace


def test_seeding_a_declarative_marketplace_with_an_order_api_gives_it_ordering(
    db_session: Session, marketplaces_file: Path
) -> None:
    seed_marketplaces(db_session, load_marketplaces(marketplaces_file, env=ENV))
    db_session.commit()

    bazaar = _marketplace(db_session, "bazaar")
    assert bazaar.capabilities == ["catalog", "order", "track", "cancel"]
    # Without an orders table it stays a hand-off.
    assert _marketplace(db_session, "atelier").capabilities == ["catalog"]


def test_reseeding_follows_an_orders_table_added_or_removed(
    db_session: Session, marketplaces_file: Path, tmp_path: Path
) -> None:
    catalog_only = tmp_path / "catalog-only.toml"
    catalog_only.write_text(BAZAAR, encoding="utf-8")
    seed_marketplaces(db_session, load_marketplaces(catalog_only, env=ENV))
    db_session.commit()
    assert _marketplace(db_session, "bazaar").capabilities == ["catalog"]

    report = seed_marketplaces(db_session, load_marketplaces(marketplaces_file, env=ENV))
    db_session.commit()
    assert report.marketplaces_updated == 1
    assert "order" in _marketplace(db_session, "bazaar").capabilities

    seed_marketplaces(db_session, load_marketplaces(catalog_only, env=ENV))
    db_session.commit()
    assert _marketplace(db_session, "bazaar").capabilities == ["catalog"]


def _form(**changes: object) -> MarketplaceInput:
    fields: dict[str, object] = {
        "name": "Euro Bazaar",
        "kind": "declarative",
        "api_base_url": "http://127.0.0.1:8800/bazaar",
        "currency": "EUR",
        "country": "FR",
        "relation_identifier": "gtin",
    }
    fields.update(changes)
    return MarketplaceInput(**fields)  # type: ignore[arg-type]


def test_the_admin_form_gives_a_configured_order_api_its_capabilities(
    db_session: Session, marketplaces_file: Path
) -> None:
    bazaar = create_marketplace(db_session, "bazaar", _form(), allow_private_hosts=True)
    db_session.commit()
    assert bazaar.capabilities == ["catalog", "order", "track", "cancel"]

    # An edit keeps them (it used to reset the marketplace to catalog-only).
    update_marketplace(db_session, bazaar, _form(description="Paris"), allow_private_hosts=True)
    db_session.commit()
    assert _marketplace(db_session, "bazaar").capabilities == [
        "catalog",
        "order",
        "track",
        "cancel",
    ]

    atelier = create_marketplace(
        db_session,
        "atelier",
        _form(name="Atelier", api_base_url="http://127.0.0.1:8800/atelier"),
        allow_private_hosts=True,
    )
    assert atelier.capabilities == ["catalog"]


def test_a_declarative_marketplace_the_file_does_not_describe_is_refused(
    db_session: Session, marketplaces_file: Path
) -> None:
    # The admin form has no declarative options of its own: a slug marketplaces.toml does not
    # describe could not be read at all (no list_path), so the form refuses it rather than
    # saving a marketplace that is neither a catalog nor an order API.
    with pytest.raises(MarketplaceEditError, match=r"only marketplaces\.toml can give"):
        create_marketplace(db_session, "elsewhere", _form(), allow_private_hosts=True)
    # The format is checked on a row built for it alone, never added to the session.
    assert not db_session.new
    assert db_session.scalar(sa.select(Marketplace).filter_by(slug="elsewhere")) is None
