"""Search documents: one per offer, built from a warehouse `products` row.

The document shape is the contract in docs/data-contract.md. Money stays in integer minor units;
the USD price used for sorting and filtering is converted with the run's FX rates through
:func:`onecart.money.convert_minor`, never through floats.
"""

from __future__ import annotations

import hashlib
import json
import re
from array import array
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, Inexact, localcontext
from fractions import Fraction
from typing import Any, Final, TypedDict

from onecart.money import MoneyError, convert_minor, currency_exponent

USD: Final = "USD"
DESCRIPTION_MAX_CHARS: Final = 1_000
# Meilisearch accepts ids up to 511 bytes; stay well below so a suffix always fits.
DOCUMENT_ID_MAX_CHARS: Final = 400
# Fields that are not part of the indexed content hash (the hash itself).
DOCUMENT_HASH_FIELD: Final = "doc_hash"
# Meilisearch's field for user-provided embeddings: {"<embedder>": [floats] | None}.
VECTORS_FIELD: Final = "_vectors"

_UNSAFE_ID_CHARS = re.compile(r"[^A-Za-z0-9_-]")


class DocumentError(ValueError):
    """An offer that cannot become a search document (for example, no FX rate for its currency).

    The pipeline quarantines the offer with this message rather than indexing a wrong price.
    """


class OfferDocument(TypedDict, total=False):
    """The offers index's document: one per offer (docs/data-contract.md).

    The one typed shape the site (product page, home page) and the assistant read; money in
    integer minor units, `price_usd_minor` on the index's one sortable price scale.
    """

    id: str
    marketplace: str
    marketplace_name: str
    marketplace_logo: str | None
    external_id: str
    title: str | None
    description: str | None
    brand: str | None
    model: str | None
    category: str | None
    image_url: str | None
    product_url: str | None
    price_minor: int
    currency: str
    price_usd_minor: int
    rating: float | None
    rating_count: int | None
    available: bool
    gtin: str | None
    group_id: str | None
    group_size: int
    group_marketplaces: int
    group_available: int
    group_available_marketplaces: int
    group_min_price_usd_minor: int
    previous_price_minor: int | None
    price_dropped_at: int | None
    updated_at: int | None
    content_hash: str | None
    doc_hash: str


# Every field of an offer document, in the contract's order (attributesToRetrieve lists).
OFFER_FIELDS: Final = tuple(name for name in OfferDocument.__annotations__ if name != "doc_hash")


def document_id(marketplace: str, external_id: str) -> str:
    """The document id `<marketplace>--<external_id>`, safe for Meilisearch and unique.

    Meilisearch ids allow only [A-Za-z0-9_-]; other characters become `_`. Because two external
    ids can collapse onto the same replacement ("a/b" and "a.b"), a short hash of the original
    pair is appended whenever anything was replaced or shortened.
    """
    raw = f"{marketplace}--{external_id}"
    safe = _UNSAFE_ID_CHARS.sub("_", raw)
    if safe == raw and len(safe) <= DOCUMENT_ID_MAX_CHARS:
        return safe
    suffix = hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    return f"{safe[:DOCUMENT_ID_MAX_CHARS]}-{suffix}"


def convert_to_usd_minor(minor: int, currency: str, fx_usd_rates: Mapping[str, Decimal]) -> int:
    """Convert `minor` units of `currency` into US cents with the run's rates, exactly.

    `fx_usd_rates[currency]` is units of `currency` per 1 USD (the warehouse's `fx_rates`, base
    USD), so the rate :func:`convert_minor` needs is its reciprocal. When that reciprocal is a
    terminating decimal (0.80 EUR per USD → 1.25) :func:`convert_minor` does the work. When it is
    not (0.92 → 1.0869…), any rounded reciprocal can push an exact midpoint the wrong way (3 JPY
    at 600 per USD is exactly half a cent), so the quotient is computed as an exact fraction and
    rounded half-even once, the same rule :func:`convert_minor` applies.
    """
    if currency == USD:
        return minor
    try:
        exponent = currency_exponent(currency)
    except MoneyError as exc:
        raise DocumentError(str(exc)) from exc
    rate = fx_usd_rates.get(currency)
    if rate is None:
        raise DocumentError(f"no USD exchange rate for {currency}")
    if not isinstance(rate, Decimal):
        # Rates arrive as DECIMAL from DuckDB; anything else (a float) would be inexact.
        raise DocumentError(f"exchange rate for {currency} must be a Decimal, got {rate!r}")
    if not rate.is_finite() or rate <= 0:
        raise DocumentError(f"exchange rate for {currency} must be positive, got {rate}")
    usd_per_unit = _exact_reciprocal(rate)
    if usd_per_unit is not None:
        with localcontext() as context:
            context.prec = 100  # the product of two exact decimals stays exact
            return convert_minor(minor, currency, USD, usd_per_unit)
    cents = Fraction(minor) * 10 ** (currency_exponent(USD) - exponent) / Fraction(rate)
    return round(cents)  # Fraction.__round__ rounds half to even, exactly


def _exact_reciprocal(rate: Decimal) -> Decimal | None:
    """1 / rate when it is a terminating decimal, else None."""
    with localcontext() as context:
        context.prec = 100
        context.traps[Inexact] = True
        try:
            return Decimal(1) / rate
        except Inexact:
            return None


def build_document(
    offer_row: Mapping[str, Any],
    *,
    marketplace: Mapping[str, Any],
    group: Mapping[str, Any] | None,
    fx_usd_rates: Mapping[str, Decimal],
    history: Mapping[str, Any] | None,
) -> OfferDocument:
    """Build the contract's search document for one offer.

    - `offer_row`: a warehouse `products` row (marketplace, external_id, title, price_minor,
      currency, rating, updated_at, content_hash, ...).
    - `marketplace`: its configuration (`slug`, `name`, `logo` or `logo_url`).
    - `group`: the offer's product group: `group_id`, `group_size` (or `offer_count`),
      `group_marketplaces` (or `marketplace_count`), `group_available` and
      `group_available_marketplaces` (the offers in stock and their marketplaces; as many as
      the group's when not given), `group_min_price_usd_minor` (or
      `min_price_usd_minor`), counted over the enabled marketplaces' offers only
      (GroupSummary.as_group); None for an ungrouped offer, which then stands alone.
    - `fx_usd_rates`: units of each currency per 1 USD, as Decimals.
    - `history`: `previous_price_minor` (last different price) and `price_dropped_at`, or None.

    The result also carries `doc_hash`, a hash over every other field, so the indexer can send
    only documents whose indexed content changed (a new group or FX rate counts, not only a new
    catalog row).
    """
    slug = _required_text(offer_row, "marketplace")
    external_id = _required_text(offer_row, "external_id")
    currency = _required_text(offer_row, "currency")
    price_minor = _required_int(offer_row, "price_minor")
    price_usd_minor = convert_to_usd_minor(price_minor, currency, fx_usd_rates)

    document: OfferDocument = {
        "id": document_id(slug, external_id),
        "marketplace": slug,
        "marketplace_name": marketplace.get("name") or slug,
        "marketplace_logo": _first_present(marketplace, "logo", "logo_url"),
        "external_id": external_id,
        "title": offer_row.get("title"),
        "description": _truncate(offer_row.get("description"), DESCRIPTION_MAX_CHARS),
        "brand": offer_row.get("brand"),
        "model": offer_row.get("model"),
        "category": offer_row.get("category"),
        "image_url": offer_row.get("image_url"),
        "product_url": offer_row.get("product_url"),
        "price_minor": price_minor,
        "currency": currency,
        "price_usd_minor": price_usd_minor,
        "rating": _rating(offer_row.get("rating")),
        "rating_count": _optional_int(offer_row.get("rating_count"), "rating_count"),
        "available": bool(offer_row.get("available")),
        "gtin": offer_row.get("gtin"),
        **group_fields(group, price_usd_minor),
        "previous_price_minor": _optional_int(
            history.get("previous_price_minor") if history else None, "previous_price_minor"
        ),
        "price_dropped_at": _unix_seconds(history.get("price_dropped_at") if history else None),
        "updated_at": _unix_seconds(offer_row.get("updated_at")),
        "content_hash": offer_row.get("content_hash"),
    }
    document[DOCUMENT_HASH_FIELD] = compute_document_hash(document)
    return document


def group_fields(group: Mapping[str, Any] | None, price_usd_minor: int) -> dict[str, Any]:
    """What an offer document says of its product group (`group` as build_document takes it):
    its id, its offers and marketplaces (an ungrouped offer, or a group with no offer counted,
    is a group of one) and its cheapest USD price (the offer's own when the group has none)."""
    group_min = _first_present(group, "group_min_price_usd_minor", "min_price_usd_minor")
    size = _group_count(group, "group_size", "offer_count")
    marketplaces = _group_count(group, "group_marketplaces", "marketplace_count")
    available = _optional_int(_first_present(group, "group_available"), "group_available")
    available_marketplaces = _optional_int(
        _first_present(group, "group_available_marketplaces"), "group_available_marketplaces"
    )
    return {
        "group_id": group.get("group_id") if group else None,
        "group_size": size,
        "group_marketplaces": marketplaces,
        # What "N offers on M marketplaces" counts (search_index.listings.offers_summary).
        "group_available": size if available is None else available,
        "group_available_marketplaces": (
            marketplaces if available_marketplaces is None else available_marketplaces
        ),
        "group_min_price_usd_minor": (
            _optional_int(group_min, "group_min_price_usd_minor")
            if group_min is not None
            else price_usd_minor
        ),
    }


@dataclass(frozen=True, slots=True)
class GroupSummary:
    """A product group as its offer documents describe it, over the offers that count (those of
    the enabled marketplaces): how many, on how many marketplaces, and the cheapest USD price
    among the available ones (among all of them when none is available); and of them, how many
    are in stock, on how many marketplaces."""

    size: int
    marketplaces: int
    min_price_usd_minor: int
    available: int
    available_marketplaces: int

    def as_group(self, group_id: str) -> dict[str, Any]:
        """The `group` mapping of build_document and group_fields."""
        return {
            "group_id": group_id,
            "group_size": self.size,
            "group_marketplaces": self.marketplaces,
            "group_available": self.available,
            "group_available_marketplaces": self.available_marketplaces,
            "group_min_price_usd_minor": self.min_price_usd_minor,
        }


def summarize_groups(
    offers: Iterable[tuple[str | None, str, int | None, bool]],
) -> dict[str, GroupSummary]:
    """GroupSummary per group id of `offers`, given as (group id, marketplace, USD price or None
    when it cannot be converted, available): the offers that count, ungrouped ones ignored, and
    so are offers without a USD price, which become no document (build_document). The pipeline
    (from warehouse rows) and the marketplace-visibility job (from offer documents) both
    summarize with this, so their documents agree, and agree with the product documents."""
    # One small list per group while counting ([offers, marketplaces as a bit mask, cheapest,
    # cheapest available or None, offers available, their marketplaces as a bit mask]), turned
    # into its GroupSummary in place: a million offers'
    # groups held in four dictionaries and a set per group made the pipeline's search step peak
    # ~250 MB higher (bench/RESULTS.md).
    bits: dict[str, int] = {}
    tallies: dict[str, Any] = {}
    for group_id, marketplace, usd, available in offers:
        if group_id is None or usd is None:
            continue
        bit = bits.setdefault(marketplace, 1 << len(bits))
        tally = tallies.get(group_id)
        if tally is None:
            tallies[group_id] = (
                [1, bit, usd, usd, 1, bit] if available else [1, bit, usd, None, 0, 0]
            )
            continue
        tally[0] += 1
        tally[1] |= bit
        if usd < tally[2]:
            tally[2] = usd
        if available:
            if tally[3] is None or usd < tally[3]:
                tally[3] = usd
            tally[4] += 1
            tally[5] |= bit
    for group_id, (
        size,
        mask,
        cheapest,
        cheapest_available,
        stocked,
        stocked_mask,
    ) in tallies.items():
        tallies[group_id] = GroupSummary(
            size=size,
            marketplaces=mask.bit_count(),
            min_price_usd_minor=cheapest if cheapest_available is None else cheapest_available,
            available=stocked,
            available_marketplaces=stocked_mask.bit_count(),
        )
    return tallies


def compute_document_hash(document: Mapping[str, Any]) -> str:
    """A hash of every indexed field (all but `doc_hash` itself), stable across key order.

    Embeddings count through a digest of their exact float values: a changed vector is a changed
    document, without serializing hundreds of floats as JSON for every offer.
    """
    content = {key: value for key, value in document.items() if key != DOCUMENT_HASH_FIELD}
    if VECTORS_FIELD in content:
        content[VECTORS_FIELD] = _vectors_digest(content[VECTORS_FIELD])
    canonical = json.dumps(
        content, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    )
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _vectors_digest(vectors: Any) -> Any:
    if not isinstance(vectors, Mapping):
        return vectors
    return {
        name: (
            None
            if vector is None
            else hashlib.sha256(array("d", vector).tobytes()).hexdigest()[:32]
        )
        for name, vector in vectors.items()
    }


def _first_present(source: Mapping[str, Any] | None, *keys: str) -> Any:
    if not source:
        return None
    for key in keys:
        value = source.get(key)
        if value is not None:
            return value
    return None


def _group_count(group: Mapping[str, Any] | None, *keys: str) -> int:
    """A group's offer or marketplace count; an ungrouped offer is a group of one."""
    count = _optional_int(_first_present(group, *keys), keys[0])
    return count if count and count > 0 else 1


def _required_text(row: Mapping[str, Any], key: str) -> str:
    value = row.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise DocumentError(f"offer has no {key}")
    return str(value)


def _required_int(row: Mapping[str, Any], key: str) -> int:
    value = _optional_int(row.get(key), key)
    if value is None:
        raise DocumentError(f"offer has no {key}")
    return value


def _optional_int(value: Any, key: str) -> int | None:
    """Integers pass; integral Decimals (DuckDB BIGINT/HUGEINT) are accepted; floats are not."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise DocumentError(f"{key} must be an integer, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, Decimal) and value == value.to_integral_value():
        return int(value)
    raise DocumentError(f"{key} must be an integer, got {value!r}")


def _truncate(text: Any, limit: int) -> str | None:
    if text is None:
        return None
    text = str(text)
    return text if len(text) <= limit else text[:limit]


def _rating(value: Any) -> float | None:
    """Ratings are scores, not money: a float with two decimals keeps them filterable."""
    if value is None:
        return None
    rating = round(float(Decimal(str(value))), 2)
    if not 0 <= rating <= 5:
        raise DocumentError(f"rating must be between 0 and 5, got {value!r}")
    return rating


def _unix_seconds(value: Any) -> int | None:
    """Timestamps as integer unix seconds; naive datetimes are taken to be UTC."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise DocumentError(f"not a timestamp: {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return int(moment.timestamp())
    if isinstance(value, date):
        return int(datetime(value.year, value.month, value.day, tzinfo=UTC).timestamp())
    if isinstance(value, str):
        try:
            return _unix_seconds(datetime.fromisoformat(value))
        except ValueError as exc:
            raise DocumentError(f"not a timestamp: {value!r}") from exc
    raise DocumentError(f"not a timestamp: {value!r}")
