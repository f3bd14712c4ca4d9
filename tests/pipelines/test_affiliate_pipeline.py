"""The sandbox's Amazon (Creators API) and Sokoni (CSV feed) through the real pipeline: their
partitions ingest, their offers join product groups with the other marketplaces by GTIN, and the
index serves them with those groups. A subset of the marketplaces keeps the run short."""

from __future__ import annotations

import meilisearch
import pytest
from dagster import DagsterInstance

import warehouse
from onecart.settings import Settings
from pipelines.run import materialize_all
from tests.pipelines.conftest import Ingest

pytestmark = pytest.mark.slow

SELECTED = ["amazon", "sokoni", "shopwave", "dummymart", "naijamall", "bazaar"]


@pytest.fixture(scope="module")
def affiliate_ingest(
    pipeline_settings: Settings, instance: DagsterInstance, meili: meilisearch.Client
) -> Ingest:
    lines: list[str] = []
    report = materialize_all(instance=instance, progress=lines.append, marketplaces=SELECTED)
    return Ingest(report=report, lines=lines)


def query(settings: Settings, sql: str) -> list[tuple]:
    with warehouse.connect(settings.pipeline_db_path, read_only=True) as conn:
        return conn.execute(sql).fetchall()


def test_amazon_and_sokoni_partitions_ingest(affiliate_ingest: Ingest) -> None:
    report = affiliate_ingest.report
    assert report.failed_partitions == [], affiliate_ingest.lines
    assert report.downstream_success, affiliate_ingest.lines
    for slug in ("amazon", "sokoni"):
        outcome = report.partitions[slug]
        assert outcome.normalized > 0, affiliate_ingest.lines
        assert outcome.fetched == outcome.normalized + outcome.rejected


def test_amazon_offers_group_with_at_least_two_other_marketplaces(
    affiliate_ingest: Ingest, pipeline_settings: Settings
) -> None:
    spanning = query(
        pipeline_settings,
        "SELECT group_id, list(DISTINCT marketplace ORDER BY marketplace) "
        "FROM product_groups GROUP BY group_id "
        "HAVING bool_or(marketplace = 'amazon') AND count(DISTINCT marketplace) >= 3",
    )
    assert len(spanning) >= 10, spanning[:5]
    assert any("sokoni" in marketplaces for _, marketplaces in spanning)


def test_the_index_serves_amazon_offers_with_their_groups(
    affiliate_ingest: Ingest, pipeline_settings: Settings, meili: meilisearch.Client
) -> None:
    index = meili.index(pipeline_settings.meili_index)
    result = index.search("", {"filter": "marketplace = amazon", "limit": 1000})
    documents = result["hits"]
    assert len(documents) == affiliate_ingest.report.partitions["amazon"].normalized
    assert all("tag=onecart-20" in (doc["product_url"] or "") for doc in documents)
    assert sum(1 for doc in documents if (doc["group_marketplaces"] or 0) >= 3) >= 10


def test_amazon_s_listed_eans_count_as_gtin_claims(
    affiliate_ingest: Ingest, pipeline_settings: Settings
) -> None:
    """Amazon lists its GTINs under itemInfo.externalIds.eans/upcs.displayValues. The GTIN-claim
    scan knew single keys only (`ean`, `upc`, …), so Amazon's loads claimed none and
    gtin_checksum_share could never warn for it, however broken its EANs."""
    ((claimed, invalid, with_gtin),) = query(
        pipeline_settings,
        "SELECT l.gtin_claimed, l.gtin_invalid, "
        "(SELECT count(gtin) FROM products WHERE marketplace = 'amazon') FROM catalog_loads AS l "
        "WHERE l.marketplace = 'amazon' ORDER BY l.loaded_at DESC LIMIT 1",
    )
    assert with_gtin > 0
    assert claimed - invalid == with_gtin
