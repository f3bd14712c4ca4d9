"""Dagster assets, one module per layer: catalog (partitioned by marketplace), reference data
(FX rates), matching (product groups), history (price history) and serving (search index,
storefront DB, analysts' warehouse)."""
