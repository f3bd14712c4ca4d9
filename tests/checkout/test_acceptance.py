"""What a marketplace accepted, checked against what was asked (commerce.acceptance): pure
logic, no services. Amounts are minor units of the sub-order's currency."""

from __future__ import annotations

from adapters.base import AcceptedLine, OrderStatus, PlacedOrder
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
