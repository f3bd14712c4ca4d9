"""Every outcome class of a write, and every order knob, through the real adapters against the
sandbox over real HTTP: unknown (reply after the timeout, 5xx after accepting, 5xx before),
refused (refuse_next_orders, delisted products), never sent (connection refused), and what the
marketplace accepted (price changed after checkout, dropped lines, short quantities,
cancelled by the marketplace). Clients use a short read timeout so the suite stays fast."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from adapters.base import (
    BadPayload,
    MarketplaceConfig,
    Offer,
    OrderLine,
    OrderRequest,
    OrderStatus,
    OutcomeUnknown,
    Rejected,
    ShippingAddress,
    Transient,
)
from adapters.registry import build_adapter
from onecart import processes
from tests.adapters.test_against_sandbox import ORDERING, TRACKABLE, load_sandbox_configs

# An impatient client for the tests that need a timeout, a patient one for the others (the
# machine may be loaded: no test may depend on a normal reply arriving within a short time).
IMPATIENT_S = 0.5
PATIENT_S = 20.0
SLOW_REPLY_MS = 3000  # well past the impatient client's timeout; the order is still created


@pytest.fixture(scope="module")
def configs(sandbox_server: str) -> dict[str, MarketplaceConfig]:
    return load_sandbox_configs(ORDERING)


@pytest.fixture(scope="module")
def offers(configs: dict[str, MarketplaceConfig]) -> dict[str, list[Offer]]:
    """Three orderable offers per marketplace, from the first catalog page only."""
    result: dict[str, list[Offer]] = {}
    for slug, config in configs.items():
        adapter = build_adapter(config)
        try:
            page = next(iter(adapter.fetch_catalog_pages()))
            found = []
            for record in page.records:
                try:
                    offer = adapter.normalize_record(record)
                except BadPayload:
                    continue
                if offer.available and offer.external_id not in {o.external_id for o in found}:
                    found.append(offer)
                if len(found) == 3:
                    break
            result[slug] = found
        finally:
            adapter.close()  # type: ignore[attr-defined]
    return result


@pytest.fixture
def adapter_for(configs: dict[str, MarketplaceConfig]) -> Iterator[Any]:
    """build(slug, **options): the marketplace's adapter (patient unless options say)."""
    built: list[Any] = []

    def build(slug: str, **options: Any) -> Any:
        config = configs[slug]
        config = dataclasses.replace(
            config,
            options={**config.options, "read_timeout_s": PATIENT_S, **options},
        )
        adapter = build_adapter(config)
        built.append(adapter)
        return adapter

    yield build
    for adapter in built:
        adapter.close()


def knobs(control: httpx.Client, slug: str, **values: Any) -> None:
    response = control.post(f"/_sandbox/knobs/{slug}", json=values)
    assert response.status_code == 200, response.text


def request_for(offers: list[Offer], *, lines: int = 2) -> OrderRequest:
    reference = f"oc-fault-{uuid.uuid4().hex[:12]}"
    chosen = offers[:lines]
    return OrderRequest(
        reference=reference,
        idempotency_key=f"{reference}-sub-1",
        lines=[
            OrderLine(o.external_id, number + 1, o.price_minor, o.currency)
            for number, o in enumerate(chosen)
        ],
        shipping=ShippingAddress(
            name="Ada Lovelace", line1="1 Test St", city="Nairobi", country="KE"
        ),
        currency=chosen[0].currency,
    )


def held(control: httpx.Client, slug: str, request: OrderRequest) -> list[dict[str, Any]]:
    """The orders the marketplace holds for this request (by idempotency key: carts carry no
    reference), from the sandbox's control API."""
    orders = control.get(f"/_sandbox/orders/{slug}").json()["orders"]
    return [o for o in orders if o["idempotency_key"] == request.idempotency_key]


# --- Unknown --------------------------------------------------------------------------------


@pytest.mark.parametrize("slug", ORDERING)
def test_a_reply_after_the_timeout_is_unknown_and_the_order_exists(
    slug: str, adapter_for, offers, sandbox_control: httpx.Client
) -> None:
    knobs(sandbox_control, slug, order_reply_delay_ms=SLOW_REPLY_MS, cancel_rate=0)
    impatient = adapter_for(slug, retry_unknown_writes=False, read_timeout_s=IMPATIENT_S)
    request = request_for(offers[slug])
    with pytest.raises(OutcomeUnknown):
        impatient.place_order(request)
    [order] = held(sandbox_control, slug, request)
    knobs(sandbox_control, slug, order_reply_delay_ms=0)
    adapter = adapter_for(slug)
    if slug in TRACKABLE:
        found = adapter.find_order(request.reference)
        assert found is not None
        assert sorted((line.external_id, line.quantity) for line in found.lines or ()) == sorted(
            (line.external_id, line.quantity) for line in request.lines
        )
    # Resending with the same key adopts the order instead of placing a second one.
    again = adapter.place_order(request)
    assert again.marketplace_order_id.endswith(str(order["number"]))
    assert len(held(sandbox_control, slug, request)) == 1


def test_retries_of_a_slow_write_reuse_the_key_and_end_unknown(
    adapter_for, offers, sandbox_control: httpx.Client
) -> None:
    knobs(sandbox_control, "shopwave", order_reply_delay_ms=SLOW_REPLY_MS, cancel_rate=0)
    adapter = adapter_for("shopwave", read_timeout_s=IMPATIENT_S)  # resends with the same key
    adapter.http._sleep = lambda seconds: None  # no backoff waits in the test
    request = request_for(offers["shopwave"], lines=1)
    with pytest.raises(OutcomeUnknown):
        adapter.place_order(request)
    assert len(held(sandbox_control, "shopwave", request)) == 1


@pytest.mark.parametrize("slug", ORDERING)
def test_a_5xx_after_accepting_is_unknown_and_the_order_exists(
    slug: str, adapter_for, offers, sandbox_control: httpx.Client
) -> None:
    knobs(sandbox_control, slug, fail_after_next_orders=1, cancel_rate=0)
    adapter = adapter_for(slug, retry_unknown_writes=False)
    request = request_for(offers[slug])
    with pytest.raises(OutcomeUnknown) as caught:
        adapter.place_order(request)
    assert caught.value.status == 500
    assert len(held(sandbox_control, slug, request)) == 1
    if slug in TRACKABLE:
        assert adapter.find_order(request.reference) is not None


def test_a_5xx_after_accepting_is_absorbed_by_a_retry_with_the_same_key(
    adapter_for, offers, sandbox_control: httpx.Client
) -> None:
    knobs(sandbox_control, "kiondo", fail_after_next_orders=2, cancel_rate=0)
    request = request_for(offers["kiondo"])
    placed = adapter_for("kiondo").place_order(request)
    [order] = held(sandbox_control, "kiondo", request)
    assert placed.marketplace_order_id == str(order["number"])


def test_a_503_before_creating_is_unknown_to_the_client_yet_nothing_was_placed(
    adapter_for, offers, sandbox_control: httpx.Client
) -> None:
    knobs(sandbox_control, "shopwave", fail_next_orders=1)
    adapter = adapter_for("shopwave", retry_unknown_writes=False)
    request = request_for(offers["shopwave"])
    with pytest.raises(OutcomeUnknown):
        adapter.place_order(request)
    # Asking the marketplace resolves it: no order with our reference.
    assert adapter.find_order(request.reference) is None
    assert held(sandbox_control, "shopwave", request) == []


@pytest.mark.parametrize("slug", TRACKABLE)
def test_a_cancel_whose_reply_is_lost_is_unknown_and_the_status_tells(
    slug: str, adapter_for, offers, sandbox_control: httpx.Client
) -> None:
    knobs(sandbox_control, slug, cancel_rate=0)
    adapter = adapter_for(slug, retry_unknown_writes=False)
    placed = adapter.place_order(request_for(offers[slug]))
    knobs(sandbox_control, slug, fail_after_next_cancels=1)
    with pytest.raises(OutcomeUnknown):
        adapter.cancel_order(placed.marketplace_order_id)
    assert adapter.order_status(placed.marketplace_order_id).status is OrderStatus.CANCELLED
    other = adapter.place_order(request_for(offers[slug]))
    knobs(sandbox_control, slug, cancel_reply_delay_ms=SLOW_REPLY_MS)
    impatient = adapter_for(slug, retry_unknown_writes=False, read_timeout_s=IMPATIENT_S)
    with pytest.raises(OutcomeUnknown):
        impatient.cancel_order(other.marketplace_order_id)
    knobs(sandbox_control, slug, cancel_reply_delay_ms=0)
    assert adapter.order_status(other.marketplace_order_id).status is OrderStatus.CANCELLED


# --- Refused or never sent ------------------------------------------------------------------


@pytest.mark.parametrize("slug", ORDERING)
def test_a_refused_order_is_rejected_and_nothing_is_held(
    slug: str, adapter_for, offers, sandbox_control: httpx.Client
) -> None:
    knobs(sandbox_control, slug, refuse_next_orders=1)
    adapter = adapter_for(slug)
    request = request_for(offers[slug])
    with pytest.raises(Rejected) as caught:
        adapter.place_order(request)
    assert not isinstance(caught.value, Transient)
    assert held(sandbox_control, slug, request) == []


@pytest.mark.parametrize("slug", ORDERING)
def test_a_delisted_product_is_refused_unless_the_server_drops_it_silently(
    slug: str, adapter_for, offers, sandbox_control: httpx.Client
) -> None:
    request = request_for(offers[slug])
    gone = request.lines[0].external_id
    knobs(sandbox_control, slug, delisted_products=[gone], cancel_rate=0)
    adapter = adapter_for(slug)
    with pytest.raises(Rejected):
        adapter.place_order(request)
    assert held(sandbox_control, slug, request) == []
    knobs(sandbox_control, slug, drop_unknown_lines=True)
    placed = adapter.place_order(request)  # 2xx, one line fewer: a partial placement
    assert placed.lines is not None
    assert [line.external_id for line in placed.lines] == [request.lines[1].external_id]


def test_a_marketplace_that_refuses_connections_is_transient_not_unknown(
    configs: dict[str, MarketplaceConfig], offers
) -> None:
    closed = f"http://127.0.0.1:{processes.free_port()}/shopwave"
    config = dataclasses.replace(configs["shopwave"], base_url=closed)
    adapter = build_adapter(config)
    try:
        adapter._variant_ids.update(
            {o.external_id: "gid://shopify/ProductVariant/1" for o in offers["shopwave"]}
        )  # type: ignore[attr-defined]
        adapter.http._sleep = lambda seconds: None  # type: ignore[attr-defined]
        with pytest.raises(Transient) as caught:
            adapter.place_order(request_for(offers["shopwave"]))
        assert not isinstance(caught.value, OutcomeUnknown)
    finally:
        adapter.close()  # type: ignore[attr-defined]


# --- What the marketplace accepted ----------------------------------------------------------


@pytest.mark.parametrize("slug", ORDERING)
@pytest.mark.parametrize("change", [25, -20])
def test_a_price_changed_after_checkout_is_what_the_marketplace_bills(
    slug: str, change: int, adapter_for, offers, sandbox_control: httpx.Client
) -> None:
    knobs(sandbox_control, slug, order_price_change_pct=change, cancel_rate=0)
    request = request_for(offers[slug])
    placed = adapter_for(slug).place_order(request)
    [order] = held(sandbox_control, slug, request)
    asked = sum(line.unit_price_minor * line.quantity for line in request.lines)
    assert (order["total_minor"] > asked) == (change > 0) and order["total_minor"] != asked
    if slug == "fakestore":  # carts say nothing about money
        assert placed.total_minor is None
        return
    assert placed.total_minor == order["total_minor"]
    assert placed.lines is not None
    assert sum(line.billed_minor or 0 for line in placed.lines) == order["total_minor"]
    for line in request.lines:
        moved = (line.unit_price_minor * (100 + change) * 2 + 100) // 200
        [accepted] = [a for a in placed.lines if a.external_id == line.external_id]
        assert accepted.billed_minor == moved * line.quantity


@pytest.mark.parametrize("slug", ORDERING)
def test_prices_we_send_are_billed_where_the_api_takes_them(
    slug: str, adapter_for, offers, sandbox_control: httpx.Client
) -> None:
    knobs(sandbox_control, slug, cancel_rate=0)
    request = request_for(offers[slug])
    paid = dataclasses.replace(
        request.lines[0], unit_price_minor=request.lines[0].unit_price_minor - 1
    )
    request = dataclasses.replace(request, lines=[paid, *request.lines[1:]])
    adapter_for(slug).place_order(request)
    [order] = held(sandbox_control, slug, request)
    [line] = [x for x in order["lines"] if x["external_id"] == paid.external_id]
    takes_prices = slug in ("shopwave", "kiondo")
    assert (line["unit_price_minor"] == paid.unit_price_minor) == takes_prices


@pytest.mark.parametrize("slug", ORDERING)
def test_short_quantities_show_in_the_accepted_lines(
    slug: str, adapter_for, offers, sandbox_control: httpx.Client
) -> None:
    knobs(sandbox_control, slug, max_line_quantity=1, cancel_rate=0)
    request = request_for(offers[slug])
    placed = adapter_for(slug).place_order(request)
    assert placed.lines is not None
    assert {line.external_id: line.quantity for line in placed.lines} == {
        line.external_id: 1 for line in request.lines
    }


@pytest.mark.parametrize("slug", ORDERING)
def test_an_order_the_marketplace_cancels_after_placement(
    slug: str, adapter_for, offers, sandbox_control: httpx.Client
) -> None:
    knobs(sandbox_control, slug, cancel_next_orders=1, cancel_rate=0)
    adapter = adapter_for(slug)
    request = request_for(offers[slug])
    placed = adapter.place_order(request)
    assert placed.status is not OrderStatus.CANCELLED  # accepted first, cancelled after
    [order] = held(sandbox_control, slug, request)
    assert order["status"] == "cancelled" and order["cancel_reason"] == "declined"
    if slug in TRACKABLE:
        assert adapter.order_status(placed.marketplace_order_id).status is OrderStatus.CANCELLED
        later = adapter.place_order(request_for(offers[slug]))
        number = int(later.marketplace_order_id.rsplit("/", 1)[-1])
        response = sandbox_control.post(f"/_sandbox/orders/{slug}/{number}/cancel")
        assert response.status_code == 200 and response.json()["status"] == "cancelled"
        assert adapter.order_status(later.marketplace_order_id).status is OrderStatus.CANCELLED


def test_a_lagging_search_hides_a_new_shopify_order_but_not_a_woocommerce_one(
    adapter_for, offers, sandbox_control: httpx.Client
) -> None:
    for slug in TRACKABLE:
        knobs(sandbox_control, slug, search_lag_ms=60_000, cancel_rate=0)
    shopify = adapter_for("shopwave")
    request = request_for(offers["shopwave"])
    shopify.place_order(request)
    # Shopify's search index has not seen the order yet: None is only as fresh as the index.
    assert shopify.find_order(request.reference) is None
    knobs(sandbox_control, "shopwave", search_lag_ms=0)
    assert shopify.find_order(request.reference) is not None
    woo = adapter_for("kiondo")
    request = request_for(offers["kiondo"])
    placed = woo.place_order(request)
    # WooCommerce's search misses it too, but the listing of the window reads the database.
    found = woo.find_order(request.reference, sent_since=datetime.now(UTC))
    assert found is not None and found.marketplace_order_id == placed.marketplace_order_id
