"""Per-request facts about the shopper that several blueprints need: the display currency, the
exchange rates to convert with, and the search client.

Rates are read from the DB at most once per `FX_CACHE_SECONDS` per process (they change once a
pipeline run); the Meilisearch client is created once per application.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import meilisearch
from flask import current_app, session
from flask_login import current_user

from commerce.fx import USD, FxTable, load_fx_table
from search_index.queries import PriceScale, make_client
from storefront.database import db_session

FX_CACHE_SECONDS = 60.0
DISPLAY_CURRENCY_SESSION_KEY = "display_currency"


@dataclass(slots=True)
class _CachedRates:
    table: FxTable
    loaded_at: float


def fx_table() -> FxTable:
    """The current exchange rates (cached per process for FX_CACHE_SECONDS)."""
    ttl = float(current_app.config.get("FX_CACHE_SECONDS", FX_CACHE_SECONDS))
    cached: _CachedRates | None = current_app.extensions.get("onecart_fx_cache")
    now = time.monotonic()
    if cached is None or now - cached.loaded_at >= ttl:
        cached = _CachedRates(table=load_fx_table(db_session()), loaded_at=now)
        current_app.extensions["onecart_fx_cache"] = cached
    return cached.table


def display_currency() -> str:
    """The currency prices are shown in: the account's choice, else the guest's, else USD.

    A currency without a published rate falls back to USD rather than showing blanks.
    """
    if current_user.is_authenticated:
        chosen = getattr(current_user, "display_currency", None) or USD
    else:
        chosen = session.get(DISPLAY_CURRENCY_SESSION_KEY) or USD
    return chosen if fx_table().has(chosen) else USD


def price_scale() -> PriceScale:
    """How the display currency converts to the index's USD prices (for price filters)."""
    currency = display_currency()
    return PriceScale(currency=currency, per_usd=fx_table().rate(USD, currency))


def search_client() -> meilisearch.Client:
    """The application's Meilisearch client (created on first use)."""
    client = current_app.extensions.get("onecart_search_client")
    if client is None:
        client = make_client(
            current_app.config["MEILI_URL"], current_app.config["MEILI_MASTER_KEY"]
        )
        current_app.extensions["onecart_search_client"] = client
    return client


def index_uid() -> str:
    """The products index the site reads (MEILI_INDEX)."""
    return str(current_app.config["MEILI_INDEX"])


def display_money_minor(minor: int | None, currency: str | None) -> int | None:
    """An amount converted to the display currency, or None when it cannot be converted."""
    if minor is None or not currency:
        return None
    return fx_table().convert_or_none(int(minor), currency, display_currency())
