"""Cross-marketplace matching: which offers are the same product."""

import dagster as dg

from pipelines.resources import WarehouseResource
from warehouse.derived import (
    product_group_stats,
    read_offers_for_matching,
    replace_product_groups,
)
from warehouse.matching import assign_groups

MATCHING_GROUP = "matching"


@dg.asset(deps=["normalized_products"], group_name=MATCHING_GROUP, kinds={"python", "duckdb"})
def product_groups(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    """The product group ("product relation token") of every offer, with how it was matched
    (table product_groups): same valid GTIN (1.00), same brand + model number (0.90), a
    conservative title match (at most 0.75), or a group of one. Group ids are stable across runs:
    a hash of the matching key. The rules live in warehouse/matching.py."""
    with warehouse.connect() as conn:
        offers = read_offers_for_matching(conn)
    assignments = assign_groups(offers)
    with warehouse.connect() as conn:
        rows = replace_product_groups(conn, assignments)
        stats = product_group_stats(conn)
    context.log.info(
        f"{stats.groups} groups for {stats.offers} offers; {stats.multi_offer_groups} with 2+ offers"
    )
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": rows,
            "groups": stats.groups,
            "multi_offer_groups": stats.multi_offer_groups,
            "groups_by_marketplace_count": dg.MetadataValue.json(
                {str(k): v for k, v in stats.groups_by_marketplace_count.items()}
            ),
            "offers_by_method": dg.MetadataValue.json(stats.offers_by_method),
        }
    )
