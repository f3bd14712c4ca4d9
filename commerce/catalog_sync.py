"""Copying the pipeline's catalog into the storefront DB (marketplaces, offers, FX rates, price
history), so carts and orders have rows to point at and the site never opens DuckDB.

Called by the pipeline's `storefront_products` asset after each run, and by `onecart up` (through
:func:`seed_marketplaces`). Portable SQL only (select-then-insert/update in batches), so the same
code runs on SQLite and PostgreSQL. Nothing is committed here: the caller commits, so a sync is
all-or-nothing.

Who owns which marketplace field (documented in the admin area too):
- marketplaces.toml owns the technical facts and refreshes them on every sync: kind, currency,
  country, rating, relation_identifier, capabilities, api_key_env (the last only while the row's
  base URL is on the file's host: the deployment's key never follows an admin's move).
- Admins own what they edit in /admin/marketplaces: name, description, api_base_url, logo,
  active and the API key. The config only fills these when the row is first created (and the API
  key when the row has none, the environment provides one and the row is on the file's host);
  later syncs never overwrite them.
- Marketplaces an admin added that are not in marketplaces.toml are left alone.

Offers are never deleted (carts and orders reference them). An offer missing from a complete
catalog of its marketplace gets `removed_at`; it is cleared when the offer comes back.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from adapters.base import Capability, MarketplaceConfig
from commerce.marketplace_access import url_origin
from commerce.models import FxRate, Marketplace, PricePoint, Product, utc_now
from commerce.secrets import encrypt_secret
from onecart.money import is_iso_currency

logger = logging.getLogger(__name__)

BATCH_SIZE = 1000
FX_BASE_CURRENCY = "USD"

# What each API format can do when its adapter module cannot tell us (not written yet, or broken).
DEFAULT_CAPABILITIES: Mapping[str, tuple[Capability, ...]] = {
    "shopify": (Capability.CATALOG, Capability.LIVE_OFFER, Capability.ORDER, Capability.TRACK,
                Capability.CANCEL),
    "woocommerce": (Capability.CATALOG, Capability.LIVE_OFFER, Capability.ORDER, Capability.TRACK,
                    Capability.CANCEL),
    "dummyjson": (Capability.CATALOG, Capability.LIVE_SEARCH, Capability.LIVE_OFFER,
                  Capability.ORDER),
    "fakestore": (Capability.CATALOG, Capability.LIVE_OFFER, Capability.ORDER),
    "google_feed": (Capability.CATALOG,),
    "declarative": (Capability.CATALOG,),
}  # fmt: skip

# Offer fields copied verbatim (after type checks) from the pipeline's products rows.
_TEXT_FIELDS = ("title", "description", "image_url", "product_url", "category", "brand", "model",
                "gtin", "mpn")  # fmt: skip
_COMPARED_FIELDS = (*_TEXT_FIELDS, "price_minor", "currency", "rating", "rating_count",
                    "available", "stock", "relation_token", "match_method", "match_confidence")  # fmt: skip
_TEXT_LIMITS = {"title": 300, "image_url": 1000, "product_url": 1000, "category": 200,
                "brand": 120, "model": 120, "gtin": 14, "mpn": 120}  # fmt: skip

GroupKey = tuple[str, str]
GroupAssignment = tuple[str, str, Decimal | float | str | None]


@dataclass(frozen=True, slots=True)
class SkippedRow:
    """A row the sync could not use, with the reason (reported, never silently dropped)."""

    kind: str
    key: str
    reason: str


@dataclass(slots=True)
class SyncReport:
    """What one sync changed; the pipeline logs it as the asset's metadata."""

    marketplaces_created: int = 0
    marketplaces_updated: int = 0
    products_inserted: int = 0
    products_updated: int = 0
    products_unchanged: int = 0
    products_removed: int = 0
    products_restored: int = 0
    products_ungrouped: int = 0
    fx_rates_upserted: int = 0
    price_points_inserted: int = 0
    skipped: list[SkippedRow] = field(default_factory=list)

    def as_metadata(self) -> dict[str, int]:
        """Counts only, for Dagster metadata and logs."""
        counts = {name: getattr(self, name) for name in self.__slots__ if name != "skipped"}
        counts["skipped"] = len(self.skipped)
        return counts


# --- Marketplaces ---------------------------------------------------------------------------


def capabilities_for_kind(kind: str) -> list[str]:
    """The capabilities the adapter for `kind` declares (class attribute `capabilities`), or the
    documented defaults of its API format when the adapter cannot be imported."""
    from adapters.registry import ADAPTER_KINDS

    declared: Iterable[Capability] | None = None
    target = ADAPTER_KINDS.get(kind)
    if target is not None:
        module_name, class_name = target.split(":")
        try:
            adapter_class = getattr(importlib.import_module(module_name), class_name)
            declared = getattr(adapter_class, "capabilities", None)
        except (ImportError, AttributeError):
            declared = None
    if not isinstance(declared, (set, frozenset, list, tuple)):
        declared = DEFAULT_CAPABILITIES.get(kind, (Capability.CATALOG,))
    order = list(Capability)
    return [cap.value for cap in sorted({Capability(c) for c in declared}, key=order.index)]


def capabilities_for_config(config: MarketplaceConfig) -> list[str]:
    """The capabilities of the adapter `config` configures: read from the adapter instance,
    since a format may set them per configuration (the declarative adapter orders only with an
    `orders` table: adapters/declarative.py). A configuration the adapter refuses (a declarative
    marketplace marketplaces.toml does not describe) gets its format's declared capabilities
    (capabilities_for_kind), which never include ordering where the configuration would."""
    from adapters.registry import build_adapter

    try:
        adapter = build_adapter(config)
    except Exception as exc:  # any refusal: the format's declared capabilities
        logger.warning("marketplace %s: capabilities of its format (%s)", config.slug, exc)
        return capabilities_for_kind(config.kind)
    try:
        declared = getattr(adapter, "capabilities", None)
    finally:
        close = getattr(adapter, "close", None)
        if callable(close):
            close()
    if not isinstance(declared, (set, frozenset, list, tuple)):
        return capabilities_for_kind(config.kind)
    order = list(Capability)
    return [cap.value for cap in sorted({Capability(c) for c in declared}, key=order.index)]


def _apply_config_owned_fields(
    marketplace: Marketplace, config: MarketplaceConfig, *, moved: bool = False
) -> bool:
    """Refresh what marketplaces.toml owns. A row an admin `moved` to another host than the
    file's gets no key variable: the file's key goes only to the file's host."""
    values = {
        "kind": config.kind,
        "currency": config.currency,
        "country": config.country[:2],
        "rating": config.rating.quantize(Decimal("0.01")) if config.rating is not None else None,
        "relation_identifier": config.match_identifier,
        "capabilities": capabilities_for_config(config),
        "api_key_env": None if moved else config.api_key_env,
    }
    changed = False
    for name, value in values.items():
        if getattr(marketplace, name) != value:
            setattr(marketplace, name, value)
            changed = True
    return changed


def seed_marketplaces(session: Session, configs: Sequence[MarketplaceConfig]) -> SyncReport:
    """Create marketplaces from marketplaces.toml and refresh the fields the config owns.

    Admin-owned fields (name, description, api_base_url, logo, active, API key) are only set when
    the row is created; see the module docstring.
    """
    report = SyncReport()
    existing = {m.slug: m for m in session.scalars(sa.select(Marketplace))}
    for config in configs:
        marketplace = existing.get(config.slug)
        if marketplace is None:
            marketplace = Marketplace(
                slug=config.slug,
                name=config.name,
                api_base_url=config.base_url,
                description=config.description,
                logo=config.logo,
                active=config.active,
                api_key_encrypted=encrypt_secret(config.api_key) if config.api_key else None,
            )
            _apply_config_owned_fields(marketplace, config)
            session.add(marketplace)
            existing[config.slug] = marketplace
            report.marketplaces_created += 1
            continue
        moved = url_origin(marketplace.api_base_url) != url_origin(config.base_url)
        changed = _apply_config_owned_fields(marketplace, config, moved=moved)
        if not moved and not marketplace.api_key_encrypted and config.api_key:
            marketplace.api_key_encrypted = encrypt_secret(config.api_key)
            changed = True
        if changed:
            report.marketplaces_updated += 1
    session.flush()
    return report


# --- Offers ---------------------------------------------------------------------------------


def _as_utc(value: object) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        raise ValueError(f"not a timestamp: {value!r}")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _as_decimal(value: object, places: str = "0.01") -> Decimal | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError(f"not a number: {value!r}")
    text = repr(value) if isinstance(value, float) else str(value)
    try:
        number = Decimal(text)
    except InvalidOperation as exc:
        raise ValueError(f"not a number: {value!r}") from exc
    if not number.is_finite():
        raise ValueError(f"not a finite number: {value!r}")
    return number.quantize(Decimal(places))


def _as_optional_int(value: object) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"not an integer: {value!r}")
    return int(value)


def _offer_values(offer: Mapping[str, Any], group: GroupAssignment | None) -> dict[str, Any]:
    """The product columns for one pipeline row; ValueError names what is wrong."""
    price_minor = offer.get("price_minor")
    if isinstance(price_minor, bool) or not isinstance(price_minor, int) or price_minor <= 0:
        raise ValueError(f"price_minor must be a positive integer, got {price_minor!r}")
    currency = offer.get("currency")
    if not is_iso_currency(currency):
        raise ValueError(f"unknown currency {currency!r}")
    title = (offer.get("title") or "").strip()
    if not title:
        raise ValueError("missing title")
    values: dict[str, Any] = {}
    for name in _TEXT_FIELDS:
        raw = offer.get(name)
        text = None if raw is None else str(raw)
        if text is not None and name in _TEXT_LIMITS:
            text = text[: _TEXT_LIMITS[name]]
        values[name] = text
    values["title"] = title[: _TEXT_LIMITS["title"]]
    values["description"] = values["description"] or ""
    rating = _as_decimal(offer.get("rating"))
    if rating is not None and not Decimal(0) <= rating <= Decimal(5):
        rating = None
    values.update(
        price_minor=price_minor,
        currency=currency,
        rating=rating,
        rating_count=_as_optional_int(offer.get("rating_count")),
        available=bool(offer.get("available", True)),
        stock=_as_optional_int(offer.get("stock")),
    )
    if group is not None:
        group_id, method, confidence = group
        values.update(
            relation_token=group_id,
            match_method=method,
            match_confidence=_as_decimal(confidence),
        )
    else:
        values.update(relation_token=None, match_method=None, match_confidence=None)
    return values


def _batched(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _upsert_offer_batch(
    session: Session,
    marketplace_ids: Mapping[str, int],
    batch: list[tuple[str, str, dict[str, Any]]],
    report: SyncReport,
    now: datetime,
) -> None:
    by_marketplace: dict[int, list[str]] = {}
    for slug, external_id, _values in batch:
        by_marketplace.setdefault(marketplace_ids[slug], []).append(external_id)
    existing: dict[tuple[int, str], Product] = {}
    for marketplace_id, external_ids in by_marketplace.items():
        rows = session.scalars(
            sa.select(Product).where(
                Product.marketplace_id == marketplace_id, Product.external_id.in_(external_ids)
            )
        )
        existing.update({(row.marketplace_id, row.external_id): row for row in rows})
    inserts: list[dict[str, Any]] = []
    for slug, external_id, values in batch:
        product = existing.get((marketplace_ids[slug], external_id))
        if product is None:
            inserts.append(
                {
                    **values,
                    "marketplace_id": marketplace_ids[slug],
                    "external_id": external_id,
                    "created_at": now,
                    "updated_at": now,
                    "removed_at": None,
                }
            )
            continue
        changed = False
        for name in _COMPARED_FIELDS:
            if getattr(product, name) != values[name]:
                setattr(product, name, values[name])
                changed = True
        if product.removed_at is not None:
            product.removed_at = None
            report.products_restored += 1
            changed = True
        if changed:
            product.updated_at = now
            report.products_updated += 1
        else:
            report.products_unchanged += 1
    if inserts:
        session.execute(sa.insert(Product), inserts)
        report.products_inserted += len(inserts)
    session.flush()


def _mark_removed_offers(
    session: Session,
    marketplace_id: int,
    seen_external_ids: set[str],
    report: SyncReport,
    now: datetime,
) -> None:
    current = session.execute(
        sa.select(Product.id, Product.external_id).where(
            Product.marketplace_id == marketplace_id, Product.removed_at.is_(None)
        )
    ).all()
    gone = [
        product_id for product_id, external_id in current if external_id not in seen_external_ids
    ]
    for batch in _batched(gone, BATCH_SIZE):
        session.execute(
            sa.update(Product).where(Product.id.in_(batch)).values(removed_at=now, updated_at=now)
        )
    report.products_removed += len(gone)


# --- FX rates and price history ---------------------------------------------------------------


def _sync_fx_rates(
    session: Session, fx_rates: Iterable[Mapping[str, Any]], report: SyncReport
) -> None:
    existing = {rate.currency: rate for rate in session.scalars(sa.select(FxRate))}
    latest: dict[str, tuple[Decimal, date, str]] = {}
    for row in fx_rates:
        currency = row.get("currency")
        key = f"{row.get('base', FX_BASE_CURRENCY)}->{currency}"
        try:
            if row.get("base", FX_BASE_CURRENCY) != FX_BASE_CURRENCY:
                raise ValueError(f"base must be {FX_BASE_CURRENCY}")
            if not is_iso_currency(currency):
                raise ValueError(f"unknown currency {currency!r}")
            rate = _as_decimal(row.get("rate"), "0.00000001")
            if rate is None or rate <= 0:
                raise ValueError(f"rate must be positive, got {row.get('rate')!r}")
            as_of = row.get("as_of")
            if isinstance(as_of, datetime):
                as_of = as_of.date()
            elif isinstance(as_of, str):
                as_of = date.fromisoformat(as_of)
            if not isinstance(as_of, date):
                raise ValueError(f"as_of must be a date, got {as_of!r}")
        except ValueError as exc:
            report.skipped.append(SkippedRow("fx_rate", key, str(exc)))
            continue
        previous = latest.get(currency)
        if previous is None or as_of >= previous[1]:
            latest[currency] = (rate, as_of, str(row.get("source") or "")[:80])
    for currency, (rate, as_of, source) in latest.items():
        current = existing.get(currency)
        if current is None:
            session.add(FxRate(currency=currency, rate=rate, as_of=as_of, source=source))
        elif current.as_of > as_of:
            continue  # never replace a newer rate with an older one
        elif (current.rate, current.as_of, current.source) != (rate, as_of, source):
            current.rate, current.as_of, current.source = rate, as_of, source
        else:
            continue
        report.fx_rates_upserted += 1
    session.flush()


def _sync_price_points(
    session: Session,
    marketplace_ids: Mapping[str, int],
    price_points: Iterable[Mapping[str, Any]],
    report: SyncReport,
) -> None:
    """Insert the points newer than the newest one already stored for each offer."""
    latest_seen: dict[int, datetime] = {
        product_id: _as_utc(observed_at)  # type: ignore[misc]
        for product_id, observed_at in session.execute(
            sa.select(PricePoint.product_id, sa.func.max(PricePoint.observed_at)).group_by(
                PricePoint.product_id
            )
        )
    }
    product_ids: dict[tuple[int, str], int] = {}
    for marketplace_id in set(marketplace_ids.values()):
        for product_id, external_id in session.execute(
            sa.select(Product.id, Product.external_id).where(
                Product.marketplace_id == marketplace_id
            )
        ):
            product_ids[(marketplace_id, external_id)] = product_id
    pending: dict[tuple[int, datetime], dict[str, Any]] = {}
    for row in price_points:
        slug, external_id = row.get("marketplace"), str(row.get("external_id"))
        key = f"{slug}/{external_id}"
        try:
            marketplace_id = marketplace_ids.get(str(slug))
            if marketplace_id is None:
                raise ValueError(f"unknown marketplace {slug!r}")
            product_id = product_ids.get((marketplace_id, external_id))
            if product_id is None:
                raise ValueError("no such offer in the storefront DB")
            observed_at = _as_utc(row.get("observed_at"))
            if observed_at is None:
                raise ValueError("missing observed_at")
            price_minor = row.get("price_minor")
            if (
                isinstance(price_minor, bool)
                or not isinstance(price_minor, int)
                or price_minor <= 0
            ):
                raise ValueError(f"price_minor must be a positive integer, got {price_minor!r}")
            currency = row.get("currency")
            if not is_iso_currency(currency):
                raise ValueError(f"unknown currency {currency!r}")
        except ValueError as exc:
            report.skipped.append(SkippedRow("price_point", key, str(exc)))
            continue
        newest = latest_seen.get(product_id)
        if newest is not None and observed_at <= newest:
            continue
        pending[(product_id, observed_at)] = {
            "product_id": product_id,
            "price_minor": price_minor,
            "currency": currency,
            "available": bool(row.get("available", True)),
            "observed_at": observed_at,
        }
    for batch in _batched(pending.values(), BATCH_SIZE):
        session.execute(sa.insert(PricePoint), batch)
    report.price_points_inserted += len(pending)
    session.flush()


# --- The sync -------------------------------------------------------------------------------


def sync_catalog(
    session: Session,
    *,
    marketplaces: Sequence[MarketplaceConfig],
    offers: Iterable[Mapping[str, Any]],
    groups: Mapping[GroupKey, GroupAssignment],
    fx_rates: Iterable[Mapping[str, Any]] = (),
    price_points: Iterable[Mapping[str, Any]] = (),
    complete_marketplaces: Iterable[str] | None = None,
) -> SyncReport:
    """Upsert marketplaces, offers (by marketplace + external_id, in batches), FX rates and new
    price points from one pipeline run; the caller commits.

    `offers` are rows shaped like the warehouse `products` table; `groups` maps
    (marketplace slug, external_id) to (group_id, method, confidence). `complete_marketplaces`
    names the marketplaces whose *whole* catalog is in `offers`: only their missing offers get
    `removed_at`. By default that is every marketplace with at least one offer in this sync, so a
    marketplace whose fetch failed (no rows at all) keeps its offers instead of losing them.
    Rows that cannot be used are listed in `SyncReport.skipped` with their reason.
    """
    now = utc_now()
    report = seed_marketplaces(session, marketplaces)
    marketplace_ids = {
        slug: id_ for slug, id_ in session.execute(sa.select(Marketplace.slug, Marketplace.id))
    }
    seen: dict[str, set[str]] = {}
    duplicate_check: set[tuple[str, str]] = set()

    def valid_offers() -> Iterator[tuple[str, str, dict[str, Any]]]:
        for offer in offers:
            slug = str(offer.get("marketplace") or "")
            external_id = str(offer.get("external_id") or "")
            key = f"{slug}/{external_id}"
            if slug not in marketplace_ids:
                report.skipped.append(SkippedRow("offer", key, f"unknown marketplace {slug!r}"))
                continue
            if not external_id:
                report.skipped.append(SkippedRow("offer", key, "missing external_id"))
                continue
            if (slug, external_id) in duplicate_check:
                report.skipped.append(
                    SkippedRow("offer", key, "duplicate external_id in this sync")
                )
                continue
            group = groups.get((slug, external_id))
            try:
                values = _offer_values(offer, group)
            except ValueError as exc:
                report.skipped.append(SkippedRow("offer", key, str(exc)))
                continue
            duplicate_check.add((slug, external_id))
            seen.setdefault(slug, set()).add(external_id)
            if group is None:
                report.products_ungrouped += 1
            yield slug, external_id, values

    for batch in _batched(valid_offers(), BATCH_SIZE):
        _upsert_offer_batch(session, marketplace_ids, batch, report, now)

    complete = set(seen) if complete_marketplaces is None else set(complete_marketplaces)
    for slug in sorted(complete):
        if slug in marketplace_ids:
            _mark_removed_offers(session, marketplace_ids[slug], seen.get(slug, set()), report, now)

    _sync_fx_rates(session, fx_rates, report)
    _sync_price_points(session, marketplace_ids, price_points, report)
    if report.skipped:
        logger.warning(
            "storefront sync skipped %d rows (first: %s)", len(report.skipped), report.skipped[0]
        )
    return report
