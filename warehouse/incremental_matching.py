"""Re-matching only what a refresh changed, around warehouse.matching's rules (unchanged).

Every rule of `assign_groups` relates offers that share a normalized brand (explicit, or
inferred from the title against the brands other offers name) or a valid GTIN: GTIN groups,
brand + model groups, title matches within a brand, and the group sizes that turn a group of one
into `single`. So the offers split into components (offers joined by a shared brand key or GTIN
key), and `assign_groups` over a whole component gives exactly what it gives over the whole
catalog. A refresh therefore re-runs `assign_groups` on the components that the changed offers
(new, removed, or with other matching fields) belong to now or belonged to before, and leaves
every other row of product_groups alone. A price or stock change touches no matching field and
re-matches nothing.

`matching_inputs` keeps each offer's matching fields and keys as last matched, for the diff.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

import duckdb
import polars as pl

from warehouse.component_matching import keyed_offers, match_in_components
from warehouse.connection import transaction
from warehouse.derived import PRODUCT_GROUPS_SCHEMA, replace_product_groups_frame
from warehouse.matching import (
    OfferForMatching,
    assign_groups,
    infer_brand,
    normalize_brand,
    normalize_gtin_key,
)

Connect = Callable[[], AbstractContextManager[duckdb.DuckDBPyConnection]]
MATCHING_FIELDS = ("title", "brand", "model", "gtin", "mpn")
INPUTS_SCHEMA = pl.Schema(
    {
        "marketplace": pl.String,
        "external_id": pl.String,
        "title": pl.String,
        "brand": pl.String,
        "model": pl.String,
        "gtin": pl.String,
        "mpn": pl.String,
        "brand_key": pl.String,
        "brand_inferred": pl.Boolean,
        "gtin_key": pl.String,
    }
)
_INPUT_COLUMNS = ", ".join(INPUTS_SCHEMA.names())


@dataclass(frozen=True, slots=True)
class MatchingRun:
    """What a product_groups refresh did."""

    mode: str  # "full", "incremental" or "unchanged"
    changed_offers: int
    rematched_offers: int


def _keyed(rows: list[tuple[object, ...]], known_brands: set[str]) -> pl.DataFrame:
    """Matching inputs with their brand and GTIN keys, as assign_groups' _prepare derives them."""
    records = []
    for marketplace, external_id, title, brand, model, gtin, mpn in rows:
        brand_key = normalize_brand(brand)
        inferred = False
        if brand_key is None:
            brand_key = infer_brand(str(title), known_brands)
            inferred = brand_key is not None
        records.append(
            (
                marketplace,
                external_id,
                title,
                brand,
                model,
                gtin,
                mpn,
                brand_key,
                inferred,
                normalize_gtin_key(gtin),
            )
        )
    return pl.DataFrame(records, schema=INPUTS_SCHEMA, orient="row")


def _offers(frame: pl.DataFrame) -> list[OfferForMatching]:
    return [
        OfferForMatching(*row)
        for row in frame.select(
            "marketplace", "external_id", "title", "brand", "model", "gtin", "mpn"
        ).iter_rows()
    ]


def _store_inputs(
    conn: duckdb.DuckDBPyConnection, frame: pl.DataFrame, *, replace_all: bool
) -> None:
    conn.register("staged_inputs", frame.to_arrow())
    try:
        if replace_all:
            conn.execute("DELETE FROM matching_inputs")
        else:
            conn.execute(
                "DELETE FROM matching_inputs AS m WHERE EXISTS (SELECT 1 FROM staged_inputs AS s "
                "WHERE s.marketplace = m.marketplace AND s.external_id = m.external_id)"
            )
        conn.execute(
            f"INSERT INTO matching_inputs ({_INPUT_COLUMNS}) SELECT {_INPUT_COLUMNS} FROM staged_inputs"
        )
    finally:
        conn.unregister("staged_inputs")


def _full(connect: Connect) -> MatchingRun:
    # Matching a whole catalog takes minutes at a million offers: the warehouse lock is let go
    # meanwhile, so partition runs can write. The offers stay columnar and are matched a batch
    # of whole components at a time (warehouse/component_matching.py): per-offer Python objects
    # for a million offers took 3.3 GiB.
    with connect() as conn:
        offers = conn.sql(
            "SELECT marketplace, external_id, title, brand, model, gtin, mpn FROM products "
            "ORDER BY marketplace, external_id"
        ).pl()
    inputs = keyed_offers(offers)
    del offers
    groups = match_in_components(inputs)
    with connect() as conn:
        replace_product_groups_frame(conn, groups)
        with transaction(conn):
            _store_inputs(conn, inputs, replace_all=True)
    return MatchingRun("full", inputs.height, inputs.height)


def refresh_product_groups(connect: Connect, *, full: bool = False) -> MatchingRun:
    """Bring product_groups up to date with products, re-matching only the components of the
    offers whose matching fields changed (everything when `full`, or when product_groups and
    matching_inputs do not describe the same offers). `connect` opens a warehouse connection
    (warehouse.connect or WarehouseResource.connect)."""
    with connect() as conn:
        (inputs, groups) = conn.execute(
            "SELECT (SELECT count(*) FROM matching_inputs), (SELECT count(*) FROM product_groups)"
        ).fetchall()[0]
        if not (full or not inputs or inputs != groups):
            return _incremental(conn)
    return _full(connect)


def _incremental(conn: duckdb.DuckDBPyConnection) -> MatchingRun:
    distinct = " OR ".join(f"p.{name} IS DISTINCT FROM m.{name}" for name in MATCHING_FIELDS)
    changed = conn.execute(
        f"""
        SELECT coalesce(p.marketplace, m.marketplace), coalesce(p.external_id, m.external_id),
               p.external_id IS NULL AS removed,
               p.title, p.brand, p.model, p.gtin, p.mpn, m.brand_key, m.gtin_key
        FROM products AS p
        FULL OUTER JOIN matching_inputs AS m USING (marketplace, external_id)
        WHERE p.external_id IS NULL OR m.external_id IS NULL OR {distinct}
        """
    ).fetchall()
    if not changed:
        return MatchingRun("unchanged", 0, 0)

    old_known = {
        key
        for (key,) in conn.execute(
            "SELECT DISTINCT brand_key FROM matching_inputs WHERE NOT brand_inferred "
            "AND brand_key IS NOT NULL"
        ).fetchall()
    }
    removed = [(row[0], row[1]) for row in changed if row[2]]
    present = [(row[0], row[1], *row[3:8]) for row in changed if not row[2]]
    brand_keys = {row[8] for row in changed if row[8]}
    gtin_keys = {row[9] for row in changed if row[9]}
    # The explicit brands after the change decide what brandless titles infer.
    changed_keys = {(row[0], row[1]) for row in changed}
    conn.register(
        "changed_keys",
        pl.DataFrame(
            sorted(changed_keys),
            schema={"marketplace": pl.String, "external_id": pl.String},
            orient="row",
        ).to_arrow(),
    )
    try:
        kept_known = {
            key
            for (key,) in conn.execute(
                "SELECT DISTINCT m.brand_key FROM matching_inputs AS m WHERE NOT m.brand_inferred "
                "AND m.brand_key IS NOT NULL AND NOT EXISTS (SELECT 1 FROM changed_keys AS c "
                "WHERE c.marketplace = m.marketplace AND c.external_id = m.external_id)"
            ).fetchall()
        }
    finally:
        conn.unregister("changed_keys")
    new_known = kept_known | {key for key in (normalize_brand(row[3]) for row in present) if key}
    updated = _keyed(present, new_known)
    brand_keys |= set(updated.get_column("brand_key").drop_nulls().to_list())
    gtin_keys |= set(updated.get_column("gtin_key").drop_nulls().to_list())
    if new_known != old_known:
        # A brand appeared or vanished: brandless titles elsewhere may infer another brand now.
        brandless = conn.execute(
            "SELECT marketplace, external_id, title, brand, model, gtin, mpn, brand_key "
            "FROM matching_inputs WHERE brand_key IS NULL OR brand_inferred"
        ).fetchall()
        reinferred = _keyed([row[:7] for row in brandless], new_known)
        moved = [
            index
            for index, (row, key) in enumerate(
                zip(brandless, reinferred.get_column("brand_key").to_list(), strict=True)
            )
            if row[7] != key and (row[0], row[1]) not in changed_keys
        ]
        if moved:
            shifted = reinferred[moved]
            brand_keys |= {brandless[i][7] for i in moved if brandless[i][7]}
            brand_keys |= set(shifted.get_column("brand_key").drop_nulls().to_list())
            updated = pl.concat([updated, shifted])

    with transaction(conn):
        conn.register(
            "removed_keys",
            pl.DataFrame(
                removed, schema={"marketplace": pl.String, "external_id": pl.String}, orient="row"
            ).to_arrow(),
        )
        try:
            conn.execute(
                "DELETE FROM matching_inputs AS m WHERE EXISTS (SELECT 1 FROM removed_keys AS r "
                "WHERE r.marketplace = m.marketplace AND r.external_id = m.external_id)"
            )
            conn.execute(
                "DELETE FROM product_groups AS g WHERE EXISTS (SELECT 1 FROM removed_keys AS r "
                "WHERE r.marketplace = g.marketplace AND r.external_id = g.external_id)"
            )
        finally:
            conn.unregister("removed_keys")
        _store_inputs(conn, updated, replace_all=False)
        component = pl.concat([_component(conn, brand_keys, gtin_keys), updated]).unique(
            subset=["marketplace", "external_id"], keep="first"
        )
        assignments = assign_groups(_offers(component))
        frame = pl.DataFrame(
            [
                (a.group_id, a.marketplace, a.external_id, a.method, a.confidence, a.matching_key)
                for a in assignments
            ],
            schema=PRODUCT_GROUPS_SCHEMA,
            orient="row",
        )
        conn.register("staged_groups", frame.to_arrow())
        try:
            columns = ", ".join(PRODUCT_GROUPS_SCHEMA.names())
            conn.execute(
                "DELETE FROM product_groups AS g WHERE EXISTS (SELECT 1 FROM staged_groups AS s "
                "WHERE s.marketplace = g.marketplace AND s.external_id = g.external_id)"
            )
            conn.execute(
                f"INSERT INTO product_groups ({columns}) SELECT {columns} FROM staged_groups"
            )
        finally:
            conn.unregister("staged_groups")
    return MatchingRun("incremental", len(changed), frame.height)


def _component(
    conn: duckdb.DuckDBPyConnection, brand_keys: set[str], gtin_keys: set[str]
) -> pl.DataFrame:
    """Every offer joined to the given keys through shared brand or GTIN keys, transitively."""
    brands, gtins = set(brand_keys), set(gtin_keys)
    while True:
        conn.register(
            "component_brands",
            pl.DataFrame({"key": sorted(brands)}, schema={"key": pl.String}).to_arrow(),
        )
        conn.register(
            "component_gtins",
            pl.DataFrame({"key": sorted(gtins)}, schema={"key": pl.String}).to_arrow(),
        )
        try:
            members = conn.sql(
                f"SELECT {_INPUT_COLUMNS} FROM matching_inputs "
                "WHERE brand_key IN (SELECT key FROM component_brands) "
                "OR gtin_key IN (SELECT key FROM component_gtins)"
            ).pl()
        finally:
            conn.unregister("component_brands")
            conn.unregister("component_gtins")
        more_brands = set(members.get_column("brand_key").drop_nulls().to_list()) - brands
        more_gtins = set(members.get_column("gtin_key").drop_nulls().to_list()) - gtins
        if not more_brands and not more_gtins:
            break
        brands |= more_brands
        gtins |= more_gtins
    return members
