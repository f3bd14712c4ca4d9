"""Live re-validation before payment: every cart line's price, availability and stock re-checked
through its marketplace's adapter, concurrently, with a deadline per marketplace; what changed is
written to the catalog and returned for the shopper to see before anything is taken.

Stock: a line holding more than its offer's stock (the live one, or the catalog's for marketplaces
that cannot be asked) is lowered to that stock and reported, like a price change: the shopper sees
the new quantity and total and confirms them; nothing beyond the stock is ever charged silently.
"""

from __future__ import annotations

import enum
import logging
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from adapters.base import Capability, MarketplaceAdapter, MarketplaceError, NotFound, Offer
from commerce.marketplace_access import AdapterProvider, marketplace_can
from commerce.models import CartItem, Marketplace, Product, User, utc_now
from commerce.offer_stock import held_out, stock_left

logger = logging.getLogger(__name__)

# How long one marketplace may take for all its lines (the checkout must answer quickly; its
# adapters retry once, see marketplace_access.lookup_adapter_for_marketplace).
REVALIDATION_DEADLINE_S = 4.0


# --- Live re-validation ----------------------------------------------------------------------


class ChangeKind(enum.StrEnum):
    """What live re-validation found different from the catalog."""

    PRICE = "price"
    UNAVAILABLE = "unavailable"
    GONE = "gone"
    # Fewer left than the cart holds: the line was lowered to the stock.
    STOCK = "stock"


@dataclass(frozen=True, slots=True)
class LineChange:
    """One difference the shopper must see before paying."""

    product_id: int
    title: str
    marketplace_name: str
    kind: ChangeKind
    currency: str
    old_unit_minor: int
    new_unit_minor: int | None
    # The old price's currency when the marketplace now prices the offer in another one.
    old_currency: str | None = None
    # STOCK: the quantity the cart held, and the stock it now holds (what is left).
    old_quantity: int | None = None
    new_quantity: int | None = None


@dataclass(frozen=True, slots=True)
class Revalidation:
    """What the live check found: changes, and marketplaces that did not answer in time."""

    changes: tuple[LineChange, ...] = ()
    unchecked: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class _LookupJob:
    marketplace_name: str
    adapter: MarketplaceAdapter
    external_ids: tuple[str, ...]


def _lookup_all(job: _LookupJob) -> dict[str, Offer | None]:
    """Live offers of one marketplace (None: the offer no longer exists)."""
    found: dict[str, Offer | None] = {}
    for external_id in job.external_ids:
        try:
            found[external_id] = job.adapter.lookup_offer(external_id)
        except NotFound:
            found[external_id] = None
    return found


def revalidate_cart(
    session: Session,
    user: User,
    *,
    adapter_for: AdapterProvider,
    deadline_s: float = REVALIDATION_DEADLINE_S,
) -> Revalidation:
    """Re-check live price, availability and stock of every orderable line, one thread per
    marketplace (`adapter_for` should give fast-failing adapters:
    lookup_adapter_for_marketplace), then hold every orderable line to its offer's known stock
    (limit_line_to_stock).

    Offers that changed are updated in the storefront DB, and lines above the stock lowered to it
    (flushed; the caller commits), so the re-rendered checkout shows today's prices and
    quantities. A marketplace that errs or misses the deadline is reported as unchecked and its
    catalog prices and stock stand: its placement may still be refused later, and is then
    refunded.
    """
    rows = session.execute(
        sa.select(CartItem, Product, Marketplace)
        .join(Product, CartItem.product_id == Product.id)
        .join(Marketplace, Product.marketplace_id == Marketplace.id)
        .where(
            CartItem.user_id == user.id, Product.removed_at.is_(None), Product.available.is_(True)
        )
    ).all()
    by_market: dict[int, tuple[Marketplace, list[Product]]] = {}
    for _, product, marketplace in rows:
        if marketplace_can(marketplace, Capability.ORDER) and marketplace_can(
            marketplace, Capability.LIVE_OFFER
        ):
            by_market.setdefault(marketplace.id, (marketplace, []))[1].append(product)
    live = _check_live_offers(by_market, adapter_for=adapter_for, deadline_s=deadline_s)
    stock_changes = [
        change
        for item, product, marketplace in rows
        if marketplace_can(marketplace, Capability.ORDER)
        # Units our own orders hold took all there is: the quote shows the line out of stock
        # (a form made before they did differs from it); reported here, every submit would be.
        and not held_out(product)
        and (change := limit_line_to_stock(item, product, marketplace)) is not None
    ]
    session.flush()
    return Revalidation(changes=(*live.changes, *stock_changes), unchecked=live.unchecked)


def _check_live_offers(
    by_market: dict[int, tuple[Marketplace, list[Product]]],
    *,
    adapter_for: AdapterProvider,
    deadline_s: float,
) -> Revalidation:
    """Look every product up on its marketplace (one thread each) and apply what changed."""
    if not by_market:
        return Revalidation()

    jobs: dict[int, _LookupJob] = {}
    for market_id, (marketplace, products) in by_market.items():
        adapter = adapter_for(marketplace)
        jobs[market_id] = _LookupJob(
            marketplace.name, adapter, tuple(product.external_id for product in products)
        )
    executor = ThreadPoolExecutor(max_workers=len(jobs), thread_name_prefix="revalidate")
    futures: dict[int, Future[dict[str, Offer | None]]] = {
        market_id: executor.submit(_lookup_all, job) for market_id, job in jobs.items()
    }
    try:
        wait(futures.values(), timeout=deadline_s)
    finally:
        # Late lookups finish in the background; their results are simply not used.
        executor.shutdown(wait=False, cancel_futures=True)

    changes: list[LineChange] = []
    unchecked: list[str] = []
    for market_id, future in futures.items():
        marketplace, products = by_market[market_id]
        if not future.done() or future.cancelled():
            unchecked.append(marketplace.name)
            continue
        error = future.exception()
        if error is not None:
            if not isinstance(error, MarketplaceError):
                logger.exception("live check of %s failed", marketplace.slug, exc_info=error)
            unchecked.append(marketplace.name)
            continue
        offers = future.result()
        for product in products:
            change = _apply_live_offer(product, marketplace, offers.get(product.external_id))
            if change is not None:
                changes.append(change)
    return Revalidation(changes=tuple(changes), unchecked=tuple(sorted(unchecked)))


def limit_line_to_stock(
    item: CartItem, product: Product, marketplace: Marketplace
) -> LineChange | None:
    """Lower a cart line holding more than is left of its offer to that (the change is returned
    for the shopper to confirm); an offer with none left is out of stock. What is left is the
    known stock, less the units our own orders hold where the marketplace's orders take none
    (commerce.offer_stock). An unknown stock (None) is not a limit; an offer already
    unavailable is reported elsewhere."""
    left = stock_left(product)
    if left is None or item.quantity <= left or not product.available:
        return None
    old_quantity = item.quantity
    if left <= 0:
        if product.stock is not None and product.stock <= 0:
            # The marketplace's own figure: the catalog says so too. Units our orders hold
            # are not written there (an ingest would undo it, a cancellation not).
            product.available = False
        return LineChange(
            product.id, product.title, marketplace.name, ChangeKind.UNAVAILABLE, product.currency,
            product.price_minor, None,
        )  # fmt: skip
    item.quantity = left
    return LineChange(
        product.id, product.title, marketplace.name, ChangeKind.STOCK, product.currency,
        product.price_minor, product.price_minor,
        old_quantity=old_quantity, new_quantity=left,
    )  # fmt: skip


def limit_cart_line_to_stock(session: Session, user: User, product_id: int) -> LineChange | None:
    """The shopper's cart line of `product_id` lowered to what is left of it (flushed; the
    caller commits), after a checkout found fewer units than it held: the change to show."""
    row = session.execute(
        sa.select(CartItem, Product, Marketplace)
        .join(Product, CartItem.product_id == Product.id)
        .join(Marketplace, Product.marketplace_id == Marketplace.id)
        .where(CartItem.user_id == user.id, CartItem.product_id == product_id)
    ).first()
    if row is None:
        return None
    item, product, marketplace = row
    change = limit_line_to_stock(item, product, marketplace)
    session.flush()
    return change


def _apply_live_offer(
    product: Product, marketplace: Marketplace, offer: Offer | None
) -> LineChange | None:
    if offer is not None and offer.available:
        # Today's stock as the marketplace says it (None: it publishes none, so no limit).
        product.stock = offer.stock
    if offer is None:
        product.available = False
        return LineChange(
            product.id, product.title, marketplace.name, ChangeKind.GONE, product.currency,
            product.price_minor, None,
        )  # fmt: skip
    if not offer.available:
        product.available = False
        return LineChange(
            product.id, product.title, marketplace.name, ChangeKind.UNAVAILABLE, product.currency,
            product.price_minor, None,
        )  # fmt: skip
    if offer.currency != product.currency:
        # The catalog's price cannot be confirmed in another currency: the shopper sees the live
        # one (converted like any other) before anything is taken.
        old_currency, old = product.currency, product.price_minor
        product.currency, product.price_minor = offer.currency, offer.price_minor
        product.updated_at = utc_now()
        return LineChange(
            product.id, product.title, marketplace.name, ChangeKind.PRICE, offer.currency,
            old, offer.price_minor, old_currency,
        )  # fmt: skip
    if offer.price_minor != product.price_minor:
        old = product.price_minor
        product.price_minor = offer.price_minor
        product.updated_at = utc_now()
        return LineChange(
            product.id, product.title, marketplace.name, ChangeKind.PRICE, product.currency,
            old, offer.price_minor,
        )  # fmt: skip
    return None
