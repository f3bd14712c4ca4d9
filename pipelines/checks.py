"""Asset checks on the catalog assets: prices, currencies, GTINs, keys, drift, quarantined
records and freshness.

The per-marketplace checks are partitioned like `normalized_products` and declared on it
(`check_specs`): they are evaluated at the end of its own step, on the connection that just
wrote the marketplace's offers. A separate check step cost a step's events, a warehouse
connection and a lookup of the materialization per check, more than the queries themselves.
Freshness looks at every marketplace at once, so it is unpartitioned; it runs on a schedule of
its own at every refresh tick (a refresh that changes nothing starts no downstream run, and a
tick whose fetches all fail materializes nothing) and with the downstream assets.
"""

import warnings
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg
import duckdb

from onecart.money import is_iso_currency
from pipelines.check_names import CATALOG_CHECKS, NORMALIZED_PRODUCTS, PRODUCTS_ARE_FRESH
from pipelines.resources import MarketplacesResource, WarehouseResource
from warehouse.catalog import CatalogLoad, product_counts_by_marketplace, recent_loads

# Above this share of GTIN claims failing their checksum, a marketplace's identifiers are suspect.
GTIN_INVALID_SHARE_WARN = 0.2
# A change of the offer count by more than this share between two runs is worth a look.
ROW_COUNT_DRIFT_WARN = 0.5
# Above this share of a fetch's records quarantined in rejected_products, the feed is broken in
# earnest: the sandbox's default malformed_rate (0.02) and real feeds' odd bad record stay below.
REJECTED_SHARE_WARN = 0.1
# Offers fetched longer ago than this are stale (the schedule runs every 30 minutes by default).
FRESHNESS_MAX_AGE = timedelta(hours=6)


@dataclass(frozen=True, slots=True)
class CatalogFacts:
    """What the six checks look at, for one marketplace's current offers: read once per
    partition, in one scan of its products and one look at its last two loads. Each check used
    to ask for its own (the product statistics three times), so a refresh paid for five passes
    over a catalog it had changed 1% of."""

    products: int
    non_positive_prices: int
    duplicate_keys: int
    currencies: list[str]
    quarantined_duplicates: int
    rejections_by_reason: dict[str, int]
    loads: list[CatalogLoad]
    # Whether the run being checked wrote the latest load (a refresh that found nothing new to
    # normalize writes none).
    loaded_now: bool = True


def catalog_facts(
    conn: duckdb.DuckDBPyConnection, slug: str, run_id: str | None = None
) -> CatalogFacts:
    """Every offer of the marketplace is looked at, not only those the run wrote: the checks
    assert properties of the catalog shoppers see, and a row written by anything else (an older
    run, a hand fix) counts as much."""
    products, non_positive, duplicates, currencies, reasons = conn.execute(
        """
        SELECT count(*), count(*) FILTER (WHERE price_minor <= 0),
            count(*) - count(DISTINCT external_id),
            coalesce(list(DISTINCT currency ORDER BY currency), []),
            (SELECT coalesce(list((reason, records) ORDER BY records DESC, reason), [])
             FROM (SELECT reason, count(*) AS records FROM rejected_products
                   WHERE marketplace = $m GROUP BY reason))
        FROM products WHERE marketplace = $m
        """,
        {"m": slug},
    ).fetchall()[0]
    by_reason = {str(reason): int(records) for reason, records in reasons}
    loads = recent_loads(conn, slug, limit=2)
    return CatalogFacts(
        products=int(products),
        non_positive_prices=int(non_positive),
        duplicate_keys=int(duplicates),
        currencies=list(currencies),
        quarantined_duplicates=by_reason.get("duplicate_external_id", 0),
        rejections_by_reason=by_reason,
        loads=loads,
        loaded_now=run_id is None or (bool(loads) and loads[0].run_id == run_id),
    )


def check_price_is_positive(facts: CatalogFacts) -> dg.AssetCheckResult:
    """Fails when any offer has a zero or negative price."""
    return dg.AssetCheckResult(
        check_name="price_is_positive",
        passed=facts.non_positive_prices == 0,
        metadata={"non_positive_prices": facts.non_positive_prices, "offers": facts.products},
    )


def check_currency_is_iso(facts: CatalogFacts) -> dg.AssetCheckResult:
    """Fails when any offer's currency is not a known ISO-4217 code."""
    unknown = [code for code in facts.currencies if not is_iso_currency(code)]
    return dg.AssetCheckResult(
        check_name="currency_is_iso",
        passed=not unknown,
        metadata={
            "currencies": dg.MetadataValue.json(facts.currencies),
            "unknown": dg.MetadataValue.json(unknown),
        },
    )


def check_gtin_checksum_share(facts: CatalogFacts) -> dg.AssetCheckResult:
    """Warns when the share of claimed GTINs failing the checksum exceeds the threshold."""
    latest = facts.loads[0] if facts.loads else None
    return _share_check(
        "gtin_checksum_share",
        part=("gtin_invalid", latest.gtin_invalid if latest else 0),
        whole=("gtin_claimed", latest.gtin_claimed if latest else 0),
        share_key="invalid_share",
        threshold=GTIN_INVALID_SHARE_WARN,
    )


def check_offer_keys_are_unique(facts: CatalogFacts) -> dg.AssetCheckResult:
    """Fails when (marketplace, external_id) repeats among the offers."""
    return dg.AssetCheckResult(
        check_name="offer_keys_are_unique",
        passed=facts.duplicate_keys == 0,
        metadata={
            "duplicate_keys": facts.duplicate_keys,
            "quarantined_duplicates": facts.quarantined_duplicates,
        },
    )


def check_row_count_drift(facts: CatalogFacts) -> dg.AssetCheckResult:
    """Warns when the offer count changed by more than the threshold since the previous load.
    A run that loaded nothing (no new payload) compares the offers now with the latest load: it
    changed nothing, and the two loads before it were judged by the run that wrote the later
    one (comparing them again warned at every quiet refresh after a drift)."""
    if facts.loads and not facts.loaded_now:
        latest = facts.loads[0]
        change = (
            abs(facts.products - latest.products) / latest.products
            if latest.products
            else (1.0 if facts.products else 0.0)
        )
        return dg.AssetCheckResult(
            check_name="row_count_drift",
            passed=change <= ROW_COUNT_DRIFT_WARN,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "products": facts.products,
                "previous_products": latest.products,
                "change": round(change, 4),
                "threshold": ROW_COUNT_DRIFT_WARN,
                "note": f"nothing loaded by this run; compared with the load of {latest.run_id}",
            },
        )
    if len(facts.loads) < 2:
        return dg.AssetCheckResult(
            check_name="row_count_drift",
            passed=True,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"note": "first load, nothing to compare"},
        )
    current, previous = facts.loads[0].products, facts.loads[1].products
    change = abs(current - previous) / previous if previous else (1.0 if current else 0.0)
    return dg.AssetCheckResult(
        check_name="row_count_drift",
        passed=change <= ROW_COUNT_DRIFT_WARN,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "products": current,
            "previous_products": previous,
            "change": round(change, 4),
            "threshold": ROW_COUNT_DRIFT_WARN,
        },
    )


def check_rejected_share(facts: CatalogFacts) -> dg.AssetCheckResult:
    """Warns when the latest load quarantined more than the threshold of its raw records."""
    latest = facts.loads[0] if facts.loads else None
    return _share_check(
        "rejected_share",
        part=("rejected", latest.rejected if latest else 0),
        whole=("raw_records", latest.raw_records if latest else 0),
        share_key="rejected_share",
        threshold=REJECTED_SHARE_WARN,
        reasons=dg.MetadataValue.json(facts.rejections_by_reason),
    )


def _share_check(
    check_name: str,
    *,
    part: tuple[str, int],
    whole: tuple[str, int],
    share_key: str,
    threshold: float,
    **metadata: Any,
) -> dg.AssetCheckResult:
    """A warning check that `part` is at most `threshold` of `whole` (each a metadata name and
    its count; an empty whole is a share of 0), with both counts, the share and the threshold in
    its metadata, and any `metadata` after them."""
    (part_name, part_count), (whole_name, whole_count) = part, whole
    share = part_count / whole_count if whole_count else 0.0
    return dg.AssetCheckResult(
        check_name=check_name,
        passed=share <= threshold,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            part_name: part_count,
            whole_name: whole_count,
            share_key: round(share, 4),
            "threshold": threshold,
            **metadata,
        },
    )


CATALOG_CHECK_FUNCTIONS = (
    check_price_is_positive,
    check_currency_is_iso,
    check_gtin_checksum_share,
    check_offer_keys_are_unique,
    check_row_count_drift,
    check_rejected_share,
)


def catalog_check_specs(partitions: dg.PartitionsDefinition) -> list[dg.AssetCheckSpec]:
    """The per-marketplace checks of normalized_products, partitioned like it; the UI shows each
    as its own check of every partition."""
    # Partitioned check specs are a Dagster preview feature; we rely on it knowingly (checks per
    # marketplace), so its warning would only clutter every `onecart ingest`.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return [
            dg.AssetCheckSpec(
                name, asset=NORMALIZED_PRODUCTS, description=description, partitions_def=partitions
            )
            for name, description in CATALOG_CHECKS.items()
        ]


def evaluate_catalog_checks(
    conn: duckdb.DuckDBPyConnection,
    slug: str,
    selected: Collection[str] | None = None,
    *,
    run_id: str | None = None,
) -> list[dg.AssetCheckResult]:
    """Prices, currencies, GTIN checksums, unique keys, row-count drift and the quarantined
    share of one marketplace
    (only the checks named in `selected`, when given: a run may leave some out). `run_id` is the
    run being checked: the drift check tells a run that wrote a load from one that did not."""
    chosen = [
        evaluate
        for name, evaluate in zip(CATALOG_CHECKS, CATALOG_CHECK_FUNCTIONS, strict=True)
        if selected is None or name in selected
    ]
    if not chosen:
        return []
    facts = catalog_facts(conn, slug, run_id)
    return [evaluate(facts) for evaluate in chosen]


@dg.asset_check(asset=NORMALIZED_PRODUCTS, name=PRODUCTS_ARE_FRESH)
def products_are_fresh(
    warehouse: WarehouseResource, marketplaces: MarketplacesResource
) -> dg.AssetCheckResult:
    """Warns when any configured marketplace's offers were fetched longer ago than the limit
    (or never), or whose last fetch gave no offer at all: its partition has been failing, and
    shoppers see old prices (or none). Evaluated at every
    refresh tick (catalog_freshness_schedule) and in each downstream run; the result names each
    stale marketplace on a line of its own."""
    with warehouse.connect(read_only=True) as conn:
        counts = product_counts_by_marketplace(conn)
        # The fetches of marketplaces without offers: every record of a fetch can be
        # quarantined, and such a store was fetched, not "never".
        pages_fetched = dict(
            conn.execute(
                "SELECT marketplace, max(fetched_at) FROM raw_pages "
                "WHERE content_hash IS NOT NULL GROUP BY marketplace"
            ).fetchall()
        )
    fetched = {row["marketplace"]: row["last_fetched_at"] for row in counts.iter_rows(named=True)}
    now = datetime.now(UTC)
    limit_hours = FRESHNESS_MAX_AGE.total_seconds() / 3600
    ages = {}
    stale = []
    lines = []
    for config in marketplaces.configs():
        last = fetched.get(config.slug)
        age_hours = round((now - last).total_seconds() / 3600, 2) if last else None
        ages[config.slug] = age_hours
        if last is None:
            stale.append(config.slug)
            pages_at = pages_fetched.get(config.slug)
            lines.append(
                f"{config.slug}: never fetched"
                if pages_at is None
                else f"{config.slug}: no offers: fetched at "
                f"{pages_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC, but none of its records became "
                "an offer (rejected_products says why)"
            )
        elif now - last > FRESHNESS_MAX_AGE:
            stale.append(config.slug)
            lines.append(
                f"{config.slug}: last fetched {age_hours:.1f} h ago, at "
                f"{last.astimezone(UTC):%Y-%m-%d %H:%M} UTC (limit {limit_hours:g} h)"
            )
    return dg.AssetCheckResult(
        passed=not stale,
        severity=dg.AssetCheckSeverity.WARN,
        description="\n".join(lines)
        if lines
        else f"Every marketplace fetched within {limit_hours:g} h.",
        metadata={
            "age_hours": dg.MetadataValue.json(ages),
            "stale": dg.MetadataValue.json(stale),
            "max_age_hours": limit_hours,
        },
    )
