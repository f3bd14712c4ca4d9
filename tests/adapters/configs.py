"""Builders shared by the adapter unit tests: marketplace configurations and mock marketplaces."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import httpx

from adapters.base import MarketplaceConfig
from adapters.marketplace_http import MarketplaceHttp


def marketplace_config(
    kind: str,
    *,
    slug: str = "testmart",
    currency: str = "USD",
    base_url: str = "https://shop.example.com",
    api_key: str | None = None,
    api_key_env: str | None = None,
    page_size: int = 100,
    options: Mapping[str, Any] | None = None,
) -> MarketplaceConfig:
    """A marketplace entry as registry.parse_marketplaces would build it."""
    return MarketplaceConfig(
        slug=slug,
        name=slug.title(),
        kind=kind,
        base_url=base_url,
        currency=currency,
        country="US",
        api_key=api_key,
        api_key_env=api_key_env,
        page_size=page_size,
        options=dict(options or {}),
    )


class RecordingTransport(httpx.MockTransport):
    """A MockTransport that keeps every request it answered, in order."""

    def __init__(self, handler: Callable[[httpx.Request], httpx.Response]) -> None:
        self.requests: list[httpx.Request] = []

        def record(request: httpx.Request) -> httpx.Response:
            self.requests.append(request)
            return handler(request)

        super().__init__(record)


class SleepRecorder:
    """Stands in for time.sleep so retry tests never wait; remembers each delay asked for."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def http_client(
    handler: Callable[[httpx.Request], httpx.Response], **kwargs: Any
) -> tuple[MarketplaceHttp, RecordingTransport, SleepRecorder]:
    """A MarketplaceHttp wired to `handler`, its transport and its sleep recorder."""
    transport = RecordingTransport(handler)
    sleep = SleepRecorder()
    client = MarketplaceHttp(
        "testmart", "https://shop.example.com", transport=transport, sleep=sleep, **kwargs
    )
    return client, transport, sleep


def offline_transport() -> httpx.MockTransport:
    """For adapters under test that must not send anything (and need no TLS setup)."""

    def refuse(request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"unexpected request: {request.method} {request.url}")

    return httpx.MockTransport(refuse)
