"""What a marketplace accepted, checked against what was asked (commerce.acceptance): pure
logic, no services. Amounts are minor units of the sub-order's currency."""

from __future__ import annotations

from adapters.base import AcceptedLine, OrderStatus, PlacedOrder, ShippingTaxAllowance
from commerce.acceptance import verify_placement
from commerce.order_models import OrderItem

TOLERANCE_BPS = 100


def _item(external_id: str, quantity: int, unit_price_minor: int) -> OrderItem:
    return OrderItem(
        external_id=external_id,
        title=f"product {external_id}",
        quantity=quantity,
        unit_price_minor=unit_price_minor,
        currency="USD",
        charge_minor=unit_price_minor * quantity,
    )


def _placed(
    *lines: AcceptedLine, total: int | None = None, currency: str | None = None
) -> PlacedOrder:
    return PlacedOrder("m-1", OrderStatus.PROCESSING, total, currency, tuple(lines))


def test_exactly_what_was_asked_is_kept_in_full() -> None:
    items = [_item("1", 2, 1000)]
    verdict = verify_placement(
        items,
        2000,
        "USD",
        _placed(AcceptedLine("1", 2, 1000)),
        overcharge_tolerance_bps=TOLERANCE_BPS,
    )
    assert (verdict.cancel, verdict.kept_charge_minor, verdict.notes) == (False, 2000, ())


def test_more_of_an_item_than_asked_is_an_overcharge_not_a_success() -> None:
    # Asked 1 × 1000; the marketplace took 3 and bills the line 3000 (no order total).
    verdict = verify_placement(
        [_item("1", 1, 1000)],
        1000,
        "USD",
        _placed(AcceptedLine("1", 3, line_total_minor=3000)),
        overcharge_tolerance_bps=TOLERANCE_BPS,
    )
    assert verdict.cancel
    assert any("not asked" in note for note in verdict.notes)


def test_more_of_an_item_than_asked_without_prices_is_valued_at_the_asked_price() -> None:
    verdict = verify_placement(
        [_item("1", 1, 1000)],
        1000,
        "USD",
        _placed(AcceptedLine("1", 2)),
        overcharge_tolerance_bps=TOLERANCE_BPS,
    )
    assert verdict.cancel and verdict.accepted_amount_minor == 2000


def test_a_line_that_was_never_asked_for_and_has_no_price_cannot_be_accepted() -> None:
    verdict = verify_placement(
        [_item("1", 1, 1000)],
        1000,
        "USD",
        _placed(AcceptedLine("1", 1), AcceptedLine("99", 1)),
        overcharge_tolerance_bps=TOLERANCE_BPS,
    )
    assert verdict.cancel
    assert any("99" in note for note in verdict.notes)


def test_a_free_extra_line_is_noted_and_kept() -> None:
    verdict = verify_placement(
        [_item("1", 1, 1000)],
        1000,
        "USD",
        _placed(AcceptedLine("1", 1, 1000), AcceptedLine("99", 1, 0)),
        overcharge_tolerance_bps=TOLERANCE_BPS,
    )
    assert (verdict.cancel, verdict.kept_charge_minor) == (False, 1000)
    assert any("99" in note for note in verdict.notes)


def test_an_order_billed_in_another_currency_is_not_compared_as_if_it_were_ours() -> None:
    # Asked 1000 USD cents; the marketplace bills 1 JPY per line and 1 JPY in total: not a
    # 99.9% discount to refund, a currency the shopper never agreed to.
    verdict = verify_placement(
        [_item("1", 1, 1000)],
        1000,
        "USD",
        _placed(AcceptedLine("1", 1, 1), total=1, currency="JPY"),
        overcharge_tolerance_bps=TOLERANCE_BPS,
    )
    assert verdict.cancel
    assert any("JPY" in note for note in verdict.notes)


def test_short_lines_keep_the_accepted_part_rounded_down() -> None:
    verdict = verify_placement(
        [_item("1", 3, 333)],
        999,
        "USD",
        _placed(AcceptedLine("1", 2, 333)),
        overcharge_tolerance_bps=TOLERANCE_BPS,
    )
    assert (verdict.cancel, verdict.kept_charge_minor) == (False, 666)


def test_a_lower_bill_keeps_its_share_in_proportion_and_says_what_was_billed() -> None:
    """The note is what the shopper reads (the order page and the notification say
    "ShopWave billed $90.00, not the $100.00 paid"): amounts, not minor units."""
    verdict = verify_placement(
        [_item("1", 2, 5000)],
        10000,
        "USD",
        _placed(AcceptedLine("1", 2), total=9000),
        overcharge_tolerance_bps=TOLERANCE_BPS,
    )
    assert (verdict.cancel, verdict.kept_charge_minor, verdict.accepted_amount_minor) == (
        False,
        9000,
        9000,
    )
    assert verdict.notes == ("billed $90.00, not the $100.00 paid",)


def _billed(
    total: int, *, shipping: int | None, tax: int | None, lines: tuple[AcceptedLine, ...]
) -> PlacedOrder:
    return PlacedOrder(
        "m-1",
        OrderStatus.PROCESSING,
        total,
        "USD",
        lines,
        shipping_minor=shipping,
        tax_minor=tax,
    )


def test_shipping_and_tax_beyond_the_allowance_cancel_with_a_note_naming_them() -> None:
    # The items are billed as asked; the store adds 5.00 shipping and 1.60 tax. Without an
    # allowance (the default) that is an overcharge of the shopper's paid order.
    verdict = verify_placement(
        [_item("1", 2, 1000)],
        2000,
        "USD",
        _billed(2660, shipping=500, tax=160, lines=(AcceptedLine("1", 2, 1000),)),
        overcharge_tolerance_bps=TOLERANCE_BPS,
    )
    assert verdict.cancel
    assert verdict.kept_charge_minor == 0
    assert any(
        "shipping $5.00" in note and "tax $1.60" in note and "allowance" in note
        for note in verdict.notes
    )


def test_shipping_and_tax_within_the_allowance_are_absorbed_and_the_shopper_keeps_paying_the_items() -> (
    None
):
    verdict = verify_placement(
        [_item("1", 2, 1000)],
        2000,
        "USD",
        _billed(2660, shipping=500, tax=160, lines=(AcceptedLine("1", 2, 1000),)),
        overcharge_tolerance_bps=TOLERANCE_BPS,
        shipping_tax_allowance=ShippingTaxAllowance(fixed_minor=500, bps=1000),
    )
    # Allowance 5.00 + 10% of 20.00 = 7.00 ≥ 6.60 added.
    assert not verdict.cancel
    assert verdict.kept_charge_minor == 2000
    assert (verdict.absorbed_shipping_minor, verdict.absorbed_tax_minor) == (500, 160)
    assert verdict.accepted_amount_minor == 2660


def test_items_are_still_checked_with_the_tolerance_when_shipping_is_reported_apart() -> None:
    # Items billed 10% above what was asked, shipping within its allowance: the items decide.
    verdict = verify_placement(
        [_item("1", 1, 1000)],
        1000,
        "USD",
        _billed(1600, shipping=500, tax=0, lines=(AcceptedLine("1", 1, 1100),)),
        overcharge_tolerance_bps=TOLERANCE_BPS,
        shipping_tax_allowance=ShippingTaxAllowance(fixed_minor=1000),
    )
    assert verdict.cancel
    assert any("more than the $10.00 paid" in note for note in verdict.notes)


def test_a_bill_with_only_a_total_is_judged_whole_as_before() -> None:
    # No breakdown: the 6.60 above the items is an overcharge whatever the allowance.
    verdict = verify_placement(
        [_item("1", 2, 1000)],
        2000,
        "USD",
        _billed(2660, shipping=None, tax=None, lines=(AcceptedLine("1", 2, 1000),)),
        overcharge_tolerance_bps=TOLERANCE_BPS,
        shipping_tax_allowance=ShippingTaxAllowance(fixed_minor=10_000),
    )
    assert verdict.cancel
    assert verdict.absorbed_shipping_minor is None


def test_a_breakdown_larger_than_the_total_is_not_believed() -> None:
    verdict = verify_placement(
        [_item("1", 1, 1000)],
        1000,
        "USD",
        _billed(1000, shipping=5000, tax=0, lines=(AcceptedLine("1", 1, 1000),)),
        overcharge_tolerance_bps=TOLERANCE_BPS,
    )
    assert (verdict.cancel, verdict.kept_charge_minor) == (False, 1000)


def test_the_verdict_names_the_units_accepted_of_each_item_for_the_stock_given_back() -> None:
    # One line whole, one cut short, one left out; an answer without lines accepted everything.
    items = [_item("1", 2, 1000), _item("2", 3, 1000), _item("3", 1, 500)]
    partial = verify_placement(
        items,
        5500,
        "USD",
        _placed(AcceptedLine("1", 2, 1000), AcceptedLine("2", 2, 1000)),
        overcharge_tolerance_bps=TOLERANCE_BPS,
    )
    assert partial.accepted_quantities == (2, 2, 0) and not partial.cancel
    whole = verify_placement(
        items,
        5500,
        "USD",
        PlacedOrder("m-1", OrderStatus.PROCESSING, 5500, "USD", None),
        overcharge_tolerance_bps=TOLERANCE_BPS,
    )
    assert whole.accepted_quantities == (2, 3, 1)
    nothing = verify_placement(
        items, 5500, "USD", _placed(), overcharge_tolerance_bps=TOLERANCE_BPS
    )
    assert nothing.cancel and nothing.accepted_quantities == (0, 0, 0)


def test_a_line_reads_as_the_units_accepted_of_those_ordered_at_their_price() -> None:
    """What the order pages show of a line (OrderItem.quantity_label, accepted_total_minor),
    in the notification's words: "1 of 3" when part was accepted, the quantity otherwise, and a
    line accepted not at all is left out ("0 of 2" read as a line still ordered)."""
    shown = []
    for quantity, accepted in ((3, None), (3, 3), (3, 1), (2, 0)):
        item = _item("1", quantity, 1000)
        item.accepted_quantity = accepted
        shown.append((item.quantity_label, item.accepted_total_minor, item.left_out))
    assert shown == [
        ("3", 3000, False),
        ("3", 3000, False),
        ("1 of 3", 1000, False),
        ("2", 0, True),
    ]
