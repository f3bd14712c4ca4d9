"""Verifying what a marketplace accepted against what was asked, as a pure function.

Lines, quantities and, where the API returns them, line prices and the order total are compared
with the sub-order's items. Missing or short lines are a partial placement: the shopper keeps
paying only for what was accepted, the rest of the share is refunded. A lower bill refunds the
difference in proportion. A higher bill is absorbed up to a tolerance in basis points of the
asked amount (ONECART_OVERCHARGE_TOLERANCE_BPS, default 1%); beyond it, or when nothing at all
was accepted, the sub-order is cancelled on the marketplace and its share refunded
(commerce.placement does that). More than was asked (a larger quantity, a line never asked for)
is billed too: its billed amount, else the asked unit price, counts toward the bill, and an
unasked line with no price at all cannot be valued, so it cancels. An order billed in another
currency than the one asked cannot be compared and cancels as well. Amounts in the marketplace's
currency unless said otherwise; shares in the payment currency are rounded down, so refunds round
up, never the other way.

Shipping and tax: OneCart's prices are the items' prices, and the shopper has paid. Where the
marketplace reports the shipping and tax it added on top of the items (PlacedOrder
`shipping_minor`, `tax_minor`), the items' part of the bill (the total less both) is compared as
above, and shipping plus tax against the marketplace's allowance (ShippingTaxAllowance, default
none): within it OneCart pays them (the verdict names what it absorbed; the shopper is never
charged more after paying), beyond it the sub-order cancels like an overcharge. A bill with only
a total, or a breakdown larger than the total, is compared whole, as before.
"""

from __future__ import annotations

from dataclasses import dataclass

from adapters.base import NO_SHIPPING_OR_TAX, PlacedOrder, ShippingTaxAllowance
from commerce.order_models import OrderItem
from onecart.money import MoneyError, format_money

BPS = 10_000
DEFAULT_OVERCHARGE_TOLERANCE_BPS = 100


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a placement is worth to the shopper, compared with what was asked.

    `kept_charge_minor`: the part of the share the shopper pays (payment currency); the rest is
    refunded. `cancel`: the marketplace billed beyond the tolerance or the shipping-and-tax
    allowance, or accepted nothing. `absorbed_shipping_minor` / `absorbed_tax_minor`: what
    OneCart pays of the shipping and tax the marketplace added (None when it did not say).
    """

    accepted_amount_minor: int | None
    kept_charge_minor: int
    cancel: bool
    notes: tuple[str, ...]
    absorbed_shipping_minor: int | None = None
    absorbed_tax_minor: int | None = None
    # The units accepted of each asked item, in the order of the items compared (their whole
    # quantity when the marketplace does not list its lines); () when the answer could not be
    # compared at all. What was left out is given back to the stock (commerce.offer_stock).
    accepted_quantities: tuple[int, ...] = ()
    # The marketplace billed less than the accepted items cost (the share follows its bill).
    billed_less: bool = False


def verify_placement(
    items: list[OrderItem],
    charge_minor: int,
    currency: str,
    placed: PlacedOrder,
    *,
    overcharge_tolerance_bps: int,
    shipping_tax_allowance: ShippingTaxAllowance = NO_SHIPPING_OR_TAX,
) -> Verdict:
    """Compare the marketplace's answer with the sub-order's items (pure; see the module
    docstring for the policy). Amounts in the marketplace's currency unless said otherwise."""
    notes: list[str] = []
    if placed.currency is not None and placed.currency.upper() != currency.upper():
        # Amounts in another currency cannot be compared with ours (a JPY bill is not a 99%
        # discount on a USD order): the marketplace did not accept what was asked.
        return Verdict(
            None, 0, cancel=True, notes=(f"billed in {placed.currency}, not {currency}",)
        )
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
    # Billed amounts already attributed to asked items, by product (for the leftovers below).
    attributed: dict[str, int] = {}
    accepted_quantities: list[int] = []
    # Whether some asked units were not accepted: a lower bill is then for what was.
    short = False
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
                attributed[item.external_id] = attributed.get(item.external_id, 0) + billed_item
            if quantity < item.quantity:
                short = True
                notes.append(
                    f"accepted {quantity} of {item.quantity} × {item.title[:60]}"
                    if quantity
                    else f"left out {item.title[:60]}"
                )
        accepted_quantities.append(quantity)
        asked_accepted += item.unit_price_minor * quantity
        billed_lines += billed_item if billed_item is not None else item.unit_price_minor * quantity
        # The accepted part of the line's share, rounded down (the refund rounds up).
        kept_charge += item.charge_minor * quantity // item.quantity
    accepted = tuple(accepted_quantities)
    extra_billed, unpriced = _billed_beyond_the_asked(items, accepted_qty, billed_by_id, attributed)
    notes.extend(
        f"accepted {left} × {external_id} that was not asked for"
        for external_id, left in accepted_qty.items()
        if left > 0
    )
    if asked_accepted == 0:
        return Verdict(
            0,
            0,
            cancel=True,
            notes=(*notes, "accepted none of the items"),
            accepted_quantities=accepted,
        )
    if unpriced:
        return Verdict(
            None,
            0,
            cancel=True,
            notes=(*notes, "an unasked line has no price"),
            accepted_quantities=accepted,
        )
    billed = billed_lines + extra_billed
    shipping, tax = _added_on_top(placed)
    if placed.total_minor is not None:
        billed = placed.total_minor - shipping - tax
    billed_less = billed < asked_accepted
    if billed_less:
        notes.append(billed_less_note(billed, asked_accepted, currency, short=short))
        kept_charge = kept_charge * max(billed, 0) // asked_accepted
    elif billed > asked_accepted:
        over = billed - asked_accepted
        if over * BPS > asked_accepted * overcharge_tolerance_bps:
            notes.append(
                f"billed {_shown(billed, currency)}, more than the {_shown(asked_accepted, currency)} paid"
            )
            return Verdict(billed, 0, cancel=True, notes=tuple(notes), accepted_quantities=accepted)
        notes.append(f"billed {_shown(over, currency)} more than paid, absorbed")
    kept = min(kept_charge, charge_minor)
    if placed.shipping_minor is None and placed.tax_minor is None:
        return Verdict(
            billed,
            kept,
            cancel=False,
            notes=tuple(notes),
            accepted_quantities=accepted,
            billed_less=billed_less,
        )
    billed_in_all = billed + shipping + tax
    if shipping + tax:
        allowed = shipping_tax_allowance.for_items(asked_accepted)
        added = f"added shipping {_shown(shipping, currency)} and tax {_shown(tax, currency)}"
        if shipping + tax > allowed:
            notes.append(
                f"{added}, more than its {_shown(allowed, currency)} allowance for shipping and tax"
            )
            return Verdict(
                billed_in_all, 0, cancel=True, notes=tuple(notes), accepted_quantities=accepted
            )
        notes.append(f"{added}, paid by OneCart (allowance {_shown(allowed, currency)})")
    return Verdict(
        billed_in_all,
        kept,
        cancel=False,
        notes=tuple(notes),
        absorbed_shipping_minor=shipping,
        absorbed_tax_minor=tax,
        accepted_quantities=accepted,
        billed_less=billed_less,
    )


def _added_on_top(placed: PlacedOrder) -> tuple[int, int]:
    """(shipping, tax) the marketplace says it added on top of the items, each 0 when not said;
    (0, 0) when they exceed the total, a breakdown that cannot be right (the bill is then judged
    whole, as one without a breakdown is)."""
    shipping = max(placed.shipping_minor or 0, 0)
    tax = max(placed.tax_minor or 0, 0)
    if placed.total_minor is not None and shipping + tax > placed.total_minor:
        return 0, 0
    return shipping, tax


def billed_less_note(
    billed_minor: int, asked_minor: int, currency: str, *, short: bool = False
) -> str:
    """ "billed $71.98, not the $79.98 paid": short, since with KES or NGN amounts the sentence
    it starts is an e-mail's whole subject ("less than the" made it too long to keep where the
    difference went: tests/checkout/test_adjustment_subjects.py).

    `short`: the marketplace also left items out, so the note follows theirs ("left out …;")
    and `asked_minor` is what the items it accepted cost, not all that was paid for the part:
    "it billed KES3,914.10 for the rest, not KES4,349.00". As short: the refund's reason, which
    the order page shows, holds REFUND_REASON_LIMIT characters after the items' titles
    (tests/checkout/test_cut_short_and_billed_less.py)."""
    billed, asked = _shown(billed_minor, currency), _shown(asked_minor, currency)
    if short:
        return f"it billed {billed} for the rest, not {asked}"
    return f"billed {billed}, not the {asked} paid"


def _shown(amount_minor: int, currency: str) -> str:
    """An amount as people read it in a note ("$5.00")."""
    try:
        return format_money(amount_minor, currency)
    except MoneyError:
        return f"{amount_minor} {currency} minor units"


def _billed_beyond_the_asked(
    items: list[OrderItem],
    left_over: dict[str, int],
    billed_by_id: dict[str, int | None],
    attributed: dict[str, int],
) -> tuple[int, bool]:
    """What the accepted quantities nobody asked for cost: the rest of their product's billed
    lines, else the asked unit price; True as well when some cannot be valued at all."""
    unit_price = {item.external_id: item.unit_price_minor for item in items}
    extra = 0
    unpriced = False
    for external_id, left in left_over.items():
        if left <= 0:
            continue
        billed_total = billed_by_id.get(external_id)
        if billed_total is not None:
            extra += billed_total - attributed.get(external_id, 0)
        elif external_id in unit_price:
            extra += unit_price[external_id] * left
        else:
            unpriced = True
    return extra, unpriced
