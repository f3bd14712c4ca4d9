"""Exchange rates: reading the two common publication formats and converting prices to USD.

Two formats are read, both as published by their owners:

* the ECB's daily euro foreign exchange reference rates (`eurofxref-daily.xml`): EUR-based,
  about 30 currencies, without most African currencies;
* the Open Exchange Rates JSON response (`{"base": "USD", "timestamp": …, "rates": {…}}`),
  which covers NGN, KES and the other currencies our marketplaces use.

Everything is rebased to USD ("units of currency per 1 USD") with exact decimals. Offline, the
dated files checked into `warehouse/fx/` are merged (the newest date wins per currency; the ECB
wins a tie, being the official reference). `ONECART_FX_RATES_URL` may point at either format.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation, localcontext
from pathlib import Path

import httpx

from onecart.money import currency_exponent, from_minor_units, is_iso_currency

BASE_CURRENCY = "USD"
OFFLINE_RATES_DIR = Path(__file__).resolve().parent / "fx"
# DECIMAL(18, 8) in the warehouse.
RATE_QUANTUM = Decimal("0.00000001")
FETCH_TIMEOUT_S = 10.0

_ECB_NAMESPACE = "{http://www.ecb.int/vocabulary/2002-08-01/eurofxref}"


class FxFormatError(ValueError):
    """A rates document that is neither a valid ECB XML nor an Open Exchange Rates JSON file."""


@dataclass(frozen=True, slots=True)
class RateTable:
    """Units of each currency per 1 USD, with the date and source of each rate."""

    as_of: date
    rates: dict[str, Decimal]
    sources: dict[str, str] = field(default_factory=dict)
    as_of_by_currency: dict[str, date] = field(default_factory=dict)
    base: str = BASE_CURRENCY

    def rate(self, currency: str) -> Decimal | None:
        """Units of `currency` per 1 USD, or None when no rate is known."""
        return self.rates.get(currency)

    def rows(self) -> list[dict[str, object]]:
        """One dict per currency, shaped like the warehouse's fx_rates table."""
        return [
            {
                "base": self.base,
                "currency": currency,
                "rate": rate,
                "as_of": self.as_of_by_currency.get(currency, self.as_of),
                "source": self.sources.get(currency, ""),
                "minor_unit": currency_exponent(currency),
            }
            for currency, rate in sorted(self.rates.items())
        ]


def _quantize_rate(value: Decimal) -> Decimal:
    return value.quantize(RATE_QUANTUM, rounding=ROUND_HALF_EVEN)


def _positive_decimal(value: object, *, what: str) -> Decimal:
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value))
    except (InvalidOperation, ValueError) as exc:
        raise FxFormatError(f"{what}: not a number: {value!r}") from exc
    if not number.is_finite() or number <= 0:
        raise FxFormatError(f"{what}: not a positive rate: {value!r}")
    return number


def rebase_to_usd(base: str, rates: Mapping[str, Decimal]) -> dict[str, Decimal]:
    """Rates quoted per 1 `base` turned into rates per 1 USD (the base itself included)."""
    quoted = {**rates, base: Decimal(1)}
    if BASE_CURRENCY not in quoted:
        raise FxFormatError(f"rates based on {base} have no USD rate to rebase with")
    usd = quoted[BASE_CURRENCY]
    with localcontext() as context:
        context.prec = 34
        return {
            currency: _quantize_rate(rate / usd)
            for currency, rate in quoted.items()
            if is_iso_currency(currency)
        }


def parse_ecb_xml(content: bytes | str, *, source: str = "ecb") -> RateTable:
    """Parse an ECB eurofxref document (daily, or the 90-day/historic file: newest day wins)."""
    try:
        root = ElementTree.fromstring(content)
    except ElementTree.ParseError as exc:
        raise FxFormatError(f"{source}: not XML: {exc}") from exc
    days: dict[date, dict[str, Decimal]] = {}
    for cube in root.iter(f"{_ECB_NAMESPACE}Cube"):
        when = cube.get("time")
        if when is None:
            continue
        try:
            day = date.fromisoformat(when)
        except ValueError as exc:
            raise FxFormatError(f"{source}: bad date {when!r}") from exc
        rates: dict[str, Decimal] = {}
        for entry in cube.findall(f"{_ECB_NAMESPACE}Cube"):
            currency, rate = entry.get("currency"), entry.get("rate")
            if currency is None or rate is None:
                raise FxFormatError(f"{source}: a rate on {when} lacks currency or rate")
            rates[currency.upper()] = _positive_decimal(rate, what=f"{source} {currency}")
        days[day] = rates
    if not days:
        raise FxFormatError(f"{source}: no <Cube time=…> with rates (not an ECB eurofxref file)")
    as_of = max(days)
    usd_rates = rebase_to_usd("EUR", days[as_of])
    return RateTable(
        as_of=as_of,
        rates=usd_rates,
        sources=dict.fromkeys(usd_rates, source),
        as_of_by_currency=dict.fromkeys(usd_rates, as_of),
    )


def parse_open_exchange_rates_json(content: bytes | str, *, source: str = "oxr") -> RateTable:
    """Parse an Open Exchange Rates style `{base, timestamp, rates}` document exactly."""
    try:
        document = json.loads(content, parse_float=Decimal, parse_int=Decimal)
    except (ValueError, UnicodeDecodeError) as exc:
        raise FxFormatError(f"{source}: not JSON: {exc}") from exc
    if not isinstance(document, dict) or not isinstance(document.get("rates"), dict):
        raise FxFormatError(f"{source}: expected an object with 'base', 'timestamp' and 'rates'")
    base = str(document.get("base", BASE_CURRENCY)).upper()
    timestamp = document.get("timestamp")
    if not isinstance(timestamp, Decimal) or timestamp != timestamp.to_integral_value():
        raise FxFormatError(f"{source}: 'timestamp' must be unix seconds, got {timestamp!r}")
    as_of = datetime.fromtimestamp(int(timestamp), tz=UTC).date()
    rates = {
        str(currency).upper(): _positive_decimal(rate, what=f"{source} {currency}")
        for currency, rate in document["rates"].items()
    }
    usd_rates = rebase_to_usd(base, rates)
    return RateTable(
        as_of=as_of,
        rates=usd_rates,
        sources=dict.fromkeys(usd_rates, source),
        as_of_by_currency=dict.fromkeys(usd_rates, as_of),
    )


def parse_rates_document(content: bytes | str, *, source: str) -> RateTable:
    """Parse either format, recognized by its first character (`<` XML, `{` JSON)."""
    text = content.decode("utf-8-sig") if isinstance(content, bytes) else content
    head = text.lstrip()[:1]
    if head == "<":
        return parse_ecb_xml(text.encode("utf-8"), source=source)
    if head == "{":
        return parse_open_exchange_rates_json(text, source=source)
    raise FxFormatError(f"{source}: neither ECB XML nor Open Exchange Rates JSON")


def merge_rate_tables(tables: Iterable[RateTable]) -> RateTable:
    """One table from several: per currency the newest rate; on a tie the earlier table wins."""
    rates: dict[str, Decimal] = {}
    sources: dict[str, str] = {}
    dates: dict[str, date] = {}
    for table in tables:
        for currency, rate in table.rates.items():
            when = table.as_of_by_currency.get(currency, table.as_of)
            if currency not in dates or when > dates[currency]:
                rates[currency], dates[currency] = rate, when
                sources[currency] = table.sources.get(currency, "")
    if not rates:
        raise FxFormatError("no exchange rates to merge")
    return RateTable(
        as_of=max(dates.values()), rates=rates, sources=sources, as_of_by_currency=dates
    )


def load_offline_rates(directory: Path = OFFLINE_RATES_DIR) -> RateTable:
    """The rates files checked into the repository, merged (ECB XML files first)."""
    files = sorted(directory.glob("*.xml")) + sorted(directory.glob("*.json"))
    if not files:
        raise FxFormatError(f"no rates files (*.xml, *.json) in {directory}")
    return merge_rate_tables(
        parse_rates_document(path.read_bytes(), source=f"file:{path.name}") for path in files
    )


def fetch_rates(url: str, *, transport: httpx.BaseTransport | None = None) -> RateTable:
    """Download and parse a rates document in either format (HTTP errors raise httpx errors)."""
    with httpx.Client(
        timeout=FETCH_TIMEOUT_S, transport=transport, follow_redirects=True
    ) as client:
        response = client.get(url)
        response.raise_for_status()
    return parse_rates_document(response.content, source=f"url:{url}")


def usd_minor(price_minor: int, currency: str, rates: RateTable) -> int | None:
    """A price in integer US cents, rounded half-even once; None when the rate is unknown.

    Used to sort and filter offers of different currencies on one scale, never to charge.
    """
    if currency == BASE_CURRENCY:
        return price_minor
    rate = rates.rate(currency)
    if rate is None:
        return None
    with localcontext() as context:
        context.prec = 34
        cents = (from_minor_units(price_minor, currency) / rate).scaleb(
            currency_exponent(BASE_CURRENCY)
        )
        return int(cents.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def rate_table_from_rows(rows: Iterable[Mapping[str, object]]) -> RateTable:
    """A RateTable from fx_rates rows (newest per currency), for readers of the warehouse."""
    tables = []
    for row in rows:
        currency = str(row["currency"])
        when = row["as_of"]
        if not isinstance(when, date):
            raise FxFormatError(f"fx_rates row for {currency} has no as_of date")
        rate = _positive_decimal(row["rate"], what=f"fx_rates {currency}")
        tables.append(
            RateTable(
                as_of=when,
                rates={currency: rate},
                sources={currency: str(row.get("source", ""))},
                as_of_by_currency={currency: when},
            )
        )
    return merge_rate_tables(tables)
