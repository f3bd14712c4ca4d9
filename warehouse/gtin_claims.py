"""Each raw record's GTIN claim, kept per payload, so that a refresh reading only the new payloads
still counts the GTINs of the whole catalog.

catalog_loads' `gtin_claimed` and `gtin_invalid` feed the `gtin_checksum_share` check. A full
normalization counts them over every record it reads; a refresh reads only the records whose
payload is new (warehouse/records.py), and counted those alone: three new records with broken
GTINs made a healthy catalog of 87 GTINs look 100% invalid, and a refresh that read one valid
GTIN passed a catalog whose GTINs were mostly broken. A claim is a function of the payload (the
record's GTIN-like keys and their checksum), so it is stored by payload hash when the payload is
read (`gtin_claims`, pipeline file only) and the catalog's counts are a join of its raw records
with it: a payload repeated in the catalog counts once per record, as a full read counts it.
"""

from __future__ import annotations

import duckdb

from warehouse.offers import GTIN_INVALID, GTIN_NO_CLAIM, NormalizedCatalog


def write_gtin_claims(
    conn: duckdb.DuckDBPyConnection, marketplace: str, catalog: NormalizedCatalog
) -> None:
    """Store the claims of the payloads `catalog` read (all of the marketplace's after a full
    read); the claims of payloads the catalog no longer holds go. Run it in the writer's
    transaction, after raw_catalog holds the fetch."""
    if catalog.gtin_claims is None:
        return
    conn.register("read_claims", catalog.gtin_claims.to_arrow())
    try:
        if catalog.read_hashes is None:
            conn.execute("DELETE FROM gtin_claims WHERE marketplace = ?", [marketplace])
        else:
            conn.execute(
                "DELETE FROM gtin_claims WHERE marketplace = $m AND ("
                "payload_hash IN (SELECT payload_hash FROM read_claims) "
                "OR payload_hash NOT IN "
                "(SELECT payload_hash FROM raw_catalog WHERE marketplace = $m))",
                {"m": marketplace},
            )
        conn.execute(
            "INSERT INTO gtin_claims (marketplace, payload_hash, claim) "
            "SELECT ?, payload_hash, claim FROM read_claims",
            [marketplace],
        )
    finally:
        conn.unregister("read_claims")


def catalog_gtin_counts(conn: duckdb.DuckDBPyConnection, marketplace: str) -> tuple[int, int]:
    """(GTINs claimed, GTINs failing their checksum) over every raw record of the marketplace."""
    claimed, invalid = conn.execute(
        "SELECT count(*) FILTER (WHERE c.claim <> $none), "
        "count(*) FILTER (WHERE c.claim = $invalid) "
        "FROM raw_catalog AS r JOIN gtin_claims AS c USING (marketplace, payload_hash) "
        "WHERE r.marketplace = $m",
        {"m": marketplace, "none": GTIN_NO_CLAIM, "invalid": GTIN_INVALID},
    ).fetchall()[0]
    return int(claimed), int(invalid)


# The payloads an offer or a rejection was read from whose claim is not stored: a warehouse
# written before gtin_claims existed (its next normalization reads every record once).
UNCLAIMED_READS_SQL = """
(SELECT count(*) FROM (
    SELECT payload_hash FROM product_sources WHERE marketplace = $m
    UNION SELECT payload_hash FROM rejected_products WHERE marketplace = $m
) AS read_payloads
WHERE payload_hash NOT IN (SELECT payload_hash FROM gtin_claims WHERE marketplace = $m))
"""
