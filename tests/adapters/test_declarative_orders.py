"""Orders through the declarative adapter when `[marketplace.options.orders]` describes the
order API: option checks, and placement, lookup by reference, status, cancel and the unknown
outcome against the sandbox bazaar's JSON order API over real HTTP."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from adapters.base import (
    AcceptedLine,
    BadPayload,
    Capability,
    MarketplaceConfig,
    Offer,
    OrderLine,
    OrderRequest,
    OrderStatus,
    OutcomeUnknown,
    Rejected,
    ShippingAddress,
    Unsupported,
)
from adapters.declarative import DeclarativeJsonAdapter
from adapters.declarative_orders import parse_order_options
from adapters.registry import MarketplaceConfigError, build_adapter
from tests.adapters.test_against_sandbox import load_sandbox_configs
from tests.adapters.test_declarative import adapter

ORDERS: dict[str, Any] = {
    "create_path": "api/v1/orders",
    "reference_key": "external_reference",
    "lines_key": "items",
    "line_id_key": "sku",
    "line_quantity_key": "quantity",
    "line_price_key": "unit_price",
    "currency_key": "currency",
    "shipping_key": "shipping",
    "order_record_path": "data",
    "id_field": "id",
    "status_field": "status",
    "total_field": "total",
    "get_path": "api/v1/orders/{id}",
    "cancel_path": "api/v1/orders/{id}/cancel",
    "find_path": "api/v1/orders",
    "find_param": "external_reference",
    "find_records_path": "data.items",
    "statuses": {"received": "pending"},
}


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"create_path": None}, "create_path: is required"),
        ({"get_path": "api/v1/orders"}, "get_path: must contain"),
        ({"statuses": {"received": "lost"}}, "statuses.received"),
        ({"lines_keys": "items"}, "lines_keys: unknown option"),
        ({"id_field": ""}, "id_field: must be a non-empty string"),
    ],
)
def test_order_options_are_checked(change: dict[str, Any], problem: str) -> None:
    options = {k: v for k, v in {**ORDERS, **change}.items() if v is not None}
    with pytest.raises(MarketplaceConfigError, match=problem):
        parse_order_options("bazaar", options)


def test_capabilities_follow_the_configured_endpoints() -> None:
    assert parse_order_options("b", ORDERS).capabilities == {
        Capability.ORDER,
        Capability.TRACK,
        Capability.CANCEL,
    }
    minimal = {
        k: ORDERS[k]
        for k in (
            "create_path",
            "reference_key",
            "lines_key",
            "line_id_key",
            "line_quantity_key",
            "id_field",
        )
    }
    assert parse_order_options("b", minimal).capabilities == {Capability.ORDER}


@pytest.fixture(scope="module")
def bazaar(sandbox_server: str) -> MarketplaceConfig:
    config = load_sandbox_configs(["bazaar"])["bazaar"]
    return dataclasses.replace(config, options={**config.options, "orders": ORDERS})


@pytest.fixture(scope="module")
def euro_offers(bazaar: MarketplaceConfig) -> list[Offer]:
    adapter = build_adapter(bazaar)
    try:
        offers = []
        for record in next(iter(adapter.fetch_catalog_pages())).records:
            try:
                offer = adapter.normalize_record(record)
            except BadPayload:
                continue
            if offer.currency == "EUR" and offer.available:
                offers.append(offer)
        return offers[:2]
    finally:
        adapter.close()  # type: ignore[attr-defined]


@pytest.fixture
def shop(bazaar: MarketplaceConfig) -> Iterator[Any]:
    def build(**options: Any) -> DeclarativeJsonAdapter:
        config = dataclasses.replace(bazaar, options={**bazaar.options, **options})
        return build_adapter(config)  # type: ignore[return-value]

    built = build()
    yield build
    built.close()


def order_for(offers: list[Offer]) -> OrderRequest:
    reference = f"oc-bz-{uuid.uuid4().hex[:10]}"
    return OrderRequest(
        reference=reference,
        idempotency_key=f"{reference}-k",
        lines=[OrderLine(o.external_id, n + 1, o.price_minor, "EUR") for n, o in enumerate(offers)],
        shipping=ShippingAddress(name="Marie Curie", line1="1 rue X", city="Paris", country="FR"),
        currency="EUR",
    )


def test_place_find_status_cancel_through_the_configured_api(
    shop, euro_offers: list[Offer], sandbox_control: httpx.Client
) -> None:
    sandbox_control.post("/_sandbox/knobs/bazaar", json={"cancel_rate": 0})
    adapter = shop()
    assert {Capability.ORDER, Capability.TRACK, Capability.CANCEL} <= adapter.capabilities
    request = order_for(euro_offers)
    placed = adapter.place_order(request)
    assert placed.marketplace_order_id.startswith("BO-")
    assert placed.status is OrderStatus.PENDING  # "received", mapped by the statuses table
    assert placed.lines == tuple(
        AcceptedLine(line.external_id, line.quantity, line.unit_price_minor)
        for line in request.lines
    )
    assert placed.total_minor == sum(x.unit_price_minor * x.quantity for x in request.lines)
    found = adapter.find_order(request.reference)
    assert found is not None and found.marketplace_order_id == placed.marketplace_order_id
    assert adapter.find_order(f"{request.reference}-never") is None
    assert adapter.order_status(placed.marketplace_order_id).raw_status == "received"
    cancelled = adapter.cancel_order(placed.marketplace_order_id)
    assert cancelled.status is OrderStatus.CANCELLED


def test_unknown_and_refused_outcomes_through_the_configured_api(
    shop, euro_offers: list[Offer], sandbox_control: httpx.Client
) -> None:
    adapter = shop(retry_unknown_writes=False)
    sandbox_control.post("/_sandbox/knobs/bazaar", json={"fail_after_next_orders": 1})
    request = order_for(euro_offers)
    with pytest.raises(OutcomeUnknown):
        adapter.place_order(request)
    assert adapter.find_order(request.reference) is not None  # asking resolves it
    sandbox_control.post("/_sandbox/knobs/bazaar", json={"refuse_next_orders": 1})
    with pytest.raises(Rejected):
        adapter.place_order(order_for(euro_offers))


def test_without_an_orders_table_the_marketplace_is_catalog_only() -> None:
    catalog_only = adapter()  # the catalog-only example of test_declarative
    assert Capability.ORDER not in catalog_only.capabilities
    with pytest.raises(Unsupported):
        catalog_only.find_order("oc-ref-1")
    with pytest.raises(Unsupported):
        catalog_only.place_order(order_for([]))  # no orders table: hand-off
