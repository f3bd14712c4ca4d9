"""Catalog questions the storefront answers from its own DB (the synced offers), not the index.

The product page, the stores page and the landing page read from here, so they keep working
when Meilisearch is down. Offers are compared in the shopper's display currency through
:class:`commerce.fx.FxTable`; an offer whose currency has no rate sorts after those that have one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.orm import Session

from commerce.cart_pricing import charged_price_minor
from commerce.fx import FxTable
from commerce.models import Marketplace, PricePoint, Product
from commerce.offer_stock import held_out, stock_left

CATEGORIES_PER_STORE = 8
MAX_GROUP_OFFERS = 100
MAX_HISTORY_POINTS_PER_OFFER = 500


def active_marketplaces(session: Session) -> list[Marketplace]:
    """Every marketplace shoppers can see, by name."""
    return list(
        session.scalars(
            sa.select(Marketplace).where(Marketplace.active.is_(True)).order_by(Marketplace.name)
        )
    )


@dataclass(frozen=True, slots=True)
class StoreSummary:
    """One marketplace on the stores page: what it is, how much it sells, what it supports."""

    marketplace: Marketplace
    offer_count: int
    available_count: int
    categories: list[tuple[str, int]]
    # The currencies its offers are priced in, its own first (an affiliate feed may mix two).
    currencies: list[str] = field(default_factory=list)

    @property
    def supports_search(self) -> bool:
        return "catalog" in self.capabilities or "live_search" in self.capabilities

    @property
    def supports_ordering(self) -> bool:
        return "order" in self.capabilities

    @property
    def supports_tracking(self) -> bool:
        return "track" in self.capabilities

    @property
    def capabilities(self) -> list[str]:
        return list(self.marketplace.capabilities or [])


def store_directory(session: Session) -> list[StoreSummary]:
    """Every active marketplace with its offer counts and its biggest categories.

    Counts only offers still in the catalog (removed_at is null); four grouped queries, whatever
    the number of marketplaces.
    """
    marketplaces = active_marketplaces(session)
    if not marketplaces:
        return []
    ids = [m.id for m in marketplaces]
    in_catalog = sa.and_(Product.marketplace_id.in_(ids), Product.removed_at.is_(None))
    counts = {
        marketplace_id: (int(total), int(available or 0))
        for marketplace_id, total, available in session.execute(
            sa.select(
                Product.marketplace_id,
                sa.func.count(),
                sa.func.sum(sa.case((Product.available.is_(True), 1), else_=0)),
            )
            .where(in_catalog)
            .group_by(Product.marketplace_id)
        )
    }
    categories: dict[int, list[tuple[str, int]]] = {}
    for marketplace_id, category, total in session.execute(
        sa.select(Product.marketplace_id, Product.category, sa.func.count())
        .where(in_catalog, Product.category.is_not(None))
        .group_by(Product.marketplace_id, Product.category)
        .order_by(Product.marketplace_id, sa.func.count().desc(), Product.category)
    ):
        bucket = categories.setdefault(marketplace_id, [])
        if len(bucket) < CATEGORIES_PER_STORE:
            bucket.append((category, int(total)))
    priced_in: dict[int, set[str]] = {}
    for marketplace_id, currency in session.execute(
        sa.select(Product.marketplace_id, Product.currency).where(in_catalog).distinct()
    ):
        priced_in.setdefault(marketplace_id, set()).add(currency)
    return [
        StoreSummary(
            marketplace=m,
            offer_count=counts.get(m.id, (0, 0))[0],
            available_count=counts.get(m.id, (0, 0))[1],
            categories=categories.get(m.id, []),
            currencies=[m.currency, *sorted(priced_in.get(m.id, set()) - {m.currency})],
        )
        for m in marketplaces
    ]


def category_counts(session: Session, limit: int = 24) -> list[tuple[str, int]]:
    """Offers per category from the DB (the home page's fallback when search is down)."""
    rows = session.execute(
        sa.select(Product.category, sa.func.count())
        .join(Marketplace, Product.marketplace_id == Marketplace.id)
        .where(
            Product.removed_at.is_(None),
            Product.category.is_not(None),
            Marketplace.active.is_(True),
        )
        .group_by(Product.category)
        .order_by(sa.func.count().desc(), Product.category)
        .limit(limit)
    )
    return [(category, int(total)) for category, total in rows]


@dataclass(frozen=True, slots=True)
class GroupOffer:
    """One offer on the product page, with its price in the shopper's display currency."""

    product: Product
    marketplace: Marketplace
    display_price_minor: int | None
    usd_price_minor: int | None

    @property
    def purchasable(self) -> bool:
        return (
            self.product.is_purchasable and self.marketplace.active and not held_out(self.product)
        )

    @property
    def stock_left(self) -> int | None:
        """The units a shopper can still buy (commerce.offer_stock); None when unknown."""
        return stock_left(self.product)

    @property
    def orderable(self) -> bool:
        """OneCart can place the order itself (otherwise the shopper completes it there)."""
        return "order" in (self.marketplace.capabilities or [])


def group_offers(
    session: Session, group_id: str, *, fx: FxTable, display_currency: str
) -> list[GroupOffer]:
    """Every offer of one product group still in the catalog: available ones cheapest first,
    then the unavailable ones (so the shopper sees where it is out of stock)."""
    rows = session.execute(
        sa.select(Product, Marketplace)
        .join(Marketplace, Product.marketplace_id == Marketplace.id)
        .where(
            Product.relation_token == group_id,
            Product.removed_at.is_(None),
            Marketplace.active.is_(True),
        )
        .limit(MAX_GROUP_OFFERS)
    ).all()
    return sort_offers(
        [
            GroupOffer(
                product=product,
                marketplace=marketplace,
                display_price_minor=charged_price_minor(
                    fx, product.price_minor, product.currency, display_currency
                ),
                usd_price_minor=fx.convert_or_none(product.price_minor, product.currency, "USD"),
            )
            for product, marketplace in rows
        ]
    )


def sort_offers(offers: Sequence[GroupOffer]) -> list[GroupOffer]:
    """Available before unavailable, then cheapest (in USD) first; unconvertible prices last."""
    return sorted(
        offers,
        key=lambda offer: (
            not offer.purchasable,
            offer.usd_price_minor is None,
            offer.usd_price_minor or 0,
            offer.product.id,
        ),
    )


def chosen_first(
    offers: Sequence[GroupOffer], marketplace_slugs: Iterable[str]
) -> tuple[list[GroupOffer], int]:
    """`offers` (as sort_offers orders them) with those of the marketplaces a shopper's listing
    was filtered to first, and how many those are. The listing's card showed the cheapest offer
    among them: the product page suggests that one too, not a marketplace the shopper left out;
    the others follow, still for sale. (offers, 0) when no offer is of those marketplaces (a
    filter that does not concern this product is no filter here)."""
    slugs = set(marketplace_slugs)
    chosen = [offer for offer in offers if offer.marketplace.slug in slugs]
    if not chosen:
        return list(offers), 0
    others = [offer for offer in offers if offer.marketplace.slug not in slugs]
    return [*chosen, *others], len(chosen)


def find_offer(session: Session, marketplace_slug: str, external_id: str) -> Product | None:
    """The DB offer behind an index document (marketplace slug + external id)."""
    return session.scalars(
        sa.select(Product)
        .join(Marketplace, Product.marketplace_id == Marketplace.id)
        .where(Marketplace.slug == marketplace_slug, Product.external_id == external_id)
    ).one_or_none()


@dataclass(frozen=True, slots=True)
class HistoryPoint:
    """One price observation converted to the display currency (None without a rate)."""

    observed_at: datetime
    price_minor: int
    currency: str
    display_price_minor: int | None
    available: bool


@dataclass(frozen=True, slots=True)
class PriceSeries:
    """The price history of one offer, oldest first, for the chart and its table."""

    product_id: int
    label: str
    points: list[HistoryPoint]


def price_history(
    session: Session, offers: Sequence[GroupOffer], *, fx: FxTable, display_currency: str
) -> list[PriceSeries]:
    """The recorded price changes of each offer, converted at the latest rates.

    Offers without a recorded change get their current price as a single point, so every offer
    appears in the chart.
    """
    if not offers:
        return []
    ids = [offer.product.id for offer in offers]
    points: dict[int, list[PricePoint]] = {}
    for point in session.scalars(
        sa.select(PricePoint)
        .where(PricePoint.product_id.in_(ids))
        .order_by(PricePoint.product_id, PricePoint.observed_at)
    ):
        points.setdefault(point.product_id, []).append(point)
    series: list[PriceSeries] = []
    for offer in offers:
        rows = points.get(offer.product.id, [])[-MAX_HISTORY_POINTS_PER_OFFER:]
        history = [
            HistoryPoint(
                observed_at=row.observed_at,
                price_minor=row.price_minor,
                currency=row.currency,
                display_price_minor=charged_price_minor(
                    fx, row.price_minor, row.currency, display_currency
                ),
                available=row.available,
            )
            for row in rows
        ]
        if not history:
            history = [
                HistoryPoint(
                    observed_at=offer.product.updated_at,
                    price_minor=offer.product.price_minor,
                    currency=offer.product.currency,
                    display_price_minor=offer.display_price_minor,
                    available=offer.product.available,
                )
            ]
        series.append(
            PriceSeries(product_id=offer.product.id, label=offer.marketplace.name, points=history)
        )
    return series


def rating_text(rating: Decimal | None) -> str:
    """A rating as shoppers read it ("4.3"), or an empty string when there is none."""
    return "" if rating is None else f"{rating.quantize(Decimal('0.1'))}"


def disabled_marketplace_slugs(session: Session) -> set[str]:
    """The slugs of the marketplaces an admin disabled: their offers leave search."""
    return set(session.scalars(sa.select(Marketplace.slug).where(Marketplace.active.is_(False))))


def group_matches(session: Session, group_ids: Sequence[str]) -> dict[str, tuple[str, Decimal]]:
    """How each offer of the groups `group_ids` was matched into its group, by search-document
    id: (method, confidence), as the pipeline synced them from product_groups."""
    from search_index.documents import document_id

    if not group_ids:
        return {}
    rows = session.execute(
        sa.select(
            Marketplace.slug, Product.external_id, Product.match_method, Product.match_confidence
        )
        .join(Marketplace, Product.marketplace_id == Marketplace.id)
        .where(Product.relation_token.in_(list(group_ids)), Product.match_method.is_not(None))
    )
    return {
        document_id(slug, external_id): (str(method), confidence)
        for slug, external_id, method, confidence in rows
    }
