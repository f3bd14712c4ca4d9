"""Per-request facts about the shopper that several blueprints need: the display currency, the
exchange rates to convert with, and the search client.

Rates and marketplace names are read from the DB at most once per `FX_CACHE_SECONDS` per process
(they change once a pipeline run); the Meilisearch client is created once per application.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Generic, TypeVar

import meilisearch
from babel.numbers import get_currency_symbol
from flask import current_app, session
from flask_login import current_user

from commerce.cart_pricing import charged_price_minor
from commerce.catalog import active_marketplaces, disabled_marketplace_slugs
from commerce.fx import USD, FxTable, load_fx_table
from onecart.money import currency_exponent, is_iso_currency
from search_index.cache import ResultCache
from search_index.client import SearchUnavailable, make_client
from search_index.filters import PriceScale
from search_index.search_keys import SearchKeyError, derive_search_key
from search_index.settings import group_index_uid
from storefront.current import request_globals, this_app
from storefront.database import db_session

FX_CACHE_SECONDS = 60.0
# How long a search answer is reused (SEARCH_CACHE_SECONDS; 0 turns the cache off). The index
# changes once per pipeline run, so half a minute of staleness is invisible to shoppers.
SEARCH_CACHE_SECONDS = 30.0
T = TypeVar("T")
DISPLAY_CURRENCY_SESSION_KEY = "display_currency"


@dataclass(slots=True)
class _Cached(Generic[T]):
    value: T
    loaded_at: float


def _cached(key: str, load: Callable[[], T]) -> T:
    """`load()`'s value, reused for FX_CACHE_SECONDS (config) per process and application.

    Rates and the marketplace list change once per pipeline run, and the search page would
    otherwise read them from the DB on every request.
    """
    app = this_app()
    ttl = float(app.config.get("FX_CACHE_SECONDS", FX_CACHE_SECONDS))
    cache: dict[str, _Cached[Any]] = app.extensions.setdefault("onecart_catalog_cache", {})
    entry = cache.get(key)
    now = time.monotonic()
    if entry is None or now - entry.loaded_at >= ttl:
        entry = _Cached(value=load(), loaded_at=now)
        cache[key] = entry
    return entry.value


def fx_table() -> FxTable:
    """The current exchange rates (cached per process for FX_CACHE_SECONDS)."""
    return _cached("fx", lambda: load_fx_table(db_session()))


def marketplace_names() -> dict[str, str]:
    """Active marketplaces' display names by slug (cached like the rates), for facet labels."""
    return _cached(
        "marketplace_names",
        lambda: {m.slug: m.name for m in active_marketplaces(db_session())},
    )


def disabled_marketplaces() -> frozenset[str]:
    """The slugs of marketplaces an admin disabled (cached like the names): readers of the
    offers index, which still holds their offers, leave them out."""
    return _cached(
        "disabled_marketplaces", lambda: frozenset(disabled_marketplace_slugs(db_session()))
    )


def forget_marketplaces() -> None:
    """Drop this process's cached marketplace names and disabled set (an admin just changed
    them; other processes follow within FX_CACHE_SECONDS)."""
    cache = current_app.extensions.get("onecart_catalog_cache", {})
    for key in ("marketplace_names", "disabled_marketplaces"):
        cache.pop(key, None)


def display_currency() -> str:
    """The currency prices are shown in: the account's choice, else the guest's, else USD.

    A currency without a published rate falls back to USD rather than showing blanks. Worked out
    once per request (a listing asks for it for every card).
    """
    per_request = request_globals()
    cached = per_request.get("onecart_display_currency")
    if cached is None:
        cached = per_request.onecart_display_currency = _choose_display_currency()
    return cached


def _choose_display_currency() -> str:
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
    """The application's Meilisearch client (created on first use), holding the site's
    read-only search key, never the master key (search_index.search_keys)."""
    client = current_app.extensions.get("onecart_search_client")
    if client is None:
        key = current_app.config.get("MEILI_SEARCH_KEY") or ""
        if not key:
            try:
                key = derive_search_key(
                    current_app.config["MEILI_URL"],
                    current_app.config["MEILI_MASTER_KEY"],
                    index_uid(),
                )
            except SearchKeyError as exc:  # tried again on the next request
                raise SearchUnavailable(str(exc), reason="unreachable") from exc
        client = make_client(current_app.config["MEILI_URL"], key)
        current_app.extensions["onecart_search_client"] = client
    return client


def search_cache() -> ResultCache:
    """The application's cache of search answers (per process; see SEARCH_CACHE_SECONDS)."""
    cache = current_app.extensions.get("onecart_search_cache")
    if cache is None:
        ttl = float(current_app.config.get("SEARCH_CACHE_SECONDS", SEARCH_CACHE_SECONDS))
        cache = ResultCache(ttl_seconds=ttl)
        current_app.extensions["onecart_search_cache"] = cache
    return cache


def index_uid() -> str:
    """The offers index the site reads (MEILI_INDEX): product pages and price drops."""
    return str(current_app.config["MEILI_INDEX"])


def product_index_uid() -> str:
    """The product index listings read (MEILI_INDEX + "_groups", built beside the offers)."""
    return group_index_uid(index_uid())


def display_money_minor(minor: int | None, currency: str | None) -> int | None:
    """An amount converted to the display currency, or None when it cannot be converted."""
    if minor is None or not currency:
        return None
    return fx_table().convert_or_none(int(minor), currency, display_currency())


def display_charged_minor(minor: int | None, currency: str | None) -> int | None:
    """An amount in the display currency as the cart and checkout show it (converted, then
    rounded down to the card amount step: commerce.cart_pricing.charged_price_minor), or None
    when it cannot be converted. Pages that echo a cart line (the order page's hand-off items)
    use it, so the shopper reads there the "≈ €…" they read at checkout."""
    if minor is None or not currency:
        return None
    return charged_price_minor(fx_table(), int(minor), currency, display_currency())


@lru_cache(maxsize=256)
def _currency_display(currency: str) -> tuple[str, int]:
    return get_currency_symbol(currency, locale="en_US"), currency_exponent(currency)


def format_price(minor: int | None, currency: str | None) -> str:
    """The same text as storefront.format_money ("$1,234.50", "KES1,500.00", "¥1,235"), about
    twenty times faster: a listing formats some fifty prices per page.

    Exact: integer arithmetic on the minor units, with the currency's own number of decimals.
    """
    if minor is None or not currency or not is_iso_currency(currency):
        return "—"
    symbol, exponent = _currency_display(currency)
    minor = int(minor)
    units, fraction = divmod(abs(minor), 10**exponent)
    decimals = f".{fraction:0{exponent}d}" if exponent else ""
    return f"{'-' if minor < 0 else ''}{symbol}{units:,}{decimals}"
