"""Hand-off items: what the shopper buys on a marketplace's own site (marketplaces without an
order API). OneCart charges nothing for them.

- Hand-off carts: a marketplace may still take the shopper's items in one go, through a cart URL
  of its own (Amazon's add-to-cart form). The cart and checkout pages show one button per such
  marketplace. Adapters that can build such a URL have a `handoff_cart_url(lines)` method (see
  adapters/amazon.py); for every other marketplace the pages keep their per-item links.
- After checkout the items leave the cart and live in the order (commerce.checkout); the shopper
  marks each one bought, or removes it, since OneCart cannot see those purchases
  (`set_handoff_item_status`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

import sqlalchemy as sa
from sqlalchemy.orm import Session

from adapters.base import MarketplaceError
from adapters.registry import MarketplaceConfigError
from commerce.marketplace_access import adapter_for_marketplace
from commerce.models import Marketplace, Product
from commerce.order_models import HandoffItemStatus, Order, OrderItem

logger = logging.getLogger(__name__)

ORDER_CAPABILITY = "order"


@runtime_checkable
class HandoffCartBuilder(Protocol):
    """An adapter that can open several items in one cart on its marketplace."""

    def handoff_cart_url(self, lines: Sequence[tuple[str, int]]) -> str:
        """The URL of one cart holding these (external id, quantity) lines."""
        ...


def handoff_cart_url(
    session: Session, marketplace_slug: str, lines: Iterable[tuple[int, int]]
) -> str | None:
    """The URL that puts these (product id, quantity) cart lines into one cart on the
    marketplace, or None when it takes orders through OneCart, has no such cart form, or none
    of the products is still known. A line the form refuses (e.g. 1000 of one item) leaves the
    page with its per-item links rather than failing it."""
    wanted = [(product_id, quantity) for product_id, quantity in lines if quantity > 0]
    if not wanted:
        return None
    marketplace = session.scalar(sa.select(Marketplace).where(Marketplace.slug == marketplace_slug))
    if marketplace is None or ORDER_CAPABILITY in (marketplace.capabilities or []):
        return None
    try:
        adapter = adapter_for_marketplace(marketplace)
    except (MarketplaceConfigError, MarketplaceError) as exc:
        logger.warning("no hand-off cart for %s: %s", marketplace_slug, exc)
        return None
    if not isinstance(adapter, HandoffCartBuilder):
        return None
    rows = session.execute(
        sa.select(Product.id, Product.external_id).where(
            Product.marketplace_id == marketplace.id,
            Product.id.in_([product_id for product_id, _ in wanted]),
        )
    )
    external_ids = {product_id: external_id for product_id, external_id in rows}
    cart_lines = [
        (external_ids[product_id], quantity)
        for product_id, quantity in wanted
        if product_id in external_ids
    ]
    if not cart_lines:
        return None
    try:
        return adapter.handoff_cart_url(cart_lines)
    except ValueError as exc:
        logger.warning("no hand-off cart for %s: %s", marketplace_slug, exc)
        return None


class HandoffItemNotFound(LookupError):
    """No hand-off item with that id in that order of that shopper (a 404 for the site)."""


def set_handoff_item_status(
    session: Session, user_id: int, order_number: str, item_id: int, status: HandoffItemStatus
) -> OrderItem:
    """Record the shopper's note on one hand-off item of their order: bought, removed, or back
    to 'to buy' (an undo). Items OneCart placed, other shoppers' orders and unknown ids are
    HandoffItemNotFound. Flushes; the caller commits."""
    item = session.scalar(
        sa.select(OrderItem)
        .join(Order, OrderItem.order_id == Order.id)
        .where(
            OrderItem.id == item_id,
            Order.number == order_number,
            Order.user_id == user_id,
            OrderItem.handoff_status.is_not(None),
        )
    )
    if item is None:
        raise HandoffItemNotFound(f"no hand-off item {item_id} in order {order_number}")
    if item.handoff_status != status:
        item.handoff_status = status
        item.handoff_updated_at = datetime.now(UTC)
        session.flush()
    return item
