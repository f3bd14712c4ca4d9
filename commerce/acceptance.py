"""Verifying what a marketplace accepted against what was asked, as a pure function.

Lines, quantities and, where the API returns them, line prices and the order total are compared
with the sub-order's items. Missing or short lines are a partial placement: the shopper keeps
paying only for what was accepted, the rest of the share is refunded. A lower bill refunds the
difference in proportion. A higher bill is absorbed up to a tolerance in basis points of the
asked amount (ONECART_OVERCHARGE_TOLERANCE_BPS, default 1%); beyond it, or when nothing at all
was accepted, the sub-order is cancelled on the marketplace and its share refunded
(commerce.placement does that). Amounts in the marketplace's currency unless said otherwise;
shares in the payment currency are rounded down, so refunds round up, never the other way.
"""

from __future__ import annotations

from dataclasses import dataclass

from adapters.base import PlacedOrder
from commerce.order_models import OrderItem

BPS = 10_000
DEFAULT_OVERCHARGE_TOLERANCE_BPS = 100


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a placement is worth to the shopper, compared with what was asked.

    `kept_charge_minor`: the part of the share the shopper pays (payment currency); the rest is
    refunded. `cancel`: the marketplace billed beyond the tolerance, or accepted nothing.
    """

    accepted_amount_minor: int | None
    kept_charge_minor: int
    cancel: bool
    notes: tuple[str, ...]


def verify_placement(
    items: list[OrderItem],
    charge_minor: int,
    currency: str,
    placed: PlacedOrder,
    *,
    overcharge_tolerance_bps: int,
) -> Verdict:
    """Compare the marketplace's answer with the sub-order's items (pure; see the module
    docstring for the policy). Amounts in the marketplace's currency unless said otherwise."""
    notes: list[str] = []
    accepted_qty: dict[str, int] = {}
    # What the marketplace says each product's lines cost (None: not said for every line).
    billed_by_id: dict[str, int | None] = {}
    if placed.lines is not None:
        for line in placed.lines:
            quantity = max(0, line.quantity)
            accepted_qty[line.external_id] = accepted_qty.get(line.external_id, 0) + quantity
            billed = line.billed_minor
            earlier = billed_by_id.get(line.external_id, 0)
            billed_by_id[line.external_id] = (
                None if billed is None or earlier is None else earlier + billed
            )
    asked_accepted = 0
    billed_lines = 0
    kept_charge = 0
    for item in items:
        quantity = item.quantity
        billed_item: int | None = None
        if placed.lines is not None:
            available = accepted_qty.get(item.external_id, 0)
            quantity = min(item.quantity, available)
            accepted_qty[item.external_id] = available - quantity
            billed_total = billed_by_id.get(item.external_id)
            if billed_total is not None and available:
                # The share of the product's billed lines that covers this item's quantity.
                billed_item = billed_total * quantity // available
            if quantity < item.quantity:
                notes.append(
                    f"accepted {quantity} of {item.quantity} × {item.title[:60]}"
                    if quantity
                    else f"left out {item.title[:60]}"
                )
        asked_accepted += item.unit_price_minor * quantity
        billed_lines += billed_item if billed_item is not None else item.unit_price_minor * quantity
        # The accepted part of the line's share, rounded down (the refund rounds up).
        kept_charge += item.charge_minor * quantity // item.quantity
    if asked_accepted == 0:
        return Verdict(0, 0, cancel=True, notes=(*notes, "accepted none of the items"))
    billed = billed_lines
    if placed.total_minor is not None and (placed.currency in (None, currency)):
        billed = placed.total_minor
    if billed < asked_accepted:
        notes.append(f"billed {billed} instead of {asked_accepted}")
        kept_charge = kept_charge * max(billed, 0) // asked_accepted
    elif billed > asked_accepted:
        over = billed - asked_accepted
        if over * BPS > asked_accepted * overcharge_tolerance_bps:
            notes.append(f"billed {billed}, more than the {asked_accepted} paid")
            return Verdict(billed, 0, cancel=True, notes=tuple(notes))
        notes.append(f"billed {over} more than paid, absorbed")
    return Verdict(billed, min(kept_charge, charge_minor), cancel=False, notes=tuple(notes))
