"""Turning a marketplace's raw records into the `products` and `rejected_products` frames.

Pure logic, no database: the adapter's `normalize_record` is passed in. Every raw record ends up
in exactly one of the two frames, so nothing is silently dropped: a record the adapter cannot read
is quarantined with its reason, a repeated external id is quarantined as `duplicate_external_id`,
and a bug in an adapter quarantines the record (`bad_record`) instead of failing the marketplace.

The first record that names an external id claims it, whether it becomes an offer or is
quarantined: a later record repeating the id is another product listed under it (the
marketplace's own lookup of the id answers with the first one), so it never stands in for a
quarantined first record (a speaker with a broken title became the coffee machine repeating
its id, and price history showed a -68% drop; bench/RESULTS.md, ops QA pass 2).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any, TypeGuard

import polars as pl

from adapters.base import BadPayload, Offer
from adapters.gtin import normalize_gtin
from onecart.money import is_iso_currency
from warehouse.categories import canonical_category, category_mapping

REASON_DUPLICATE = "duplicate_external_id"
REASON_BAD_RECORD = "bad_record"
REASON_NON_POSITIVE_PRICE = "non_positive_price"
REASON_UNKNOWN_CURRENCY = "unknown_currency"
REASON_INVALID_JSON = "invalid_json"


def duplicate_detail(
    external_id: str, page: int, record_index: int, payload_hash: str, first_reason: str | None
) -> str:
    """The detail of a `duplicate_external_id` rejection: where the first record naming the id
    is (raw_catalog's page, record_index and payload_hash, also in product_sources or
    rejected_products) and what became of it (`first_reason` None: it is the offer kept), so
    a data engineer finds both records."""
    outcome = "kept as the offer" if first_reason is None else f"quarantined as {first_reason}"
    return (
        f"external id {external_id!r} already read earlier in this catalog; the first record "
        f"naming it is at page {page}, record_index {record_index} (payload_hash "
        f"{payload_hash}): {outcome}"
    )


# The one declared schema of the products table (same column order as warehouse/sql/schema.sql).
PRODUCTS_SCHEMA = pl.Schema(
    {
        "marketplace": pl.String,
        "external_id": pl.String,
        "title": pl.String,
        "description": pl.String,
        "price_minor": pl.Int64,
        "currency": pl.String,
        "image_url": pl.String,
        "product_url": pl.String,
        "category": pl.String,
        "brand": pl.String,
        "model": pl.String,
        "gtin": pl.String,
        "mpn": pl.String,
        "sku": pl.String,
        "rating": pl.Decimal(3, 2),
        "rating_count": pl.Int32,
        "available": pl.Boolean,
        "stock": pl.Int32,
        "content_hash": pl.String,
        "first_seen_at": pl.Datetime("us", "UTC"),
        "updated_at": pl.Datetime("us", "UTC"),
        "fetched_at": pl.Datetime("us", "UTC"),
        # The category as the marketplace wrote it; `category` holds its canonical display name.
        "category_raw": pl.String,
    }
)

# A raw record's GTIN claim (gtin_claims.claim): none, a GTIN passing its checksum, one failing it.
GTIN_NO_CLAIM, GTIN_VALID, GTIN_INVALID = 0, 1, 2

REJECTED_SCHEMA = pl.Schema(
    {
        "marketplace": pl.String,
        "external_id": pl.String,
        "reason": pl.String,
        "detail": pl.String,
        "payload": pl.String,
        "rejected_at": pl.Datetime("us", "UTC"),
        "run_id": pl.String,
        # Where the record sat in the catalog, and the SHA-256 of its payload as stored in
        # raw_catalog (record_hash): a refresh re-reads only records whose payload is new.
        "page": pl.Int32,
        "record_index": pl.Int32,
        "payload_hash": pl.String,
    }
)

# Fields of an offer that define its content: a change in any of them is an update.
CONTENT_FIELDS: tuple[str, ...] = (
    "title",
    "description",
    "price_minor",
    "currency",
    "image_url",
    "product_url",
    "category",
    "brand",
    "model",
    "gtin",
    "mpn",
    "sku",
    "rating",
    "rating_count",
    "available",
    "stock",
)

# Keys under which marketplaces put a GTIN (Shopify barcode, DummyJSON meta.barcode, Google feed
# g:gtin, EAN/UPC fields of JSON APIs).
GTIN_KEYS = frozenset(
    {"gtin", "gtin8", "gtin12", "gtin13", "gtin14", "ean", "ean13", "upc", "barcode", "isbn"}
)
_MAX_GTIN_SEARCH_DEPTH = 4
# Keys holding a list of GTINs, as Amazon's Creators API writes them
# (itemInfo.externalIds.eans.displayValues): the adapter takes the first valid EAN, else UPC.
LISTED_GTIN_KEYS = frozenset({"eans", "upcs"})


@dataclass(frozen=True, slots=True)
class RawRecord:
    """One stored raw record: its JSON text and where and when it was fetched."""

    page: int
    record_index: int
    payload: str
    fetched_at: datetime


@dataclass(frozen=True, slots=True)
class PreviousOffer:
    """What the warehouse knew about an offer before this run."""

    content_hash: str
    first_seen_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class NormalizedCatalog:
    """The outcome of normalizing one marketplace's raw records."""

    products: pl.DataFrame
    rejected: pl.DataFrame
    raw_records: int
    new_offers: int
    changed_offers: int
    removed_offers: int
    gtin_claimed: int
    gtin_invalid: int
    content_fingerprint: str
    # (external_id, page, record_index, payload_hash) of every product; the payload hashes read
    # (None: every record) and the pages those records sat on.
    sources: pl.DataFrame | None = None
    # (payload_hash, claim) of every payload read: GTIN_NO_CLAIM, GTIN_VALID or GTIN_INVALID.
    gtin_claims: pl.DataFrame | None = None
    read_hashes: tuple[str, ...] | None = None
    pages: tuple[int, ...] | None = None

    @property
    def rejected_by_reason(self) -> dict[str, int]:
        """Rejected record counts per reason, most frequent first."""
        counts = Counter(self.rejected.get_column("reason").to_list())
        return dict(counts.most_common())


def content_hash(offer: Offer) -> str:
    """A fingerprint of everything shoppers see of an offer (not when it was fetched).

    Same digest as normalize_catalog stores: the category counts by its canonical name.
    """
    row = offer.as_row()
    row["category"] = canonical_category(offer.category)
    return _content_hash_of_row(row)


# Content hashes hash a canonical text: every content field in CONTENT_FIELDS order, separated
# by U+001F, None as U+001E, booleans as true/false, the rating with two decimals. The same text is
# built by content_text_expression for a whole frame (warehouse/normalize.py hashes it in DuckDB).
_FIELD_SEPARATOR = "\x1f"
_NONE_MARK = "\x1e"


def _canonical(value: Any, name: str) -> str:
    if value is None:
        return _NONE_MARK
    if isinstance(value, bool):
        return "true" if value else "false"
    if name == "rating":
        return f"{Decimal(str(value)):.2f}"
    return str(value)


def _content_hash_of_row(row: Mapping[str, Any]) -> str:
    # normalize_catalog already holds the offer's row: building it once per record matters at
    # a million records.
    text = _FIELD_SEPARATOR.join(_canonical(row[name], name) for name in CONTENT_FIELDS)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def content_text_expression() -> pl.Expr:
    """The canonical text content_hash hashes, for every row of a products-shaped frame."""
    parts = []
    for name in CONTENT_FIELDS:
        column = pl.col(name)
        if name == "rating":
            column = column.cast(pl.Decimal(3, 2))
        parts.append(column.cast(pl.String).fill_null(_NONE_MARK))
    return pl.concat_str(parts, separator=_FIELD_SEPARATOR)


_NOT_MAPPINGS = (str, int, float, list, type(None))


def _is_mapping(value: object) -> TypeGuard[Mapping[Any, Any]]:
    # json.loads gives dicts, which answer at C speed; the ABC check (slow: it dominated
    # claimed_gtin's profile at 1M records) is left for the rare other Mapping.
    return isinstance(value, dict) or (
        not isinstance(value, _NOT_MAPPINGS) and isinstance(value, Mapping)
    )


@lru_cache(maxsize=4096)
def _field_name(key: str) -> str:
    """A record key without its XML namespace or prefix, lower-cased (`{ns}gtin`, `g:GTIN`)."""
    return key.rsplit("}", 1)[-1].rsplit(":", 1)[-1].lower()


def is_gtin_key(key: str) -> bool:
    """True for a record key claimed_gtin reads a GTIN from (`ean`, `g:gtin`, `{ns}UPC`…)."""
    return _field_name(key) in GTIN_KEYS


def claimed_gtin(record: object, _depth: int = 0) -> str | None:
    """The GTIN a raw record claims to have (under a GTIN-like key), valid or not.

    The adapters drop GTINs that fail the checksum; this finds the claim itself, so the pipeline
    can tell how many claims were bad.
    """
    if _depth > _MAX_GTIN_SEARCH_DEPTH:
        return None
    if _is_mapping(record):
        listed = _listed_gtins(record)
        if listed:
            return next((value for value in listed if normalize_gtin(value)), listed[0])
        for key, value in record.items():
            if (
                _field_name(str(key)) in GTIN_KEYS
                and value not in (None, "", 0)
                and not isinstance(value, dict | list)
            ):
                return str(value).strip() or None
        for value in record.values():
            if isinstance(value, list) or _is_mapping(value):
                found = claimed_gtin(value, _depth + 1)
                if found:
                    return found
    elif isinstance(record, list):
        for item in record[:5]:
            found = claimed_gtin(item, _depth + 1)
            if found:
                return found
    return None


def _listed_gtins(record: Mapping[Any, Any]) -> list[str]:
    """The GTINs listed under LISTED_GTIN_KEYS of this mapping (`{"eans": {"displayValues":
    [...]}}` or a plain list), EANs before UPCs as the Amazon adapter reads them."""
    found: list[str] = []
    for key in ("eans", "upcs"):
        value = record.get(key)
        if value is None:
            continue
        values = value.get("displayValues") if _is_mapping(value) else value
        if isinstance(values, list):
            found += [
                str(item).strip()
                for item in values
                if item not in (None, "", 0)
                and not isinstance(item, dict | list)
                and str(item).strip()
            ]
    return found


# json.dumps builds a new encoder on every call with these options; one does the same work.
_PAYLOAD_ENCODER = json.JSONEncoder(ensure_ascii=False, default=str)


def payload_bytes(record: object) -> bytes:
    """The UTF-8 bytes of payload_text(record), which record_hash hashes: a refresh hashes every
    record and decodes only the payloads it stores."""
    return _PAYLOAD_ENCODER.encode(record).encode("utf-8", errors="replace")


def payload_text(record: object) -> str:
    """A raw record as JSON text that UTF-8 can store (lone surrogates become U+FFFD)."""
    return payload_bytes(record).decode("utf-8")


def record_hash(payload: str) -> str:
    """SHA-256 (hex) of a raw record's stored JSON text: a refresh skips every record whose
    payload the warehouse already holds, wherever it now sits in the catalog."""
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def rejected_id(exc: BadPayload, record: object) -> str | None:
    """The external id a record the adapter rejected names: the one the adapter read it with,
    else a guess from its usual keys (the adapter failed on the id itself)."""
    return exc.external_id or external_id_of(record)


def external_id_of(record: object) -> str | None:
    """The id a raw record gives itself (id, external_id, sku or g:id), for naming a record that
    could not be normalized in its rejection."""
    if isinstance(record, Mapping):
        for key in ("id", "external_id", "sku", "g:id"):
            value = record.get(key)
            if value not in (None, ""):
                return str(value)
    return None


def normalize_catalog(
    marketplace: str,
    records: Iterable[RawRecord],
    normalize_record: Callable[[Mapping[str, Any]], Offer],
    previous: Mapping[str, PreviousOffer],
    *,
    now: datetime,
    run_id: str,
) -> NormalizedCatalog:
    """Normalize every raw record of one marketplace into products and rejected rows.

    Categories are mapped to their canonical display name (warehouse/categories.toml); the
    marketplace's own spelling is kept in category_raw.

    first_seen_at survives across runs; updated_at moves only when the content hash changes.
    """
    products: list[dict[str, Any]] = []
    rejected: list[dict[str, Any]] = []
    # Ids claimed by a record read so far (offer or quarantined): where that first record is and
    # why it was quarantined (None: the offer), its payload hashed only for a duplicate's detail;
    # and the offers' own ids.
    claimed: dict[str, tuple[int, int, str, str | None]] = {}
    offered: set[str] = set()
    categories = category_mapping()
    raw_count = gtin_claimed = gtin_invalid = new_offers = changed_offers = 0

    def reject(external_id: str | None, reason: str, detail: str, payload: str) -> None:
        if external_id is not None and external_id not in claimed:
            claimed[external_id] = (raw.page, raw.record_index, raw.payload, reason)
        rejected.append(
            {
                "marketplace": marketplace,
                "external_id": external_id,
                "reason": reason,
                "detail": detail[:1000],
                "payload": payload,
                "rejected_at": now,
                "run_id": run_id,
                "page": raw.page,
                "record_index": raw.record_index,
                "payload_hash": record_hash(raw.payload),
            }
        )

    for raw in records:
        raw_count += 1
        try:
            record = json.loads(raw.payload)
        except ValueError as exc:
            reject(None, REASON_INVALID_JSON, str(exc), json.dumps(raw.payload))
            continue
        claim = claimed_gtin(record)
        if claim is not None:
            gtin_claimed += 1
            if normalize_gtin(claim) is None:
                gtin_invalid += 1
        if not isinstance(record, Mapping):
            reject(None, REASON_BAD_RECORD, "record is not an object", raw.payload)
            continue
        try:
            offer = normalize_record(record)
        except BadPayload as exc:
            reject(rejected_id(exc, record), exc.reason, exc.detail or str(exc), raw.payload)
            continue
        except Exception as exc:  # an adapter bug must not lose the other records
            reject(
                external_id_of(record),
                REASON_BAD_RECORD,
                f"{type(exc).__name__}: {exc}",
                raw.payload,
            )
            continue
        first = claimed.get(offer.external_id)
        if first is not None:
            page, record_index, first_payload, first_reason = first
            reject(
                offer.external_id,
                REASON_DUPLICATE,
                duplicate_detail(
                    offer.external_id, page, record_index, record_hash(first_payload), first_reason
                ),
                raw.payload,
            )
            continue
        if offer.price_minor <= 0:
            reject(
                offer.external_id, REASON_NON_POSITIVE_PRICE, str(offer.price_minor), raw.payload
            )
            continue
        if not is_iso_currency(offer.currency):
            reject(offer.external_id, REASON_UNKNOWN_CURRENCY, str(offer.currency), raw.payload)
            continue
        claimed[offer.external_id] = (raw.page, raw.record_index, raw.payload, None)
        offered.add(offer.external_id)
        row = offer.as_row()
        # Shoppers see the canonical category, so that is what the content hash covers: a
        # mapping change reaches the search index like any other content change.
        row["category_raw"] = offer.category
        row["category"] = canonical_category(offer.category, categories)
        digest = _content_hash_of_row(row)
        before = previous.get(offer.external_id)
        if before is None:
            new_offers += 1
            first_seen_at, updated_at = now, now
        elif before.content_hash != digest:
            changed_offers += 1
            first_seen_at, updated_at = before.first_seen_at, now
        else:
            first_seen_at, updated_at = before.first_seen_at, before.updated_at
        row.update(
            marketplace=marketplace,
            rating=offer.rating,
            content_hash=digest,
            first_seen_at=first_seen_at,
            updated_at=updated_at,
            fetched_at=raw.fetched_at,
        )
        products.append({name: row[name] for name in PRODUCTS_SCHEMA.names()})

    products_frame = pl.DataFrame(products, schema=PRODUCTS_SCHEMA)
    rejected_frame = pl.DataFrame(rejected, schema=REJECTED_SCHEMA)
    fingerprint = hashlib.sha256(
        "\n".join(
            sorted(f"{row['external_id']}:{row['content_hash']}" for row in products)
        ).encode()
    ).hexdigest()
    return NormalizedCatalog(
        products=products_frame,
        rejected=rejected_frame,
        raw_records=raw_count,
        new_offers=new_offers,
        changed_offers=changed_offers,
        removed_offers=len(set(previous) - offered),
        gtin_claimed=gtin_claimed,
        gtin_invalid=gtin_invalid,
        content_fingerprint=fingerprint,
    )


def preview_markdown(frame: pl.DataFrame, columns: Iterable[str], *, rows: int = 10) -> str:
    """A small Markdown table of the first rows, for Dagster's asset metadata."""
    names = [c for c in columns if c in frame.columns]
    lines = ["| " + " | ".join(names) + " |", "|" + "---|" * len(names)]
    for record in frame.head(rows).select(names).iter_rows():
        cells = [str(value).replace("|", "\\|").replace("\n", " ")[:60] for value in record]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
