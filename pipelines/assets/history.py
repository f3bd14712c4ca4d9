"""Price history: what each offer cost, and when it changed."""

import dagster as dg

from pipelines.resources import WarehouseResource
from warehouse.derived import append_price_changes

HISTORY_GROUP = "history"


class HistoryRunConfig(dg.Config):
    """`full_refresh`: compare every offer with its latest row, not only the updated ones."""

    full_refresh: bool = False


@dg.asset(deps=["normalized_products"], group_name=HISTORY_GROUP, kinds={"duckdb"})
def price_history(config: HistoryRunConfig, warehouse: WarehouseResource) -> dg.MaterializeResult:
    """An append-only row per offer whenever its price, currency or availability differs from
    its latest row, first sighting included (table price_history). Feeds the product page's
    price chart, "price dropped" badges and the price_changes_7d view."""
    with warehouse.connect() as conn:
        appended = append_price_changes(conn, full=config.full_refresh)
        (total,) = conn.execute("SELECT count(*) FROM price_history").fetchone() or (0,)
    return dg.MaterializeResult(metadata={"appended": appended, "dagster/row_count": int(total)})
