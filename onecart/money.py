"""Exact money: integer minor units plus an ISO-4217 currency code. Never floats.

`Decimal` appears only at the edges: parsing a marketplace's price and rendering one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from functools import lru_cache

from babel.numbers import format_currency, get_currency_precision, list_currencies


class MoneyError(ValueError):
    """A price or currency that cannot be represented exactly."""


@lru_cache(maxsize=1)
def known_currencies() -> frozenset[str]:
    """Every currency code Babel's CLDR data knows: the codes is_iso_currency accepts."""
    return frozenset(list_currencies())


def is_iso_currency(code: object) -> bool:
    """True for a three-letter ISO-4217 code that Babel's CLDR data knows."""
    return isinstance(code, str) and len(code) == 3 and code in known_currencies()


def currency_exponent(currency: str) -> int:
    """Decimal places of the currency's minor unit (JPY 0, USD 2, KWD 3)."""
    if not is_iso_currency(currency):
        raise MoneyError(f"unknown currency {currency!r}")
    return _known_exponent(currency)


# Babel's lookup costs more than the arithmetic around it (a conversion asks twice, a listing
# converts a price per card); CLDR's data does not change while a process runs, and only the
# few hundred ISO codes that passed is_iso_currency are remembered.
@lru_cache(maxsize=512)
def _known_exponent(currency: str) -> int:
    return get_currency_precision(currency)


def to_minor_units(amount: Decimal, currency: str) -> int:
    """Convert an exact decimal amount into integer minor units of `currency`.

    Amounts with more precision than the currency has are rejected rather than rounded,
    so a marketplace sending 9.999 USD is noticed instead of silently changed.
    """
    exponent = currency_exponent(currency)
    scaled = amount.scaleb(exponent)
    if scaled != scaled.to_integral_value():
        raise MoneyError(f"{amount} has more than {exponent} decimals for {currency}")
    return int(scaled)


def from_minor_units(minor: int, currency: str) -> Decimal:
    """The exact decimal amount of `minor` units (for rendering only)."""
    return Decimal(minor).scaleb(-currency_exponent(currency))


def format_money(minor: int, currency: str) -> str:
    """An amount as shoppers read it ("$1,234.50", "€12.34", "KES1,500.00"), exact: the
    one formatter behind the site, the notifications, the e-mails and the order pages."""
    return format_currency(from_minor_units(minor, currency), currency, locale="en_US")


_DECIMAL_TEXT = re.compile(r"^\s*[+-]?(\d+(\.\d*)?|\.\d+)\s*$")


def parse_decimal(value: object) -> Decimal:
    """Parse a price given as a JSON number, a decimal string or a Decimal, exactly.

    JSON floats are read through their shortest repr (`9.99` stays 9.99), never through binary
    arithmetic. Booleans, NaN, infinities, exponents and empty strings are rejected.
    """
    if isinstance(value, bool) or value is None:
        raise MoneyError(f"not a price: {value!r}")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, float):
        result = Decimal(repr(value))
    elif isinstance(value, str):
        if not _DECIMAL_TEXT.match(value):
            raise MoneyError(f"not a decimal price: {value!r}")
        try:
            result = Decimal(value.strip())
        except InvalidOperation as exc:  # pragma: no cover - regex already guards
            raise MoneyError(f"not a decimal price: {value!r}") from exc
    else:
        raise MoneyError(f"not a price: {value!r}")
    if not result.is_finite():
        raise MoneyError(f"not a finite price: {value!r}")
    return result


def parse_minor_with_scale(value: object, scale: object) -> Decimal:
    """Decode WooCommerce-style minor units with an explicit scale: ("1105", 2) -> 11.05."""
    minor_text = str(value).strip() if value is not None else ""
    if not re.fullmatch(r"[+-]?\d+", minor_text):
        raise MoneyError(f"not an integer minor-unit price: {value!r}")
    try:
        exponent = int(str(scale))
    except ValueError as exc:
        raise MoneyError(f"not a minor-unit scale: {scale!r}") from exc
    if not 0 <= exponent <= 4:
        raise MoneyError(f"implausible minor-unit scale: {scale!r}")
    return Decimal(int(minor_text)).scaleb(-exponent)


_AMOUNT_WITH_CODE = re.compile(r"^\s*([+-]?\d+(?:\.\d+)?)\s+([A-Za-z]{3})\s*$")


def parse_amount_with_currency(text: object) -> tuple[Decimal, str]:
    """Parse Google-feed style "15.00 USD" into (Decimal("15.00"), "USD")."""
    if not isinstance(text, str):
        raise MoneyError(f"not an 'amount CUR' price: {text!r}")
    match = _AMOUNT_WITH_CODE.match(text)
    if not match:
        raise MoneyError(f"not an 'amount CUR' price: {text!r}")
    return Decimal(match.group(1)), match.group(2).upper()


@dataclass(frozen=True, slots=True)
class Money:
    """An exact amount: integer minor units of an ISO-4217 currency."""

    minor: int
    currency: str

    def __post_init__(self) -> None:
        if not isinstance(self.minor, int) or isinstance(self.minor, bool):
            raise MoneyError(f"minor units must be an int, got {self.minor!r}")
        currency_exponent(self.currency)

    @classmethod
    def parse(cls, value: object, currency: str) -> Money:
        return cls(to_minor_units(parse_decimal(value), currency), currency)

    @property
    def amount(self) -> Decimal:
        return from_minor_units(self.minor, self.currency)

    def __add__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(self.minor + other.minor, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(self.minor - other.minor, self.currency)

    def __mul__(self, quantity: int) -> Money:
        if not isinstance(quantity, int):
            raise MoneyError("money multiplies by integer quantities only")
        return Money(self.minor * quantity, self.currency)

    def _same_currency(self, other: Money) -> None:
        if self.currency != other.currency:
            raise MoneyError(f"cannot combine {self.currency} and {other.currency}")

    def __str__(self) -> str:
        return f"{self.amount} {self.currency}"


def convert_minor(minor: int, from_currency: str, to_currency: str, rate: Decimal) -> int:
    """Convert minor units with an exact decimal rate (units of `to` per unit of `from`).

    Rounds half-even once, at the end, to the target currency's minor unit.
    """
    if from_currency == to_currency:
        return minor
    amount = from_minor_units(minor, from_currency) * rate
    target = amount.scaleb(currency_exponent(to_currency))
    return int(target.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))
