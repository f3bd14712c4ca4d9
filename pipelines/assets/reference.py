"""Reference data the catalog is read with: exchange rates."""

import dagster as dg

from pipelines.resources import FxRatesResource, WarehouseResource
from warehouse.derived import store_fx_rates

REFERENCE_GROUP = "reference"


@dg.asset(group_name=REFERENCE_GROUP, kinds={"python", "duckdb"})
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
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": stored,
            "currencies": len(rates.rates),
            "as_of": rates.as_of.isoformat(),
            "sources": dg.MetadataValue.json(sorted(set(rates.sources.values()))),
            "warnings": dg.MetadataValue.json(warnings),
        }
    )
