"""Where the catalog is served from: the search index, the storefront DB and the analysts' copy."""

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import dagster as dg

from onecart.progress import counted_noun
from pipelines.group_search_state import sync_group_index
from pipelines.resources import (
    MarketplacesResource,
    SearchIndexResource,
    StorefrontDatabaseResource,
    WarehouseResource,
)
from pipelines.search_state import sync_offer_index
from pipelines.search_sync import read_offer_vectors
from pipelines.storefront_sync import disabled_marketplaces, sync_storefront_catalog
from search_index.documents import document_id
from search_index.marketplace_visibility import refresh_marketplace_groups
from search_index.settings import (
    group_index_uid,
)
from warehouse.catalog import mark_live_marketplaces
from warehouse.connection import refresh_views
from warehouse.derived import read_latest_rates
from warehouse.published_products import FETCHES, PRODUCT_ROWS

SERVING_GROUP = "serving"
MAX_LOGGED_SKIPS = 20


class MissingFxRatesError(RuntimeError):
    """search_products ran before fx_rates ever did: prices cannot be put on one scale."""


@dg.asset(
    deps=["product_groups", "price_history", "fx_rates", "offer_embeddings"],
    group_name=SERVING_GROUP,
    kinds={"meilisearch"},
    # Two rebuilds at once would fight over the same `<index>_next`; dagster.yaml limits pools.
    pool="search_index",
)
def search_products(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    marketplaces: MarketplacesResource,
    search_index: SearchIndexResource,
    storefront_db: StorefrontDatabaseResource,
) -> dg.MaterializeResult:
    """The Meilisearch products index: one document per current offer (docs/data-contract.md).

    Rebuilt into `<index>_next` and swapped in without downtime when the index is missing or its
    settings changed; otherwise only documents whose content changed are sent and offers that
    disappeared are deleted, so a run without changes sends nothing. Only the offers whose
    document inputs changed since the last sync are read and built (pipelines/search_state.py).
    Offer embeddings (from offer_embeddings), when there are any, travel in each document's
    `_vectors.default`.

    Marketplaces an admin disabled in the storefront DB keep their offers here (readers leave
    them out by filter), but no group counts them: an offer's `group_size`,
    `group_marketplaces` and `group_min_price_usd_minor` are over the enabled marketplaces'
    offers, as in the product index.
    """
    with warehouse.connect() as conn:
        rates = read_latest_rates(conn)
        vectors = read_offer_vectors(conn)
        marketplace_cards = _marketplace_cards(conn)
    if rates is None:
        raise MissingFxRatesError("fx_rates holds no rates yet: materialize fx_rates first")
    # Offers of a marketplace that was removed from marketplaces.toml (or deactivated) stay in
    # the warehouse for analysts but leave the index: nobody can buy them any more.
    active = [config.slug for config in marketplaces.configs()]
    disabled = disabled_marketplaces(storefront_db.database_url)
    client = search_index.client()
    synced = sync_offer_index(
        warehouse.connect,
        client,
        search_index.index_uid,
        rates=rates.rates,
        marketplaces=marketplace_cards,
        active=active,
        counted=[slug for slug in active if slug not in disabled],
        vectors=vectors,
        progress=context.log.info,
    )
    # A marketplace disabled or enabled while this ran had its groups' counts set by a job
    # (storefront.search_jobs) that this run may have overwritten: set them again.
    toggled = _apply_toggles_since(
        warehouse, client, search_index.index_uid, storefront_db, disabled
    )
    if synced.inactive_offers:
        context.log.warning(
            f"not indexing {counted_noun(synced.inactive_offers, 'offer')} of inactive marketplaces"
        )
    for key, reason in list(synced.skipped.items())[:MAX_LOGGED_SKIPS]:
        context.log.warning(f"not indexed: {key}: {reason}")
    result = synced.result
    return dg.MaterializeResult(
        metadata={
            "index": search_index.index_uid,
            "documents": synced.documents,
            "sent": result.sent,
            "deleted": result.deleted,
            "unchanged": result.unchanged,
            "rebuilt": result.rebuilt,
            "rebuild_reason": result.rebuild_reason or "",
            "built": synced.built,
            "build_mode": synced.mode,
            "build_all_reason": synced.fallback_reason,
            "not_indexed": len(synced.skipped),
            "vectors": len(vectors) if vectors else 0,
            "inactive_marketplace_offers": synced.inactive_offers,
            "disabled_marketplaces": ", ".join(sorted(disabled)),
            "toggled_during_run": ", ".join(toggled),
            "fx_as_of": rates.as_of.isoformat(),
        }
    )


def _marketplace_cards(conn: Any) -> dict[str, dict[str, Any]]:
    return {
        slug: {"slug": slug, "name": name, "logo": logo}
        for slug, name, logo in conn.execute("SELECT slug, name, logo FROM marketplaces").fetchall()
    }


@dg.asset(
    deps=["search_products", "product_groups"],
    group_name=SERVING_GROUP,
    kinds={"meilisearch"},
    pool="search_index",
)
def search_product_groups(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    marketplaces: MarketplacesResource,
    search_index: SearchIndexResource,
    storefront_db: StorefrontDatabaseResource,
) -> dg.MaterializeResult:
    """The product index `<index>_groups` that listings read: one document per product group
    (a product sold by one marketplace is a group of one) with its best title and image, which
    marketplaces sell it and have it in stock, its cheapest price overall and per marketplace, a
    review-weighted (Bayesian) rating and a compact summary of every offer (search_index.groups).

    Built from the same offers as search_products, right after it, with the same incremental
    sync: only product documents whose content changed are sent and vanished groups are deleted;
    a changed declaration rebuilds it with zero downtime. Only the groups whose offers' documents
    or matching changed are read and built (pipelines/group_search_state.py).

    Marketplaces an admin disabled in the storefront DB are left out: their offers stay in the
    offers index (so enabling one again needs no pipeline run) but in no product document.
    """
    with warehouse.connect() as conn:
        rates = read_latest_rates(conn)
        marketplace_cards = _marketplace_cards(conn)
    if rates is None:
        raise MissingFxRatesError("fx_rates holds no rates yet: materialize fx_rates first")
    uid = group_index_uid(search_index.index_uid)
    disabled = disabled_marketplaces(storefront_db.database_url)
    if disabled:
        context.log.info(f"leaving out the offers of disabled marketplaces: {sorted(disabled)}")
    client = search_index.client()
    synced = sync_group_index(
        warehouse.connect,
        client,
        search_index.index_uid,
        uid,
        rates=rates.rates,
        marketplaces=marketplace_cards,
        active=[c.slug for c in marketplaces.configs() if c.slug not in disabled],
        progress=context.log.info,
    )
    # An admin who disabled or enabled a marketplace while this ran had the change applied by
    # a job (storefront.search_jobs) that this run may have overwritten: apply it again.
    toggled = _apply_toggles_since(
        warehouse, client, search_index.index_uid, storefront_db, disabled
    )
    result = synced.result
    return dg.MaterializeResult(
        metadata={
            "index": uid,
            "products": synced.products,
            "products_with_several_offers": synced.several_offers,
            "sent": result.sent,
            "deleted": result.deleted,
            "unchanged": result.unchanged,
            "rebuilt": result.rebuilt,
            "rebuild_reason": result.rebuild_reason or "",
            "built": synced.built,
            "build_mode": synced.mode,
            "build_all_reason": synced.fallback_reason,
            "offers_not_indexed": len(synced.skipped),
            "disabled_marketplaces": ", ".join(sorted(disabled)),
            "toggled_during_run": ", ".join(toggled),
        }
    )


def _apply_toggles_since(
    warehouse: WarehouseResource,
    client: Any,
    offers_uid: str,
    storefront_db: StorefrontDatabaseResource,
    disabled: set[str],
) -> list[str]:
    """Rebuild the groups of the marketplaces disabled or enabled since `disabled` was read
    (search_index.marketplace_visibility); returns their slugs."""
    now = disabled_marketplaces(storefront_db.database_url)
    toggled = sorted(now ^ disabled)

    def matches_of(group_ids: Sequence[str]) -> dict[str, tuple[str, Decimal]]:
        with warehouse.connect() as conn:
            rows = conn.execute(
                "SELECT marketplace, external_id, method, confidence FROM product_groups "
                "WHERE group_id IN (SELECT unnest(?))",
                [list(group_ids)],
            ).fetchall()
        return {
            document_id(slug, external): (method, conf) for slug, external, method, conf in rows
        }

    for slug in toggled:
        refresh_marketplace_groups(client, offers_uid, slug, disabled=now, matches_of=matches_of)
    return toggled


@dg.asset(
    deps=["search_products", "product_groups", "price_history", "fx_rates"],
    group_name=SERVING_GROUP,
    kinds={"sqlalchemy"},
)
def storefront_products(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    marketplaces: MarketplacesResource,
    storefront_db: StorefrontDatabaseResource,
) -> dg.MaterializeResult:
    """Marketplaces, offers (with their product group), FX rates and new price points copied
    into the storefront DB, upserted by (marketplace slug, external_id), so carts and orders have
    rows to point at. Skipped, with a log line saying why, while that DB or its tables do not
    exist yet (the storefront's migrations create them)."""
    outcome = sync_storefront_catalog(
        storefront_db.database_url,
        lambda: warehouse.connect(read_only=True),
        marketplaces=marketplaces.configs(),
    )
    if outcome.skipped_reason is not None:
        context.log.info(f"storefront sync skipped: {outcome.skipped_reason}")
        return dg.MaterializeResult(metadata={"skipped": outcome.skipped_reason})
    for line in outcome.skipped_rows[:MAX_LOGGED_SKIPS]:
        context.log.warning(f"not synced: {line}")
    return dg.MaterializeResult(metadata={"skipped": "", **outcome.counts})


@dg.asset(
    deps=["product_groups", "price_history", "fx_rates"],
    group_name=SERVING_GROUP,
    kinds={"duckdb"},
)
def analyst_warehouse(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    marketplaces: MarketplacesResource,
    storefront_db: StorefrontDatabaseResource,
) -> dg.MaterializeResult:
    """The analysts' read-only warehouse (settings.warehouse_path): the tables of
    warehouse.publish.PUBLISHED_TABLES (none of the pipeline-only ones), plus the views of warehouse/sql/views.sql. Built as warehouse.next.duckdb and swapped in with
    os.replace, so readers never see half a copy; only the tables that changed since the last
    copy are written again (appended, for price history and the load log), into the snapshot the
    previous swap displaced when nobody reads it any more (`started_from`: spare), else into a
    byte copy of the published file (copy). See warehouse/README.md.

    Marks each marketplace live or not as search does (`marketplaces.active` and
    `storefront_enabled`, read by `offers_usd.live`): an inactive one is no longer fetched, so
    nothing else would tell its kept offers apart."""
    active = [config.slug for config in marketplaces.configs()]
    disabled = disabled_marketplaces(storefront_db.database_url)
    with warehouse.connect() as conn:
        mark_live_marketplaces(conn, active, disabled)
        inactive = [
            slug
            for (slug,) in conn.execute(
                "SELECT slug FROM marketplaces WHERE NOT active ORDER BY slug"
            ).fetchall()
        ]
        refresh_views(conn)
    published = warehouse.publish()
    context.log.info(f"published {published.path}")
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(published.path)),
            "table_rows": dg.MetadataValue.json(published.table_rows),
            "table_refresh": dg.MetadataValue.json(published.refreshed),
            "started_from": published.started_from,
            "inactive_marketplaces": ", ".join(inactive),
            "disabled_marketplaces": ", ".join(sorted(disabled)),
            "views": dg.MetadataValue.json(published.views),
            # After a refresh that changed no offer: the fetch times only (fetch_times_job).
            "product_rows_written": published.products_written.get(PRODUCT_ROWS, 0),
            "fetch_times_written": published.products_written.get(FETCHES, 0),
        }
    )
