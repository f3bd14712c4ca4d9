"""What the stock tests against the sandbox share (test_stock_against_sandbox.py,
test_stock_drawdown_against_sandbox.py): the two marketplaces that track stock, their adapters
built from the real marketplaces.toml, the world's offers to order, and order requests for them.
A test module imports the `configs` and `adapter_for` fixtures by name."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from adapters.base import MarketplaceConfig, OrderLine, OrderRequest, ShippingAddress
from adapters.registry import build_adapter
from sandbox.knobs import Knobs
from sandbox.shopify_format import product_id as shopify_product_id
from sandbox.woocommerce import product_id as woocommerce_product_id
from sandbox.world import ListedOffer, World
from tests.adapters.test_against_sandbox import load_sandbox_configs
from tests.conftest import TEST_SANDBOX_OFFERS, TEST_SANDBOX_SEED

STOCKED = ("shopwave", "kiondo")
PRODUCT_IDS: dict[str, Callable[[int], int]] = {
    "shopwave": shopify_product_id,
    "kiondo": woocommerce_product_id,
}
WORLD = World(TEST_SANDBOX_SEED, TEST_SANDBOX_OFFERS)


@pytest.fixture(scope="module")
def configs(sandbox_server: str) -> dict[str, MarketplaceConfig]:
    return load_sandbox_configs(STOCKED)


@pytest.fixture
def adapter_for(configs: dict[str, MarketplaceConfig]) -> Iterator[Callable[[str], Any]]:
    """Builds a marketplace's adapter; each is closed after the test."""
    built: list[Any] = []

    def build(slug: str) -> Any:
        adapter = build_adapter(configs[slug])
        built.append(adapter)
        return adapter

    yield build
    for adapter in built:
        adapter.close()


def stocked_offer(
    slug: str, low: int, high: int, *, tracked: bool = True, nth: int = 0
) -> ListedOffer:
    """The `nth` well-formed offer with low..high units whose store does (or does not) track
    its stock."""
    rate = Knobs().malformed_rate
    found = 0
    for index in range(WORLD.offer_count(slug)):
        offer = WORLD.offer(slug, index)
        if (
            offer.tracks_stock is tracked
            and low <= offer.stock <= high
            and WORLD.malformation(slug, index, rate) is None
        ):
            if found == nth:
                return offer
            found += 1
    kind = "tracked" if tracked else "untracked"
    raise AssertionError(f"no {kind} offer with {low}..{high} units on {slug}")


def external_id(slug: str, offer: ListedOffer) -> str:
    """The offer's product id in its marketplace's API."""
    return str(PRODUCT_IDS[slug](offer.index))


def request_for(
    slug: str, offer: ListedOffer, quantity: int, *, key: str | None = None
) -> OrderRequest:
    """An order of `quantity` units of the offer (`key`: its reference; a fresh one if None)."""
    reference = key or f"oc-stock-{uuid.uuid4().hex[:12]}"
    return OrderRequest(
        reference=reference,
        idempotency_key=f"{reference}-sub-1",
        lines=[OrderLine(external_id(slug, offer), quantity, offer.price_minor, offer.currency)],
        shipping=ShippingAddress(
            name="Ada Lovelace", line1="1 Test St", city="Nairobi", country="KE"
        ),
        currency=offer.currency,
    )
