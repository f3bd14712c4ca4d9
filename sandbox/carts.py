"""What the two cart-API demo stores (DummyJSON, Fake Store) share behind their own formats:
products numbered from 1, and cart lines billed at the store's own current price (neither
API takes a price with a cart line)."""

from __future__ import annotations

from sandbox.knobs import PlacementPlan
from sandbox.orders import OrderLine
from sandbox.service import MarketplaceService


def numbered_product_index(service: MarketplaceService, product_ref: str) -> int | None:
    """The offer index behind product id `product_ref` (offer index + 1), or None: not a number,
    no such product, or a duplicate_id record (it is listed under its neighbour's id)."""
    if not product_ref.isdigit():
        return None
    index = int(product_ref) - 1
    if (
        not 0 <= index < service.count
        or service.ctx.malformation(service.slug, index) == "duplicate_id"
    ):
        return None
    return index


def store_priced_line(
    service: MarketplaceService, plan: PlacementPlan, index: int, quantity: int
) -> OrderLine:
    """The cart line for `quantity` of offer `index`, at the live offer's price (as the knobs
    of this placement bill it)."""
    offer = service.ctx.offer(service.slug, index, live=True)
    return OrderLine(
        index,
        str(index + 1),
        offer.title,
        offer.product.model,
        plan.quantity(quantity),
        plan.billed_unit_price(None, offer.price_minor),
    )
