"""Cross-marketplace matching: which offers are the same product."""

import dagster as dg

from onecart.progress import counted_noun
from pipelines.resources import WarehouseResource
from warehouse.derived import product_group_stats
from warehouse.incremental_matching import refresh_product_groups

MATCHING_GROUP = "matching"


class MatchingRunConfig(dg.Config):
    """`full_refresh`: match every offer again instead of the changed offers' components."""

    full_refresh: bool = False


@dg.asset(deps=["normalized_products"], group_name=MATCHING_GROUP, kinds={"python", "duckdb"})
def product_groups(
    context: dg.AssetExecutionContext, config: MatchingRunConfig, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    """The product group ("product relation token") of every offer, with how it was matched
    (table product_groups): same valid GTIN (1.00), same brand + model number (0.90, or 0.85
    when the model number was found in the title), a conservative title match (at most 0.75), or
    a group of one (1.00). Group ids are stable across runs:
    a hash of the matching key. The rules live in warehouse/matching.py; only the offers whose
    matching fields changed are matched again, with every offer sharing a brand or GTIN with them
    (warehouse/incremental_matching.py)."""
    run = refresh_product_groups(warehouse.connect, full=config.full_refresh)
    with warehouse.connect() as conn:
        stats = product_group_stats(conn)
    context.log.info(
        f"{counted_noun(stats.groups, 'group')} for {counted_noun(stats.offers, 'offer')}; "
        f"{stats.multi_offer_groups} with 2+ "
        f"offers; {run.mode}: {run.changed_offers} changed, {run.rematched_offers} re-matched"
    )
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": stats.offers,
            "groups": stats.groups,
            "multi_offer_groups": stats.multi_offer_groups,
            "groups_by_marketplace_count": dg.MetadataValue.json(
                {str(k): v for k, v in stats.groups_by_marketplace_count.items()}
            ),
            "offers_by_method": dg.MetadataValue.json(stats.offers_by_method),
        }
    )
