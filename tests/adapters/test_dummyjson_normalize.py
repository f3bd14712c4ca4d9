"""DummyJSON products, normalized; skip/limit paging; cart orders."""

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
    OrderStatus,
    ShippingAddress,
    Unsupported,
)
from adapters.dummyjson import DummyJsonAdapter
from adapters.marketplace_http import IDEMPOTENCY_HEADER
from tests.adapters.configs import RecordingTransport, marketplace_config, offline_transport

# GET https://dummyjson.com/products/1, as the public API returns it.
DUMMY_PRODUCT: dict[str, Any] = {
    "id": 1,
    "title": "Essence Mascara Lash Princess",
    "description": "The Essence Mascara Lash Princess is a popular mascara known for its volumizing and lengthening effects.",
    "category": "beauty",
    "price": 9.99,
    "discountPercentage": 7.17,
    "rating": 4.94,
    "stock": 5,
    "tags": ["beauty", "mascara"],
    "brand": "Essence",
    "sku": "RCH45Q1A",
    "weight": 2,
    "dimensions": {"width": 23.17, "height": 14.43, "depth": 28.01},
    "warrantyInformation": "1 month warranty",
    "shippingInformation": "Ships in 1 month",
    "availabilityStatus": "Low Stock",
    "reviews": [
        {
            "rating": 2,
            "comment": "Very unhappy with my purchase!",
            "date": "2024-05-23T08:56:21.618Z",
            "reviewerName": "John Doe",
            "reviewerEmail": "john.doe@x.dummyjson.com",
        }
    ],
    "returnPolicy": "30 days return policy",
    "minimumOrderQuantity": 24,
    "meta": {
        "createdAt": "2024-05-23T08:56:21.618Z",
        "updatedAt": "2024-05-23T08:56:21.618Z",
        "barcode": "9164035109868",
        "qrCode": "https://assets.dummyjson.com/public/qr-code.png",
    },
    "images": [
        "https://cdn.dummyjson.com/products/images/beauty/Essence%20Mascara%20Lash%20Princess/1.png"
    ],
    "thumbnail": "https://cdn.dummyjson.com/products/images/beauty/Essence%20Mascara%20Lash%20Princess/thumbnail.png",
}


def adapter(**kwargs: Any) -> DummyJsonAdapter:
    return DummyJsonAdapter(
        marketplace_config(
            "dummyjson", slug="dummymart", base_url="https://dummyjson.com", **kwargs
        ),
        transport=offline_transport(),
    )


def product(**changes: Any) -> dict[str, Any]:
    record = copy.deepcopy(DUMMY_PRODUCT)
    record.update(changes)
    return record


def test_dummyjson_product_becomes_an_offer() -> None:
    offer = adapter().normalize_record(DUMMY_PRODUCT)
    assert offer.external_id == "1"
    assert (offer.price_minor, offer.currency) == (999, "USD")
    assert offer.brand == "Essence"
    assert offer.sku == "RCH45Q1A"
    assert offer.model is None
    assert offer.category == "beauty"
    assert offer.rating == Decimal("4.94")
    assert offer.stock == 5
    assert offer.available is True  # "Low Stock" is still for sale
    assert offer.image_url == DUMMY_PRODUCT["thumbnail"]
    assert offer.product_url == "https://dummyjson.com/products/1"


def test_real_dummyjson_barcode_fails_its_checksum_so_no_gtin() -> None:
    offer = adapter().normalize_record(DUMMY_PRODUCT)
    assert offer.gtin is None
    valid = product(meta={**DUMMY_PRODUCT["meta"], "barcode": "4006381333931"})
    assert adapter().normalize_record(valid).gtin == "4006381333931"


def test_product_without_brand_keeps_no_brand() -> None:
    record = product()
    del record["brand"]
    assert adapter().normalize_record(record).brand is None


@pytest.mark.parametrize(
    ("changes", "available"),
    [
        ({"availabilityStatus": "In Stock"}, True),
        ({"availabilityStatus": "Out of Stock", "stock": 0}, False),
        ({"availabilityStatus": None, "stock": 0}, False),
        ({"availabilityStatus": None, "stock": 3}, True),
    ],
)
def test_availability(changes: dict[str, Any], available: bool) -> None:
    assert adapter().normalize_record(product(**changes)).available is available


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        (product(id=None), "missing_id"),
        (product(title=None), "missing_title"),
        (product(title="Mascara \ufffd"), "broken_utf8"),
        (product(price=None), "missing_price"),
        (product(price="nine ninety-nine"), "bad_price"),
        (product(price=9.999), "bad_price"),
        (product(price=-9.99), "non_positive_price"),
        (42, "bad_record"),
    ],
)
def test_malformed_products_are_rejected(record: Any, reason: str) -> None:
    with pytest.raises(BadPayload) as caught:
        adapter().normalize_record(record)
    assert caught.value.reason == reason


def test_catalog_pages_with_skip_until_total() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        skip, limit = int(request.url.params["skip"]), int(request.url.params["limit"])
        ids = list(range(1, 6))[skip : skip + limit]
        return httpx.Response(
            200,
            json={
                "products": [product(id=i) for i in ids],
                "total": 5,
                "skip": skip,
                "limit": limit,
            },
        )

    transport = RecordingTransport(handler)
    dummy = DummyJsonAdapter(marketplace_config("dummyjson", page_size=2), transport=transport)
    pages = list(dummy.fetch_catalog_pages())
    assert [[record["id"] for record in page.records] for page in pages] == [[1, 2], [3, 4], [5]]
    assert [request.url.params["skip"] for request in transport.requests] == ["0", "2", "4"]


def test_lookup_404_is_not_found() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/products/1":
            return httpx.Response(200, json=product(price=8.49))
        return httpx.Response(404, json={"message": "Product with id '2' not found"})

    dummy = DummyJsonAdapter(
        marketplace_config("dummyjson"), transport=httpx.MockTransport(handler)
    )
    assert dummy.lookup_offer("1").price_minor == 849
    with pytest.raises(NotFound):
        dummy.lookup_offer("2")


def test_cart_lines_are_sent_sorted_by_id_with_the_idempotency_key() -> None:
    cart = {
        "id": 51,
        "products": [],
        "total": 45.97,
        "discountedTotal": 41.0,
        "userId": 1,
        "totalProducts": 2,
        "totalQuantity": 3,
    }
    transport = RecordingTransport(lambda request: httpx.Response(201, json=cart))
    dummy = DummyJsonAdapter(marketplace_config("dummyjson"), transport=transport)
    request = OrderRequest(
        reference="oc-ref-3",
        idempotency_key="oc-ref-3-dummymart",
        lines=[
            OrderLine(external_id="17", quantity=1, unit_price_minor=2599, currency="USD"),
            OrderLine(external_id="4", quantity=2, unit_price_minor=999, currency="USD"),
        ],
        shipping=ShippingAddress(name="A B", line1="x", city="y", country="US"),
        currency="USD",
    )
    placed = dummy.place_order(request)
    assert placed.marketplace_order_id == "51"
    assert placed.status is OrderStatus.PENDING
    # What the cart costs is its discountedTotal (DummyJSON's total is before discounts).
    assert placed.total_minor == 4100
    sent = transport.requests[0]
    assert sent.url.path == "/carts/add"
    assert sent.headers[IDEMPOTENCY_HEADER] == "oc-ref-3-dummymart"
    assert json.loads(sent.content) == {
        "userId": 1,
        "products": [{"id": 4, "quantity": 2}, {"id": 17, "quantity": 1}],
    }


def test_carts_cannot_be_found_tracked_or_cancelled() -> None:
    dummy = adapter()
    with pytest.raises(Unsupported):  # no reference on a cart: the marketplace cannot be asked
        dummy.find_order("oc-ref-3")
    with pytest.raises(Unsupported):
        dummy.order_status("51")
    with pytest.raises(Unsupported):
        dummy.cancel_order("51")
