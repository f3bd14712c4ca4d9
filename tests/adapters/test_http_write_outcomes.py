"""Three outcomes of a write (place, cancel) through MarketplaceHttp: succeeded, refused, or
unknown. A write that may have reached the marketplace and got no success is OutcomeUnknown,
never a refusal; one that certainly never arrived, or was refused, keeps its refusal class."""

from __future__ import annotations

import httpx
import pytest

from adapters.base import NotFound, OutcomeUnknown, RateLimited, Rejected, Transient
from adapters.marketplace_http import (
    IDEMPOTENCY_HEADER,
    MAX_RETRIES,
    earlier_attempt_may_have_arrived,
    request_may_have_arrived,
)
from adapters.registry import MarketplaceConfigError, build_adapter
from tests.adapters.configs import http_client, marketplace_config, offline_transport

KEY = "oc-ref-9-shopwave"


def in_turn(*steps: httpx.Response | Exception):
    """A handler answering (or raising) each step in turn, then repeating the last one."""
    queue = list(steps)

    def handler(request: httpx.Request) -> httpx.Response:
        step = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(step, Exception):
            raise step
        return step

    return handler


def write(client, **kwargs):
    return client.request("POST", "orders", json={"x": 1}, idempotency_key=KEY, **kwargs)


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ReadTimeout("timed out"),
        httpx.WriteTimeout("timed out"),
        httpx.ReadError("connection reset by peer"),
        httpx.RemoteProtocolError("server disconnected without sending a response"),
    ],
    ids=["read-timeout", "write-timeout", "reset", "disconnect"],
)
def test_a_write_that_may_have_arrived_is_unknown_after_its_retries(failure: Exception) -> None:
    client, transport, _ = http_client(in_turn(failure))
    with pytest.raises(OutcomeUnknown) as caught:
        write(client)
    assert isinstance(caught.value, Transient)  # callers that retry transients still do
    assert len(transport.requests) == MAX_RETRIES + 1
    assert {r.headers[IDEMPOTENCY_HEADER] for r in transport.requests} == {KEY}


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_a_write_answered_5xx_every_time_is_unknown(status: int) -> None:
    client, transport, _ = http_client(in_turn(httpx.Response(status, text="oops")))
    with pytest.raises(OutcomeUnknown) as caught:
        write(client)
    assert caught.value.status == status
    assert len(transport.requests) == MAX_RETRIES + 1


def test_a_write_retried_after_a_timeout_succeeds_with_the_same_key() -> None:
    client, transport, _ = http_client(
        in_turn(httpx.ReadTimeout("slow"), httpx.Response(502), httpx.Response(201, json={}))
    )
    assert write(client).status_code == 201
    assert [r.headers[IDEMPOTENCY_HEADER] for r in transport.requests] == [KEY, KEY, KEY]


@pytest.mark.parametrize(
    "failure",
    [httpx.ConnectError("connection refused"), httpx.ConnectTimeout("no route")],
    ids=["refused", "connect-timeout"],
)
def test_a_write_that_never_connected_is_transient_not_unknown(failure: Exception) -> None:
    client, transport, _ = http_client(in_turn(failure))
    with pytest.raises(Transient) as caught:
        write(client)
    assert not isinstance(caught.value, OutcomeUnknown)
    assert len(transport.requests) == MAX_RETRIES + 1
    assert not request_may_have_arrived(failure)


def test_an_earlier_attempt_that_may_have_arrived_makes_a_later_refusal_unknown() -> None:
    # Attempt 1 timed out after sending; the marketplace then went away entirely. It may
    # still hold the order from attempt 1, so the write is not "certainly not placed".
    client, _, _ = http_client(
        in_turn(httpx.ReadTimeout("slow"), httpx.ConnectError("connection refused"))
    )
    with pytest.raises(OutcomeUnknown):
        write(client)
    client, _, _ = http_client(
        in_turn(httpx.Response(503), httpx.Response(400, json={"message": "out of stock"}))
    )
    with pytest.raises(OutcomeUnknown):
        write(client)


def test_429_on_a_write_stays_rate_limited_with_its_retry_after() -> None:
    client, transport, sleep = http_client(
        in_turn(httpx.Response(429, headers={"Retry-After": "3"}))
    )
    with pytest.raises(RateLimited) as caught:
        write(client)
    assert not isinstance(caught.value, OutcomeUnknown)
    assert caught.value.retry_after == 3.0
    assert sleep.delays == [3.0] * MAX_RETRIES
    assert len(transport.requests) == MAX_RETRIES + 1


def test_refusals_of_a_write_are_not_unknown() -> None:
    client, transport, _ = http_client(in_turn(httpx.Response(400, json={"message": "bad"})))
    with pytest.raises(Rejected):
        write(client)
    assert len(transport.requests) == 1
    client, _, _ = http_client(in_turn(httpx.Response(404, json={"message": "no product"})))
    with pytest.raises(NotFound):
        write(client)


def test_without_retry_unknown_writes_the_first_unknown_attempt_is_final() -> None:
    client, transport, _ = http_client(
        in_turn(httpx.ReadTimeout("slow"), httpx.Response(201, json={})),
        retry_unknown_writes=False,
    )
    with pytest.raises(OutcomeUnknown):
        write(client)
    assert len(transport.requests) == 1
    # A connection that was never made is still retried: nothing can have arrived.
    client, transport, _ = http_client(
        in_turn(httpx.ConnectError("refused"), httpx.Response(201, json={})),
        retry_unknown_writes=False,
    )
    assert write(client).status_code == 201
    assert len(transport.requests) == 2


def test_reads_keep_their_transient_errors() -> None:
    client, _, _ = http_client(in_turn(httpx.ReadTimeout("slow")))
    with pytest.raises(Transient) as caught:
        client.request("GET", "orders/1")
    assert not isinstance(caught.value, OutcomeUnknown)
    client, _, _ = http_client(in_turn(httpx.Response(500)))
    with pytest.raises(Transient) as caught:
        client.request("POST", "graphql.json", json={"query": "{ order }"})
    assert not isinstance(caught.value, OutcomeUnknown)


def test_the_read_timeout_is_bounded() -> None:
    with pytest.raises(ValueError):
        http_client(in_turn(httpx.Response(200)), read_timeout_s=0)
    client, _, _ = http_client(in_turn(httpx.Response(200)), read_timeout_s=0.5)
    assert client.client.timeout.read == 0.5


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"read_timeout_s": 0}, "read_timeout_s"),
        ({"read_timeout_s": "fast"}, "read_timeout_s"),
        ({"retry_unknown_writes": "no"}, "retry_unknown_writes"),
        ({"order_lookback_hours": 0}, "order_lookback_hours"),
    ],
)
def test_order_options_are_checked_when_the_adapter_is_built(
    options: dict[str, object], problem: str
) -> None:
    config = marketplace_config("woocommerce", options=options)
    with pytest.raises(MarketplaceConfigError, match=problem):
        build_adapter(config, transport=offline_transport())


def test_order_options_reach_the_http_client() -> None:
    config = marketplace_config(
        "woocommerce", options={"read_timeout_s": 2.5, "retry_unknown_writes": False}
    )
    adapter = build_adapter(config, transport=offline_transport())
    assert adapter.http.client.timeout.read == 2.5  # type: ignore[attr-defined]
    assert adapter.http.retry_unknown_writes is False  # type: ignore[attr-defined]
    declarative = marketplace_config(
        "declarative",
        options={
            "list_path": "items",
            "pagination": "none",
            "fields": {"external_id": "id", "title": "name", "price": "price"},
            "price_encoding": "float",
            "read_timeout_s": 1,
        },
    )
    assert build_adapter(declarative, transport=offline_transport()).http.client.timeout.read == 1  # type: ignore[attr-defined]


def test_a_success_after_an_attempt_that_may_have_arrived_says_so() -> None:
    client, _, _ = http_client(in_turn(httpx.ReadTimeout("slow"), httpx.Response(200, json={})))
    assert earlier_attempt_may_have_arrived(write(client)) is not None
    client, _, _ = http_client(in_turn(httpx.ConnectError("refused"), httpx.Response(200, json={})))
    assert earlier_attempt_may_have_arrived(write(client)) is None


def test_a_write_answered_409_every_time_is_unknown_not_refused() -> None:
    # 409 to a keyed write: a request with this key is still being processed (an earlier
    # attempt, possibly another worker's), so the order may yet be created.
    client, transport, _ = http_client(
        in_turn(httpx.Response(409, json={"message": "idempotency key in use"}))
    )
    with pytest.raises(OutcomeUnknown) as caught:
        write(client)
    assert caught.value.status == 409
    assert len(transport.requests) == MAX_RETRIES + 1


def _undecodable(status: int) -> httpx.Response:
    """A reply whose body is not what its Content-Encoding says (read only when received)."""
    return httpx.Response(
        status, headers={"Content-Encoding": "gzip"}, stream=httpx.ByteStream(b"not gzip")
    )


def test_a_write_whose_success_body_cannot_be_decoded_is_unknown() -> None:
    # The marketplace answered 201 but the body is not what its Content-Encoding says: the
    # write arrived, and what it did cannot be read.
    client, _, _ = http_client(lambda request: _undecodable(201))
    with pytest.raises(OutcomeUnknown):
        write(client)


def test_a_read_whose_body_cannot_be_decoded_is_transient() -> None:
    client, transport, _ = http_client(lambda request: _undecodable(200))
    with pytest.raises(Transient) as caught:
        client.request("GET", "orders")
    assert not isinstance(caught.value, OutcomeUnknown)
    assert len(transport.requests) == MAX_RETRIES + 1
