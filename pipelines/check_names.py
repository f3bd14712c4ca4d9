"""The pipeline's asset checks by name, apart from the code that evaluates them: `onecart status`
reads their latest results with these alone. pipelines/checks.py and the assets import pyarrow,
polars and the warehouse, most of the CPU a `status` command took (0.8 s of its 2.3 s); the
names are plain strings (Dagster takes them as asset keys), so reading them imports no Dagster
(status asks the webserver's GraphQL API by name, onecart/dagster_graphql_status.py)."""

NORMALIZED_PRODUCTS = "normalized_products"
FX_RATES = "fx_rates"

# name -> description; the UI shows each as its own check of normalized_products.
CATALOG_CHECKS: dict[str, str] = {
    "price_is_positive": "Every offer of the marketplace has a price above zero (minor units).",
    "currency_is_iso": "Every offer's currency is an ISO-4217 code (onecart.money.is_iso_currency).",
    "gtin_checksum_share": (
        "Warns when many of the GTINs the marketplace claims fail the GS1 checksum: those offers "
        "are matched by brand and model instead, and the feed itself may be broken."
    ),
    "offer_keys_are_unique": (
        "No two offers share (marketplace, external_id); repeats were quarantined instead."
    ),
    "row_count_drift": (
        "Warns when the marketplace's offer count moved by more than half since the last run "
        "(a truncated feed or a changed API looks like this)."
    ),
    "rejected_share": (
        "Warns when more than a tenth of the marketplace's latest fetch was quarantined in "
        "rejected_products (the metadata counts each reason): a feed half broken can lose a "
        "third of its offers without tripping the drift check."
    ),
}

# Unpartitioned: every marketplace's freshness at once (pipelines/checks.py).
PRODUCTS_ARE_FRESH = "products_are_fresh"
# fx_rates' check (pipelines/assets/reference.py).
RATES_COVER_OFFERS = "rates_cover_offer_currencies"
