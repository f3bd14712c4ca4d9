"""Helpers for the sandbox tests: clients for each marketplace of the session's sandbox server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

SHOPIFY_ADMIN = "/shopwave/admin/api/2024-10"


@pytest.fixture
def http(sandbox_server: str) -> Iterator[httpx.Client]:
    """A plain client on the sandbox (knobs are reset by `sandbox_control` where tests turn them)."""
    with httpx.Client(base_url=sandbox_server, timeout=20) as client:
        yield client


def shopify_graphql(
    client: httpx.Client,
    query: str,
    variables: dict[str, Any],
    *,
    idempotency_key: str | None = None,
) -> httpx.Response:
    """POST one GraphQL operation to ShopWave's Admin API with a token."""
    headers = {"X-Shopify-Access-Token": "shpat_test"}
    if idempotency_key:
        headers["Idempotency-Key"] = idempotency_key
    return client.post(
        f"{SHOPIFY_ADMIN}/graphql.json",
        json={"query": query, "variables": variables},
        headers=headers,
    )
