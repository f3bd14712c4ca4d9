"""The listings' rate limit (storefront.search_limit): a token bucket per client address in each
site process, checked before Meilisearch is asked."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from storefront.search_limit import BENCH_SEARCH_LIMIT, ClientBuckets, parse_search_limit


def test_a_bucket_lets_a_burst_through_then_refills_at_its_rate() -> None:
    buckets = ClientBuckets(capacity=3, rate=0.5)
    assert [buckets.take("a", 100.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("a", 100.0) == pytest.approx(2.0)  # one token takes 2 s
    assert buckets.take("b", 100.0) == 0.0  # another client has its own bucket
    assert buckets.take("a", 101.0) == pytest.approx(1.0)  # refused asks spend nothing
    assert buckets.take("a", 102.0) == 0.0
    assert buckets.take("a", 102.0) > 0
    # Idle long enough, the bucket is full again, never fuller.
    assert [buckets.take("a", 1000.0) for _ in range(4)][-1] > 0


def test_the_least_recently_seen_clients_are_forgotten_past_the_bound() -> None:
    buckets = ClientBuckets(capacity=1, rate=0.001, max_clients=2)
    assert buckets.take("a", 0.0) == 0.0
    assert buckets.take("b", 0.0) == 0.0
    assert buckets.take("c", 0.0) == 0.0  # "a" is forgotten: it starts again
    assert buckets.take("a", 0.0) == 0.0
    assert buckets.take("c", 0.0) > 0


def test_settings_are_count_per_seconds_or_off() -> None:
    assert parse_search_limit("off") is None
    limit = parse_search_limit("300/30")
    assert limit is not None and (limit.capacity, limit.rate) == (300.0, 10.0)
    assert parse_search_limit(BENCH_SEARCH_LIMIT) is not None
    for bad in ("0/10", "10/0", "ten/10"):
        with pytest.raises(ValueError):
            parse_search_limit(bad)


@pytest.fixture
def app_config_overrides() -> dict[str, Any]:
    return {"SEARCH_LIMIT": "3/600"}


def _from(app: Flask, address: str) -> Any:
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def test_a_client_over_the_limit_gets_429_before_search_is_asked(app: Flask) -> None:
    # Meilisearch is unreachable here: a listing that reaches it answers 503, one the limit
    # stops answers 429 without asking.
    client = _from(app, "203.0.113.5")
    assert [client.get("/search?q=tent").status_code for _ in range(3)] == [503, 503, 503]
    refused = client.get("/search?q=tent")
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) >= 1
    assert "many listings" in refused.get_data(as_text=True)
    api = client.get("/api/search?q=tent")
    assert api.status_code == 429
    assert api.get_json()["error"]["status"] == 429
    # Another shopper is not affected.
    assert _from(app, "203.0.113.6").get("/api/search?q=tent").status_code == 503


def test_off_turns_it_off(app: Flask) -> None:
    app.config["SEARCH_LIMIT"] = "off"
    client = _from(app, "203.0.113.7")
    assert {client.get("/api/search?q=tent").status_code for _ in range(6)} == {503}
