"""A marketplace an admin disables leaves the listings within a minute, not at the next pipeline
run: its offers stop counting in cards ("N offers on M marketplaces"), result and facet counts and
the cheapest price, products only it sold disappear, and enabling it brings all of that back.

On the real Meilisearch: the admin's click enqueues the RQ job (storefront.search_jobs), which a
worker here runs in-process; the listings are then read as /search and /api/search read them.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from rq import Queue, SimpleWorker
from sqlalchemy.orm import Session

from commerce.db import dispose_engines
from commerce.models import Marketplace, Product, User
from onecart.settings import Settings, get_settings
from search_index.groups import sync_group_index
from search_index.indexing import connect, sync_index
from search_index.marketplace_visibility import refresh_marketplace_groups
from tests.storefront.conftest import text_of
from tests.storefront.sample_catalog import (
    NOW,
    OFFERS,
    SONY_GROUP,
    delete_sample_catalog,
    search_documents,
)

# ShopWave sells the Sony headphones cheapest here ($299.99; the next is Kiondo's ≈ $324.32),
# and Kiondo's price for them just dropped.
CHANGES = {
    ("shopwave", "1001"): {"price_minor": 29999},
    ("kiondo", "KD-55"): {
        "previous_price_minor": 4500000,
        "price_dropped_at": NOW - timedelta(hours=5),
    },
}
CHEAP_SHOPWAVE_OFFERS = tuple(
    dataclasses.replace(offer, **CHANGES.get((offer.marketplace, offer.external_id), {}))
    for offer in OFFERS
)
ANKER_GROUP = "g-single-shopwave-3001"  # sold by ShopWave only


@pytest.fixture
def listings_index(meili_server: str) -> Iterator[str]:
    """An offers index and its product index of the sample catalog, private to one test (the
    test changes it)."""
    client = connect()
    uid = f"test_disabled_{uuid.uuid4().hex[:10]}"
    documents = search_documents(CHEAP_SHOPWAVE_OFFERS)
    sync_index(client, uid, documents, full_rebuild=True, task_timeout=120)
    sync_group_index(client, uid, documents, full_rebuild=True, task_timeout=120)
    yield uid
    delete_sample_catalog(client, uid)


@pytest.fixture
def queue_name() -> str:
    return f"search-test-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def app_config_overrides(meili_server: str, listings_index: str, queue_name: str) -> dict[str, Any]:
    return {
        "MEILI_URL": meili_server,
        "MEILI_INDEX": listings_index,
        "FX_CACHE_SECONDS": 0,
        "SEARCH_CACHE_SECONDS": 0,
        "SEARCH_JOBS_QUEUE": queue_name,
    }


@pytest.fixture
def run_queued_jobs(
    app: Flask, storefront_db_url: str, settings: Settings, queue_name: str, monkeypatch
) -> Iterator[Callable[[], int]]:
    """run() works off the test's queue in this process, as an RQ worker would (the job reads
    the storefront DB and Meilisearch from the settings, pointed at the test's); returns how
    many jobs ran."""
    monkeypatch.setenv("DATABASE_URL", storefront_db_url)
    get_settings.cache_clear()
    connection = redis.Redis.from_url(settings.redis_url)
    queue = Queue(queue_name, connection=connection)

    def run() -> int:
        queued = queue.count
        SimpleWorker([queue], connection=connection).work(burst=True)
        for job_id in queue.failed_job_registry.get_job_ids():
            job = queue.fetch_job(job_id)
            pytest.fail(f"job failed: {job.exc_info if job else job_id}")
        return queued

    try:
        yield run
    finally:
        queue.empty()
        queue.delete(delete_jobs=True)
        connection.close()
        monkeypatch.undo()
        get_settings.cache_clear()
        dispose_engines()


@pytest.fixture
def admin(
    client: FlaskClient, make_user: Callable[..., User], login: Callable[..., Any]
) -> FlaskClient:
    login(client, make_user(is_admin=True))
    return client


def listing(client: FlaskClient, **args: str) -> dict[str, Any]:
    response = client.get("/api/search", query_string={"per_page": "48", **args})
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    return response.get_json()


def card(answer: dict[str, Any], group_id: str) -> dict[str, Any] | None:
    return next((hit for hit in answer["hits"] if hit["id"] == group_id), None)


def facet(answer: dict[str, Any], name: str) -> dict[str, int]:
    return {item["value"]: item["count"] for item in answer["facets"][name]}


def shopwave(session: Session) -> Marketplace:
    return session.query(Marketplace).filter_by(slug="shopwave").one()


def test_disabling_a_marketplace_takes_its_offers_out_of_listings_and_enabling_brings_them_back(
    admin: FlaskClient,
    catalog: dict[str, Product],
    db_session: Session,
    run_queued_jobs: Callable[[], int],
) -> None:
    before = listing(admin, q="sony")
    sony = card(before, SONY_GROUP)
    assert sony is not None and (sony["offers"], sony["marketplaces"]) == (4, 4)
    assert sony["offer"]["marketplace"]["slug"] == "shopwave"
    everything = listing(admin)
    assert card(everything, ANKER_GROUP) is not None
    assert facet(everything, "marketplace")["shopwave"] == 3
    total_before = everything["total_hits"]

    market = shopwave(db_session)
    response = admin.post(f"/admin/marketplaces/{market.id}/disable", follow_redirects=True)
    assert "ShopWave's offers leave search within a minute." in text_of(
        response.get_data(as_text=True)
    )
    assert run_queued_jobs() == 1

    after = listing(admin, q="sony")
    sony = card(after, SONY_GROUP)
    assert sony is not None
    assert (sony["offers"], sony["marketplaces"]) == (3, 3)
    assert sony["offer"]["marketplace"]["slug"] == "kiondo"  # the cheapest enabled offer
    everything = listing(admin)
    assert "shopwave" not in facet(everything, "marketplace")
    assert card(everything, ANKER_GROUP) is None  # ShopWave sold it alone
    assert everything["total_hits"] == total_before - 1
    assert all(hit["offer"]["marketplace"]["slug"] != "shopwave" for hit in everything["hits"])
    assert listing(admin, marketplace="shopwave")["total_hits"] == 0
    page = text_of(admin.get("/search?q=sony").get_data(as_text=True))
    assert "3 offers on 3 marketplaces" in page and "4 offers" not in page

    db_session.expire_all()
    response = admin.post(
        f"/admin/marketplaces/{shopwave(db_session).id}/enable", follow_redirects=True
    )
    assert "ShopWave's offers return to search within a minute." in text_of(
        response.get_data(as_text=True)
    )
    assert run_queued_jobs() == 1

    restored = listing(admin, q="sony")
    sony = card(restored, SONY_GROUP)
    assert sony is not None and (sony["offers"], sony["marketplaces"]) == (4, 4)
    assert sony["offer"]["marketplace"]["slug"] == "shopwave"
    everything = listing(admin)
    assert facet(everything, "marketplace")["shopwave"] == 3
    assert card(everything, ANKER_GROUP) is not None
    assert everything["total_hits"] == total_before


def test_the_admin_page_says_when_the_search_update_is_done(
    admin: FlaskClient,
    catalog: dict[str, Product],
    db_session: Session,
    run_queued_jobs: Callable[[], int],
) -> None:
    admin.post(f"/admin/marketplaces/{shopwave(db_session).id}/disable")
    page = admin.get("/admin/marketplaces").get_data(as_text=True)
    assert 'data-testid="search-refresh-shopwave">search update queued<' in page
    run_queued_jobs()
    page = admin.get("/admin/marketplaces").get_data(as_text=True)
    assert 'data-testid="search-refresh-shopwave">search up to date<' in page
    assert "takes its offers out of search" in text_of(page)


def test_the_home_page_features_no_offer_of_a_disabled_marketplace(
    admin: FlaskClient,
    catalog: dict[str, Product],
    db_session: Session,
    run_queued_jobs: Callable[[], int],
) -> None:
    # The marketplaces are cached per process as long as exchange rates; the admin's own
    # process forgets them at once.
    admin.application.config["FX_CACHE_SECONDS"] = 600
    home = text_of(admin.get("/home").get_data(as_text=True))
    # ShopWave's charger: its only seller, a price drop, and top rated.
    assert "Anker PowerCore" in home and "Was $29.99" in home and "chargers" in home.lower()
    # Kiondo's price drop of the Sony headphones, which ShopWave sells too.
    assert "SONY WH1000XM5 Headphones Black" in home and "4 offers on 4 marketplaces" in home

    admin.post(f"/admin/marketplaces/{shopwave(db_session).id}/disable")
    home = text_of(admin.get("/home").get_data(as_text=True))
    assert "Was $29.99" not in home  # the price drops leave its offers out at once
    run_queued_jobs()
    home = text_of(admin.get("/home").get_data(as_text=True))
    assert "Anker PowerCore" not in home
    assert "SONY WH1000XM5 Headphones Black" in home
    assert "4 offers" not in home and "3 offers on 3 marketplaces" in home
    assert "chargers" not in home.lower()  # the categories count products


def test_the_assistant_suggests_no_offer_of_a_disabled_marketplace(
    catalog: dict[str, Product], db_session: Session, listings_index: str
) -> None:
    from assistant.retrieval import MODE_KEYWORD
    from assistant.service import answer_prompt
    from commerce.fx import load_fx_table

    fx = load_fx_table(db_session)

    def suggested(prompt: str, withheld: frozenset[str]) -> dict[str, str]:
        answer = answer_prompt(
            prompt,
            client=connect(),
            index_uid=listings_index,
            fx=fx,
            mode=MODE_KEYWORD,
            use_llm=False,
            withheld_marketplaces=withheld,
        )
        return {
            s.group_id: (s.marketplace, s.group_size, s.group_marketplaces)
            for s in answer.suggestions
        }

    assert suggested("sony headphones", frozenset())[SONY_GROUP] == ("shopwave", 4, 4)
    # The product index counts without ShopWave once its job ran (here: run directly).
    refresh_marketplace_groups(
        connect(), listings_index, "shopwave", disabled={"shopwave"}, matches_of=lambda ids: {}
    )
    assert suggested("sony headphones", frozenset({"shopwave"}))[SONY_GROUP] == ("kiondo", 3, 3)
    assert ANKER_GROUP in suggested("anker portable charger", frozenset())
    assert ANKER_GROUP not in suggested("anker portable charger", frozenset({"shopwave"}))


def test_a_toggle_before_the_first_catalog_build_leaves_the_index_to_the_pipeline(
    meili_server: str,
) -> None:
    from search_index.indexing import index_exists
    from search_index.settings import group_index_uid

    client = connect()
    uid = f"test_not_built_{uuid.uuid4().hex[:10]}"
    refresh = refresh_marketplace_groups(
        client, uid, "shopwave", disabled={"shopwave"}, matches_of=lambda ids: {}
    )
    assert refresh.groups == 0 and refresh.result.sent == 0
    # No product index without its settings: the pipeline's first build declares it.
    assert not index_exists(client, group_index_uid(uid))


def test_switching_a_marketplace_off_in_its_edit_form_takes_it_out_of_listings_too(
    admin: FlaskClient,
    catalog: dict[str, Product],
    db_session: Session,
    run_queued_jobs: Callable[[], int],
) -> None:
    market = shopwave(db_session)
    form = {
        "name": market.name,
        "kind": market.kind,
        "api_base_url": market.api_base_url,
        "currency": market.currency,
        "country": market.country,
        "relation_identifier": "gtin",
        "description": market.description or "",
        "logo": market.logo or "",
        "rating": str(market.rating),
    }  # "active" unchecked
    response = admin.post(f"/admin/marketplaces/{market.id}/edit", data=form, follow_redirects=True)
    assert "ShopWave's offers leave search within a minute." in text_of(
        response.get_data(as_text=True)
    )
    assert run_queued_jobs() == 1
    assert card(listing(admin, q="sony"), SONY_GROUP)["offers"] == 3
    # Saving it again without touching the switch queues nothing.
    admin.post(f"/admin/marketplaces/{market.id}/edit", data=form)
    assert run_queued_jobs() == 0


def offer_documents(uid: str, group_id: str) -> dict[str, dict[str, Any]]:
    """The offers index's documents of one product group, whole, by id."""
    page = connect().index(uid).get_documents({"filter": f'group_id = "{group_id}"', "limit": 100})
    return {str(dict(d)["id"]): dict(d) for d in page.results}


def test_the_offer_documents_count_only_enabled_marketplaces_in_their_group(
    listings_index: str,
) -> None:
    """group_size, group_marketplaces and group_min_price_usd_minor of every offer document of
    a group ShopWave sells in are over the enabled marketplaces' offers once the job ran (its
    own documents too, though no reader shows them), each with the doc_hash of its content; and
    enabling ShopWave again gives back exactly the documents the catalog was built with."""
    from search_index.documents import DOCUMENT_HASH_FIELD, compute_document_hash

    before = offer_documents(listings_index, SONY_GROUP)
    assert {d["group_size"] for d in before.values()} == {4}
    others = [d for d in before.values() if d["marketplace"] != "shopwave"]
    cheapest_other = min(d["price_usd_minor"] for d in others if d["available"])

    refresh = refresh_marketplace_groups(
        connect(), listings_index, "shopwave", disabled={"shopwave"}, matches_of=lambda ids: {}
    )
    disabled = offer_documents(listings_index, SONY_GROUP)
    for document in disabled.values():
        assert document["group_size"] == 3
        assert document["group_marketplaces"] == 3
        assert (document["group_available"], document["group_available_marketplaces"]) == (3, 3)
        assert document["group_min_price_usd_minor"] == cheapest_other
        content = {k: v for k, v in document.items() if k != DOCUMENT_HASH_FIELD}
        assert document[DOCUMENT_HASH_FIELD] == compute_document_hash(content)
        # Nothing else of the document moved.
        unchanged = (
            "group_size",
            "group_marketplaces",
            "group_available",
            "group_available_marketplaces",
            "group_min_price_usd_minor",
        )
        assert {k: v for k, v in document.items() if k not in (*unchanged, "doc_hash")} == {
            k: v for k, v in before[document["id"]].items() if k not in (*unchanged, "doc_hash")
        }
    assert refresh.offers_updated >= len(before)  # and those of its other groups

    refresh = refresh_marketplace_groups(
        connect(), listings_index, "shopwave", disabled=set(), matches_of=lambda ids: {}
    )
    assert refresh.offers_updated >= len(before)  # and those of its other groups
    assert offer_documents(listings_index, SONY_GROUP) == before
    # Run again, nothing left to change.
    refresh = refresh_marketplace_groups(
        connect(), listings_index, "shopwave", disabled=set(), matches_of=lambda ids: {}
    )
    assert refresh.offers_updated == 0
