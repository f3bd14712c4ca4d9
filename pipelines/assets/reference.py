"""Reference data the catalog is read with: exchange rates."""

import dagster as dg

from pipelines.check_names import RATES_COVER_OFFERS
from pipelines.resources import FxRatesResource, WarehouseResource
from warehouse.derived import store_currencies, store_fx_rates

REFERENCE_GROUP = "reference"


@dg.asset(
    group_name=REFERENCE_GROUP,
    kinds={"python", "duckdb"},
    check_specs=[
        dg.AssetCheckSpec(
            RATES_COVER_OFFERS,
            asset="fx_rates",
            description=(
                "Every offer's currency has a USD rate. An offer without one is not in the "
                "search index (no USD price to sort by) and has no price or price_usd in the "
                "analysts' views; the metadata names the currencies and counts the offers per "
                "marketplace."
            ),
        )
    ],
)
def fx_rates(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, fx_source: FxRatesResource
) -> dg.MaterializeResult:
    """Exchange rates as units of each currency per 1 USD, with their publication date
    (table fx_rates). Read from ONECART_FX_RATES_URL (ECB eurofxref XML or Open Exchange Rates
    JSON) when set, else from the dated files in warehouse/fx/. Used to put every offer's price on
    one USD scale for sorting and filtering; never to charge anyone."""
    rates, warnings = fx_source.load()
    for warning in warnings:
        context.log.warning(warning)
    with warehouse.connect() as conn:
        stored = store_fx_rates(conn, rates)
        # Every accepted currency's minor unit, for the own-currency price of any offer.
        currencies = store_currencies(conn)
        # Offers whose currency no stored rate covers (the views read the newest rate of each).
        missing = conn.execute(
            "SELECT marketplace, currency, count(*) FROM products "
            "WHERE currency NOT IN (SELECT currency FROM fx_rates WHERE base = 'USD') "
            "GROUP BY ALL ORDER BY ALL"
        ).fetchall()
    without_rate: dict[str, int] = {}
    for marketplace, _currency, offers in missing:
        without_rate[marketplace] = without_rate.get(marketplace, 0) + int(offers)
    check = dg.AssetCheckResult(
        check_name=RATES_COVER_OFFERS,
        passed=not missing,
        metadata={
            "missing_rates": dg.MetadataValue.json(sorted({row[1] for row in missing})),
            "offers_without_rate": dg.MetadataValue.json(without_rate),
        },
    )
    return dg.MaterializeResult(
        check_results=[check],
        metadata={
            "dagster/row_count": stored,
            "currencies": len(rates.rates),
            "iso_currencies": currencies,
            "as_of": rates.as_of.isoformat(),
            "sources": dg.MetadataValue.json(sorted(set(rates.sources.values()))),
            "warnings": dg.MetadataValue.json(warnings),
        },
    )
