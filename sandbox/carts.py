"""What the two cart-API demo stores (DummyJSON, Fake Store) share behind their own formats:
products numbered from 1, prices sent as JSON floats, and carts whose lines are billed at the
store's own current price (neither API takes a price with a cart line). Each store keeps its own
paths, field names and error shapes: the helpers take those as arguments."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from werkzeug.wrappers import Request, Response

from onecart.money import from_minor_units
from sandbox.knobs import PlacementPlan
from sandbox.orders import OrderLine, SandboxOrder
from sandbox.service import JsonError, MarketplaceService, json_response


def float_price(minor: int, currency: str) -> float:
    """A price as the JSON float both stores send (exact decimal first, then its shortest
    float)."""
    return float(from_minor_units(minor, currency))


def malformed_float_price(
    minor: int, currency: str, kind: str | None, *, currency_text: str
) -> Any:
    """A catalog record's price as malformation `kind` writes it: negated for negative_price, a
    string with a currency symbol for unknown_currency (`currency_text`, whose {} is the
    number), the plain float otherwise."""
    price = float_price(minor, currency)
    if kind == "negative_price":
        return -price
    if kind == "unknown_currency":
        return currency_text.format(price)
    return price


def numbered_product_id(index: int, kind: str | None) -> int:
    """The product id catalog record `index` is listed under: index + 1, or its neighbour's for
    a duplicate_id record."""
    return index if kind == "duplicate_id" else index + 1


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


def cart_placement_plan(
    service: MarketplaceService, *, unavailable: Any, refused: Any
) -> PlacementPlan:
    """The knobs of this cart's placement, after the faults that come before any order exists:
    a 503 with body `unavailable` (fail_next_orders) or a 400 with body `refused`
    (refuse_next_orders), each in the store's own error shape."""
    plan = service.ctx.knobs.plan_placement(service.slug)
    if plan.fail_before:
        raise JsonError(503, unavailable)
    if plan.refuse:
        raise JsonError(400, refused)
    return plan


def cart_line(
    service: MarketplaceService,
    plan: PlacementPlan,
    product_ref: str,
    quantity: Any,
    *,
    unknown: JsonError,
    bad_quantity: JsonError,
) -> OrderLine | None:
    """The cart line asking `quantity` of product `product_ref`, or None when the product is
    unknown (or delisted by the knobs) and the store drops such lines (drop_unknown_lines).
    Raises `unknown` for an unknown product it does not drop, `bad_quantity` for a quantity
    that is not a positive integer."""
    index = numbered_product_index(service, product_ref)
    if index is not None and plan.is_delisted(str(index + 1)):
        index = None
    if index is None and plan.drop_unknown_lines:
        return None
    if index is None:
        raise unknown
    if not isinstance(quantity, int) or isinstance(quantity, bool) or quantity < 1:
        raise bad_quantity
    return store_priced_line(service, plan, index, quantity)


def place_cart(
    service: MarketplaceService,
    request: Request,
    plan: PlacementPlan,
    lines: list[OrderLine],
    *,
    extra: dict[str, Any],
    answer: Callable[[SandboxOrder], Any],
    failure: Any,
) -> Response:
    """Create the cart (once per Idempotency-Key) and answer `answer(order)`: 201, or 200 when
    the key replays an earlier cart; the faults that come after the order exists answer a 500
    with body `failure` instead (sandbox.service.SandboxContext.finish_placement)."""
    order, created = service.ctx.orders.place(
        service.slug,
        idempotency_key=request.headers.get("Idempotency-Key"),
        reference=None,
        currency=service.profile.currency,
        lines=lines,
        cancel_rate=0.0,
        extra=extra,
    )
    return service.ctx.finish_placement(
        service.slug,
        plan,
        order,
        json_response(answer(order), status=201 if created else 200),
        json_response(failure, 500),
    )
