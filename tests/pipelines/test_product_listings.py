"""Product listings on the pipeline-built catalog: the real sandbox marketplaces, matching, the
offers index and the product index (search_product_groups), queried as the site queries them.

Issue 9: one card per product, counts in products, the cheapest matching offer on each card,
marketplace filter = products with an offer there, price sort by that offer, stable pages, page 1
of broad queries drawn from several marketplaces, and ratings ordered by their review weight.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal

import meilisearch
import pytest

import warehouse
from onecart.settings import Settings
from search_index.client import make_client
from search_index.groups import bayesian_rating, catalog_rating_mean
from search_index.listings import SearchPage, offers_in_group, search_products
from search_index.params import SearchParams
from search_index.settings import group_index_uid
from tests.pipelines.conftest import Ingest

pytestmark = pytest.mark.slow

BROAD_QUERIES = ("headphones", "coffee", "phone", "running shoes")


@pytest.fixture(scope="module")
def products_index(
    first_ingest: Ingest, pipeline_settings: Settings, meili: meilisearch.Client
) -> Iterator[str]:
    """The product index the first ingest built (deleted with the module's other indexes)."""
    assert first_ingest.report.success, first_ingest.lines
    uid = group_index_uid(pipeline_settings.meili_index)
    yield uid
    meili.delete_index(uid)


@pytest.fixture(scope="module")
def search(pipeline_settings: Settings) -> meilisearch.Client:
    return make_client(pipeline_settings.meili_url, pipeline_settings.meili_master_key)


def listing(client: meilisearch.Client, uid: str, **changes: object) -> SearchPage:
    return search_products(client, uid, SearchParams(**changes))  # type: ignore[arg-type]


def warehouse_rows(settings: Settings, sql: str) -> list[tuple]:
    with warehouse.connect(settings.pipeline_db_path, read_only=True) as conn:
        return conn.execute(sql).fetchall()


def test_the_product_index_has_one_document_per_product_group(
    first_ingest: Ingest, products_index: str, pipeline_settings: Settings, search
) -> None:
    metadata = first_ingest.report.downstream_metadata["search_product_groups"]
    ((groups,),) = warehouse_rows(
        pipeline_settings, "SELECT count(DISTINCT group_id) FROM product_groups"
    )
    everything = listing(search, products_index, per_page=12)
    assert everything.total_hits == metadata["products"]
    # Offers the offers index leaves out (no FX rate, say) can empty a group, never add one.
    assert groups - metadata["offers_not_indexed"] <= everything.total_hits <= groups
    assert metadata["products_with_several_offers"] > 0


def test_pages_never_repeat_a_product_and_stay_stable(products_index: str, search) -> None:
    seen: set[str] = set()
    for page_number in (1, 2, 3):
        page = listing(search, products_index, q="headphones", per_page=12, page=page_number)
        again = listing(search, products_index, q="headphones", per_page=12, page=page_number)
        ids = [hit.group_id for hit in page.hits]
        assert ids == [hit.group_id for hit in again.hits]  # the same page twice: same order
        assert len(ids) == len(set(ids)) and not seen & set(ids)
        seen |= set(ids)
    assert len(seen) == min(36, page.total_hits)


def test_counts_and_facets_count_products(products_index: str, search) -> None:
    page = listing(search, products_index, q="headphones", per_page=48)
    assert page.total_hits == len({hit.group_id for hit in page.hits}) or page.total_pages > 1
    markets = {facet.value: facet.count for facet in page.facets["marketplace"]}
    for slug, count in markets.items():
        narrowed = listing(search, products_index, q="headphones", marketplaces=(slug,))
        assert narrowed.total_hits == count


def test_each_card_shows_the_cheapest_offer_matching_the_filters(
    pipeline_settings: Settings, products_index: str, search
) -> None:
    offers_index = pipeline_settings.meili_index
    page = listing(search, products_index, q="phone", per_page=24)
    several = [hit for hit in page.hits if hit.offer_count > 1]
    assert several, "the sandbox sells phones on several marketplaces"
    for hit in several:
        offers = offers_in_group(search, offers_index, hit.group_id)
        in_stock = [o for o in offers if o["available"]] or offers
        assert hit.offer.price_usd_minor == min(o["price_usd_minor"] for o in in_stock)
        assert hit.offer_count == len(offers)
        assert hit.marketplace_count == len({o["marketplace"] for o in offers})
        slug = offers[-1]["marketplace"]  # the dearest offer's marketplace
        narrowed = listing(search, products_index, q="phone", marketplaces=(slug,), per_page=48)
        shown = {h.group_id: h for h in narrowed.hits}
        if hit.group_id in shown:
            there = [o for o in offers if o["marketplace"] == slug]
            stocked = [o for o in there if o["available"]] or there
            assert shown[hit.group_id].offer.marketplace == slug
            assert shown[hit.group_id].offer.price_usd_minor == min(
                o["price_usd_minor"] for o in stocked
            )


def test_a_marketplace_filter_lists_products_with_an_offer_there(
    pipeline_settings: Settings, products_index: str, search
) -> None:
    ((expected,),) = warehouse_rows(
        pipeline_settings,
        "SELECT count(DISTINCT group_id) FROM product_groups WHERE marketplace = 'kiondo'",
    )
    page = listing(search, products_index, marketplaces=("kiondo",), per_page=48)
    assert page.total_hits == expected
    assert all(hit.offer.marketplace == "kiondo" for hit in page.hits)
    assert any(hit.marketplace_count > 1 for hit in page.hits)


@pytest.mark.parametrize("sort", ["price_asc", "price_desc"])
def test_price_sort_orders_products_by_their_cheapest_offer(
    products_index: str, search, sort: str
) -> None:
    sign = -1 if sort == "price_desc" else 1
    keys: list[tuple[bool, int]] = []
    for page_number in (1, 2):
        page = listing(search, products_index, q="phone", sort=sort, per_page=24, page=page_number)
        keys += [(not hit.offer.available, sign * hit.offer.price_usd_minor) for hit in page.hits]
    assert len(keys) > 24
    # In-stock products first, then the out-of-stock ones, each by price.
    assert keys == sorted(keys)


@pytest.mark.parametrize("query", BROAD_QUERIES)
def test_page_one_of_a_broad_query_draws_from_three_or_more_marketplaces(
    products_index: str, search, query: str
) -> None:
    page = listing(search, products_index, q=query)
    marketplaces = {hit.offer.marketplace for hit in page.hits}
    assert len(marketplaces) >= 3, (query, [hit.offer.marketplace for hit in page.hits])


def test_highest_rated_orders_by_the_review_weighted_score(
    products_index: str, search, meili: meilisearch.Client
) -> None:
    page = listing(search, products_index, sort="rating", per_page=48)
    documents = (
        meili.index(products_index)
        .get_documents(
            {"limit": 10_000, "fields": ["id", "offers", "rating", "rating_count", "rating_score"]}
        )
        .results
    )
    by_id = {document.id: dict(document) for document in documents}
    prior = catalog_rating_mean(
        offer for document in by_id.values() for offer in document["offers"]
    )
    scores = []
    for hit in page.hits:
        document = by_id[hit.group_id]
        expected = bayesian_rating(
            Decimal(str(document["rating"])), int(document["rating_count"]), prior
        )
        assert abs(Decimal(str(document["rating_score"])) - expected) < Decimal("0.01")
        scores.append(document["rating_score"])
    assert scores == sorted(scores, reverse=True)
    # Review weighting: a product rated on a handful of reviews never leads.
    assert page.hits[0].rating_count >= 20


def test_a_run_without_changes_sends_no_product_document(
    first_ingest: Ingest, products_index: str, instance
) -> None:
    from pipelines.run import materialize_all

    report = materialize_all(instance=instance)

    assert report.success
    metadata = report.downstream_metadata["search_product_groups"]
    assert metadata["rebuilt"] is False and metadata["sent"] == 0 and metadata["deleted"] == 0
    assert metadata["unchanged"] == metadata["products"]


@pytest.mark.parametrize("sort", ["price_asc", "price_desc"])
def test_price_sort_over_several_marketplaces_uses_the_cheapest_offer_among_them(
    pipeline_settings: Settings, products_index: str, search, sort: str
) -> None:
    overall = listing(search, products_index, q="phone", per_page=12)
    chosen = tuple(f.value for f in overall.facets["marketplace"][:3])
    shown: list[tuple[int, str]] = []
    for page_number in (1, 2, 3):
        page = listing(
            search, products_index, q="phone", marketplaces=chosen, sort=sort, per_page=12,
            page=page_number,
        )  # fmt: skip
        for hit in page.hits:
            offers = offers_in_group(search, pipeline_settings.meili_index, hit.group_id)
            picks = []
            for slug in chosen:
                there = [o for o in offers if o["marketplace"] == slug]
                stocked = [o for o in there if o["available"]] or there
                if stocked:
                    picks.append(min(o["price_usd_minor"] for o in stocked))
            assert hit.offer.marketplace in chosen
            assert hit.offer.price_usd_minor == min(picks)
            shown.append((hit.offer.available, hit.offer.price_usd_minor, hit.group_id))
    assert len(shown) == len({group for *_, group in shown}) > 24
    sign = -1 if sort == "price_desc" else 1
    keys = [(not available, sign * price) for available, price, _ in shown]
    assert keys == sorted(keys)  # in stock first, then out of stock, each by price
    # "phone" is one word: every product matches it, so the pages are one price order.
    everything = listing(search, products_index, q="phone", marketplaces=chosen, per_page=12)
    # The range is the cheapest and the dearest card, in stock or not (every page of them).
    cards: list[int] = []
    for page_number in range(1, everything.total_pages + 1):
        page = listing(
            search, products_index, q="phone", marketplaces=chosen, per_page=12,
            page=page_number,
        )  # fmt: skip
        cards += [hit.offer.price_usd_minor for hit in page.hits]
    assert (everything.price_min_usd_minor, everything.price_max_usd_minor) == (
        min(cards),
        max(cards),
    )


def test_marketplace_counts_under_a_price_filter_promise_what_the_filter_lists(
    products_index: str, search
) -> None:
    bounds = {"min_price": Decimal(20), "max_price": Decimal(150)}
    page = listing(search, products_index, q="headphones", **bounds)
    counts = {facet.value: facet.count for facet in page.facets["marketplace"]}
    assert len(counts) >= 3
    for slug, count in counts.items():
        there = listing(search, products_index, q="headphones", marketplaces=(slug,), **bounds)
        assert there.total_hits == count, slug
        assert all(hit.offer.marketplace == slug for hit in there.hits)
        assert all(2000 <= hit.offer.price_usd_minor <= 15000 for hit in there.hits)


def product_documents(client: meilisearch.Client, uid: str) -> dict[str, dict]:
    """Every product document of `uid` by id: its marketplaces and its offers' marketplaces."""
    index = client.index(uid)
    documents: dict[str, dict] = {}
    offset = 0
    while True:
        page = index.get_documents(
            {
                "fields": ["id", "marketplaces", "offers", "doc_hash"],
                "limit": 1000,
                "offset": offset,
            }
        )
        documents.update({str(d["id"]): dict(d) for d in (dict(r) for r in page.results)})
        offset += len(page.results)
        if not page.results or offset >= page.total:
            return documents


@dataclass
class AdminStorefront:
    """A storefront DB holding ShopWave, whose admin switch `set_shopwave_active` flips, and the
    pipeline's resources pointed at it."""

    set_shopwave_active: Callable[[bool], None]
    resources: dict


@pytest.fixture
def admin_storefront(pipeline_settings: Settings, tmp_path) -> Iterator[AdminStorefront]:
    import sqlalchemy as sa
    from sqlalchemy.orm import Session

    from commerce.models import Marketplace
    from pipelines.resources import StorefrontDatabaseResource, build_resources
    from storefront.db_migrate import upgrade_database

    url = f"sqlite:///{tmp_path / 'storefront.db'}"
    upgrade_database(url)
    engine = sa.create_engine(url)

    def set_shopwave_active(active: bool) -> None:
        with Session(engine) as session, session.begin():
            market = session.scalar(sa.select(Marketplace).where(Marketplace.slug == "shopwave"))
            if market is None:
                market = Marketplace(
                    slug="shopwave", name="ShopWave", kind="shopify", currency="USD",
                    country="US", api_base_url="http://127.0.0.1:9/shopwave",
                    capabilities=["catalog"], relation_identifier="gtin",
                )  # fmt: skip
                session.add(market)
            market.active = active

    resources = dict(build_resources(pipeline_settings))
    resources["storefront_db"] = StorefrontDatabaseResource(database_url=url)
    try:
        yield AdminStorefront(set_shopwave_active, resources)
    finally:
        engine.dispose()


def materialize_serving(instance, resources: dict, *assets) -> dict:
    """Materialize `assets`; the metadata of the last one's materialization."""
    import dagster as dg

    result = dg.materialize(list(assets), resources=resources, instance=instance)
    node = assets[-1].key.to_user_string()
    metadata = result.asset_materializations_for_node(node)[-1].metadata
    return {key: value.value for key, value in metadata.items()}


def warehouse_matches(settings: Settings):
    """matches_of for search_index.marketplace_visibility, read from the warehouse."""
    from search_index.documents import document_id

    def matches_of(group_ids):
        with warehouse.connect(settings.pipeline_db_path, read_only=True) as conn:
            rows = conn.execute(
                "SELECT marketplace, external_id, method, confidence FROM product_groups "
                "WHERE group_id IN (SELECT unnest(?))",
                [list(group_ids)],
            ).fetchall()
        return {document_id(s, e): (m, c) for s, e, m, c in rows}

    return matches_of


def test_a_marketplace_disabled_by_an_admin_is_left_out_of_the_product_index(
    first_ingest: Ingest,
    products_index: str,
    pipeline_settings: Settings,
    search: meilisearch.Client,
    instance,
    admin_storefront: AdminStorefront,
) -> None:
    """The pipeline builds product documents only from the marketplaces enabled in the
    storefront DB; the admin's job (search_index.marketplace_visibility) builds the very same
    documents the pipeline does, so the next run after it has nothing to send."""
    from pipelines.assets.serving import search_product_groups
    from search_index.marketplace_visibility import refresh_marketplace_groups

    before = product_documents(search, products_index)
    shopwave_only = {i for i, d in before.items() if d["marketplaces"] == ["shopwave"]}
    assert shopwave_only and any(
        "shopwave" in d["marketplaces"] and len(d["marketplaces"]) > 1 for d in before.values()
    )
    try:
        admin_storefront.set_shopwave_active(False)
        metadata = materialize_serving(instance, admin_storefront.resources, search_product_groups)
        assert metadata["disabled_marketplaces"] == "shopwave"
        disabled = product_documents(search, products_index)
        assert set(disabled) == set(before) - shopwave_only
        for document in disabled.values():
            assert "shopwave" not in document["marketplaces"]
            assert all(offer["marketplace"] != "shopwave" for offer in document["offers"])
        page = listing(search, products_index, per_page=48)
        assert "shopwave" not in {facet.value for facet in page.facets["marketplace"]}
        assert page.total_hits == len(before) - len(shopwave_only)

        # Enabled again: the admin's job restores every document as the pipeline built it.
        admin_storefront.set_shopwave_active(True)
        refresh_marketplace_groups(
            search,
            pipeline_settings.meili_index,
            "shopwave",
            disabled=set(),
            matches_of=warehouse_matches(pipeline_settings),
        )
        restored = product_documents(search, products_index)
        assert {i: d["doc_hash"] for i, d in restored.items()} == {
            i: d["doc_hash"] for i, d in before.items()
        }
        metadata = materialize_serving(instance, admin_storefront.resources, search_product_groups)
        assert metadata["disabled_marketplaces"] == ""
        assert metadata["sent"] == 0 and metadata["deleted"] == 0
    finally:
        admin_storefront.set_shopwave_active(True)


def test_a_group_left_with_a_disabled_marketplace_only_leaves_the_product_index(
    first_ingest: Ingest,
    products_index: str,
    pipeline_settings: Settings,
    search: meilisearch.Client,
    instance,
    admin_storefront: AdminStorefront,
) -> None:
    """While ShopWave is disabled, a product sold by ShopWave and one other marketplace whose
    other offer leaves the group is left with ShopWave's offer only: the pipeline's refresh of
    the changed groups deletes its document (it built none for it)."""
    from pipelines.assets.serving import search_product_groups, search_products

    before = product_documents(search, products_index)
    pair = next(
        i
        for i, d in sorted(before.items())
        if len(d["offers"]) == 2 and len(d["marketplaces"]) == 2 and "shopwave" in d["marketplaces"]
    )
    other = next(o for o in before[pair]["offers"] if o["marketplace"] != "shopwave")
    with warehouse.connect(pipeline_settings.pipeline_db_path, read_only=True) as conn:
        ((external_id,),) = conn.execute(
            "SELECT external_id FROM product_groups WHERE group_id = ? AND marketplace = ?",
            [pair, other["marketplace"]],
        ).fetchall()
    try:
        admin_storefront.set_shopwave_active(False)
        materialize_serving(instance, admin_storefront.resources, search_product_groups)
        assert product_documents(search, products_index)[pair]["marketplaces"] == [
            other["marketplace"]
        ]
        # The other offer is matched into a product of its own.
        with warehouse.connect(pipeline_settings.pipeline_db_path) as conn:
            conn.execute(
                "UPDATE product_groups SET group_id = group_id || '-split' "
                "WHERE marketplace = ? AND external_id = ?",
                [other["marketplace"], external_id],
            )
        metadata = materialize_serving(
            instance, admin_storefront.resources, search_products, search_product_groups
        )
        assert metadata["build_mode"] == "changed"
        after = product_documents(search, products_index)
        assert pair not in after
        assert after[f"{pair}-split"]["marketplaces"] == [other["marketplace"]]
    finally:
        admin_storefront.set_shopwave_active(True)


def offer_documents(client: meilisearch.Client, uid: str) -> dict[str, dict]:
    """Every offer document of the offers index `uid`, whole, by id."""
    index = client.index(uid)
    documents: dict[str, dict] = {}
    offset = 0
    while True:
        page = index.get_documents({"limit": 1000, "offset": offset})
        documents.update((str(dict(d)["id"]), dict(d)) for d in page.results)
        offset += len(page.results)
        if not page.results or offset >= page.total:
            return documents


def test_offer_documents_count_only_the_enabled_marketplaces_in_their_group(
    first_ingest: Ingest,
    products_index: str,
    pipeline_settings: Settings,
    search: meilisearch.Client,
    instance,
    admin_storefront: AdminStorefront,
) -> None:
    """While ShopWave is disabled, every offer document of a group it sells in counts the other
    marketplaces' offers only (group_size, group_marketplaces, group_min_price_usd_minor), as
    its product document does: the admin's job sets them, and search_products builds the very
    same documents, so its run after the job sends nothing; enabled again, the job gives back
    the documents the pipeline built before, and the next run sends nothing either."""
    from pipelines.assets.serving import search_products
    from search_index.marketplace_visibility import refresh_marketplace_groups

    offers_uid = pipeline_settings.meili_index
    # As the pipeline builds them with every marketplace enabled (a test before this one may
    # have left ShopWave's switch flipped back without its job).
    admin_storefront.set_shopwave_active(True)
    materialize_serving(instance, admin_storefront.resources, search_products)
    before = offer_documents(search, offers_uid)
    members: dict[str, list[dict]] = {}
    for document in before.values():
        members.setdefault(document["group_id"], []).append(document)
    shared = {
        group_id: [d for d in group if d["marketplace"] != "shopwave"]
        for group_id, group in members.items()
        if group_id
        and any(d["marketplace"] == "shopwave" for d in group)
        and any(d["marketplace"] != "shopwave" for d in group)
    }
    assert shared
    try:
        admin_storefront.set_shopwave_active(False)
        refresh_marketplace_groups(
            search,
            offers_uid,
            "shopwave",
            disabled={"shopwave"},
            matches_of=warehouse_matches(pipeline_settings),
        )
        by_job = offer_documents(search, offers_uid)
        for group_id, others in shared.items():
            priced = [d["price_usd_minor"] for d in others if d["available"]] or [
                d["price_usd_minor"] for d in others
            ]
            for document in members[group_id]:
                counted = by_job[document["id"]]
                assert counted["group_size"] == len(others)
                assert counted["group_marketplaces"] == len({d["marketplace"] for d in others})
                assert counted["group_min_price_usd_minor"] == min(priced)
        metadata = materialize_serving(instance, admin_storefront.resources, search_products)
        assert metadata["disabled_marketplaces"] == "shopwave"
        assert (metadata["sent"], metadata["deleted"]) == (0, 0)
        assert offer_documents(search, offers_uid) == by_job

        admin_storefront.set_shopwave_active(True)
        refresh_marketplace_groups(
            search,
            offers_uid,
            "shopwave",
            disabled=set(),
            matches_of=warehouse_matches(pipeline_settings),
        )
        assert offer_documents(search, offers_uid) == before
        metadata = materialize_serving(instance, admin_storefront.resources, search_products)
        assert metadata["disabled_marketplaces"] == ""
        assert (metadata["sent"], metadata["deleted"]) == (0, 0)
    finally:
        admin_storefront.set_shopwave_active(True)
