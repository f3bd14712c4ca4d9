"""Exchange rates: both publication formats, rebasing to USD, merging, and conversion."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal

import httpx
import pytest

from warehouse.fx_rates import (
    OFFLINE_RATES_DIR,
    FxFormatError,
    RateTable,
    fetch_rates,
    load_offline_rates,
    merge_rate_tables,
    parse_ecb_xml,
    parse_open_exchange_rates_json,
    parse_rates_document,
    usd_minor,
)

ECB_DAILY = b"""<?xml version="1.0" encoding="UTF-8"?>
<gesmes:Envelope xmlns:gesmes="http://www.gesmes.org/xml/2002-08-01"
    xmlns="http://www.ecb.int/vocabulary/2002-08-01/eurofxref">
  <gesmes:subject>Reference rates</gesmes:subject>
  <gesmes:Sender><gesmes:name>European Central Bank</gesmes:name></gesmes:Sender>
  <Cube>
    <Cube time='2026-11-20'>
      <Cube currency='USD' rate='1.25'/>
      <Cube currency='GBP' rate='0.80'/>
      <Cube currency='JPY' rate='150'/>
    </Cube>
    <Cube time='2026-11-19'>
      <Cube currency='USD' rate='2'/>
      <Cube currency='GBP' rate='1'/>
    </Cube>
  </Cube>
</gesmes:Envelope>"""

OXR_LATEST = json.dumps(
    {
        "disclaimer": "test",
        "license": "test",
        "timestamp": 1795536000,  # 2026-11-24T16:00:00Z
        "base": "USD",
        "rates": {"USD": 1, "EUR": 0.8, "NGN": 1452.3, "KES": 129.25, "BTC": 0.00001},
    }
)


def test_ecb_xml_is_rebased_to_usd_from_its_newest_day() -> None:
    table = parse_ecb_xml(ECB_DAILY, source="ecb-test")
    assert table.as_of == date(2026, 11, 20)
    assert table.rates["USD"] == Decimal("1")
    assert table.rates["EUR"] == Decimal("0.8")  # 1 / 1.25
    assert table.rates["GBP"] == Decimal("0.64")  # 0.80 / 1.25
    assert table.rates["JPY"] == Decimal("120")
    assert table.sources["GBP"] == "ecb-test"


def test_open_exchange_rates_json_is_read_exactly() -> None:
    table = parse_open_exchange_rates_json(OXR_LATEST, source="oxr-test")
    assert table.as_of == date(2026, 11, 24)
    assert table.rates["NGN"] == Decimal("1452.3")
    assert table.rates["KES"] == Decimal("129.25")
    assert "BTC" not in table.rates  # not an ISO-4217 currency


def test_open_exchange_rates_with_another_base_is_rebased() -> None:
    document = json.dumps(
        {"base": "EUR", "timestamp": 1795536000, "rates": {"USD": 1.25, "KES": 160}}
    )
    table = parse_open_exchange_rates_json(document)
    assert table.rates["EUR"] == Decimal("0.8")
    assert table.rates["KES"] == Decimal("128")


def test_either_format_is_recognized_by_its_content() -> None:
    assert parse_rates_document(ECB_DAILY, source="x").rates["JPY"] == Decimal("120")
    assert parse_rates_document(OXR_LATEST.encode(), source="x").rates["KES"] == Decimal("129.25")


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"not rates",
        b"<html><body>502 Bad Gateway</body></html>",
        b'{"base": "USD", "rates": {"EUR": 0.9}}',  # no timestamp
        b'{"base": "USD", "timestamp": 1795536000, "rates": {"EUR": -1}}',
        b'{"base": "GBP", "timestamp": 1795536000, "rates": {"EUR": 1.1}}',  # no USD to rebase
    ],
)
def test_documents_that_are_not_rates_are_refused(content: bytes) -> None:
    with pytest.raises(FxFormatError):
        parse_rates_document(content, source="bad")


def test_merging_keeps_the_newest_rate_and_the_first_source_on_a_tie() -> None:
    older = RateTable(
        as_of=date(2026, 11, 1),
        rates={"EUR": Decimal("0.9"), "KES": Decimal("130")},
        sources={"EUR": "old", "KES": "old"},
    )
    newer = RateTable(
        as_of=date(2026, 11, 2), rates={"EUR": Decimal("0.8")}, sources={"EUR": "new"}
    )
    tie = RateTable(as_of=date(2026, 11, 2), rates={"EUR": Decimal("0.7")}, sources={"EUR": "tie"})
    merged = merge_rate_tables([older, newer, tie])
    assert merged.rates == {"EUR": Decimal("0.8"), "KES": Decimal("130")}
    assert merged.sources == {"EUR": "new", "KES": "old"}
    assert merged.as_of_by_currency["KES"] == date(2026, 11, 1)


def test_bundled_rates_cover_every_marketplace_currency() -> None:
    names = sorted(path.name for path in OFFLINE_RATES_DIR.iterdir())
    assert any(name.endswith(".xml") for name in names) and any(
        name.endswith(".json") for name in names
    )
    table = load_offline_rates()
    assert {"USD", "EUR", "GBP", "NGN", "KES", "JPY", "ZAR"} <= set(table.rates)
    # The ECB's EUR and GBP (official reference) and the JSON's NGN and KES.
    assert table.sources["GBP"].endswith(".xml")
    assert table.sources["NGN"].endswith(".json")
    rows = table.rows()
    assert all(row["base"] == "USD" and row["rate"] > 0 for row in rows)
    assert {row["currency"]: row["minor_unit"] for row in rows}["JPY"] == 0


@pytest.mark.parametrize(
    ("minor", "currency", "expected"),
    [
        (1999, "USD", 1999),
        (1000, "EUR", 1250),  # 10.00 EUR at 0.8 per USD
        (145230, "NGN", 100),  # 1452.30 NGN
        (12925, "KES", 100),  # 129.25 KES
        (1, "EUR", 1),  # 0.0125 USD -> 1 cent
        (2, "EUR", 2),  # 0.025 -> 2 (half-even)
        (6, "EUR", 8),  # 0.075 -> 8 (half-even)
        (1200, "JPY", 1000),  # JPY has no minor unit: 1200 yen at 120 per USD = $10
    ],
)
def test_prices_convert_to_us_cents_exactly(minor: int, currency: str, expected: int) -> None:
    rates = RateTable(
        as_of=date(2026, 11, 24),
        rates={
            "USD": Decimal(1),
            "EUR": Decimal("0.8"),
            "NGN": Decimal("1452.3"),
            "KES": Decimal("129.25"),
            "JPY": Decimal("120"),
        },
    )
    assert usd_minor(minor, currency, rates) == expected


def test_a_currency_without_a_rate_converts_to_none() -> None:
    rates = RateTable(as_of=date(2026, 11, 24), rates={"USD": Decimal(1)})
    assert usd_minor(100, "GHS", rates) is None


def test_rates_are_fetched_over_http_in_either_format() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith(".xml"):
            return httpx.Response(200, content=ECB_DAILY)
        if request.url.path.endswith(".json"):
            return httpx.Response(200, content=OXR_LATEST.encode())
        return httpx.Response(503)

    transport = httpx.MockTransport(answer)
    assert fetch_rates("http://rates.test/eurofxref-daily.xml", transport=transport).rates[
        "GBP"
    ] == Decimal("0.64")
    assert fetch_rates("http://rates.test/latest.json", transport=transport).rates[
        "NGN"
    ] == Decimal("1452.3")
    with pytest.raises(httpx.HTTPStatusError):
        fetch_rates("http://rates.test/down", transport=transport)
