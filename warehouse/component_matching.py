"""Matching a whole catalog component by component, with columnar inputs.

`assign_groups` (warehouse/matching.py) relates only offers that share a normalized brand key
(explicit, or inferred from the title) or a valid GTIN key, and over one whole component of
offers joined that way it gives exactly what it gives over the whole catalog (the argument is
warehouse/incremental_matching.py's, which re-matches single components the same way). A full
run therefore need not hold a million offers as Python objects at once: it keys the offers in
one Polars frame, labels the components (union-find over brand and GTIN keys), and runs
`assign_groups` on batches of whole components of about FULL_MATCH_BATCH_OFFERS offers. Memory
is the frame plus one batch's objects; the groups are the same, row for row.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import pairwise

import numpy as np
import polars as pl

from warehouse.derived import PRODUCT_GROUPS_SCHEMA
from warehouse.matching import (
    OfferForMatching,
    assign_groups,
    infer_brand,
    normalize_brand,
    normalize_gtin_key,
)

OFFER_COLUMNS = ("marketplace", "external_id", "title", "brand", "model", "gtin", "mpn")
# Offers per assign_groups call in a full run (whole components are never split, so a batch can
# be larger by its last component). At 50,000 offers a batch's Python objects take a few hundred
# MB; fewer, larger calls gain nothing (assign_groups' work is per brand anyway).
FULL_MATCH_BATCH_OFFERS = 50_000


def keyed_offers(offers: pl.DataFrame) -> pl.DataFrame:
    """The offers (columns OFFER_COLUMNS, in their order) with the keys assign_groups' _prepare
    derives: brand_key (the normalized brand, else the brand the title names first among the
    explicit brands of `offers`), brand_inferred, and gtin_key (the canonical valid GTIN)."""
    brands = offers.get_column("brand").drop_nulls().unique()
    explicit = offers.with_columns(
        brand_key=pl.col("brand").replace_strict(
            brands,
            [normalize_brand(brand) for brand in brands],
            default=None,
            return_dtype=pl.String,
        ),
        gtin_key=pl.col("gtin").map_elements(
            normalize_gtin_key, return_dtype=pl.String, skip_nulls=True
        ),
    )
    known = set(explicit.get_column("brand_key").drop_nulls().unique().to_list())
    brandless = explicit.get_column("brand_key").is_null()
    titles = explicit.get_column("title").filter(brandless).to_list()
    inferred = pl.Series(
        "inferred", [infer_brand(str(title), known) for title in titles], dtype=pl.String
    )
    del titles
    filled = explicit.get_column("brand_key").scatter(brandless.arg_true(), inferred)
    return explicit.with_columns(
        brand_key=filled,
        brand_inferred=brandless & filled.is_not_null(),
    ).select(*OFFER_COLUMNS, "brand_key", "brand_inferred", "gtin_key")


def component_labels(keyed: pl.DataFrame) -> np.ndarray:
    """Per row of `keyed_offers`, a label shared by exactly the rows of one component (rows joined
    by a shared brand_key or gtin_key, transitively); a row with neither key is a component of
    its own."""
    nodes = keyed.select(
        brand=pl.col("brand_key").rank("dense").cast(pl.Int64) - 1,
        gtin=pl.col("gtin_key").rank("dense").cast(pl.Int64) - 1,
    )
    brand_count = int(nodes.get_column("brand").max() or -1) + 1
    nodes = nodes.with_columns(pl.col("gtin") + brand_count)
    node_count = brand_count + int(keyed.get_column("gtin_key").drop_nulls().n_unique())
    parent = list(range(node_count))

    def root(node: int) -> int:
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    for brand, gtin in nodes.drop_nulls().unique().iter_rows():
        brand_root, gtin_root = root(brand), root(gtin)
        if brand_root != gtin_root:
            parent[max(brand_root, gtin_root)] = min(brand_root, gtin_root)
    roots = np.fromiter(
        (root(node) for node in range(node_count)), dtype=np.int64, count=node_count
    )
    brand_node = nodes.get_column("brand").fill_null(-1).to_numpy()
    gtin_node = nodes.get_column("gtin").fill_null(-1).to_numpy()
    labels = node_count + np.arange(keyed.height, dtype=np.int64)  # alone unless keyed
    by_brand = brand_node >= 0
    labels[by_brand] = roots[brand_node[by_brand]]
    by_gtin = ~by_brand & (gtin_node >= 0)
    labels[by_gtin] = roots[gtin_node[by_gtin]]
    return labels


def component_batches(
    keyed: pl.DataFrame, batch_offers: int = FULL_MATCH_BATCH_OFFERS
) -> Iterator[pl.DataFrame]:
    """`keyed` in batches of whole components, about `batch_offers` rows each."""
    labels = component_labels(keyed)
    order = np.argsort(labels, kind="stable")
    sorted_labels = labels[order]
    del labels
    # A component goes to the batch in which its first row falls.
    starts = np.flatnonzero(np.r_[True, sorted_labels[1:] != sorted_labels[:-1]])
    batch_of_start = starts // batch_offers
    cuts = starts[np.flatnonzero(np.r_[True, batch_of_start[1:] != batch_of_start[:-1]])]
    bounds = [*cuts.tolist(), len(order)]
    for low, high in pairwise(bounds):
        if high > low:
            yield keyed[order[low:high]]


def match_in_components(
    keyed: pl.DataFrame, batch_offers: int = FULL_MATCH_BATCH_OFFERS
) -> pl.DataFrame:
    """assign_groups over every offer of `keyed` (keyed_offers' frame), a batch of whole
    components at a time; rows of PRODUCT_GROUPS_SCHEMA sorted by (marketplace, external_id),
    exactly as assign_groups over all of them at once would give."""
    parts = []
    for batch in component_batches(keyed, batch_offers):
        offers = [OfferForMatching(*row) for row in batch.select(OFFER_COLUMNS).iter_rows()]
        assignments = assign_groups(offers)
        del offers
        parts.append(
            pl.DataFrame(
                {
                    "group_id": [a.group_id for a in assignments],
                    "marketplace": [a.marketplace for a in assignments],
                    "external_id": [a.external_id for a in assignments],
                    "method": [a.method for a in assignments],
                    "confidence": [a.confidence for a in assignments],
                    "matching_key": [a.matching_key for a in assignments],
                },
                schema=PRODUCT_GROUPS_SCHEMA,
            )
        )
        del assignments
    if not parts:
        return pl.DataFrame(schema=PRODUCT_GROUPS_SCHEMA)
    return pl.concat(parts).sort("marketplace", "external_id")
