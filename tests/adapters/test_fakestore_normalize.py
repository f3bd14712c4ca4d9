"""Fake Store API products, normalized; the one-list catalog; empty-body lookups; carts."""

from __future__ import annotations

import copy
import json
from decimal import Decimal
from typing import Any

import httpx
import pytest

from adapters.base import (
    BadPayload,
    NotFound,
    OrderLine,
    OrderRequest,
    Rejected,
    ShippingAddress,
    Transient,
    Unsupported,
)
from adapters.fakestore import FakeStoreAdapter
from adapters.marketplace_http import IDEMPOTENCY_HEADER, MAX_RETRIES
from tests.adapters.configs import (
    RecordingTransport,
    SleepRecorder,
    marketplace_config,
    offline_transport,
)

# GET https://fakestoreapi.com/products/1
FAKE_PRODUCT: dict[str, Any] = {
    "id": 1,
    "title": "Fjallraven - Foldsack No. 1 Backpack, Fits 15 Laptops",
    "price": 109.95,
    "description": "Your perfect pack for everyday use and walks in the forest. Stash your laptop (up to 15 inches) in the padded sleeve, your everyday",
    "category": "men's clothing",
    "image": "https://fakestoreapi.com/img/81fPKd-2AYL._AC_SL1500_.jpg",
    "rating": {"rate": 3.9, "count": 120},
}


def adapter(**kwargs: Any) -> FakeStoreAdapter:
    kwargs.setdefault("currency", "EUR")
    return FakeStoreAdapter(
        marketplace_config(
            "fakestore", slug="fakestore", base_url="https://fakestoreapi.com", **kwargs
        ),
        transport=offline_transport(),
    )


def product(**changes: Any) -> dict[str, Any]:
    record = copy.deepcopy(FAKE_PRODUCT)
    record.update(changes)
    return record


def test_fake_store_product_becomes_an_offer() -> None:
    offer = adapter().normalize_record(FAKE_PRODUCT)
    assert offer.external_id == "1"
    assert offer.title == FAKE_PRODUCT["title"]
    assert (offer.price_minor, offer.currency) == (10995, "EUR")
    assert offer.rating == Decimal("3.90")
    assert offer.rating_count == 120
    assert offer.category == "men's clothing"
    assert offer.image_url == FAKE_PRODUCT["image"]
    assert offer.product_url == "https://fakestoreapi.com/products/1"
    assert offer.brand is None and offer.model is None and offer.gtin is None
    assert offer.available is True


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        (product(id=None), "missing_id"),
        (product(title=""), "missing_title"),
        (product(title="Backpack \ufffd"), "broken_utf8"),
        (product(price=None), "missing_price"),
        (product(price="109,95"), "bad_price"),
        (product(price=0), "non_positive_price"),
        (None, "bad_record"),
    ],
)
def test_malformed_products_are_rejected(record: Any, reason: str) -> None:
    with pytest.raises(BadPayload) as caught:
        adapter().normalize_record(record)
    assert caught.value.reason == reason


def test_one_list_is_handed_on_in_pages() -> None:
    body = [product(id=i) for i in range(1, 6)]
    transport = RecordingTransport(lambda request: httpx.Response(200, json=body))
    store = FakeStoreAdapter(marketplace_config("fakestore", page_size=2), transport=transport)
    pages = list(store.fetch_catalog_pages())
    assert [[record["id"] for record in page.records] for page in pages] == [[1, 2], [3, 4], [5]]
    assert [page.page for page in pages] == [1, 2, 3]
    assert len(transport.requests) == 1


def test_empty_200_for_an_unknown_id_is_not_found() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/products/1":
            return httpx.Response(200, json=FAKE_PRODUCT)
        return httpx.Response(200, content=b"")

    store = FakeStoreAdapter(
        marketplace_config("fakestore", currency="EUR"), transport=httpx.MockTransport(handler)
    )
    assert store.lookup_offer("1").price_minor == 10995
    with pytest.raises(NotFound):
        store.lookup_offer("999")


def test_cart_is_posted_with_the_idempotency_key() -> None:
    transport = RecordingTransport(
        lambda request: httpx.Response(201, json={"id": 11, "userId": 1})
    )
    store = FakeStoreAdapter(marketplace_config("fakestore", currency="EUR"), transport=transport)
    placed = store.place_order(
        OrderRequest(
            reference="oc-ref-4",
            idempotency_key="oc-ref-4-fakestore",
            lines=[
                OrderLine(external_id="9", quantity=1, unit_price_minor=6400, currency="EUR"),
                OrderLine(external_id="3", quantity=2, unit_price_minor=5599, currency="EUR"),
            ],
            shipping=ShippingAddress(
                name="Max Mustermann", line1="Hauptstr. 1", city="Berlin", country="DE"
            ),
            currency="EUR",
        )
    )
    assert placed.marketplace_order_id == "11"
    sent = transport.requests[0]
    assert sent.url.path == "/carts"
    assert sent.headers[IDEMPOTENCY_HEADER] == "oc-ref-4-fakestore"
    body = json.loads(sent.content)
    assert body["userId"] == 1
    assert body["products"] == [{"productId": 3, "quantity": 2}, {"productId": 9, "quantity": 1}]
    assert len(body["date"]) == 10


def test_carts_have_no_status_or_cancel() -> None:
    store = adapter()
    with pytest.raises(Unsupported):  # no reference on a cart: the marketplace cannot be asked
        store.find_order("oc-ref-4")
    with pytest.raises(Unsupported):
        store.order_status("11")
    with pytest.raises(Unsupported):
        store.cancel_order("11")


class PiecewiseBody(httpx.SyncByteStream):
    """A response body that arrives in small byte pieces, as over a slow connection."""

    def __init__(self, body: bytes, size: int) -> None:
        self.pieces = [body[start : start + size] for start in range(0, len(body), size)]

    def __iter__(self):
        yield from self.pieces


def test_the_list_is_paged_while_it_downloads_and_multibyte_text_survives_splits() -> None:
    records = [product(id=i, title=f"Café Crème Jacket {i} – Größe M") for i in range(1, 8)]
    body = json.dumps(records, ensure_ascii=False).encode("utf-8")
    transport = RecordingTransport(
        lambda request: httpx.Response(200, stream=PiecewiseBody(body, 3))
    )
    store = FakeStoreAdapter(
        marketplace_config("fakestore", currency="EUR", page_size=3), transport=transport
    )
    pages = list(store.fetch_catalog_pages())
    assert [len(page.records) for page in pages] == [3, 3, 1]
    assert [store.normalize_record(r).title for page in pages for r in page.records] == [
        f"Café Crème Jacket {i} – Größe M" for i in range(1, 8)
    ]


def test_a_broken_byte_in_the_streamed_list_loses_only_its_record() -> None:
    body = json.dumps([product(id=1, title="Good"), product(id=2, title="Bad XX")]).encode()
    body = body.replace(b"Bad XX", b"Bad \xff\xfe")
    transport = RecordingTransport(
        lambda request: httpx.Response(200, stream=PiecewiseBody(body, 5))
    )
    store = FakeStoreAdapter(marketplace_config("fakestore", currency="EUR"), transport=transport)
    [page] = list(store.fetch_catalog_pages())
    assert store.normalize_record(page.records[0]).title == "Good"
    with pytest.raises(BadPayload) as caught:
        store.normalize_record(page.records[1])
    assert caught.value.reason == "broken_utf8"


def test_the_streamed_list_is_retried_on_503_and_honours_retry_after() -> None:
    answers = [
        httpx.Response(503, headers={"Retry-After": "2"}),
        httpx.Response(200, json=[FAKE_PRODUCT]),
    ]
    transport = RecordingTransport(lambda request: answers.pop(0))
    sleep = SleepRecorder()
    store = FakeStoreAdapter(
        marketplace_config("fakestore", currency="EUR"), transport=transport, sleep=sleep
    )
    [page] = list(store.fetch_catalog_pages())
    assert page.records == [FAKE_PRODUCT]
    assert sleep.delays == [2.0]
    assert len(transport.requests) == 2


@pytest.mark.parametrize(("status", "error"), [(404, NotFound), (400, Rejected), (503, Transient)])
def test_the_streamed_list_ends_in_typed_errors(status: int, error: type[Exception]) -> None:
    transport = RecordingTransport(lambda request: httpx.Response(status, json={"message": "no"}))
    store = FakeStoreAdapter(
        marketplace_config("fakestore"), transport=transport, sleep=SleepRecorder()
    )
    with pytest.raises(error):
        list(store.fetch_catalog_pages())
    assert len(transport.requests) == (MAX_RETRIES + 1 if status == 503 else 1)
