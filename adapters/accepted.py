"""Reading what a marketplace says it accepted (an order's lines, quantities, prices, total)
exactly, from the reply of a placement or a lookup.

An order reply is read after the marketplace may already hold the order, so nothing here
raises for an odd amount: an amount that cannot be read exactly becomes None ("the marketplace
did not say"), which the caller treats as unverifiable, never as a refusal. Floats are read
through their shortest repr; the binary noise of JavaScript/PHP arithmetic (269.96999999999997)
is rounded to the currency's minor unit only when it IS noise (a relative error below
FLOAT_NOISE); a real fraction of a minor unit (9.995 USD) is not rounded away.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from adapters.base import AcceptedLine
from onecart.money import (
    MoneyError,
    currency_exponent,
    is_iso_currency,
    parse_decimal,
    to_minor_units,
)

# Largest relative error still read as float noise (doubles carry ~1e-16; sums add a little).
FLOAT_NOISE = Decimal("1e-12")


def order_money(value: object, currency: str | None) -> int | None:
    """Minor units of a non-negative amount in an order reply, or None when it is absent or
    cannot be read exactly (see the module docstring)."""
    if value is None or isinstance(value, bool) or not currency or not is_iso_currency(currency):
        return None
    try:
        amount = parse_decimal(value)
    except MoneyError:
        return None
    if amount < 0:
        return None
    try:
        return to_minor_units(amount, currency)
    except MoneyError:
        if not isinstance(value, float):
            return None  # a decimal string with sub-unit digits means what it says
    step = Decimal(1).scaleb(-currency_exponent(currency))
    rounded = amount.quantize(step, rounding=ROUND_HALF_EVEN)
    if abs(amount - rounded) > max(abs(amount), Decimal(1)) * FLOAT_NOISE:
        return None
    return to_minor_units(rounded, currency)


def refund_money(value: object, currency: str | None) -> int | None:
    """Minor units of a refund's amount, which some formats write negative (WooCommerce's order
    `refunds[].total` is "-10.00"), read exactly as :func:`order_money` reads an amount; None
    when it is absent or cannot be read exactly."""
    if isinstance(value, str) and value.strip().startswith("-"):
        value = value.strip()[1:]
    elif isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
        value = -value
    return order_money(value, currency)


def line_quantity(value: object) -> int | None:
    """A line's quantity: a whole number ≥ 0 (JSON int or digit string), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    if isinstance(value, float) and value.is_integer() and value >= 0:
        return int(value)
    return None


def unit_from_total(line_total_minor: int | None, quantity: int) -> int | None:
    """The unit price of a line billed as a total, when the total divides exactly."""
    if line_total_minor is None or quantity <= 0 or line_total_minor % quantity:
        return None
    return line_total_minor // quantity


def accepted_lines(
    items: object, read_line: Callable[[Mapping[str, Any]], AcceptedLine | None]
) -> tuple[AcceptedLine, ...] | None:
    """The reply's lines read by `read_line`; None when the reply has no list of lines at all.
    A line that cannot be read is left out, so it shows up as missing (a partial placement to
    verify), never as accepted."""
    if not isinstance(items, list):
        return None
    lines = []
    for item in items:
        line = read_line(item) if isinstance(item, Mapping) else None
        if line is not None:
            lines.append(line)
    return tuple(lines)
