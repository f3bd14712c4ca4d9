"""Exact money: integer minor units with the currency's ISO-4217 exponent, never floats."""

from __future__ import annotations

from decimal import Decimal

import pytest

from onecart.money import (
    Money,
    MoneyError,
    convert_minor,
    currency_exponent,
    format_money,
    parse_amount_with_currency,
    parse_decimal,
    parse_minor_with_scale,
    to_minor_units,
)


@pytest.mark.parametrize(
    ("currency", "exponent"), [("USD", 2), ("JPY", 0), ("KWD", 3), ("NGN", 2), ("KES", 2)]
)
def test_currency_exponents_follow_iso_4217(currency: str, exponent: int) -> None:
    assert currency_exponent(currency) == exponent


def test_jpy_has_no_minor_units() -> None:
    assert to_minor_units(Decimal("1500"), "JPY") == 1500
    with pytest.raises(MoneyError):
        to_minor_units(Decimal("1500.5"), "JPY")


def test_kwd_keeps_three_decimals() -> None:
    assert to_minor_units(Decimal("1.234"), "KWD") == 1234


def test_json_float_is_read_through_its_shortest_repr() -> None:
    # 0.1 + 0.2 style binary noise must never reach the ledger.
    assert to_minor_units(parse_decimal(9.99), "USD") == 999
    assert to_minor_units(parse_decimal(109.95), "USD") == 10995
    assert to_minor_units(parse_decimal(0.29), "USD") == 29


@pytest.mark.parametrize("bad", ["", "abc", "1e3", "NaN", "inf", None, True, "1.2.3", [1]])
def test_unparseable_prices_are_rejected(bad: object) -> None:
    with pytest.raises(MoneyError):
        parse_decimal(bad)


def test_more_decimals_than_the_currency_has_is_an_error_not_a_rounding() -> None:
    with pytest.raises(MoneyError):
        to_minor_units(parse_decimal("9.999"), "USD")


def test_minor_units_with_scale() -> None:
    assert parse_minor_with_scale("1105", 2) == Decimal("11.05")
    assert parse_minor_with_scale("1500", 0) == Decimal("1500")
    assert parse_minor_with_scale("1234", 3) == Decimal("1.234")
    with pytest.raises(MoneyError):
        parse_minor_with_scale("11.05", 2)


def test_amount_with_currency_text() -> None:
    assert parse_amount_with_currency("15.00 USD") == (Decimal("15.00"), "USD")
    assert parse_amount_with_currency(" 1200 ngn ") == (Decimal("1200"), "NGN")
    with pytest.raises(MoneyError):
        parse_amount_with_currency("USD 15.00")


def test_unknown_currency_is_refused() -> None:
    with pytest.raises(MoneyError):
        Money(100, "XYZ")


def test_money_arithmetic_stays_in_one_currency() -> None:
    assert Money(250, "USD") * 3 + Money(50, "USD") == Money(800, "USD")
    with pytest.raises(MoneyError):
        Money(1, "USD") + Money(1, "EUR")
    with pytest.raises(MoneyError):
        Money(1.5, "USD")  # type: ignore[arg-type]


def test_conversion_rounds_half_even_once_at_the_end() -> None:
    # 10.00 USD at 1532.125 NGN/USD = 15321.25 NGN exactly.
    assert convert_minor(1000, "USD", "NGN", Decimal("1532.125")) == 1532125
    # 0.05 USD * 0.9 = 0.045 EUR -> half-even to 0.04 EUR.
    assert convert_minor(5, "USD", "EUR", Decimal("0.9")) == 4
    assert convert_minor(1234, "USD", "USD", Decimal("1")) == 1234
    assert convert_minor(100, "USD", "JPY", Decimal("151.37")) == 151


def test_amounts_read_as_shoppers_read_them() -> None:
    assert format_money(6199, "USD") == "$61.99"
    assert format_money(123450, "EUR") == "€1,234.50"
    assert format_money(150000, "KES") == "KES1,500.00"  # CLDR's en_US pattern
    assert format_money(500, "JPY") == "¥500"
