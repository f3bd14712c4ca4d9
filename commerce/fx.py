"""Converting prices into the shopper's display currency with the pipeline's published rates.

The `fx_rates` table holds units of each currency per 1 USD (exact decimals). A conversion between
two non-USD currencies goes through USD as one exact decimal rate and is rounded once, half-even,
to the target's minor unit (onecart.money.convert_minor). Pages show the rates' date next to any
converted total, so a shopper knows how fresh the conversion is.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal, localcontext

import sqlalchemy as sa
from sqlalchemy.orm import Session

from commerce.models import FxRate
from onecart.money import convert_minor, currency_exponent, from_minor_units, is_iso_currency

USD = "USD"


class FxRateMissing(LookupError):
    """No published rate for a currency, so an amount in it cannot be converted."""

    def __init__(self, currency: str) -> None:
        super().__init__(f"no exchange rate for {currency}")
        self.currency = currency


@dataclass(frozen=True, slots=True)
class FxTable:
    """A snapshot of exchange rates (units of currency per 1 USD) and the date they are valid for.

    Immutable and Flask-free, so a web worker can cache one for a minute and share it.
    """

    per_usd: Mapping[str, Decimal] = field(default_factory=dict)
    as_of: date | None = None
    sources: tuple[str, ...] = ()

    def has(self, currency: str) -> bool:
        """True when amounts in `currency` can be converted."""
        return currency == USD or currency in self.per_usd

    def rate(self, from_currency: str, to_currency: str) -> Decimal:
        """Units of `to_currency` per 1 `from_currency`, exact (through USD)."""
        if from_currency == to_currency:
            return Decimal(1)
        return self._per_usd(to_currency) / self._per_usd(from_currency)

    def convert(self, minor: int, from_currency: str, to_currency: str) -> int:
        """Minor units of `from_currency` as minor units of `to_currency`, rounded once.

        Through USD: multiplying by the target rate before dividing by the source rate keeps the
        arithmetic exact until the single rounding step.
        """
        if from_currency == to_currency:
            return minor
        source = self._per_usd(from_currency)
        target = self._per_usd(to_currency)
        if source == 1:
            return convert_minor(minor, from_currency, to_currency, target)
        # amount × target is exact; the one division runs at 50 digits and is rounded once.
        with localcontext() as context:
            context.prec = 50
            amount = from_minor_units(minor, from_currency) * target / source
            scaled = amount.scaleb(currency_exponent(to_currency))
            return int(scaled.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))

    def convert_or_none(self, minor: int, from_currency: str, to_currency: str) -> int | None:
        """Like :meth:`convert`, but None when a rate is missing (pages show the original)."""
        try:
            return self.convert(minor, from_currency, to_currency)
        except FxRateMissing:
            return None

    def rates_for(self, currencies: Iterable[str], display_currency: str) -> dict[str, Decimal]:
        """The rate (display units per 1 unit) of each foreign currency, for "rates used" notes."""
        return {
            currency: self.rate(currency, display_currency)
            for currency in sorted(set(currencies))
            if currency != display_currency and self.has(currency) and self.has(display_currency)
        }

    def _per_usd(self, currency: str) -> Decimal:
        if currency == USD:
            return Decimal(1)
        try:
            return self.per_usd[currency]
        except KeyError:
            raise FxRateMissing(currency) from None


def load_fx_table(session: Session) -> FxTable:
    """The rates the pipeline published to the storefront DB (empty table: USD only).

    Rates that are not positive are skipped rather than trusted. The table's date is the oldest
    `as_of` among the rates, so the shown date never overstates how fresh a conversion is.
    """
    rows = session.execute(
        sa.select(FxRate.currency, FxRate.rate, FxRate.as_of, FxRate.source)
    ).all()
    per_usd: dict[str, Decimal] = {}
    dates: list[date] = []
    sources: set[str] = set()
    for currency, rate, as_of, source in rows:
        if not is_iso_currency(currency) or rate is None:
            continue
        exact = Decimal(rate)
        if exact <= 0:
            continue
        per_usd[currency] = exact
        if as_of is not None:
            dates.append(as_of)
        if source:
            sources.add(source)
    per_usd.pop(USD, None)
    return FxTable(
        per_usd=per_usd, as_of=min(dates) if dates else None, sources=tuple(sorted(sources))
    )


def supported_display_currencies(table: FxTable) -> list[str]:
    """USD plus every currency with a published rate, for the display-currency choice."""
    return sorted({USD, *table.per_usd})


def format_rate(rate: Decimal, significant_digits: int = 6) -> str:
    """A rate for people: up to six significant digits, no exponent, no trailing zeros
    ("0.92", "129.5", "0.000593548"). Display only; conversions use the exact rate."""
    # Decimal's "g" keeps the zeros rounding leaves ("0.307050"): normalize drops them.
    rounded = Decimal(format(rate, f".{significant_digits}g")).normalize()
    return format(rounded, "f")
