"""What the search benchmarks measure on: a `products` index of the sandbox world's offers
(and its product index), and a migrated storefront DB with the marketplaces and FX rates."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from typing import Any

SEED = 42


def world_documents(total_offers: int) -> Iterator[dict[str, Any]]:
    """Search documents for the sandbox world's offers, grouped by world product (as matching
    would), converted with the world's own exchange rates."""
    from sandbox.marketplaces import GBP_PER_USD, MARKETPLACES
    from sandbox.world import World
    from search_index.documents import build_document, convert_to_usd_minor

    world = World(SEED, total_offers)
    fx = {m.currency: m.usd_rate for m in MARKETPLACES if m.currency != "USD"}
    fx["GBP"] = GBP_PER_USD
    offers = [offer for m in MARKETPLACES for offer in world.offers(m.slug)]
    groups: dict[str, dict[str, Any]] = {}
    for offer in offers:
        usd = convert_to_usd_minor(offer.price_minor, offer.currency, fx)
        group = groups.setdefault(offer.product.key, {"size": 0, "markets": set(), "min": usd})
        group["size"] += 1
        group["markets"].add(offer.slug)
        group["min"] = min(group["min"], usd)
    names = {m.slug: m.name for m in MARKETPLACES}
    for offer in offers:
        group = groups[offer.product.key]
        product = offer.product
        yield build_document(
            {
                "marketplace": offer.slug,
                "external_id": f"{offer.slug}-{offer.index}",
                "title": offer.title,
                "description": " ".join(product.description_sentences()),
                "price_minor": offer.price_minor,
                "currency": offer.currency,
                "image_url": None,
                "product_url": None,
                "category": product.category.name,
                "brand": product.brand,
                "model": product.model,
                "gtin": product.gtin if offer.shows_gtin else None,
                "rating": Decimal(offer.rating_centi) / 100,
                "rating_count": offer.review_count,
                "available": offer.available,
                "content_hash": f"{offer.slug}-{offer.index}-{offer.price_version}",
                "updated_at": offer.updated_at,
            },
            marketplace={
                "slug": offer.slug,
                "name": names[offer.slug],
                "logo": f"/static/logos/{offer.slug}.svg",
            },
            group={
                "group_id": f"g-{product.key}",
                "group_size": group["size"],
                "group_marketplaces": len(group["markets"]),
                "group_min_price_usd_minor": group["min"],
            },
            fx_usd_rates=fx,
            history=None,
        )


def build_index(
    meili_url: str, api_key: str, index_uid: str, total_offers: int
) -> tuple[float, float, int]:
    """Index the world's documents with the contract's settings, then the product index built
    from them; returns (offers seconds, product index seconds, product documents)."""
    from search_index.groups import sync_group_index
    from search_index.indexing import sync_index

    client = processes_client(meili_url, api_key)
    documents = list(world_documents(total_offers))
    started = time.perf_counter()
    result = sync_index(client, index_uid, documents, full_rebuild=True, batch_size=10_000)
    offers_seconds = time.perf_counter() - started
    print(f"indexed {result.sent:,} offer documents in {offers_seconds:.1f} s")
    started = time.perf_counter()
    groups = sync_group_index(client, index_uid, documents, full_rebuild=True)
    group_seconds = time.perf_counter() - started
    print(f"indexed {groups.sent:,} product documents in {group_seconds:.1f} s")
    return offers_seconds, group_seconds, groups.sent


def processes_client(meili_url: str, api_key: str) -> Any:
    import meilisearch

    return meilisearch.Client(meili_url, api_key, timeout=600)


def site_marketplaces(database_url: str) -> tuple[str, ...]:
    """The active marketplaces' slugs, as the site reads them for its facet."""
    from commerce.catalog import active_marketplaces
    from commerce.db import session_scope

    with session_scope(database_url) as session:
        return tuple(m.slug for m in active_marketplaces(session))


def prepare_database(database_url: str) -> None:
    """A migrated storefront DB with the marketplaces and today's FX rates (what pages read)."""
    from adapters.registry import load_marketplaces
    from commerce.catalog_sync import seed_marketplaces
    from commerce.db import session_scope
    from commerce.models import FxRate
    from sandbox.marketplaces import GBP_PER_USD, MARKETPLACES
    from storefront.db_migrate import upgrade_database

    upgrade_database(database_url)
    with session_scope(database_url) as session:
        seed_marketplaces(session, load_marketplaces())
        rates = {m.currency: m.usd_rate for m in MARKETPLACES if m.currency != "USD"}
        rates["GBP"] = GBP_PER_USD
        for currency, rate in rates.items():
            session.add(FxRate(currency=currency, rate=rate, as_of=date.today(), source="bench"))
