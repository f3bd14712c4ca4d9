"""The retry policy of MarketplaceHttp, which every adapter's requests go through."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from adapters.base import NotFound, RateLimited, Rejected, Transient
from adapters.marketplace_http import (
    IDEMPOTENCY_HEADER,
    MAX_RETRIES,
    RETRY_AFTER_CAP_S,
    backoff_delay,
)
from tests.adapters.configs import http_client


def responses_in_turn(*responses: httpx.Response):
    """A handler answering with each response in turn, then repeating the last one."""
    queue = list(responses)

    def handler(request: httpx.Request) -> httpx.Response:
        return queue.pop(0) if len(queue) > 1 else queue[0]

    return handler


def test_503_is_retried_until_success() -> None:
    client, transport, sleep = http_client(
        responses_in_turn(
            httpx.Response(503), httpx.Response(503), httpx.Response(200, json={"ok": 1})
        )
    )
    assert client.get_json("products") == {"ok": 1}
    assert len(transport.requests) == 3
    assert len(sleep.delays) == 2


def test_retry_after_seconds_is_honored() -> None:
    client, _, sleep = http_client(
        responses_in_turn(
            httpx.Response(429, headers={"Retry-After": "2"}), httpx.Response(200, json=[])
        )
    )
    client.get_json("products")
    assert sleep.delays == [2.0]


def test_retry_after_is_capped() -> None:
    client, _, sleep = http_client(
        responses_in_turn(
            httpx.Response(503, headers={"Retry-After": "3600"}), httpx.Response(200, json=[])
        )
    )
    client.get_json("products")
    assert sleep.delays == [RETRY_AFTER_CAP_S]


def test_retry_after_http_date_is_understood() -> None:
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=20), usegmt=True)
    client, _, sleep = http_client(
        responses_in_turn(
            httpx.Response(429, headers={"Retry-After": later}), httpx.Response(200, json=[])
        )
    )
    client.get_json("products")
    assert 0 < sleep.delays[0] <= 20


def test_backoff_without_retry_after_grows_and_is_capped() -> None:
    for attempt in range(1, 12):
        delay = backoff_delay(attempt)
        assert 0 <= delay <= min(8.0, 0.25 * 2 ** (attempt - 1))


@pytest.mark.parametrize(("status", "error"), [(400, Rejected), (401, Rejected), (404, NotFound)])
def test_client_errors_are_not_retried(status: int, error: type[Exception]) -> None:
    client, transport, sleep = http_client(responses_in_turn(httpx.Response(status, json={})))
    with pytest.raises(error):
        client.get_json("products/1")
    assert len(transport.requests) == 1
    assert sleep.delays == []


def test_persistent_503_ends_in_transient_after_every_retry() -> None:
    client, transport, _ = http_client(responses_in_turn(httpx.Response(503, text="down")))
    with pytest.raises(Transient) as caught:
        client.get_json("products")
    assert len(transport.requests) == MAX_RETRIES + 1
    assert caught.value.status == 503
    assert caught.value.marketplace == "testmart"


def test_persistent_429_ends_in_rate_limited_with_the_hint() -> None:
    client, transport, sleep = http_client(
        responses_in_turn(httpx.Response(429, headers={"Retry-After": "1"}))
    )
    with pytest.raises(RateLimited) as caught:
        client.get_json("products")
    assert caught.value.retry_after == 1.0
    assert len(transport.requests) == MAX_RETRIES + 1
    assert sleep.delays == [1.0] * MAX_RETRIES


def test_connection_errors_are_retried_then_transient() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    client, transport, _ = http_client(refuse)
    with pytest.raises(Transient):
        client.get_json("products")
    assert len(transport.requests) == MAX_RETRIES + 1


def test_every_retry_of_a_write_carries_the_same_idempotency_key() -> None:
    client, transport, _ = http_client(
        responses_in_turn(
            httpx.Response(503), httpx.Response(429), httpx.Response(201, json={"id": 7})
        )
    )
    response = client.request("POST", "orders", json={"a": 1}, idempotency_key="order-42-shop")
    assert response.status_code == 201
    keys = [request.headers.get(IDEMPOTENCY_HEADER) for request in transport.requests]
    assert keys == ["order-42-shop"] * 3
    assert [json.loads(request.content) for request in transport.requests] == [{"a": 1}] * 3


def test_reads_carry_no_idempotency_key() -> None:
    client, transport, _ = http_client(responses_in_turn(httpx.Response(200, json=[])))
    client.get_json("products")
    assert IDEMPOTENCY_HEADER not in transport.requests[0].headers


def test_a_refusal_keeps_the_marketplace_body_for_its_message() -> None:
    body = {"code": "woocommerce_rest_cannot_cancel", "message": "Order already shipped"}
    client, _, _ = http_client(responses_in_turn(httpx.Response(400, json=body)))
    with pytest.raises(Rejected) as caught:
        client.request("PUT", "orders/5", json={"status": "cancelled"}, idempotency_key="k")
    assert json.loads(caught.value.response_text or "") == body
    assert caught.value.status == 400
