"""Refunds a sandbox store makes on part of an order (a line it could not ship, or an amount),
as the control API's ``POST /_sandbox/orders/<slug>/<number>/refund`` asks, and how each format
shows them: WooCommerce REST v3's order `refunds` ({"id", "reason", "total": "-10.00"}, the total
negative); Shopify Admin GraphQL's `totalRefundedSet`, `refunds { totalRefundedSet
refundLineItems }` and `displayFinancialStatus` PARTIALLY_REFUNDED. A refunded line's quantity
leaves Shopify's `currentQuantity`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from onecart.money import from_minor_units


class RefundRefused(ValueError):
    """The store cannot refund that: more than is left, an unknown line, a cancelled order."""


@dataclass(frozen=True, slots=True)
class RefundedLine:
    """`quantity` of the order's line number `line_index` (0-based), refunded for `amount_minor`
    (the line's price for that quantity and its tax)."""

    line_index: int
    quantity: int
    amount_minor: int


@dataclass(frozen=True, slots=True)
class SandboxRefund:
    """One refund the store made on an order, in the order's currency."""

    refund_id: int
    amount_minor: int
    reason: str
    created_at: datetime
    lines: tuple[RefundedLine, ...] = ()


def refund_request(order: Any, body: dict[str, Any]) -> tuple[int, str, tuple[RefundedLine, ...]]:
    """(amount, reason, lines) of a control-API refund of `order` (a sandbox.orders.SandboxOrder):
    `{"lines": [{"external_id": "123", "quantity": 1}]}` refunds those items (their price and
    tax), `{"amount_minor": 500}` an amount with no line. RefundRefused when it cannot be done."""
    reason = str(body.get("reason") or "Item could not be shipped")[:200]
    lines: list[RefundedLine] = []
    for asked in body.get("lines") or []:
        if not isinstance(asked, dict):
            raise RefundRefused("each line is an object with external_id and quantity")
        index = next(
            (
                n
                for n, line in enumerate(order.lines)
                if line.external_id == str(asked.get("external_id"))
            ),
            None,
        )
        quantity = asked.get("quantity", 1)
        if index is None or not isinstance(quantity, int) or isinstance(quantity, bool):
            raise RefundRefused(f"no line {asked.get('external_id')!r} to refund")
        line = order.lines[index]
        if not 1 <= quantity <= line.quantity - refunded_quantity(order, index):
            raise RefundRefused(f"cannot refund {quantity} of line {line.external_id}")
        items = line.total_minor * quantity // line.quantity
        lines.append(RefundedLine(index, quantity, items + items * order.tax_bps // 10_000))
    amount = body.get("amount_minor")
    if lines:
        amount = sum(line.amount_minor for line in lines)
    if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
        raise RefundRefused("give lines to refund or a positive amount_minor")
    if amount > order.total_minor - refunded_minor(order):
        raise RefundRefused("the refund is more than what is left to refund")
    return amount, reason, tuple(lines)


def refunded_minor(order: Any) -> int:
    """Everything refunded on the order so far."""
    return sum(refund.amount_minor for refund in order.refunds)


def refunded_quantity(order: Any, line_index: int) -> int:
    """How many of one line were refunded."""
    return sum(
        line.quantity
        for refund in order.refunds
        for line in refund.lines
        if line.line_index == line_index
    )


def woocommerce_refunds(order: Any) -> list[dict[str, Any]]:
    """The order's `refunds` as REST v3 shows them, newest first, each total negative."""
    return [
        {
            "id": refund.refund_id,
            "reason": refund.reason,
            "total": "-" + format_amount(refund.amount_minor, order.currency),
        }
        for refund in reversed(order.refunds)
    ]


def shopify_refunds(order: Any, line_item_gid: Any) -> list[dict[str, Any]]:
    """The order's `refunds` as the Admin API shows them: each with its totalRefundedSet and
    refundLineItems (quantity, the line item, its subtotalSet). `line_item_gid(index)` names a
    line item."""
    return [
        {
            "id": f"gid://shopify/Refund/{refund.refund_id}",
            "createdAt": refund.created_at.isoformat().replace("+00:00", "Z"),
            "note": refund.reason,
            "totalRefundedSet": money_bag(refund.amount_minor, order.currency),
            "refundLineItems": {
                "nodes": [
                    {
                        "quantity": line.quantity,
                        "lineItem": {"id": line_item_gid(line.line_index)},
                        "subtotalSet": money_bag(line.amount_minor, order.currency),
                    }
                    for line in refund.lines
                ]
            },
        }
        for refund in order.refunds
    ]


def format_amount(minor: int, currency: str) -> str:
    """An exact decimal string of minor units (sandbox.pages' own, which imports the orders)."""
    return str(from_minor_units(minor, currency))


def money_bag(minor: int, currency: str) -> dict[str, Any]:
    """A MoneyBag in the shop's currency (the sandbox presents in the same one)."""
    money = {"amount": format_amount(minor, currency), "currencyCode": currency}
    return {"shopMoney": money, "presentmentMoney": dict(money)}
