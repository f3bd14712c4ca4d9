"""A marketplace's read timeout is bounded so that the calls one abandoned-cancellation sweep's
claim covers always end inside the claim (commerce.sweep_claim).

A sweep renews its claim on a part before each marketplace call, and a claim older than
SWEEP_CLAIM_DEAD_AFTER is taken for a dead sweep's and taken over: a call outlasting it let a
second sweep send the cancel again. The bound is derived from the claim and from the HTTP
client's own policy (tries, timeouts, the longest pause between tries), and is enforced where
configuration is read: the environment, marketplaces.toml, and the adapter being built.
"""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from pydantic import ValidationError

from adapters.base import Transient
from adapters.marketplace_http import (
    CONNECT_TIMEOUT_S,
    MAX_RETRIES,
    POOL_TIMEOUT_S,
    RETRY_AFTER_CAP_S,
    WRITE_TIMEOUT_S,
    longest_read_timeout_s,
    longest_request_s,
)
from adapters.registry import MarketplaceConfigError, build_adapter, parse_marketplaces
from commerce.sweep_claim import (
    HTTP_REQUESTS_PER_CLAIM,
    MAX_MARKETPLACE_READ_TIMEOUT_S,
    SWEEP_CLAIM_DEAD_AFTER,
)
from onecart.settings import Settings
from tests.adapters.configs import http_client, marketplace_config, offline_transport
from tests.adapters.test_shopify_orders import FakeShopifyAdmin, order_node, shop

ABOVE_THE_BOUND = MAX_MARKETPLACE_READ_TIMEOUT_S + 1


def test_the_calls_one_claim_covers_fit_in_it_at_the_bound_and_not_above() -> None:
    claim_s = SWEEP_CLAIM_DEAD_AFTER.total_seconds()
    at_the_bound = HTTP_REQUESTS_PER_CLAIM * longest_request_s(MAX_MARKETPLACE_READ_TIMEOUT_S)
    assert at_the_bound <= claim_s
    # Derived from the claim, not a second guess: a little more and they would not fit.
    assert HTTP_REQUESTS_PER_CLAIM * longest_request_s(MAX_MARKETPLACE_READ_TIMEOUT_S + 0.01) > (
        claim_s
    )
    # The old bound (300 s) let one call alone outlast the claim.
    assert longest_request_s(300.0) > claim_s
    # A longer claim allows a longer timeout: the bound follows the claim.
    assert longest_read_timeout_s(2 * SWEEP_CLAIM_DEAD_AFTER, requests=1) > (
        MAX_MARKETPLACE_READ_TIMEOUT_S
    )
    assert longest_read_timeout_s(timedelta(seconds=1), requests=1) < 0  # nothing fits


def test_the_longest_request_counts_every_try_and_pause_the_client_makes() -> None:
    # The slowest a marketplace can make one request: every try answered 503 with a long
    # Retry-After (each try itself can last up to its pool, connect, write and read timeouts).
    answer = httpx.Response(503, headers={"Retry-After": "3600"})
    for method, key in (("GET", None), ("POST", "oc-cancel-1")):
        client, transport, sleep = http_client(lambda request: answer, read_timeout_s=2.0)
        with pytest.raises(Transient):  # OutcomeUnknown (a Transient) for the write
            client.request(method, "orders/1", idempotency_key=key)
        tries = len(transport.requests)
        assert tries == MAX_RETRIES + 1
        assert sum(sleep.delays) == MAX_RETRIES * RETRY_AFTER_CAP_S
        per_try = POOL_TIMEOUT_S + CONNECT_TIMEOUT_S + WRITE_TIMEOUT_S + 2.0
        assert longest_request_s(2.0) == tries * per_try + sum(sleep.delays)


def test_the_requests_of_the_longest_call_a_claim_covers_are_counted() -> None:
    # Shopify's cancel is a mutation and a read of the order: the most requests any adapter
    # call the sweep makes between two renewals of its claim.
    fake = FakeShopifyAdmin(
        {
            "orderCancel": {
                "data": {
                    "orderCancel": {
                        "job": {"id": "gid://shopify/Job/1"},
                        "orderCancelUserErrors": [],
                    }
                }
            },
            "order": {"data": {"order": order_node(cancelledAt="2026-03-02T10:00:00Z")}},
        }
    )
    shop(fake).cancel_order("gid://shopify/Order/1001")
    assert len(fake.transport.requests) == HTTP_REQUESTS_PER_CLAIM


def test_a_read_timeout_above_the_bound_in_the_environment_stops_startup() -> None:
    with pytest.raises(ValidationError, match="abandoned-cancellation sweep"):
        Settings(ONECART_MARKETPLACE_READ_TIMEOUT_S=ABOVE_THE_BOUND)
    at_the_bound = Settings(ONECART_MARKETPLACE_READ_TIMEOUT_S=MAX_MARKETPLACE_READ_TIMEOUT_S)
    assert at_the_bound.marketplace_read_timeout_s == MAX_MARKETPLACE_READ_TIMEOUT_S


def test_a_marketplace_read_timeout_above_the_bound_is_refused_when_loaded() -> None:
    entry = {
        "slug": "slowmart",
        "name": "Slow Mart",
        "kind": "woocommerce",
        "base_url": "https://slow.example.com",
        "currency": "USD",
        "country": "US",
        "options": {"read_timeout_s": ABOVE_THE_BOUND},
    }
    with pytest.raises(MarketplaceConfigError, match=r"slowmart.*read_timeout_s.*sweep"):
        parse_marketplaces({"marketplace": [entry]}, {})
    entry["options"] = {"read_timeout_s": MAX_MARKETPLACE_READ_TIMEOUT_S}
    [config] = parse_marketplaces({"marketplace": [entry]}, {})
    assert config.options["read_timeout_s"] == MAX_MARKETPLACE_READ_TIMEOUT_S


def test_a_marketplace_read_timeout_above_the_bound_is_refused_when_the_adapter_is_built() -> None:
    config = marketplace_config("woocommerce", options={"read_timeout_s": ABOVE_THE_BOUND})
    with pytest.raises(MarketplaceConfigError, match="read_timeout_s"):
        build_adapter(config, transport=offline_transport())
