"""What ShopWave's catalog (sandbox.shopify) and order API (sandbox.shopify_orders) share: how
product and variant ids are numbered, Shopify's UTC timestamps and the access-token check."""

from __future__ import annotations

from datetime import UTC, datetime

from werkzeug.wrappers import Request

from sandbox.service import JsonError

PRODUCT_ID_BASE = 8_000_000_000_000
PRODUCT_ID_STRIDE = 37
VARIANT_ID_BASE = 45_000_000_000_000
VARIANT_ID_STRIDE = 53
UNAUTHORIZED = {
    "errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"
}


def product_id(index: int) -> int:
    """The Shopify product id of offer `index`."""
    return PRODUCT_ID_BASE + index * PRODUCT_ID_STRIDE


def variant_id(index: int) -> int:
    """The id of offer `index`'s only variant."""
    return VARIANT_ID_BASE + index * VARIANT_ID_STRIDE


def index_from_id(value: int, base: int, stride: int, count: int) -> int | None:
    """The offer index a product or variant id (numbered from `base` by `stride`) stands for,
    or None when no offer of the `count` has it."""
    offset = value - base
    if offset < 0 or offset % stride:
        return None
    index = offset // stride
    return index if index < count else None


def iso_utc(moment: datetime | None) -> str | None:
    """A moment as the Admin GraphQL API writes it (UTC, whole seconds, Z), None for None."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None


def require_token(request: Request) -> None:
    """Answer 401 as Shopify does when the Admin API access token is missing."""
    if not request.headers.get("X-Shopify-Access-Token", "").strip():
        raise JsonError(401, UNAUTHORIZED)
