"""Every adapter against the sandbox marketplaces over real HTTP: whole catalogs, live lookups,
orders (place, replay, find, track, cancel) and the fault knobs.

Configuration comes from the real marketplaces.toml through adapters.registry, exactly as the
pipeline and the storefront build their adapters.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from adapters.base import (
    MAX_DESCRIPTION_CHARS,
    BadPayload,
    Capability,
    MarketplaceAdapter,
    MarketplaceConfig,
    NotFound,
    Offer,
    OrderLine,
    OrderRequest,
    OrderStatus,
    Rejected,
    ShippingAddress,
    Transient,
    Unsupported,
)
from adapters.fakestore import FakeStoreAdapter
from adapters.gtin import normalize_gtin
from adapters.registry import build_adapter, default_environment, load_marketplaces
from onecart.money import is_iso_currency

API_KEYS = {
    "ONECART_MARKETPLACE_KEY_SHOPWAVE": "shpat_onecart_test",
    "ONECART_MARKETPLACE_KEY_KIONDO": "ck_test:cs_test",
    "ONECART_MARKETPLACE_KEY_BAZAAR": "bazaar-test-key",
}
REJECTION_REASONS = frozenset(
    {
        "missing_id",
        "missing_title",
        "missing_price",
        "bad_price",
        "non_positive_price",
        "unknown_currency",
        "broken_utf8",
        "bad_record",
    }
)
SLUGS = ("shopwave", "kiondo", "dummymart", "fakestore", "naijamall", "bazaar")
ORDERING = ("shopwave", "kiondo", "dummymart", "fakestore")
TRACKABLE = ("shopwave", "kiondo")
CURRENCIES = {
    "shopwave": {"USD"},
    "kiondo": {"KES"},
    "dummymart": {"USD"},
    "fakestore": {"EUR"},
    "naijamall": {"NGN"},
    "bazaar": {"EUR", "GBP"},
}
EXPECTED_CAPABILITIES = {
    "shopwave": set(Capability) - {Capability.LIVE_SEARCH},
    "kiondo": set(Capability) - {Capability.LIVE_SEARCH},
    "dummymart": {Capability.CATALOG, Capability.LIVE_OFFER, Capability.ORDER},
    "fakestore": {Capability.CATALOG, Capability.LIVE_OFFER, Capability.ORDER},
    "naijamall": {Capability.CATALOG},
    "bazaar": {Capability.CATALOG},
}
# Formats that carry identifiers: (GTIN, brand, model) are expected on most offers.
CARRIES = {
    "shopwave": {"gtin", "brand", "model"},
    "kiondo": {"brand", "model"},
    "dummymart": {"gtin", "brand"},
    "fakestore": set(),
    "naijamall": {"gtin", "brand", "model"},
    "bazaar": {"gtin", "brand", "model"},
}

# What the sandbox's malformed records turn into, per format: the currency-carrying formats get
# an unknown currency code, the others a non-numeric price (docs/sandbox-and-adapters.md).
MALFORMED_REASONS = {
    slug: {"missing_price", "non_positive_price", "broken_utf8"}
    | ({"unknown_currency"} if slug in ("kiondo", "naijamall", "bazaar") else {"bad_price"})
    for slug in SLUGS
}


@dataclass
class Catalog:
    """One marketplace's catalog as read: raw records, offers, and rejections with reasons."""

    records: list[dict[str, Any]] = field(default_factory=list)
    pages: list[int] = field(default_factory=list)
    offers: list[Offer] = field(default_factory=list)
    rejections: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


def read_catalog(adapter: MarketplaceAdapter) -> Catalog:
    catalog = Catalog()
    for page in adapter.fetch_catalog_pages():
        catalog.pages.append(page.page)
        for record in page.records:
            catalog.records.append(record)
            try:
                catalog.offers.append(adapter.normalize_record(record))
            except BadPayload as exc:
                catalog.rejections.append((exc.reason, record))
    return catalog


def load_sandbox_configs(slugs: Collection[str]) -> dict[str, MarketplaceConfig]:
    """The marketplaces named, by slug, from marketplaces.toml as the running code reads it,
    with the test API keys in the environment."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in API_KEYS.items():
            patch.setenv(name, value)
        loaded = load_marketplaces()
    return {config.slug: config for config in loaded if config.slug in slugs}


@pytest.fixture(scope="module")
def configs(sandbox_server: str) -> dict[str, MarketplaceConfig]:
    # The six formats this module exercises; Amazon and Sokoni have their own module
    # (test_affiliate_marketplaces.py).
    return load_sandbox_configs(SLUGS)


@pytest.fixture(scope="module")
def catalogs(configs: dict[str, MarketplaceConfig]) -> dict[str, Catalog]:
    result = {}
    for slug, config in configs.items():
        adapter = build_adapter(config)
        try:
            result[slug] = read_catalog(adapter)
        finally:
            adapter.close()  # type: ignore[attr-defined]
    return result


@pytest.fixture
def adapter_for(configs: dict[str, MarketplaceConfig]) -> Iterator:
    built: list[Any] = []

    def build(slug: str) -> Any:
        adapter = build_adapter(configs[slug])
        built.append(adapter)
        return adapter

    yield build
    for adapter in built:
        adapter.close()


def set_knobs(control: httpx.Client, slug: str, **knobs: Any) -> None:
    response = control.post(f"/_sandbox/knobs/{slug}", json=knobs)
    assert response.status_code == 200, response.text


# --- Catalogs -------------------------------------------------------------------------------


def test_every_configured_marketplace_is_a_sandbox_marketplace(
    configs: dict[str, MarketplaceConfig], sandbox_server: str
) -> None:
    health = httpx.get(f"{sandbox_server}/_sandbox/health").json()
    configured = {config.slug for config in load_marketplaces()}
    assert set(configs) == set(SLUGS)
    assert configured == set(health["marketplaces"]) == {*SLUGS, "amazon", "sokoni"}


def test_catalogs_are_read_whole_with_nothing_lost(
    catalogs: dict[str, Catalog], sandbox_server: str
) -> None:
    health = httpx.get(f"{sandbox_server}/_sandbox/health").json()
    assert sum(len(catalog.records) for catalog in catalogs.values()) == health["offers"]
    for slug, catalog in catalogs.items():
        assert len(catalog.offers) + len(catalog.rejections) == len(catalog.records), slug
        assert catalog.pages == list(range(1, len(catalog.pages) + 1)), slug
    # The sandbox's default malformed share (2%) shows up, and stays a small share.
    assert sum(len(catalog.rejections) for catalog in catalogs.values()) > 0


@pytest.mark.parametrize("slug", SLUGS)
def test_catalog_offers_have_the_normalized_shape(slug: str, catalogs: dict[str, Catalog]) -> None:
    catalog = catalogs[slug]
    assert len(catalog.offers) >= 0.9 * len(catalog.records)
    for record in catalog.records:
        json.dumps(record)  # raw records are stored as JSON by the pipeline
    for offer in catalog.offers:
        assert offer.marketplace == slug
        assert offer.external_id and offer.title
        assert "\ufffd" not in offer.title
        assert isinstance(offer.price_minor, int) and offer.price_minor > 0
        assert is_iso_currency(offer.currency) and offer.currency in CURRENCIES[slug]
        assert offer.gtin is None or normalize_gtin(offer.gtin) == offer.gtin
        assert len(offer.description) <= MAX_DESCRIPTION_CHARS
        assert "<p>" not in offer.description
        assert offer.product_url and offer.product_url.startswith("http")
        assert offer.image_url and offer.image_url.startswith("http")
        assert offer.rating is None or 0 <= offer.rating <= 5
    for reason, _ in catalog.rejections:
        assert reason in REJECTION_REASONS


@pytest.mark.parametrize("slug", SLUGS)
def test_identifiers_are_kept_where_the_format_carries_them(
    slug: str, catalogs: dict[str, Catalog]
) -> None:
    offers = catalogs[slug].offers
    share = {
        "gtin": sum(offer.gtin is not None for offer in offers) / len(offers),
        "brand": sum(offer.brand is not None for offer in offers) / len(offers),
        "model": sum(offer.model is not None for offer in offers) / len(offers),
    }
    for identifier, fraction in share.items():
        if identifier in CARRIES[slug]:
            assert fraction > 0.3, (slug, identifier, fraction)
        else:
            assert fraction == 0, (slug, identifier, fraction)


def test_the_same_product_shares_its_gtin_across_formats(catalogs: dict[str, Catalog]) -> None:
    gtins = {slug: {offer.gtin for offer in catalogs[slug].offers if offer.gtin} for slug in SLUGS}
    shared_with_shopwave = {
        slug: len(gtins["shopwave"] & gtins[slug]) for slug in ("dummymart", "naijamall", "bazaar")
    }
    assert any(count > 0 for count in shared_with_shopwave.values()), shared_with_shopwave


def test_malformed_records_are_rejected_with_their_reasons(catalogs: dict[str, Catalog]) -> None:
    reasons = Counter(reason for catalog in catalogs.values() for reason, _ in catalog.rejections)
    assert set(reasons) <= REJECTION_REASONS
    # Broken bytes are decoded leniently, so the record is seen and rejected, not lost.
    assert reasons["broken_utf8"] > 0


def test_prices_that_name_their_currency_keep_it(catalogs: dict[str, Catalog]) -> None:
    bazaar_currencies = Counter(offer.currency for offer in catalogs["bazaar"].offers)
    assert bazaar_currencies["EUR"] > 0 and bazaar_currencies["GBP"] > 0


@pytest.mark.parametrize("slug", SLUGS)
def test_every_kind_of_malformed_record_gets_its_reason(
    slug: str, adapter_for, sandbox_control
) -> None:
    set_knobs(sandbox_control, slug, malformed_rate=1.0)
    catalog = read_catalog(adapter_for(slug))
    assert {reason for reason, _ in catalog.rejections} == MALFORMED_REASONS[slug]
    assert len(catalog.offers) + len(catalog.rejections) == len(catalog.records)
    # Markup in a title is a valid offer (the storefront escapes it); huge descriptions are cut.
    assert any("<" in offer.title for offer in catalog.offers)
    assert any(len(offer.description) == MAX_DESCRIPTION_CHARS for offer in catalog.offers)


@pytest.mark.parametrize("slug", ["shopwave", "kiondo", "dummymart"])
def test_paging_order_is_stable(slug: str, adapter_for, catalogs: dict[str, Catalog]) -> None:
    again = read_catalog(adapter_for(slug))
    assert [r.get("id") for r in again.records] == [r.get("id") for r in catalogs[slug].records]


@pytest.mark.parametrize("slug", SLUGS)
def test_capabilities_are_declared_honestly(slug: str, adapter_for) -> None:
    assert set(adapter_for(slug).capabilities) == EXPECTED_CAPABILITIES[slug]


@pytest.mark.parametrize("slug", ["shopwave", "kiondo"])
def test_the_order_api_check_answers_and_fails_with_the_store(
    slug: str, adapter_for, sandbox_control
) -> None:
    """Tracking's question about the order API as a whole (Shopify `orders(first: 1)`,
    WooCommerce `GET /orders?per_page=1`): answered while the store is up, a Transient when it
    is down, and not affected by one order the store cannot serve."""
    adapter = adapter_for(slug)
    set_knobs(sandbox_control, slug, failing_order_reads=["1"])
    assert adapter.check_orders_api() is None
    set_knobs(sandbox_control, slug, down=True, latency_ms=0)
    with pytest.raises(Transient) as down:
        adapter.check_orders_api()
    assert down.value.status == 503


@pytest.mark.parametrize("slug", ["dummymart", "fakestore", "bazaar"])
def test_formats_without_an_order_api_check_say_so(slug: str, adapter_for) -> None:
    with pytest.raises(Unsupported):
        adapter_for(slug).check_orders_api()


# --- Live lookups ---------------------------------------------------------------------------


@pytest.mark.parametrize("slug", ["shopwave", "kiondo", "dummymart", "fakestore"])
def test_live_lookup_matches_the_catalog(
    slug: str, adapter_for, catalogs: dict[str, Catalog]
) -> None:
    adapter = adapter_for(slug)
    for offer in catalogs[slug].offers[:3]:
        live = adapter.lookup_offer(offer.external_id)
        assert live.external_id == offer.external_id
        assert (live.price_minor, live.currency) == (offer.price_minor, offer.currency)
        assert live.title == offer.title


@pytest.mark.parametrize("slug", ["shopwave", "kiondo", "dummymart", "fakestore"])
def test_live_lookup_of_an_unknown_product_is_not_found(slug: str, adapter_for) -> None:
    with pytest.raises(NotFound):
        adapter_for(slug).lookup_offer("999999999")


@pytest.mark.parametrize("slug", ["naijamall", "bazaar"])
def test_catalog_only_marketplaces_have_no_live_lookup(slug: str, adapter_for) -> None:
    with pytest.raises(Unsupported):
        adapter_for(slug).lookup_offer("anything")


def test_live_lookup_sees_price_drift(
    adapter_for, catalogs: dict[str, Catalog], sandbox_control
) -> None:
    set_knobs(sandbox_control, "dummymart", price_drift=1.0)
    adapter = adapter_for("dummymart")
    offers = catalogs["dummymart"].offers[:5]
    drifted = [
        adapter.lookup_offer(offer.external_id).price_minor != offer.price_minor for offer in offers
    ]
    assert any(drifted)


# --- Orders ---------------------------------------------------------------------------------


def order_request(
    catalog: Catalog, *, lines: int = 2, reference: str | None = None
) -> OrderRequest:
    available = [offer for offer in catalog.offers if offer.available][:lines]
    reference = reference or f"oc-test-{uuid.uuid4().hex[:12]}"
    return OrderRequest(
        reference=reference,
        idempotency_key=f"{reference}-sub-1",
        lines=[
            OrderLine(
                external_id=offer.external_id,
                quantity=number + 1,
                unit_price_minor=offer.price_minor,
                currency=offer.currency,
            )
            for number, offer in enumerate(reversed(available))
        ],
        shipping=ShippingAddress(
            name="Ada Lovelace",
            line1="12 Test Street",
            city="Nairobi",
            country="KE",
            postal_code="00100",
            phone="+254700000001",
            email="ada@example.com",
        ),
        currency=available[0].currency,
    )


@pytest.mark.parametrize("slug", ORDERING)
def test_place_replay_find_status_cancel(
    slug: str, adapter_for, catalogs: dict[str, Catalog]
) -> None:
    adapter = adapter_for(slug)
    request = order_request(catalogs[slug])
    placed = adapter.place_order(request)
    assert placed.marketplace_order_id
    assert placed.status in (OrderStatus.PENDING, OrderStatus.PROCESSING)

    replay = adapter.place_order(request)
    assert replay.marketplace_order_id == placed.marketplace_order_id

    if slug in TRACKABLE:
        found = adapter.find_order(request.reference)
        assert found is not None and found.marketplace_order_id == placed.marketplace_order_id
        never = f"{request.reference}-never-placed"
        assert adapter.find_order(never, sent_since=datetime.now(UTC)) is None
        state = adapter.order_status(placed.marketplace_order_id)
        assert state.marketplace_order_id == placed.marketplace_order_id
        assert state.status in (OrderStatus.PENDING, OrderStatus.PROCESSING)
        assert state.raw_status
        cancelled = adapter.cancel_order(placed.marketplace_order_id)
        assert cancelled.status is OrderStatus.CANCELLED
        assert adapter.order_status(placed.marketplace_order_id).status is OrderStatus.CANCELLED
    else:
        # Carts carry no reference and no status (see the adapters' docstrings).
        with pytest.raises(Unsupported):
            adapter.find_order(request.reference)
        with pytest.raises(Unsupported):
            adapter.order_status(placed.marketplace_order_id)
        with pytest.raises(Unsupported):
            adapter.cancel_order(placed.marketplace_order_id)


@pytest.mark.parametrize("slug", TRACKABLE)
def test_order_progresses_to_delivered_with_tracking(
    slug: str, adapter_for, catalogs: dict[str, Catalog], sandbox_control
) -> None:
    set_knobs(sandbox_control, slug, order_step_seconds=0.05, cancel_rate=0)
    adapter = adapter_for(slug)
    placed = adapter.place_order(order_request(catalogs[slug], lines=1))
    deadline = time.monotonic() + 15
    state = adapter.order_status(placed.marketplace_order_id)
    while state.status is not OrderStatus.DELIVERED and time.monotonic() < deadline:
        time.sleep(0.1)
        state = adapter.order_status(placed.marketplace_order_id)
    assert state.status is OrderStatus.DELIVERED, state
    assert state.tracking_number and state.carrier
    with pytest.raises(Rejected):
        adapter.cancel_order(placed.marketplace_order_id)


@pytest.mark.parametrize("slug", ORDERING)
def test_a_failed_placement_is_retried_once_with_the_same_key(
    slug: str, adapter_for, catalogs: dict[str, Catalog], sandbox_control
) -> None:
    set_knobs(sandbox_control, slug, fail_next_orders=1)
    adapter = adapter_for(slug)
    request = order_request(catalogs[slug], lines=1)
    placed = adapter.place_order(request)
    assert adapter.place_order(request).marketplace_order_id == placed.marketplace_order_id
    if slug in TRACKABLE:
        found = adapter.find_order(request.reference)
        assert found is not None and found.marketplace_order_id == placed.marketplace_order_id


@pytest.mark.parametrize("slug", ORDERING)
def test_an_order_for_an_unknown_product_is_rejected(
    slug: str, adapter_for, catalogs: dict[str, Catalog]
) -> None:
    request = order_request(catalogs[slug], lines=1)
    unknown = OrderRequest(
        reference=request.reference,
        idempotency_key=request.idempotency_key,
        lines=[OrderLine("999999999", 1, 100, request.currency)],
        shipping=request.shipping,
        currency=request.currency,
    )
    with pytest.raises(Rejected):
        adapter_for(slug).place_order(unknown)


@pytest.mark.parametrize("slug", ["naijamall", "bazaar"])
def test_catalog_only_marketplaces_take_no_orders(
    slug: str, adapter_for, catalogs: dict[str, Catalog]
) -> None:
    with pytest.raises(Unsupported):
        adapter_for(slug).place_order(order_request(catalogs[slug], lines=1))


# --- Faults ---------------------------------------------------------------------------------


def test_a_burst_of_429s_is_waited_out(
    adapter_for, catalogs: dict[str, Catalog], sandbox_control
) -> None:
    set_knobs(sandbox_control, "kiondo", burst_429=2)
    again = read_catalog(adapter_for("kiondo"))
    assert len(again.records) == len(catalogs["kiondo"].records)


def test_a_marketplace_that_is_down_ends_in_transient(
    configs: dict[str, MarketplaceConfig], sandbox_control
) -> None:
    set_knobs(sandbox_control, "fakestore", down=True)
    # No waiting between retries: the retries themselves are what is under test.
    adapter = FakeStoreAdapter(configs["fakestore"], sleep=lambda seconds: None)
    try:
        with pytest.raises(Transient):
            adapter.lookup_offer("1")
    finally:
        adapter.close()


def test_a_sloppy_marketplace_loses_nothing(adapter_for, sandbox_control) -> None:
    set_knobs(sandbox_control, "bazaar", malformed_rate=0.5)
    catalog = read_catalog(adapter_for("bazaar"))
    assert len(catalog.rejections) > 0.2 * len(catalog.records)
    assert len(catalog.offers) + len(catalog.rejections) == len(catalog.records)


def test_a_missing_api_key_names_the_variable(sandbox_server: str) -> None:
    env = {key: value for key, value in default_environment().items() if key not in API_KEYS}
    [bazaar] = [config for config in load_marketplaces(env=env) if config.slug == "bazaar"]
    adapter = build_adapter(bazaar)
    with pytest.raises(Rejected, match="ONECART_MARKETPLACE_KEY_BAZAAR"):
        next(iter(adapter.fetch_catalog_pages()))
