"""Indexing against the real Meilisearch server: settings, rebuilds, incremental updates, search."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import meilisearch
import pytest

from search_index import indexing
from search_index.documents import build_document
from search_index.indexing import (
    META_INDEX_UID,
    TASK_DOCUMENTS,
    IndexingError,
    connect,
    fetch_document_hashes,
    index_exists,
    stored_fingerprint,
    sync_index,
)
from search_index.settings import (
    EMBEDDERS_SETTING,
    EMBEDDING_DIMENSIONS,
    FILTERABLE_COMPARISON,
    FILTERABLE_EQUALITY,
    INDEX_SETTINGS,
    SEARCHABLE_ATTRIBUTES,
    SORTABLE_ATTRIBUTES,
    settings_fingerprint,
)

FX = {"EUR": Decimal("0.92"), "KES": Decimal("129.50")}
MARKETPLACES = {
    "shopwave": {"slug": "shopwave", "name": "ShopWave", "logo": "/static/logos/shopwave.svg"},
    "kiondo": {"slug": "kiondo", "name": "Kiondo Market", "logo": "/static/logos/kiondo.svg"},
    "bazaar": {"slug": "bazaar", "name": "Bazaar", "logo": "/static/logos/bazaar.svg"},
}
TITLES = [
    ("Sony WH-1000XM5 Wireless Headphones", "headphones", "Sony"),
    ("Hisense 65-inch 4K UHD Smart TV", "televisions", "Hisense"),
    ("Asics Gel-Contend 8 Running Shoes", "running shoes", "Asics"),
    ("Thermos Stainless King Vacuum Flask 470ml", "flasks", "Thermos"),
    ("Lenovo IdeaPad Slim 5 Notebook", "laptops", "Lenovo"),
    ("Tecno Spark 20 Smartphone 128GB", "smartphones", "Tecno"),
    ("Contigo West Loop Travel Mug", "mugs", "Contigo"),
    ("JBL Flip 6 Portable Speaker", "speakers", "JBL"),
]


@pytest.fixture
def client(meili_server: str) -> meilisearch.Client:
    return connect()


@pytest.fixture
def index_uid(client: meilisearch.Client) -> Iterator[str]:
    """A fresh index uid per test; the index, its rebuild twin and its meta record go after."""
    uid = f"test_{uuid.uuid4().hex[:12]}"
    yield uid
    for leftover in (uid, f"{uid}_next"):
        if index_exists(client, leftover):
            client.wait_for_task(client.delete_index(leftover).task_uid, timeout_in_ms=30_000)
    if index_exists(client, META_INDEX_UID):
        meta = client.index(META_INDEX_UID)
        client.wait_for_task(meta.delete_document(uid).task_uid, timeout_in_ms=30_000)


def make_offer(
    number: int,
    *,
    marketplace: str = "shopwave",
    price_minor: int | None = None,
    currency: str = "USD",
    title: str | None = None,
) -> dict[str, Any]:
    default_title, category, brand = TITLES[number % len(TITLES)]
    return {
        "marketplace": marketplace,
        "external_id": str(number),
        "title": title or f"{default_title} #{number}",
        "description": f"{default_title}, offer {number}.",
        "price_minor": price_minor if price_minor is not None else 1_000 + 37 * number,
        "currency": currency,
        "image_url": None,
        "product_url": None,
        "category": category,
        "brand": brand,
        "model": f"M-{number}",
        "gtin": None,
        "rating": Decimal("4.10"),
        "rating_count": number,
        "available": number % 5 != 0,
        "content_hash": f"hash-{number}",
        "updated_at": datetime(2026, 11, 1, tzinfo=UTC),
    }


def to_document(
    offer: dict[str, Any], *, fx: dict[str, Decimal] = FX, group: dict[str, Any] | None = None
) -> dict[str, Any]:
    return build_document(
        offer,
        marketplace=MARKETPLACES[offer["marketplace"]],
        group=group,
        fx_usd_rates=fx,
        history=None,
    )


def search_titles(client: meilisearch.Client, uid: str, query: str, **params: Any) -> list[str]:
    return [hit["title"] for hit in client.index(uid).search(query, params or None)["hits"]]


def received_documents(client: meilisearch.Client, task_uids: tuple[int, ...]) -> int:
    """How many documents Meilisearch actually received in the given tasks."""
    total = 0
    for task_uid in task_uids:
        task = client.get_task(task_uid)
        if task.type == "documentAdditionOrUpdate":
            total += (task.details or {}).get("receivedDocuments", 0)
    return total


def test_first_sync_builds_the_index_with_the_contract_settings(
    client: meilisearch.Client, index_uid: str
) -> None:
    documents = [to_document(make_offer(n)) for n in range(20)]
    result = sync_index(client, index_uid, documents)

    assert result.rebuilt and result.rebuild_reason == "index missing"
    assert result.sent == 20
    live = client.index(index_uid).get_settings()
    assert live["searchableAttributes"] == list(SEARCHABLE_ATTRIBUTES)
    # Only the filter features something asks for (search_index.settings), no facet search.
    features = {
        name: rule["features"]
        for rule in live["filterableAttributes"]
        for name in rule["attributePatterns"]
    }
    assert set(features) == set(FILTERABLE_EQUALITY) | set(FILTERABLE_COMPARISON)
    for name in FILTERABLE_EQUALITY:
        assert features[name]["filter"] == {"equality": True, "comparison": False}
    for name in FILTERABLE_COMPARISON:
        assert features[name]["filter"] == {"equality": False, "comparison": True}
    assert not any(feature["facetSearch"] for feature in features.values())
    assert live["facetSearch"] is False
    assert set(live["sortableAttributes"]) == set(SORTABLE_ATTRIBUTES)
    assert live["typoTolerance"]["enabled"] is True
    assert "television" in live["synonyms"]["tv"]
    assert live["faceting"]["maxValuesPerFacet"] >= 200
    assert live["pagination"]["maxTotalHits"] == 10_000
    assert live["displayedAttributes"] == ["*"]
    assert client.get_raw_index(index_uid)["primaryKey"] == "id"
    assert stored_fingerprint(client, index_uid) == settings_fingerprint()
    assert client.index(index_uid).get_stats().number_of_documents == 20
    assert not index_exists(client, f"{index_uid}_next")


def test_full_rebuild_swaps_while_searches_keep_succeeding(
    client: meilisearch.Client, index_uid: str
) -> None:
    sync_index(client, index_uid, [to_document(make_offer(n)) for n in range(400)])
    replacement = [
        to_document(make_offer(n, title=f"Sony Headphones rebuilt {n}")) for n in range(1000, 1600)
    ]
    failures: list[BaseException] = []
    empty_results = 0
    searches = 0
    stop = threading.Event()

    def search_continuously() -> None:
        nonlocal empty_results, searches
        reader = connect()
        while not stop.is_set():
            try:
                hits = reader.index(index_uid).search("sony headphones")["hits"]
            except Exception as exc:  # any failure at all is what this test looks for
                failures.append(exc)
                continue
            searches += 1
            empty_results += not hits

    searcher = threading.Thread(target=search_continuously)
    searcher.start()
    try:
        result = sync_index(client, index_uid, replacement, full_rebuild=True, batch_size=100)
    finally:
        stop.set()
        searcher.join()

    assert result.rebuilt and result.rebuild_reason == "requested"
    assert result.sent == 600
    assert failures == []
    assert searches > 0
    assert empty_results == 0
    ids = set(fetch_document_hashes(client, index_uid))
    assert ids == {document["id"] for document in replacement}
    assert not index_exists(client, f"{index_uid}_next")


def test_incremental_sync_sends_only_changed_documents_and_deletes_removed_ones(
    client: meilisearch.Client, index_uid: str
) -> None:
    offers = [make_offer(n) for n in range(50)]
    sync_index(client, index_uid, [to_document(offer) for offer in offers])

    offers[3]["price_minor"] += 100  # a price change
    offers[4]["title"] = "Sony WH-1000XM5 Headphones Black"  # a content change
    removed = {offers.pop(10)["external_id"], offers.pop(20)["external_id"]}
    offers.append(make_offer(99))  # a new offer
    group = {"group_id": "g-00000000000000aa", "group_size": 2, "group_marketplaces": 2}
    documents = [to_document(o, group=group if o["external_id"] == "7" else None) for o in offers]

    result = sync_index(client, index_uid, documents)

    assert not result.rebuilt
    assert (result.sent, result.deleted, result.unchanged) == (4, 2, 45)
    assert received_documents(client, result.task_uids) == 4
    held = fetch_document_hashes(client, index_uid)
    assert held == {document["id"]: document["doc_hash"] for document in documents}
    assert not {f"shopwave--{external_id}" for external_id in removed} & set(held)
    changed = client.index(index_uid).get_document("shopwave--3")
    assert changed.price_minor == offers[3]["price_minor"]
    assert client.index(index_uid).get_document("shopwave--7").group_id == "g-00000000000000aa"

    again = sync_index(client, index_uid, documents)
    assert (again.sent, again.deleted, again.unchanged) == (0, 0, 49)
    assert again.task_uids == ()


def test_an_fx_rate_change_resends_only_offers_in_that_currency(
    client: meilisearch.Client, index_uid: str
) -> None:
    offers = [
        make_offer(n, marketplace="kiondo", currency="KES", price_minor=450_000 + n)
        for n in range(5)
    ]
    offers += [make_offer(n, marketplace="bazaar", currency="EUR") for n in range(5, 10)]
    sync_index(client, index_uid, [to_document(offer) for offer in offers])

    moved = {**FX, "KES": Decimal("131.25")}
    result = sync_index(client, index_uid, [to_document(offer, fx=moved) for offer in offers])

    assert (result.sent, result.unchanged) == (5, 5)
    document = client.index(index_uid).get_document("kiondo--0")
    assert document.price_usd_minor == to_document(offers[0], fx=moved)["price_usd_minor"]


def test_a_settings_fingerprint_mismatch_triggers_a_rebuild(
    client: meilisearch.Client, index_uid: str
) -> None:
    documents = [to_document(make_offer(n)) for n in range(10)]
    sync_index(client, index_uid, documents)
    meta = client.index(META_INDEX_UID)
    stale = {"id": index_uid, "settings_fingerprint": "built-with-older-settings"}
    client.wait_for_task(meta.add_documents([stale]).task_uid, timeout_in_ms=30_000)

    result = sync_index(client, index_uid, documents)

    assert result.rebuilt and result.rebuild_reason == "settings changed"
    assert stored_fingerprint(client, index_uid) == settings_fingerprint()
    assert client.index(index_uid).get_stats().number_of_documents == 10


def _embedders(client: meilisearch.Client, index_uid: str) -> dict[str, Any]:
    return dict(client.http.get(f"indexes/{index_uid}/settings/embedders") or {})


def test_vectors_arriving_add_the_embedder_in_place_and_leaving_remove_it_without_a_rebuild(
    client: meilisearch.Client, index_uid: str
) -> None:
    # The first ingest after the background embeddings run had begun read the vectors embedded
    # so far and rebuilt the whole index ("settings changed"): the embedder was part of the
    # fingerprint. It is not any more: the embedder follows the vectors in place.
    documents = [to_document(make_offer(n)) for n in range(10)]
    sync_index(client, index_uid, documents)
    vectors = {documents[0]["id"]: [1.0] + [0.0] * (EMBEDDING_DIMENSIONS - 1)}

    with_vectors = sync_index(client, index_uid, documents, vectors=vectors)

    assert not with_vectors.rebuilt, with_vectors.rebuild_reason
    assert with_vectors.sent == 10  # each document now carries `_vectors.default` (or null)
    assert "default" in _embedders(client, index_uid)
    assert stored_fingerprint(client, index_uid) == settings_fingerprint()
    again = sync_index(client, index_uid, documents, vectors=vectors)
    assert (again.rebuilt, again.sent, again.unchanged) == (False, 0, 10)

    keyword_only = sync_index(client, index_uid, documents)

    assert not keyword_only.rebuilt, keyword_only.rebuild_reason
    assert keyword_only.sent == 10
    assert "default" not in _embedders(client, index_uid)
    assert client.index(index_uid).get_stats().number_of_documents == 10


def test_an_index_built_with_vectors_under_the_earlier_fingerprint_is_not_rebuilt(
    client: meilisearch.Client, index_uid: str
) -> None:
    documents = [to_document(make_offer(n)) for n in range(4)]
    vectors = {document["id"]: [0.0] * (EMBEDDING_DIMENSIONS - 1) + [1.0] for document in documents}
    sync_index(client, index_uid, documents, vectors=vectors)
    # What the fingerprint was while it counted the embedder.
    earlier = settings_fingerprint({**INDEX_SETTINGS, "embedders": dict(EMBEDDERS_SETTING)})
    meta = client.index(META_INDEX_UID)
    record = {"id": index_uid, "settings_fingerprint": earlier}
    client.wait_for_task(meta.add_documents([record]).task_uid, timeout_in_ms=30_000)

    result = sync_index(client, index_uid, documents, vectors=vectors)

    assert (result.rebuilt, result.sent, result.unchanged) == (False, 0, 4)


def test_an_index_built_with_the_earlier_flat_filters_is_rebuilt_with_todays(
    client: meilisearch.Client, index_uid: str
) -> None:
    # An existing install: its index was built (and its fingerprint stored) with the declaration
    # of before issue 11's trim, every filter feature on every filterable attribute.
    earlier = {
        **INDEX_SETTINGS,
        "filterableAttributes": [*FILTERABLE_EQUALITY, *FILTERABLE_COMPARISON, "gtin"],
        "sortableAttributes": [*SORTABLE_ATTRIBUTES, "updated_at"],
        "facetSearch": True,
    }
    documents = [to_document(make_offer(n)) for n in range(10)]
    sync_index(client, index_uid, documents, settings=earlier)
    assert "gtin" in client.index(index_uid).get_settings()["filterableAttributes"]

    result = sync_index(client, index_uid, documents)

    assert result.rebuilt and result.rebuild_reason == "settings changed"
    live = client.index(index_uid).get_settings()
    assert live["filterableAttributes"] == INDEX_SETTINGS["filterableAttributes"]
    assert live["facetSearch"] is False
    assert "updated_at" not in live["sortableAttributes"]
    assert stored_fingerprint(client, index_uid) == settings_fingerprint()


def test_a_failed_task_raises_with_meilisearch_error(
    client: meilisearch.Client, index_uid: str
) -> None:
    sync_index(client, index_uid, [to_document(make_offer(1))])
    broken = {**to_document(make_offer(2)), "id": "not a valid id!"}

    with pytest.raises(IndexingError, match="invalid_document_id"):
        sync_index(client, index_uid, [broken])


def test_typo_tolerance_finds_headphones_for_hedphones(
    client: meilisearch.Client, index_uid: str
) -> None:
    sync_index(client, index_uid, [to_document(make_offer(n)) for n in range(8)])
    assert search_titles(client, index_uid, "hedphones") == [
        "Sony WH-1000XM5 Wireless Headphones #0"
    ]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("television", "Hisense 65-inch 4K UHD Smart TV #1"),
        ("sneakers", "Asics Gel-Contend 8 Running Shoes #2"),
        ("insulated bottle", "Thermos Stainless King Vacuum Flask 470ml #3"),
        ("laptop", "Lenovo IdeaPad Slim 5 Notebook #4"),
        ("mobile", "Tecno Spark 20 Smartphone 128GB #5"),
        ("earphones", "Sony WH-1000XM5 Wireless Headphones #0"),
        ("cup", "Contigo West Loop Travel Mug #6"),
    ],
)
def test_synonyms_find_the_words_stores_use(
    client: meilisearch.Client, index_uid: str, query: str, expected: str
) -> None:
    documents = [to_document(make_offer(n)) for n in range(8)]
    for document in documents:
        document["description"] = None  # titles only: the synonym must do the matching
    sync_index(client, index_uid, documents)
    assert expected in search_titles(client, index_uid, query)


def test_filters_and_sort_use_the_usd_price_across_currencies(
    client: meilisearch.Client, index_uid: str
) -> None:
    offers = [
        make_offer(1, marketplace="shopwave", currency="USD", price_minor=2_500),
        make_offer(2, marketplace="kiondo", currency="KES", price_minor=259_000),  # ≈ $20.00
        make_offer(3, marketplace="bazaar", currency="EUR", price_minor=2_760),  # ≈ $30.00
        make_offer(4, marketplace="bazaar", currency="EUR", price_minor=9_200),  # ≈ $100.00
        make_offer(5, marketplace="kiondo", currency="KES", price_minor=64_750),  # ≈ $5.00
    ]
    documents = [to_document(offer) for offer in offers]
    sync_index(client, index_uid, documents)

    hits = client.index(index_uid).search(
        "", {"filter": "price_usd_minor < 5000", "sort": ["price_usd_minor:asc"]}
    )["hits"]
    assert [hit["id"] for hit in hits] == ["kiondo--5", "kiondo--2", "shopwave--1", "bazaar--3"]
    assert [hit["price_usd_minor"] for hit in hits] == [500, 2000, 2500, 3000]
    descending = client.index(index_uid).search(
        # (Nothing filters by currency: the index keeps it for display only.)
        "",
        {"filter": "marketplace = bazaar AND available = true", "sort": ["price_usd_minor:desc"]},
    )["hits"]
    assert [hit["id"] for hit in descending] == ["bazaar--4", "bazaar--3"]


def test_a_rebuild_sends_large_tasks_meilisearch_indexes_in_few_batches(
    client: meilisearch.Client, index_uid: str
) -> None:
    """Meilisearch's cost per batch grows with the index, so a build's documents go in tasks of
    TASK_DOCUMENTS (spooled as NDJSON), not of a few thousand as they stream in."""
    assert TASK_DOCUMENTS >= 50_000
    documents = [to_document(make_offer(n)) for n in range(12_000)]
    documents[7]["title"] = 'Café "crème" mug — 250 ml\nsecond line'  # survives NDJSON as is

    result = sync_index(client, index_uid, documents, full_rebuild=True)

    additions = [
        task
        for task in (client.get_task(uid) for uid in result.task_uids)
        if task.type == "documentAdditionOrUpdate" and task.index_uid.endswith("_next")
    ]
    assert len(additions) == 1  # tasks of 5,000 sent three
    assert additions[0].details["receivedDocuments"] == 12_000
    assert result.sent == 12_000
    assert set(fetch_document_hashes(client, index_uid)) == {d["id"] for d in documents}
    stored = client.index(index_uid).get_document(documents[7]["id"])
    assert stored.title == 'Café "crème" mug — 250 ml\nsecond line'


def test_tasks_split_at_the_batch_size_and_lose_no_document(
    client: meilisearch.Client, index_uid: str
) -> None:
    documents = [to_document(make_offer(n)) for n in range(250)]
    result = sync_index(client, index_uid, documents, full_rebuild=True, batch_size=100)
    received = [
        client.get_task(uid).details.get("receivedDocuments")
        for uid in result.task_uids
        if client.get_task(uid).type == "documentAdditionOrUpdate"
        and client.get_task(uid).index_uid.endswith("_next")
    ]
    assert received == [100, 100, 50]
    assert set(fetch_document_hashes(client, index_uid)) == {d["id"] for d in documents}


MEILI_DEFAULT_PAYLOAD_LIMIT = 100 * 1024 * 1024


def test_a_task_stays_under_meilisearchs_payload_limit_with_vectors(
    client: meilisearch.Client, index_uid: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With 384 floats per offer a task of TASK_DOCUMENTS is far past Meilisearch's 100 MB
    request limit: a fresh demo catalog (13,103 offers) got 413 payload_too_large and the
    embeddings run failed. Tasks are cut by bytes too; here the cut is made small enough to
    see it."""
    assert indexing.TASK_BYTES <= MEILI_DEFAULT_PAYLOAD_LIMIT * 0.9
    monkeypatch.setattr(indexing, "TASK_BYTES", 300_000)
    documents = [to_document(make_offer(n)) for n in range(120)]
    vectors = {d["id"]: [((n * 7 + i) % 97) / 97 for i in range(EMBEDDING_DIMENSIONS)]
               for n, d in enumerate(documents)}  # fmt: skip

    result = sync_index(client, index_uid, documents, full_rebuild=True, vectors=vectors)

    received = [
        task.details.get("receivedDocuments")
        for task in (client.get_task(uid) for uid in result.task_uids)
        if task.type == "documentAdditionOrUpdate" and task.index_uid.endswith("_next")
    ]
    assert len(received) > 1 and sum(received) == 120, received
    assert set(fetch_document_hashes(client, index_uid)) == {d["id"] for d in documents}
