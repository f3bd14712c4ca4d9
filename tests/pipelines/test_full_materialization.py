"""The whole pipeline, materialized through Dagster against the real sandbox marketplaces, a real
DuckDB warehouse and a real Meilisearch server.

The module shares one first ingest (see conftest.py); later tests run the pipeline again to show
what a second run, a marketplace outage and a product change do.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from contextlib import AbstractContextManager
from pathlib import Path

import dagster as dg
import duckdb
import httpx
import meilisearch
import pytest
import sqlalchemy as sa

import warehouse
from adapters.registry import load_marketplaces
from onecart.settings import REPO_ROOT, Settings
from pipelines import search_sync
from pipelines.assets.serving import analyst_warehouse, search_product_groups, search_products
from pipelines.definitions import build_definitions
from pipelines.group_search_state import catalog_prior
from pipelines.jobs import MARKETPLACE_CATALOG_JOB, OFFER_EMBEDDINGS_JOB
from pipelines.resources import MarketplacesResource, build_resources
from pipelines.run import materialize_all
from pipelines.search_sync import build_product_documents, build_search_documents
from pipelines.sensors import products_changed_sensor
from pipelines.storefront_sync import sync_storefront_catalog
from search_index.documents import compute_document_hash, document_id
from search_index.groups import catalog_rating_mean
from search_index.indexing import fetch_document_hashes
from search_index.settings import group_index_uid
from tests.pipelines.conftest import Ingest
from warehouse.derived import read_latest_rates, read_offer_frame
from warehouse.offers import content_text_expression
from warehouse.publish import PUBLISHED_TABLES

pytestmark = pytest.mark.slow

# The six demo marketplaces plus Amazon and Sokoni (issue 13).
MARKETPLACES = (
    "shopwave",
    "kiondo",
    "dummymart",
    "fakestore",
    "naijamall",
    "bazaar",
    "amazon",
    "sokoni",
)
# What the sandbox's malformed kinds become (sandbox-and-adapters.md: rejection reasons).
EXPECTED_REASONS = {
    "missing_price",
    "non_positive_price",
    "broken_utf8",
    "duplicate_external_id",
}
ANALYST_VIEWS = {
    "cheapest_offer_per_group",
    "price_changes_7d",
    "marketplace_coverage",
    "marketplace_overlap",
    "category_price_stats",
}


def query(settings: Settings, sql: str, params: list[object] | None = None) -> list[tuple]:
    """Rows from the pipeline's warehouse, read under its lock like the assets do."""
    with warehouse.connect(settings.pipeline_db_path, read_only=True) as conn:
        return conn.execute(sql, params or []).fetchall()


def store_content_hashes(conn: duckdb.DuckDBPyConnection) -> None:
    """Give the products rows a test edited the content_hash and updated_at the normalizer would
    store for them (warehouse.normalize): the search refresh's change markers read those, not
    the content (pipelines/search_records.py OFFER_MARKER_SQL)."""
    texts = (
        conn.sql("SELECT * FROM products")
        .pl()
        .select("marketplace", "external_id", content_text_expression().alias("text"))
    )
    conn.register("edited_texts", texts.to_arrow())
    try:
        conn.execute(
            "UPDATE products AS p SET content_hash = sha256(t.text), updated_at = now() "
            "FROM edited_texts AS t WHERE p.marketplace = t.marketplace "
            "AND p.external_id = t.external_id AND p.content_hash <> sha256(t.text)"
        )
    finally:
        conn.unregister("edited_texts")


def products_per_marketplace(settings: Settings) -> dict[str, int]:
    rows = query(settings, "SELECT marketplace, count(*) FROM products GROUP BY marketplace")
    return {slug: count for slug, count in rows}


# Tables a run without changes must leave exactly as they were (catalog_loads is a log of runs
# and raw_catalog keeps each fetch's time, so both grow or change by design).
STABLE_TABLES = (
    "marketplaces",
    "products",
    "rejected_products",
    "fx_rates",
    "product_groups",
    "price_history",
)


def warehouse_snapshot(settings: Settings) -> dict[str, object]:
    """Every offer's group assignment and content stamps, the whole price history, and the row
    count of every table that must not grow when nothing changed."""
    return {
        "product_groups": query(
            settings,
            "SELECT marketplace, external_id, group_id, method, confidence, matching_key "
            "FROM product_groups ORDER BY marketplace, external_id",
        ),
        "products": query(
            settings,
            "SELECT marketplace, external_id, content_hash, first_seen_at, updated_at "
            "FROM products ORDER BY marketplace, external_id",
        ),
        "price_history": query(settings, "SELECT * FROM price_history ORDER BY ALL"),
        "row_counts": {
            table: query(settings, f"SELECT count(*) FROM {table}")[0][0] for table in STABLE_TABLES
        },
    }


def differences(before: object, after: object) -> str:
    """A short account of what changed between two snapshots, for assertion messages."""
    lines = []
    assert isinstance(before, dict) and isinstance(after, dict)
    for name in before:
        if before[name] == after[name]:
            continue
        if isinstance(before[name], list):
            gone = sorted(set(before[name]) - set(after[name]))[:5]
            new = sorted(set(after[name]) - set(before[name]))[:5]
            lines.append(
                f"{name}: {len(before[name])} -> {len(after[name])} rows; gone {gone}; new {new}"
            )
        else:
            lines.append(f"{name}: {before[name]} -> {after[name]}")
    return "\n".join(lines)


def documents_of(meili: meilisearch.Client, index: str, marketplace: str) -> int:
    result = meili.index(index).search("", {"filter": f"marketplace = {marketplace}", "limit": 0})
    return result["estimatedTotalHits"]


def test_first_ingest_succeeds_for_every_marketplace(first_ingest: Ingest) -> None:
    report = first_ingest.report
    assert report.failed_partitions == [], first_ingest.lines
    assert report.downstream_success, first_ingest.lines
    assert set(report.partitions) == set(MARKETPLACES)
    for slug in MARKETPLACES:
        line = next(line for line in first_ingest.lines if line.startswith(f"{slug}: fetched"))
        assert "normalized" in line and "rejected" in line
    for asset in ("fx_rates", "product_groups", "price_history", "search_products"):
        assert any(line.startswith(f"{asset}: ") for line in first_ingest.lines)


def test_the_downstream_run_says_which_asset_it_is_on_while_it_runs(first_ingest: Ingest) -> None:
    # Between "downstream: fx_rates, …" and "downstream run finished in 423s" (a full run at a
    # million offers) an operator saw nothing for minutes; each asset's result came at the end.
    lines = first_ingest.lines
    start = next(i for i, line in enumerate(lines) if line.startswith("downstream: fx_rates"))
    end = next(i for i, line in enumerate(lines) if line.startswith("downstream run finished"))
    during = lines[start + 1 : end]
    for asset in ("fx_rates", "product_groups", "search_products", "analyst_warehouse"):
        assert any(line.startswith(f"downstream: now {asset} (") for line in during), during
    # The freshness check is named as a check, not by its step key.
    assert any(
        line.startswith("downstream: now check products_are_fresh of normalized_products (")
        for line in during
    ), during


def test_the_embeddings_run_leaves_the_index_alone_when_no_vector_changed(
    first_ingest: Ingest, instance: dg.DagsterInstance
) -> None:
    """Embeddings are off in this module: offer_embeddings records why as an observation instead
    of materializing, and search_products, already synced by the downstream run, is skipped."""
    (run,) = instance.get_runs(dg.RunsFilter(job_name=OFFER_EMBEDDINGS_JOB), limit=1)
    assert run.status == dg.DagsterRunStatus.SUCCESS
    events = [entry.dagster_event for entry in instance.all_logs(run.run_id)]
    observed = [e for e in events if e is not None and e.is_asset_observation]
    assert [e.asset_key for e in observed] == [dg.AssetKey("offer_embeddings")]
    assert not [e for e in events if e is not None and e.is_step_materialization]
    skipped = {e.step_key for e in events if e is not None and e.is_step_skipped}
    assert skipped == {"search_products"}
    assert "switched off" in first_ingest.report.downstream_metadata["offer_embeddings"]["skipped"]


def test_every_marketplace_has_products(first_ingest: Ingest, pipeline_settings: Settings) -> None:
    counts = products_per_marketplace(pipeline_settings)
    assert set(counts) == set(MARKETPLACES)
    assert all(count > 0 for count in counts.values()), counts
    for slug, outcome in first_ingest.report.partitions.items():
        assert outcome.normalized == counts[slug]
        assert outcome.fetched == outcome.normalized + outcome.rejected


def test_malformed_records_are_quarantined_with_their_reason(
    first_ingest: Ingest, pipeline_settings: Settings
) -> None:
    rows = query(
        pipeline_settings,
        "SELECT marketplace, reason, detail, CAST(payload AS VARCHAR) FROM rejected_products",
    )
    reasons = {reason for _, reason, _, _ in rows}
    assert reasons >= EXPECTED_REASONS, reasons
    # A currency code nobody knows, or a price that is not a number where no code is sent.
    assert reasons & {"unknown_currency", "bad_price"}
    for _, reason, detail, payload in rows:
        assert reason and detail
        assert isinstance(json.loads(payload), dict)
    # Valid but hostile records are kept, not rejected: markup in titles is the site's to escape.
    (html_titles,) = query(
        pipeline_settings, "SELECT count(*) FROM products WHERE title LIKE '%<%'"
    )[0]
    assert html_titles > 0


def test_product_groups_span_three_or_more_marketplaces(
    first_ingest: Ingest, pipeline_settings: Settings
) -> None:
    (wide_groups,) = query(
        pipeline_settings,
        "SELECT count(*) FROM (SELECT group_id FROM product_groups GROUP BY group_id "
        "HAVING count(DISTINCT marketplace) >= 3)",
    )[0]
    assert wide_groups > 0
    methods = dict(
        query(pipeline_settings, "SELECT method, count(*) FROM product_groups GROUP BY 1")
    )
    assert methods.get("gtin", 0) > 0 and methods.get("brand_model", 0) > 0, methods
    (ungrouped,) = query(
        pipeline_settings,
        "SELECT count(*) FROM products p ANTI JOIN product_groups g USING (marketplace, external_id)",
    )[0]
    assert ungrouped == 0


def test_price_history_and_fx_rates_are_recorded(
    first_ingest: Ingest, pipeline_settings: Settings
) -> None:
    (without_history,) = query(
        pipeline_settings,
        "SELECT count(*) FROM products p ANTI JOIN price_history h USING (marketplace, external_id)",
    )[0]
    assert without_history == 0
    rates = dict(query(pipeline_settings, "SELECT currency, rate FROM fx_rates WHERE base = 'USD'"))
    assert {"USD", "EUR", "GBP", "NGN", "KES"} <= set(rates)
    assert rates["USD"] == 1


def test_published_warehouse_opens_read_only_with_the_analyst_views(
    first_ingest: Ingest, pipeline_settings: Settings
) -> None:
    conn = duckdb.connect(str(pipeline_settings.warehouse_path), read_only=True)
    try:
        views = {
            name
            for (name,) in conn.execute(
                "SELECT view_name FROM duckdb_views() WHERE NOT internal"
            ).fetchall()
        }
        assert views >= ANALYST_VIEWS
        coverage = conn.execute(
            "SELECT marketplace, offers FROM marketplace_coverage ORDER BY marketplace"
        ).fetchall()
        assert {slug for slug, _ in coverage} == set(MARKETPLACES)
        cheapest = conn.execute(
            "SELECT group_id, price_usd, marketplaces_in_group FROM cheapest_offer_per_group"
        ).fetchall()
        assert cheapest and all(price > 0 for _, price, _ in cheapest)
        with pytest.raises(duckdb.Error):
            conn.execute("DELETE FROM products")
    finally:
        conn.close()


def test_search_finds_a_product_offered_on_three_marketplaces(
    first_ingest: Ingest, pipeline_settings: Settings, meili: meilisearch.Client
) -> None:
    group_id, brand, model = query(
        pipeline_settings,
        "SELECT g.group_id, any_value(p.brand), any_value(p.model) "
        "FROM product_groups g JOIN products p USING (marketplace, external_id) "
        "WHERE p.brand IS NOT NULL AND p.model IS NOT NULL "
        "GROUP BY g.group_id HAVING count(DISTINCT g.marketplace) >= 3 "
        "ORDER BY count(DISTINCT g.marketplace) DESC, g.group_id LIMIT 1",
    )[0]
    index = meili.index(pipeline_settings.meili_index)
    hits = index.search(f"{brand} {model}", {"limit": 50})["hits"]
    assert any(hit["group_id"] == group_id for hit in hits)
    members = index.search("", {"filter": f'group_id = "{group_id}"', "limit": 50})["hits"]
    assert len({hit["marketplace"] for hit in members}) >= 3
    assert all(hit["group_size"] == len(members) for hit in members)
    assert len({hit["group_min_price_usd_minor"] for hit in members}) == 1


def test_index_holds_one_document_per_offer(
    first_ingest: Ingest, pipeline_settings: Settings, meili: meilisearch.Client
) -> None:
    search = first_ingest.report.downstream_metadata["search_products"]
    assert search["rebuilt"] is True
    counts = products_per_marketplace(pipeline_settings)
    stats = meili.index(pipeline_settings.meili_index).get_stats()
    assert stats.number_of_documents == sum(counts.values()) - search["not_indexed"]


def test_storefront_sync_is_skipped_while_the_storefront_db_does_not_exist(
    first_ingest: Ingest,
) -> None:
    metadata = first_ingest.report.downstream_metadata["storefront_products"]
    assert "does not exist" in metadata["skipped"]
    assert any(line.startswith("storefront_products: skipped") for line in first_ingest.lines)


def test_storefront_sync_upserts_offers_into_a_migrated_database(
    first_ingest: Ingest, pipeline_settings: Settings
) -> None:
    from storefront.db_migrate import upgrade_database

    url = f"sqlite:///{pipeline_settings.home_dir / 'storefront-sync-test.db'}"
    upgrade_database(url)
    configs = load_marketplaces(pipeline_settings.marketplaces_file)

    def connect_warehouse() -> AbstractContextManager[duckdb.DuckDBPyConnection]:
        return warehouse.connect(pipeline_settings.pipeline_db_path, read_only=True)

    first = sync_storefront_catalog(url, connect_warehouse, marketplaces=configs)
    assert first.skipped_reason is None
    total = sum(products_per_marketplace(pipeline_settings).values())
    assert first.counts["products_inserted"] == total
    assert first.counts["price_points_inserted"] >= total

    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            grouped = connection.execute(
                sa.text("SELECT count(*) FROM products WHERE relation_token IS NOT NULL")
            ).scalar_one()
    finally:
        engine.dispose()
    assert grouped == total

    again = sync_storefront_catalog(url, connect_warehouse, marketplaces=configs)
    assert again.counts["products_inserted"] == 0
    assert again.counts["products_unchanged"] == total
    assert again.counts["price_points_inserted"] == 0


def test_second_run_without_changes_changes_nothing(
    first_ingest: Ingest, pipeline_settings: Settings, instance: dg.DagsterInstance
) -> None:
    """Same catalog, partitions in the opposite order: every offer keeps its group and group id
    (the relation token carts hold), no table grows, and nothing is sent to the index."""
    before = warehouse_snapshot(pipeline_settings)
    lines: list[str] = []
    report = materialize_all(
        instance=instance, progress=lines.append, marketplaces=list(reversed(MARKETPLACES))
    )
    assert report.success, lines
    # The single-document catalogs (feed, unpaged list) were answered 304 to our conditional GET.
    not_modified = {slug for slug, outcome in report.partitions.items() if outcome.not_modified}
    assert not_modified == {"naijamall", "fakestore"}
    after = warehouse_snapshot(pipeline_settings)
    assert after == before, differences(before, after)
    groups = report.downstream_metadata["product_groups"]
    assert groups == first_ingest.report.downstream_metadata["product_groups"]
    search = report.downstream_metadata["search_products"]
    assert search["rebuilt"] is False
    assert search["sent"] == 0 and search["deleted"] == 0
    assert search["unchanged"] == search["documents"]
    assert report.downstream_metadata["price_history"]["appended"] == 0
    assert "sent 0, deleted 0" in next(line for line in lines if line.startswith("search_products"))


def expected_document_hashes(settings: Settings) -> dict[str, str]:
    """doc_hash of every document, built from scratch from the warehouse as it is now."""
    with warehouse.connect(settings.pipeline_db_path, read_only=True) as conn:
        offers = read_offer_frame(conn)
        rates = read_latest_rates(conn)
        cards = {
            slug: {"slug": slug, "name": name, "logo": logo}
            for slug, name, logo in conn.execute(
                "SELECT slug, name, logo FROM marketplaces"
            ).fetchall()
        }
    assert rates is not None
    built = build_search_documents(offers, marketplaces=cards, rates=rates.rates)
    return {document["id"]: document["doc_hash"] for document in built.documents}


def expected_product_hashes(settings: Settings) -> dict[str, str]:
    """doc_hash of every product document, built from scratch from the warehouse as it is now."""
    with warehouse.connect(settings.pipeline_db_path, read_only=True) as conn:
        offers = read_offer_frame(conn)
        rates = read_latest_rates(conn)
        cards = {
            slug: {"slug": slug, "name": name, "logo": logo}
            for slug, name, logo in conn.execute(
                "SELECT slug, name, logo FROM marketplaces"
            ).fetchall()
        }
    assert rates is not None
    documents, _ = build_product_documents(offers, marketplaces=cards, rates=rates.rates)
    return {document["id"]: compute_document_hash(document) for document in documents}


def test_a_price_change_builds_and_sends_only_the_documents_it_changes(
    first_ingest: Ingest,
    pipeline_settings: Settings,
    instance: dg.DagsterInstance,
    meili: meilisearch.Client,
) -> None:
    """An offer of a multi-offer group becomes the group's cheapest: search_products builds
    only the documents of that group (the others' inputs did not move), sends them, and the index
    then holds exactly what building every document gives. Undone, the same. A document deleted
    behind the pipeline's back makes the next sync build and compare everything again. The
    product index (search_product_groups) builds and sends only that group's document."""
    uid = pipeline_settings.meili_index
    (group_id, size) = query(
        pipeline_settings,
        "SELECT group_id, count(*) FROM product_groups JOIN products USING (marketplace, "
        "external_id) GROUP BY group_id HAVING count(*) >= 3 AND bool_and(available) "
        "ORDER BY group_id LIMIT 1",
    )[0]
    (slug, external_id, price) = query(
        pipeline_settings,
        "SELECT marketplace, external_id, price_minor FROM products JOIN product_groups "
        "USING (marketplace, external_id) WHERE group_id = ? ORDER BY ALL LIMIT 1",
        [group_id],
    )[0]

    groups_uid = group_index_uid(uid)
    product_runs: list[dict[str, object]] = []

    def set_price(value: int) -> dict[str, object]:
        with warehouse.connect(pipeline_settings.pipeline_db_path) as conn:
            conn.execute(
                "UPDATE products SET price_minor = ? WHERE marketplace = ? AND external_id = ?",
                [value, slug, external_id],
            )
            store_content_hashes(conn)
        result = dg.materialize(
            [search_products, search_product_groups],
            resources=build_resources(pipeline_settings),
            instance=instance,
        )
        metadata = result.asset_materializations_for_node("search_product_groups")[-1].metadata
        product_runs.append({key: value.value for key, value in metadata.items()})
        metadata = result.asset_materializations_for_node("search_products")[-1].metadata
        return {key: value.value for key, value in metadata.items()}

    try:
        cheapest = set_price(1)
        assert (cheapest["build_mode"], cheapest["built"], cheapest["sent"]) == (
            "changed",
            size,
            size,
        )
        assert cheapest["deleted"] == 0 and cheapest["rebuilt"] is False
        assert fetch_document_hashes(meili, uid) == expected_document_hashes(pipeline_settings)
        products = product_runs[-1]
        assert (products["build_mode"], products["built"], products["sent"]) == ("changed", 1, 1)
        assert fetch_document_hashes(meili, groups_uid) == expected_product_hashes(
            pipeline_settings
        )
    finally:
        restored = set_price(price)
    assert (restored["build_mode"], restored["built"], restored["sent"]) == ("changed", size, size)
    assert fetch_document_hashes(meili, uid) == expected_document_hashes(pipeline_settings)

    some_id = next(iter(expected_document_hashes(pipeline_settings)))
    meili.wait_for_task(meili.index(uid).delete_document(some_id).task_uid)
    repaired = set_price(price)
    assert repaired["build_mode"] == "full" and "holds" in repaired["build_all_reason"]
    assert (repaired["sent"], repaired["deleted"], repaired["rebuilt"]) == (1, 0, False)
    assert fetch_document_hashes(meili, uid) == expected_document_hashes(pipeline_settings)
    assert [run["sent"] for run in product_runs] == [1, 1, 0]
    assert fetch_document_hashes(meili, groups_uid) == expected_product_hashes(pipeline_settings)


def test_a_refresh_in_small_batches_sends_the_changed_documents_and_deletes_the_gone_ones(
    first_ingest: Ingest,
    pipeline_settings: Settings,
    instance: dg.DagsterInstance,
    meili: meilisearch.Client,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Both indexes' refreshes read the changed offers in batches too. In batches of 7 offers,
    after a price change in a group of several offers, an offer removed from the catalog and an
    offer that can no longer become a document (a currency without an exchange rate), each index is sent exactly the
    documents whose doc_hash moved and loses exactly the documents that are gone; it then holds
    what building every document gives. Put back, the same."""
    uid = pipeline_settings.meili_index
    groups_uid = group_index_uid(uid)
    monkeypatch.setattr(search_sync, "STREAM_BATCH_ROWS", 7)
    (group_id,) = query(
        pipeline_settings,
        "SELECT group_id FROM product_groups JOIN products USING (marketplace, external_id) "
        "GROUP BY group_id HAVING count(*) >= 3 AND bool_and(available) "
        "ORDER BY group_id DESC LIMIT 1",
    )[0]
    ((cheap_slug, cheap_id, price),) = query(
        pipeline_settings,
        "SELECT marketplace, external_id, price_minor FROM products JOIN product_groups "
        "USING (marketplace, external_id) WHERE group_id = ? ORDER BY ALL DESC LIMIT 1",
        [group_id],
    )
    # Two offers of groups of their own, far apart in the catalog's order.
    alone = query(
        pipeline_settings,
        "SELECT marketplace, external_id, currency FROM products JOIN product_groups "
        "USING (marketplace, external_id) WHERE group_id IN (SELECT group_id FROM "
        "product_groups GROUP BY group_id HAVING count(*) = 1) ORDER BY ALL",
    )
    (removed_slug, removed_id, _), (unpriced_slug, unpriced_id, currency) = alone[0], alone[-1]

    def refresh(*statements: tuple[str, list[object]]) -> dict[str, dict[str, object]]:
        before = {index: fetch_document_hashes(meili, index) for index in (uid, groups_uid)}
        with warehouse.connect(pipeline_settings.pipeline_db_path) as conn:
            for sql, params in statements:
                conn.execute(sql, params)
            store_content_hashes(conn)
        result = dg.materialize(
            [search_products, search_product_groups],
            resources=build_resources(pipeline_settings),
            instance=instance,
        )
        expected = {
            uid: expected_document_hashes(pipeline_settings),
            groups_uid: expected_product_hashes(pipeline_settings),
        }
        runs = {}
        for asset, index in (("search_products", uid), ("search_product_groups", groups_uid)):
            metadata = result.asset_materializations_for_node(asset)[-1].metadata
            run = {key: value.value for key, value in metadata.items()}
            changed = [i for i, h in expected[index].items() if before[index].get(i) != h]
            gone = set(before[index]) - set(expected[index])
            assert run["build_mode"] == "changed" and run["rebuilt"] is False, asset
            assert (run["sent"], run["deleted"]) == (len(changed), len(gone)), asset
            assert fetch_document_hashes(meili, index) == expected[index], asset
            runs[asset] = run | {"gone": gone, "changed": changed}
        return runs

    where = "WHERE marketplace = ? AND external_id = ?"
    changed = refresh(
        (f"UPDATE products SET price_minor = 1 {where}", [cheap_slug, cheap_id]),
        (
            f"CREATE TABLE removed_offer AS SELECT * FROM products {where}",
            [removed_slug, removed_id],
        ),
        (f"DELETE FROM products {where}", [removed_slug, removed_id]),
        (f"UPDATE products SET currency = 'XTS' {where}", [unpriced_slug, unpriced_id]),
    )
    offers = changed["search_products"]
    assert offers["gone"] == {
        document_id(removed_slug, removed_id),
        document_id(unpriced_slug, unpriced_id),
    }
    assert len(offers["changed"]) >= 3  # the whole group: its cheapest price moved
    assert len(changed["search_product_groups"]["gone"]) == 2
    restored = refresh(
        (f"UPDATE products SET price_minor = ? {where}", [price, cheap_slug, cheap_id]),
        ("INSERT INTO products SELECT * FROM removed_offer", []),
        ("DROP TABLE removed_offer", []),
        (f"UPDATE products SET currency = ? {where}", [currency, unpriced_slug, unpriced_id]),
    )
    assert len(restored["search_products"]["changed"]) >= 5
    assert restored["search_products"]["gone"] == set()


def test_full_builds_streamed_in_small_batches_give_the_documents_of_one_big_build(
    first_ingest: Ingest,
    pipeline_settings: Settings,
    instance: dg.DagsterInstance,
    meili: meilisearch.Client,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Both indexes' full builds read the offers in batches (a million offers at once took
    5.5 GiB). In batches of 7 offers, where most groups of several offers straddle a batch
    boundary, building every document again finds nothing to send: the batched documents are
    exactly the ones a build from one frame gives."""
    uid = pipeline_settings.meili_index
    monkeypatch.setattr(search_sync, "STREAM_BATCH_ROWS", 7)
    with warehouse.connect(pipeline_settings.pipeline_db_path) as conn:
        conn.execute("DELETE FROM search_index_context")  # forget what the indexes were sent
    result = dg.materialize(
        [search_products, search_product_groups],
        resources=build_resources(pipeline_settings),
        instance=instance,
    )
    for asset in ("search_products", "search_product_groups"):
        metadata = result.asset_materializations_for_node(asset)[-1].metadata
        run = {key: value.value for key, value in metadata.items()}
        assert run["build_mode"] == "full" and "no record" in run["build_all_reason"], asset
        assert (run["sent"], run["deleted"], run["rebuilt"]) == (0, 0, False), asset
    assert fetch_document_hashes(meili, uid) == expected_document_hashes(pipeline_settings)
    assert fetch_document_hashes(meili, group_index_uid(uid)) == expected_product_hashes(
        pipeline_settings
    )


def test_the_catalog_prior_is_the_rating_mean_of_the_indexed_offers(
    first_ingest: Ingest, pipeline_settings: Settings
) -> None:
    """catalog_prior sums in DuckDB what catalog_rating_mean sums over the documents' ratings."""
    uid = pipeline_settings.meili_index
    with warehouse.connect(pipeline_settings.pipeline_db_path, read_only=True) as conn:
        rows = conn.execute(
            "SELECT p.rating, p.rating_count FROM products AS p JOIN search_document_state AS s "
            "USING (marketplace, external_id) WHERE s.index_uid = ? AND s.doc_hash IS NOT NULL",
            [uid],
        ).fetchall()
        prior = catalog_prior(conn, uid)
    assert sum(1 for rating, _ in rows if rating is not None) > 10
    expected = catalog_rating_mean(
        {"rating": None if rating is None else round(float(rating), 2), "rating_count": count}
        for rating, count in rows
    )
    assert prior == expected


def search_state_snapshot(settings: Settings) -> dict[str, list[tuple]]:
    """What both indexes' syncs recorded, offer by offer and group by group."""
    return {
        "offers": query(
            settings,
            "SELECT index_uid, marketplace, external_id, input_hash, doc_hash, group_id, "
            "row_marker FROM search_document_state ORDER BY ALL",
        ),
        "groups": query(settings, "SELECT * FROM search_group_state ORDER BY ALL"),
        "members": query(settings, "SELECT * FROM search_group_members ORDER BY ALL"),
    }


def test_a_refresh_of_every_kind_of_change_records_what_a_full_build_records(
    first_ingest: Ingest,
    pipeline_settings: Settings,
    instance: dg.DagsterInstance,
    meili: meilisearch.Client,
) -> None:
    """Only the offers whose change markers moved, and their groups, are hashed on a refresh:
    after a price change, an availability change, a new title, an offer moved to another group
    (a GTIN now matching), a removal, a new offer, and a price-history row of an unchanged offer,
    both indexes hold what building every document gives, and the recorded state (input hashes,
    doc_hashes, markers, groups, members) is exactly what a full build then records. All undone,
    the same."""
    uid = pipeline_settings.meili_index
    groups_uid = group_index_uid(uid)
    multi = query(
        pipeline_settings,
        "SELECT group_id FROM product_groups GROUP BY group_id HAVING count(*) >= 3 "
        "ORDER BY group_id LIMIT 2",
    )
    (source_group,), (target_group,) = multi
    members = query(
        pipeline_settings,
        "SELECT marketplace, external_id FROM product_groups WHERE group_id = ? ORDER BY ALL",
        [source_group],
    )
    (priced, flipped, moved) = members[:3]
    singles = query(
        pipeline_settings,
        "SELECT marketplace, external_id FROM product_groups WHERE method = 'single' "
        "ORDER BY ALL LIMIT 3",
    )
    (retitled, removed, historied) = singles
    where = "WHERE marketplace = ? AND external_id = ?"
    tables = ("products", "product_groups", "price_history")

    def sync(expect_mode: str) -> None:
        result = dg.materialize(
            [search_products, search_product_groups],
            resources=build_resources(pipeline_settings),
            instance=instance,
        )
        for asset in ("search_products", "search_product_groups"):
            metadata = result.asset_materializations_for_node(asset)[-1].metadata
            assert metadata["build_mode"].value == expect_mode, asset
        assert fetch_document_hashes(meili, uid) == expected_document_hashes(pipeline_settings)
        assert fetch_document_hashes(meili, groups_uid) == expected_product_hashes(
            pipeline_settings
        )

    def refresh_then_full() -> None:
        sync("changed")
        refreshed = search_state_snapshot(pipeline_settings)
        with warehouse.connect(pipeline_settings.pipeline_db_path) as conn:
            conn.execute("DELETE FROM search_index_context")
        sync("full")
        assert search_state_snapshot(pipeline_settings) == refreshed

    with warehouse.connect(pipeline_settings.pipeline_db_path) as conn:
        for table in tables:
            conn.execute(f"CREATE TABLE saved_{table} AS SELECT * FROM {table}")
    try:
        with warehouse.connect(pipeline_settings.pipeline_db_path) as conn:
            conn.execute(f"UPDATE products SET price_minor = price_minor + 1 {where}", priced)
            conn.execute(f"UPDATE products SET available = NOT available {where}", flipped)
            conn.execute(f"UPDATE products SET title = title || ' (2024)' {where}", retitled)
            store_content_hashes(conn)
            conn.execute(f"UPDATE product_groups SET group_id = ? {where}", [target_group, *moved])
            for table in ("products", "product_groups"):
                conn.execute(f"DELETE FROM {table} {where}", removed)
            conn.execute(
                "INSERT INTO products SELECT * REPLACE (external_id || '-new' AS external_id) "
                f"FROM saved_products {where}",
                removed,
            )
            conn.execute(
                "INSERT INTO product_groups SELECT * REPLACE (external_id || '-new' AS "
                f"external_id, group_id || '-new' AS group_id) FROM saved_product_groups {where}",
                removed,
            )
            conn.execute(
                "INSERT INTO price_history SELECT * REPLACE (price_minor + 100 AS price_minor, "
                "observed_at - INTERVAL 1 DAY AS observed_at) FROM price_history "
                f"{where} LIMIT 1",
                historied,
            )
        refresh_then_full()
    finally:
        with warehouse.connect(pipeline_settings.pipeline_db_path) as conn:
            for table in tables:
                conn.execute(f"DELETE FROM {table}")
                conn.execute(f"INSERT INTO {table} SELECT * FROM saved_{table}")
                conn.execute(f"DROP TABLE saved_{table}")
    refresh_then_full()


def analyst_copy(path: Path) -> dict[str, list[tuple]]:
    """Every table of a published copy (products through its view), sorted."""
    conn = duckdb.connect(str(path), read_only=True)
    try:
        return {
            table: conn.execute(f"SELECT * FROM {table} ORDER BY ALL").fetchall()
            for table in (*PUBLISHED_TABLES, "product_rows", "marketplace_fetches")
        }
    finally:
        conn.close()


def test_a_refresh_publishes_the_analyst_copy_a_full_build_publishes(
    first_ingest: Ingest,
    pipeline_settings: Settings,
    instance: dg.DagsterInstance,
    tmp_path: Path,
) -> None:
    """analyst_warehouse merges a refresh into the previous copy: after a price change, a
    removal, a new offer, a new price-history row, every offer fetched again and one offer left
    with an older fetch time (its marketplace's fetch failed half way), the copy holds exactly
    the pipeline's tables, fetched_at included, and every table, those behind the products view
    included, equals a copy published from scratch. All undone, the same."""
    db = pipeline_settings.pipeline_db_path
    (changed, removed, stale) = query(
        pipeline_settings,
        "SELECT marketplace, external_id FROM products WHERE marketplace = 'dummymart' "
        "ORDER BY external_id LIMIT 3",
    )
    where = "WHERE marketplace = ? AND external_id = ?"
    tables = ("products", "product_groups", "price_history")

    def publish_and_compare(scratch: Path, products_refresh: set[str]) -> None:
        result = dg.materialize(
            [analyst_warehouse], resources=build_resources(pipeline_settings), instance=instance
        )
        refresh = result.asset_materializations_for_node("analyst_warehouse")[-1].metadata
        assert refresh["table_refresh"].value["products"] in products_refresh
        assert refresh["started_from"].value == "spare"
        warehouse.publish(db, scratch)
        merged, fresh = analyst_copy(pipeline_settings.warehouse_path), analyst_copy(scratch)
        assert merged == fresh
        for table in PUBLISHED_TABLES:
            assert merged[table] == query(
                pipeline_settings, f"SELECT * FROM {table} ORDER BY ALL"
            ), table

    with warehouse.connect(db) as conn:
        for table in tables:
            conn.execute(f"CREATE TABLE saved_{table} AS SELECT * FROM {table}")
    try:
        with warehouse.connect(db) as conn:
            conn.execute("UPDATE products SET fetched_at = fetched_at + INTERVAL 1 HOUR")
            conn.execute(
                f"UPDATE products SET fetched_at = fetched_at - INTERVAL 2 HOUR {where}", stale
            )
            conn.execute(f"UPDATE products SET price_minor = price_minor + 1 {where}", changed)
            conn.execute(
                "INSERT INTO price_history SELECT marketplace, external_id, price_minor, "
                f"currency, available, fetched_at FROM products {where}",
                changed,
            )
            for table in ("products", "product_groups"):
                conn.execute(f"DELETE FROM {table} {where}", removed)
            conn.execute(
                "INSERT INTO products SELECT * REPLACE (external_id || '-new' AS external_id) "
                f"FROM saved_products {where}",
                removed,
            )
        publish_and_compare(tmp_path / "refreshed.duckdb", {"merged"})
    finally:
        with warehouse.connect(db) as conn:
            for table in tables:
                conn.execute(f"DELETE FROM {table}")
                conn.execute(f"INSERT INTO {table} SELECT * FROM saved_{table}")
                conn.execute(f"DROP TABLE saved_{table}")
    # Written into the snapshot before the refresh, which may already hold the restored rows.
    publish_and_compare(tmp_path / "restored.duckdb", {"merged", "kept"})


# Recomputes the groups of the warehouse's offers in a fresh interpreter, as a new run would.
REGROUP_SCRIPT = """
import json, sys
from pathlib import Path
import warehouse
from warehouse.derived import read_offers_for_matching
from warehouse.matching import assign_groups
with warehouse.connect(Path(sys.argv[1]), read_only=True) as conn:
    offers = read_offers_for_matching(conn)
rows = [[a.marketplace, a.external_id, a.group_id, a.method, str(a.confidence), a.matching_key]
        for a in assign_groups(offers)]
json.dump(rows, sys.stdout)
"""


def test_group_ids_of_the_warehouse_do_not_depend_on_the_hash_seed(
    first_ingest: Ingest, pipeline_settings: Settings
) -> None:
    """Every pipeline run is a new process with its own PYTHONHASHSEED; two runs in one test
    process share theirs, so the test above alone could not catch set-order dependence."""
    stored = [
        [marketplace, external_id, group_id, method, str(confidence), matching_key]
        for marketplace, external_id, group_id, method, confidence, matching_key in query(
            pipeline_settings,
            "SELECT marketplace, external_id, group_id, method, confidence, matching_key "
            "FROM product_groups ORDER BY marketplace, external_id",
        )
    ]
    assert stored
    for hash_seed in ("0", "1"):
        completed = subprocess.run(
            [sys.executable, "-c", REGROUP_SCRIPT, str(pipeline_settings.pipeline_db_path)],
            capture_output=True,
            text=True,
            cwd=REPO_ROOT,
            env={**os.environ, "PYTHONHASHSEED": hash_seed},
            timeout=120,
            check=False,
        )
        assert completed.returncode == 0, completed.stderr
        assert json.loads(completed.stdout) == stored


def test_a_marketplace_outage_fails_only_its_partition(
    first_ingest: Ingest,
    pipeline_settings: Settings,
    instance: dg.DagsterInstance,
    meili: meilisearch.Client,
    sandbox_control: httpx.Client,
) -> None:
    before = products_per_marketplace(pipeline_settings)
    indexed_before = documents_of(meili, pipeline_settings.meili_index, "kiondo")
    assert indexed_before > 0
    sandbox_control.post("/_sandbox/knobs/kiondo", json={"down": True}).raise_for_status()

    lines: list[str] = []
    report = materialize_all(instance=instance, progress=lines.append)

    assert report.failed_partitions == ["kiondo"]
    assert "503" in (report.partitions["kiondo"].error or "")
    assert any(line.startswith("kiondo: FAILED") for line in lines)
    assert report.downstream_success
    # The failed marketplace keeps its last good catalog everywhere; the others were refreshed.
    assert products_per_marketplace(pipeline_settings) == before
    assert documents_of(meili, pipeline_settings.meili_index, "kiondo") == indexed_before
    assert all(report.partitions[slug].success for slug in MARKETPLACES if slug != "kiondo")


def test_sensor_requests_a_downstream_run_when_products_change(
    first_ingest: Ingest,
    pipeline_settings: Settings,
    instance: dg.DagsterInstance,
    sandbox_control: httpx.Client,
) -> None:
    # Everything so far was refreshed by materialize_all itself: nothing for the sensor to do.
    idle = dg.build_sensor_context(instance=instance)
    assert isinstance(products_changed_sensor(idle), dg.SkipReason)
    cursor = idle.cursor

    # More malformed records: some shopwave offers drop out of the catalog, a real change.
    sandbox_control.post(
        "/_sandbox/knobs/shopwave", json={"malformed_rate": 0.2}
    ).raise_for_status()
    job = build_definitions(pipeline_settings).resolve_job_def(MARKETPLACE_CATALOG_JOB)
    result = job.execute_in_process(partition_key="shopwave", instance=instance)
    assert result.success
    changed = result.asset_materializations_for_node("normalized_products")[-1]
    assert changed.metadata["content_changed"].value is True

    request = products_changed_sensor(dg.build_sensor_context(instance=instance, cursor=cursor))
    assert isinstance(request, dg.RunRequest)
    assert request.tags["onecart/marketplaces"] == "shopwave"


def test_offers_of_a_deactivated_marketplace_leave_the_index_but_stay_in_the_warehouse(
    first_ingest: Ingest,
    pipeline_settings: Settings,
    instance: dg.DagsterInstance,
    meili: meilisearch.Client,
    tmp_path: Path,
) -> None:
    config = pipeline_settings.marketplaces_file.read_text()
    assert 'slug = "naijamall"\n' in config
    reduced = tmp_path / "marketplaces.toml"
    reduced.write_text(
        config.replace('slug = "naijamall"\n', 'slug = "naijamall"\nactive = false\n')
    )
    resources = dict(build_resources(pipeline_settings))
    resources["marketplaces"] = MarketplacesResource(
        marketplaces_file=str(reduced), sandbox_url=pipeline_settings.sandbox_url
    )
    naijamall = products_per_marketplace(pipeline_settings)["naijamall"]

    result = dg.materialize([search_products], resources=resources, instance=instance)

    metadata = result.asset_materializations_for_node("search_products")[-1].metadata
    assert metadata["inactive_marketplace_offers"].value == naijamall
    # (The sensor test before this one also dropped some shopwave offers from the catalog.)
    assert metadata["deleted"].value >= naijamall
    assert documents_of(meili, pipeline_settings.meili_index, "naijamall") == 0
    assert products_per_marketplace(pipeline_settings)["naijamall"] == naijamall


def test_stored_offer_embeddings_travel_in_the_documents(
    first_ingest: Ingest,
    pipeline_settings: Settings,
    instance: dg.DagsterInstance,
    meili: meilisearch.Client,
) -> None:
    embedding_store = pytest.importorskip("assistant.embedding_store")
    skipped = first_ingest.report.downstream_metadata["offer_embeddings"]["skipped"]
    assert "switched off" in skipped  # this module runs without the model (see conftest)
    with warehouse.connect(pipeline_settings.pipeline_db_path) as conn:
        texts = embedding_store.read_offer_texts(conn)
        hashes = sorted({text.text_hash for text in texts})
        # Unit vectors stand in for the model's output: what matters here is the plumbing.
        vectors = [[1.0 if i == n % 384 else 0.0 for i in range(384)] for n in range(len(hashes))]
        embedding_store.store_embeddings(conn, "test-model", hashes, vectors)

    result = dg.materialize(
        [search_products], resources=build_resources(pipeline_settings), instance=instance
    )

    metadata = result.asset_materializations_for_node("search_products")[-1].metadata
    assert metadata["vectors"].value == metadata["documents"].value
    # Vectors arriving (the first ingest after the background embeddings run had begun) add
    # the embedder in place: the whole index was rebuilt for it ("settings changed").
    assert metadata["rebuilt"].value is False, metadata["rebuild_reason"].value
    embedders = meili.http.get(f"indexes/{pipeline_settings.meili_index}/settings/embedders")
    assert "default" in embedders
    documents = (
        meili.index(pipeline_settings.meili_index)
        .get_documents({"retrieveVectors": True, "limit": 5})
        .results
    )
    assert documents
    for document in documents:
        (embedding,) = dict(document)["_vectors"]["default"]["embeddings"]
        assert len(embedding) == 384 and sum(embedding) == 1.0
