"""Normalizing a marketplace's stored raw records into products and rejected_products, in bulk.

The common record is read by the format's vectorized query (warehouse/vectorized.py) inside
DuckDB; the records it cannot vouch for go through the adapter's `normalize_record` one by one
(the same per-record rules as warehouse.offers.normalize_catalog, rejection reasons included).
The checks that apply to every offer (the first record naming an external id claims it, even a
quarantined one; positive price, known currency, canonical category, content hash,
first_seen_at/updated_at) then run on the whole frame at once.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import duckdb
import polars as pl

from adapters.base import BadPayload, MarketplaceConfig, Offer
from adapters.gtin import normalize_gtin
from warehouse.categories import canonical_category, category_mapping
from warehouse.offers import (
    CONTENT_FIELDS,
    GTIN_INVALID,
    GTIN_NO_CLAIM,
    GTIN_VALID,
    PRODUCTS_SCHEMA,
    REASON_BAD_RECORD,
    REASON_DUPLICATE,
    REASON_INVALID_JSON,
    REASON_NON_POSITIVE_PRICE,
    REASON_UNKNOWN_CURRENCY,
    REJECTED_SCHEMA,
    NormalizedCatalog,
    claimed_gtin,
    content_text_expression,
    duplicate_detail,
    external_id_of,
    rejected_id,
)
from warehouse.vectorized import (
    GTIN_KEY_PATTERN,
    OFFER_COLUMNS,
    currency_exponent_rows,
    vectorized_query,
)

# The records a normalization reads: every one, or those whose payload hash is listed.
RAW_SOURCE = (
    "(SELECT page, record_index, CAST(payload AS VARCHAR) AS payload, fetched_at "
    "FROM raw_catalog WHERE marketplace = $marketplace "
    "AND ($all_records OR payload_hash IN (SELECT payload_hash FROM records_to_read)))"
)
OFFER_SCHEMA = pl.Schema(
    {
        "page": pl.Int32,
        "record_index": pl.Int32,
        "fetched_at": pl.Datetime("us", "UTC"),
        **{name: PRODUCTS_SCHEMA[name] for name in OFFER_COLUMNS},
    }
)
_FALLBACK_KEYS = pl.Schema({"page": pl.Int32, "record_index": pl.Int32})
# Where a record claiming a GTIN sits, and whether the GTIN passed its checksum.
CLAIM_POSITIONS_SCHEMA = pl.Schema({"page": pl.Int32, "record_index": pl.Int32, "claim": pl.Int8})
# Payloads per Arrow batch of the GTIN-key scan: a few tens of MB at most, whatever the catalog.
GTIN_SCAN_BATCH_ROWS = 16_384


def gtin_key_counts(conn: duckdb.DuckDBPyConnection, params: Mapping[str, object]) -> pl.DataFrame:
    """page, record_index and how many GTIN-like keys (GTIN_KEY_PATTERN) each record read has,
    streamed batch by batch so the payloads are never all in memory."""
    reader = conn.sql(
        f"SELECT page, record_index, payload FROM {RAW_SOURCE}", params=dict(params)
    ).to_arrow_reader(GTIN_SCAN_BATCH_ROWS)
    parts = [
        pl.from_arrow(batch).select(
            pl.col("page").cast(pl.Int32),
            pl.col("record_index").cast(pl.Int32),
            pl.col("payload").str.count_matches(GTIN_KEY_PATTERN).cast(pl.Int32).alias("gtin_keys"),
        )
        for batch in reader
    ]
    schema = {"page": pl.Int32, "record_index": pl.Int32, "gtin_keys": pl.Int32}
    return pl.concat(parts) if parts else pl.DataFrame(schema=schema)


def _fast_frame(
    conn: duckdb.DuckDBPyConnection, config: MarketplaceConfig, hashes: tuple[str, ...] | None
) -> tuple[pl.DataFrame, bool]:
    """The vectorized read of the raw records whose payload hash is in `hashes` (all when None),
    flag `vectorized` per row, and whether the format has a vectorized path at all."""
    params = {"marketplace": config.slug, "all_records": hashes is None}
    query = vectorized_query(config, RAW_SOURCE)
    if query is None:
        frame = conn.sql(
            f"SELECT page, record_index, fetched_at, false AS vectorized FROM {RAW_SOURCE}",
            params=params,
        ).pl()
        return frame, False
    exponents = pl.DataFrame(
        currency_exponent_rows(),
        schema={"code": pl.String, "exponent": pl.Int32},
        orient="row",
    )
    counts = gtin_key_counts(conn, params)
    conn.register("currency_exponents", exponents.to_arrow())
    conn.register("gtin_key_counts", counts.to_arrow())
    try:
        return conn.sql(query, params=params).pl(), True
    finally:
        conn.unregister("currency_exponents")
        conn.unregister("gtin_key_counts")


def _per_record(
    conn: duckdb.DuckDBPyConnection,
    config: MarketplaceConfig,
    keys: pl.DataFrame,
    normalize_record: Callable[[Mapping[str, Any]], Offer],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[tuple[int, int, int]]]:
    """The records the vectorized query left to the adapter: (offer rows, rejections, the
    (page, record_index, GTIN_VALID or GTIN_INVALID) of each record that claimed a GTIN)."""
    if keys.is_empty():
        return [], [], []
    conn.register("fallback_keys", keys.to_arrow())
    try:
        rows = conn.execute(
            "SELECT r.page, r.record_index, CAST(r.payload AS VARCHAR), r.fetched_at "
            "FROM raw_catalog AS r JOIN fallback_keys AS k USING (page, record_index) "
            "WHERE r.marketplace = ? ORDER BY r.page, r.record_index",
            [config.slug],
        ).fetchall()
    finally:
        conn.unregister("fallback_keys")
    offers: list[dict[str, Any]] = []
    rejected: list[dict[str, Any]] = []
    claims: list[tuple[int, int, int]] = []
    for page, record_index, payload, fetched_at in rows:
        where = {"page": page, "record_index": record_index}
        try:
            record = json.loads(payload)
        except ValueError as exc:
            rejected.append(
                {
                    **where,
                    "external_id": None,
                    "reason": REASON_INVALID_JSON,
                    "detail": str(exc),
                    "payload": json.dumps(payload),
                }
            )
            continue
        claim = claimed_gtin(record)
        if claim is not None:
            valid = normalize_gtin(claim) is not None
            claims.append((page, record_index, GTIN_VALID if valid else GTIN_INVALID))
        if not isinstance(record, Mapping):
            rejected.append(
                {
                    **where,
                    "external_id": None,
                    "reason": REASON_BAD_RECORD,
                    "detail": "record is not an object",
                    "payload": payload,
                }
            )
            continue
        try:
            offer = normalize_record(record)
        except BadPayload as exc:
            rejected.append(
                {
                    **where,
                    "external_id": rejected_id(exc, record),
                    "reason": exc.reason,
                    "detail": exc.detail or str(exc),
                    "payload": payload,
                }
            )
            continue
        except Exception as exc:  # an adapter bug must not lose the other records
            rejected.append(
                {
                    **where,
                    "external_id": external_id_of(record),
                    "reason": REASON_BAD_RECORD,
                    "detail": f"{type(exc).__name__}: {exc}",
                    "payload": payload,
                }
            )
            continue
        row = offer.as_row()
        row["rating"] = offer.rating  # as_row gives text; the frame's column is a Decimal
        offers.append(
            {**where, "fetched_at": fetched_at, **{name: row[name] for name in OFFER_COLUMNS}}
        )
    return offers, rejected, claims


def _position() -> pl.Expr:
    """A record's place in the catalog as one sortable integer (page, then record_index)."""
    return pl.col("page").cast(pl.Int64) * (1 << 32) + pl.col("record_index").cast(pl.Int64)


def _named_earlier_by_a_rejection(
    offers: pl.DataFrame, rejected_rows: list[dict[str, Any]]
) -> pl.Series:
    """The positions (_position) of the offers whose id a record the adapter rejected named
    earlier in the catalog. Only the few offers sharing an id with a rejection are joined: a
    join of every offer cost 0.3 s per million of them, the membership test 0.02 s."""
    claims = (
        pl.DataFrame(
            [
                (row["external_id"], row["page"], row["record_index"])
                for row in rejected_rows
                if row["external_id"] is not None
            ],
            schema={"external_id": pl.String, "page": pl.Int32, "record_index": pl.Int32},
            orient="row",
        )
        .select("external_id", _position().alias("claimed_at"))
        .group_by("external_id")
        .agg(pl.col("claimed_at").min())
    )
    if claims.is_empty():
        return pl.Series("position", [], dtype=pl.Int64)
    sharing = offers.filter(pl.col("external_id").is_in(claims.get_column("external_id").implode()))
    return (
        sharing.select("external_id", _position().alias("position"))
        .join(claims, on="external_id")
        .filter(pl.col("claimed_at") < pl.col("position"))
        .get_column("position")
    )


def _first_records(
    offers: pl.DataFrame,
    rejected_rows: list[dict[str, Any]],
    refused: pl.DataFrame,
    placed: pl.DataFrame,
) -> dict[str, tuple[int, int, str, str | None]]:
    """For each id the refused offers repeat, the first record naming it (an offer, or a record
    the adapter rejected): page, record_index, payload_hash and the reason it was quarantined
    (None: the offer kept), for the duplicates' detail (warehouse.offers.duplicate_detail)."""
    repeated = refused.filter(pl.col("reason") == REASON_DUPLICATE).get_column("external_id")
    if repeated.is_empty():
        return {}
    schema = {
        "external_id": pl.String,
        "page": pl.Int32,
        "record_index": pl.Int32,
        "reason": pl.String,
    }
    candidates = pl.concat(
        [
            offers.filter(pl.col("external_id").is_in(repeated.implode())).select(
                [pl.col(name).cast(dtype) for name, dtype in schema.items()]
            ),
            pl.DataFrame(
                [
                    (row["external_id"], row["page"], row["record_index"], row["reason"])
                    for row in rejected_rows
                    if row["external_id"] is not None
                ],
                schema=schema,
                orient="row",
            ).filter(pl.col("external_id").is_in(repeated.implode())),
        ]
    )
    firsts = (
        candidates.sort(_position())
        .unique("external_id", keep="first", maintain_order=True)
        .join(
            placed.select(
                pl.col("page").cast(pl.Int32), pl.col("record_index").cast(pl.Int32), "payload_hash"
            ),
            on=["page", "record_index"],
            how="left",
        )
    )
    return {
        row["external_id"]: (row["page"], row["record_index"], row["payload_hash"], row["reason"])
        for row in firsts.iter_rows(named=True)
    }


def _payloads(
    conn: duckdb.DuckDBPyConnection, slug: str, keys: pl.DataFrame
) -> dict[tuple[int, int], str]:
    if keys.is_empty():
        return {}
    conn.register("payload_keys", keys.select("page", "record_index").to_arrow())
    try:
        rows = conn.execute(
            "SELECT r.page, r.record_index, CAST(r.payload AS VARCHAR) FROM raw_catalog AS r "
            "JOIN payload_keys AS k USING (page, record_index) WHERE r.marketplace = ?",
            [slug],
        ).fetchall()
    finally:
        conn.unregister("payload_keys")
    return {(page, index): payload for page, index, payload in rows}


def normalize_stored_catalog(
    conn: duckdb.DuckDBPyConnection,
    config: MarketplaceConfig,
    normalize_record: Callable[[Mapping[str, Any]], Offer],
    *,
    now: datetime,
    run_id: str,
    hashes: tuple[str, ...] | None = None,
) -> NormalizedCatalog:
    """Normalize the marketplace's raw_catalog rows (only those whose payload hash is in
    `hashes`, unless None); same result as warehouse.offers.normalize_catalog over the same
    records with the same adapter (tests/warehouse/test_vectorized.py holds them to it), at
    DuckDB's speed for the common record."""
    conn.register(
        "records_to_read",
        pl.DataFrame(
            {"payload_hash": list(hashes or ())}, schema={"payload_hash": pl.String}
        ).to_arrow(),
    )
    try:
        return _normalize(conn, config, normalize_record, now=now, run_id=run_id, hashes=hashes)
    finally:
        conn.unregister("records_to_read")


def _normalize(
    conn: duckdb.DuckDBPyConnection,
    config: MarketplaceConfig,
    normalize_record: Callable[[Mapping[str, Any]], Offer],
    *,
    now: datetime,
    run_id: str,
    hashes: tuple[str, ...] | None,
) -> NormalizedCatalog:
    slug = config.slug
    fast, has_vectorized = _fast_frame(conn, config, hashes)
    # Where each record read sits and its payload hash, for product_sources and the rejections.
    placed = conn.sql(
        "SELECT page, record_index, payload_hash FROM raw_catalog "
        "WHERE marketplace = $marketplace "
        "AND ($all_records OR payload_hash IN (SELECT payload_hash FROM records_to_read))",
        params={"marketplace": slug, "all_records": hashes is None},
    ).pl()
    raw_records = fast.height
    fallback_keys = fast.filter(~pl.col("vectorized")).select(
        pl.col("page").cast(pl.Int32), pl.col("record_index").cast(pl.Int32)
    )
    slow_offers, rejected_rows, slow_claims = _per_record(
        conn, config, fallback_keys, normalize_record
    )
    claims = [pl.DataFrame(slow_claims, schema=CLAIM_POSITIONS_SCHEMA, orient="row")]
    if has_vectorized:
        vectorized = fast.filter(pl.col("vectorized"))
        claims.append(
            vectorized.filter(pl.col("claimed_gtin").is_not_null()).select(
                pl.col("page").cast(pl.Int32),
                pl.col("record_index").cast(pl.Int32),
                pl.when(pl.col("gtin").is_null())
                .then(GTIN_INVALID)
                .otherwise(GTIN_VALID)
                .cast(pl.Int8)
                .alias("claim"),
            )
        )
        fast_offers = vectorized.select(
            [pl.col(name).cast(dtype) for name, dtype in OFFER_SCHEMA.items()]
        )
        del vectorized
    else:
        fast_offers = pl.DataFrame(schema=OFFER_SCHEMA)
    # Every frame of the whole partition is let go as soon as the next one is made from it: at a
    # million offers one marketplace's frames are a few hundred MB each, and holding them all to
    # the end made the normalizing worker the partition phase's peak (bench/RESULTS.md).
    del fast
    claim_positions = pl.concat(claims)
    del claims
    claimed = claim_positions.height
    invalid = claim_positions.filter(pl.col("claim") == GTIN_INVALID).height
    # Per payload read (a claim is a function of the payload): what a refresh reading only the
    # new payloads needs to count the GTINs of the whole catalog (warehouse.gtin_claims).
    gtin_claims = (
        placed.join(claim_positions, on=["page", "record_index"], how="left")
        .select(
            "payload_hash", pl.col("claim").fill_null(GTIN_NO_CLAIM).cast(pl.Int8).alias("claim")
        )
        .unique("payload_hash", maintain_order=True)
    )
    del claim_positions
    offers = pl.concat(
        [fast_offers, pl.DataFrame(slow_offers, schema=OFFER_SCHEMA, orient="row")]
        if slow_offers
        else [fast_offers]
    ).sort("page", "record_index")
    del fast_offers, slow_offers

    # The checks every offer goes through, whichever path read it. The first record naming an
    # id claims it, offer or quarantined (as in normalize_catalog): a later offer of the id is a
    # duplicate. `offers` is in catalog order, so among offers that is the first distinct id; a
    # quarantined record that named the id earlier is found by position.
    repeated = ~pl.col("external_id").is_first_distinct()
    named_before = _named_earlier_by_a_rejection(offers, rejected_rows)
    if named_before.len():
        repeated = repeated | _position().is_in(named_before.implode())
    known = [code for code, _ in currency_exponent_rows()]
    offers = offers.with_columns(
        pl.when(repeated)
        .then(pl.lit(REASON_DUPLICATE))
        .when(pl.col("price_minor") <= 0)
        .then(pl.lit(REASON_NON_POSITIVE_PRICE))
        .when(~pl.col("currency").is_in(known))
        .then(pl.lit(REASON_UNKNOWN_CURRENCY))
        .alias("reason")
    )
    refused = offers.filter(pl.col("reason").is_not_null())
    kept = offers.filter(pl.col("reason").is_null()).drop("reason")
    if refused.height:
        payloads = _payloads(conn, slug, refused)
        firsts = _first_records(offers, rejected_rows, refused, placed)
        for row in refused.iter_rows(named=True):
            reason = row["reason"]
            if reason == REASON_NON_POSITIVE_PRICE:
                detail = str(row["price_minor"])
            elif reason == REASON_UNKNOWN_CURRENCY:
                detail = str(row["currency"])
            else:
                detail = duplicate_detail(row["external_id"], *firsts[row["external_id"]])
            rejected_rows.append(
                {
                    "page": row["page"],
                    "record_index": row["record_index"],
                    "external_id": row["external_id"],
                    "reason": reason,
                    "detail": detail,
                    "payload": payloads[(row["page"], row["record_index"])],
                }
            )
    del offers

    categories = category_mapping()
    raw_categories = kept.get_column("category").unique().drop_nulls().to_list()
    canonical = {raw: canonical_category(raw, categories) for raw in raw_categories}
    kept = kept.with_columns(
        pl.col("category").alias("category_raw"),
        pl.col("category").replace_strict(canonical, default=None, return_dtype=pl.String),
    )
    kept = _with_content_hash(conn, kept)
    # What the warehouse knew of these offers (of every offer on a full read: removals count).
    conn.register("offer_ids", kept.select("external_id").to_arrow())
    try:
        previous = conn.sql(
            "SELECT external_id, content_hash AS previous_hash, first_seen_at AS previous_first, "
            "updated_at AS previous_updated FROM products WHERE marketplace = $marketplace "
            "AND ($all_records OR external_id IN (SELECT external_id FROM offer_ids))",
            params={"marketplace": slug, "all_records": hashes is None},
        ).pl()
    finally:
        conn.unregister("offer_ids")
    kept = kept.join(previous, on="external_id", how="left", maintain_order="left")
    is_new = pl.col("previous_hash").is_null()
    changed = ~is_new & (pl.col("previous_hash") != pl.col("content_hash"))
    new_offers = kept.filter(is_new).height
    changed_offers = kept.filter(changed).height
    now_literal = pl.lit(now, dtype=pl.Datetime("us", "UTC"))
    products = kept.with_columns(
        pl.lit(slug).alias("marketplace"),
        pl.when(is_new)
        .then(now_literal)
        .otherwise(pl.col("previous_first"))
        .alias("first_seen_at"),
        pl.when(is_new | changed)
        .then(now_literal)
        .otherwise(pl.col("previous_updated"))
        .alias("updated_at"),
    ).select([pl.col(name).cast(dtype) for name, dtype in PRODUCTS_SCHEMA.items()])
    rejected = (
        pl.DataFrame(
            rejected_rows,
            schema={
                "page": pl.Int32,
                "record_index": pl.Int32,
                "external_id": pl.String,
                "reason": pl.String,
                "detail": pl.String,
                "payload": pl.String,
            },
            orient="row",
        )
        .sort("page", "record_index")
        .join(placed, on=["page", "record_index"], how="left", maintain_order="left")
        .with_columns(
            pl.lit(slug).alias("marketplace"),
            pl.col("detail").str.slice(0, 1000),
            pl.lit(now, dtype=pl.Datetime("us", "UTC")).alias("rejected_at"),
            pl.lit(run_id).alias("run_id"),
        )
        .select([pl.col(name).cast(dtype) for name, dtype in REJECTED_SCHEMA.items()])
    )
    sources = kept.select(
        "external_id", pl.col("page").cast(pl.Int32), pl.col("record_index").cast(pl.Int32)
    ).join(placed, on=["page", "record_index"], how="left", maintain_order="left")
    if hashes is not None:
        # The other records' offers stay; removal is decided by the record writer.
        previous = previous.filter(pl.lit(False))
    # external_id:content_hash of every offer, sorted (UTF-8 byte order is code point order,
    # as Python's sort), one a line: warehouse.offers' fingerprint, without a Python string
    # per offer.
    pairs = (
        products.select(pl.col("external_id") + ":" + pl.col("content_hash"))
        .to_series()
        .sort()
        .str.join("\n")
        .item()
    )
    return NormalizedCatalog(
        products=products,
        rejected=rejected,
        raw_records=raw_records,
        new_offers=new_offers,
        changed_offers=changed_offers,
        removed_offers=previous.join(
            products.select("external_id"), on="external_id", how="anti"
        ).height,
        gtin_claimed=int(claimed),
        gtin_invalid=int(invalid),
        content_fingerprint=hashlib.sha256(pairs.encode()).hexdigest(),
        sources=sources,
        gtin_claims=gtin_claims,
        read_hashes=hashes,
        pages=(
            tuple(placed.get_column("page").unique().sort().to_list())
            if hashes is not None
            else None
        ),
    )


def _with_content_hash(conn: duckdb.DuckDBPyConnection, kept: pl.DataFrame) -> pl.DataFrame:
    """content_hash (warehouse.offers.content_hash) of every row, computed by DuckDB."""
    texts = kept.select(content_text_expression().alias("text"))
    conn.register("content_texts", texts.to_arrow())
    try:
        hashes = conn.sql("SELECT sha256(text) AS content_hash FROM content_texts").pl()
    finally:
        conn.unregister("content_texts")
    if hashes.height != kept.height:  # a plain scan keeps the rows and their order
        raise RuntimeError(f"{hashes.height} content hashes for {kept.height} offers")
    return kept.with_columns(hashes.get_column("content_hash"))


__all__ = ["CONTENT_FIELDS", "normalize_stored_catalog"]
