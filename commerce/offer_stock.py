"""OneCart's own hold on the stock of offers at marketplaces whose orders take none.

DummyJSON answers `POST /carts/add` with a cart it never stores and the Fake Store API persists
no write, so their published stock never falls as OneCart places orders there: left alone, two
shoppers could both buy the last unit. For those marketplaces (an order API whose adapter does
not declare `order_takes_stock`) OneCart counts the units its own live orders hold, per offer
(`offer_stock_holds`), and sells only what the published stock leaves beyond them.

- Held with the order: checkout's one order transaction (commerce.checkout_record) adds each
  line's units with a compare-and-set UPDATE, `held + n <= published stock`; the row lock makes
  two checkouts of the last unit queue, and the second finds nothing left (StockShortfall: the
  transaction is rolled back, nothing is charged). Units of an offer whose stock is unknown are
  counted without a limit.
- Given back once, when the sub-order is failed or cancelled (sub_order_compensation.compensate_sub_order,
  the one place a live sub-order ends unfulfilled): `stock_held` is cleared with a
  compare-and-set first, so a repeat gives nothing back twice. Each line keeps the units it
  still holds (`OrderItem.held_units`): a placement the marketplace accepted only part of gives
  back the units it left out at once (commerce.placement_outcomes.record_placement), line by
  line with a compare-and-set, and the end of the sub-order gives back only the rest.
- Read wherever a quantity is limited (the cart, checkout's re-check, the product page):
  `stock_left` is the published figure less the units held. The catalog ingest rewrites only
  the published figure, which never counts our orders at these marketplaces, so nothing is
  counted twice and an ingest loses no hold.

Shopify and WooCommerce orders take their stock and refuse what is not there at placement: they
are not held here as well (that would count each unit twice). Placement checks nothing more:
the units it sends were held when the order was made.

The bottom of the order lifecycle stack (tests/test_layering.py): the checkout and settlement's
compensation of sub-orders (commerce.sub_order_compensation) call it; it calls nothing of the
lifecycle, no marketplace and no payment provider.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping
from functools import cache

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from adapters.base import Capability
from adapters.registry import ADAPTER_KINDS
from commerce.marketplace_access import marketplace_can
from commerce.models import Marketplace, OfferStockHold, Product
from commerce.order_models import MarketplaceOrder, OrderItem
from onecart.bidi import isolated


@cache
def order_takes_stock(kind: str) -> bool:
    """Whether orders of the adapter format `kind` take the marketplace's stock (the adapter
    class's `order_takes_stock`; False for a format that does not say or cannot be loaded)."""
    target = ADAPTER_KINDS.get(kind)
    if target is None:
        return False
    module_name, class_name = target.split(":")
    try:
        adapter_class = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError):
        return False
    return getattr(adapter_class, "order_takes_stock", False) is True


def guards_stock(marketplace: Marketplace) -> bool:
    """OneCart holds the stock of this marketplace's offers: it takes orders through OneCart
    and its orders take no stock of their own."""
    return marketplace_can(marketplace, Capability.ORDER) and not order_takes_stock(
        marketplace.kind
    )


def held_units(product: Product) -> int:
    """The units of `product` OneCart's live orders hold (0 where none are counted)."""
    if not guards_stock(product.marketplace):
        return 0
    hold = product.stock_hold
    return hold.held_units if hold is not None else 0


def stock_left(product: Product) -> int | None:
    """What can still be sold of `product`: its published stock, less the units our own live
    orders hold where the marketplace's orders take none (never below 0). None: the marketplace
    publishes no stock, so there is no limit but the cart's."""
    if product.stock is None:
        return None
    return max(product.stock - held_units(product), 0)


def held_out(product: Product) -> bool:
    """Every unit the marketplace publishes of `product` is held by our own live orders: it is
    out of stock for OneCart's shoppers though the marketplace still lists units."""
    return product.stock is not None and product.stock > 0 and stock_left(product) == 0


class StockShortfall(Exception):
    """Fewer units of an offer are left than an order line wants (another checkout took them).
    Raised inside the order transaction, which the caller rolls back: nothing is recorded."""

    def __init__(
        self, product_id: int, title: str, marketplace_name: str, wanted: int, left: int
    ) -> None:
        self.product_id = product_id
        self.title = title
        self.marketplace_name = marketplace_name
        self.wanted = wanted
        self.left = left
        super().__init__(self.message)

    @property
    def message(self) -> str:
        """What the shopper is told (the checkout adds that nothing was charged)."""
        title = isolated(self.title)
        if self.left <= 0:
            return (
                f"“{title}” sold out at {self.marketplace_name} while you were checking out: "
                "another shopper bought the last one."
            )
        return (
            f"Only {self.left} of “{title}” left at {self.marketplace_name}: another shopper "
            f"bought the rest while you were checking out (you wanted {self.wanted})."
        )


def _ensure_hold_row(session: Session, product_id: int) -> None:
    """The product's hold row, made at 0 if missing (a concurrent maker wins, nothing fails)."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(
        insert(OfferStockHold)
        .values(product_id=product_id, held_units=0)
        .on_conflict_do_nothing(index_elements=["product_id"])
    )


def _held_now(session: Session, product_id: int) -> int:
    return int(
        session.scalar(
            sa.select(OfferStockHold.held_units).where(OfferStockHold.product_id == product_id)
        )
        or 0
    )


def hold_stock(
    session: Session,
    sub_order: MarketplaceOrder,
    marketplace: Marketplace,
    lines: Iterable[tuple[Product, int]],
) -> None:
    """Hold the units `lines` (product, quantity) of a new sub-order take, in the caller's
    transaction, or raise StockShortfall for the first offer with too few left.

    Each offer's count moves with one compare-and-set UPDATE (`held + n <= stock`): on
    PostgreSQL a concurrent checkout's UPDATE waits for this transaction's row lock and then
    re-reads the row, on SQLite the database's one writer does the same, so the last unit is
    never sold twice. Offers are taken in id order, so two checkouts never wait on each other
    in a circle."""
    if not guards_stock(marketplace):
        return
    wanted: dict[int, tuple[Product, int]] = {}
    for product, quantity in lines:
        earlier = wanted.get(product.id)
        wanted[product.id] = (product, quantity + (earlier[1] if earlier else 0))
    for product_id in sorted(wanted):
        product, quantity = wanted[product_id]
        _ensure_hold_row(session, product_id)
        update = (
            sa.update(OfferStockHold)
            .where(OfferStockHold.product_id == product_id)
            .values(held_units=OfferStockHold.held_units + quantity)
            .execution_options(synchronize_session=False)
        )
        if product.stock is not None:
            update = update.where(OfferStockHold.held_units + quantity <= product.stock)
        if session.execute(update).rowcount != 1:
            left = max((product.stock or 0) - _held_now(session, product_id), 0)
            raise StockShortfall(product_id, product.title, marketplace.name, quantity, left)
    sub_order.stock_held = True
    session.flush()
    # Each line holds its whole quantity until the marketplace leaves some of it out.
    session.execute(
        sa.update(OrderItem)
        .where(OrderItem.sub_order_id == sub_order.id)
        .values(held_units=OrderItem.quantity)
    )
    _expire_holds(session, wanted)


def release_stock(session: Session, sub_order: MarketplaceOrder) -> bool:
    """Give back the units a failed or cancelled sub-order held, once: `stock_held` is cleared
    with a compare-and-set first, and only the call that cleared it gives back what its lines
    still hold (`OrderItem.held_units`: less than their quantity where a partial placement gave
    some back already). False when there was nothing to give back (never held, or given back
    already)."""
    session.flush()
    cleared = session.execute(
        sa.update(MarketplaceOrder)
        .where(MarketplaceOrder.id == sub_order.id, MarketplaceOrder.stock_held.is_(True))
        .values(stock_held=False)
        .execution_options(synchronize_session=False)
    )
    session.refresh(sub_order, attribute_names=["stock_held"])
    if cleared.rowcount != 1:
        return False
    units: dict[int, int] = {}
    for product_id, held in session.execute(
        sa.select(OrderItem.product_id, OrderItem.held_units).where(
            OrderItem.sub_order_id == sub_order.id, OrderItem.held_units > 0
        )
    ):
        units[product_id] = units.get(product_id, 0) + held
    session.execute(
        sa.update(OrderItem)
        .where(OrderItem.sub_order_id == sub_order.id)
        .values(held_units=0)
        .execution_options(synchronize_session=False)
    )
    _give_back(session, units)
    _expire_items(session, sub_order.id)
    return True


def release_unaccepted_stock(
    session: Session, sub_order: MarketplaceOrder, accepted: Mapping[int, int]
) -> int:
    """Give back the units of a placed sub-order's lines the marketplace left out (`accepted`:
    order item id → the units it accepted of that line): they will never ship, so they are for
    sale again; the accepted ones stay held until the sub-order ends. Each line moves with a
    compare-and-set on the units it was seen holding, so a repeat (an RQ retry, a sweeper
    replaying the placement) gives nothing back twice. The caller holds the sub-order's lock.
    Returns the units given back."""
    session.flush()
    if not session.scalar(
        sa.select(MarketplaceOrder.stock_held).where(MarketplaceOrder.id == sub_order.id)
    ):
        return 0
    units: dict[int, int] = {}
    for item_id, product_id, held in session.execute(
        sa.select(OrderItem.id, OrderItem.product_id, OrderItem.held_units).where(
            OrderItem.sub_order_id == sub_order.id, OrderItem.id.in_(list(accepted))
        )
    ):
        keep = max(min(accepted[item_id], held), 0)
        if keep >= held:
            continue
        moved = session.execute(
            sa.update(OrderItem)
            .where(OrderItem.id == item_id, OrderItem.held_units == held)
            .values(held_units=keep)
            .execution_options(synchronize_session=False)
        )
        if moved.rowcount == 1:
            units[product_id] = units.get(product_id, 0) + held - keep
    _give_back(session, units)
    _expire_items(session, sub_order.id)
    return sum(units.values())


def _give_back(session: Session, units: Mapping[int, int]) -> None:
    """Lower the offers' counts by `units` (product id → units), in id order."""
    for product_id in sorted(units):
        quantity = units[product_id]
        session.execute(
            sa.update(OfferStockHold)
            .where(OfferStockHold.product_id == product_id)
            # Never below 0: a count a manual fix lowered gives back what it still holds.
            .values(
                held_units=sa.case(
                    (OfferStockHold.held_units >= quantity, OfferStockHold.held_units - quantity),
                    else_=0,
                )
            )
            .execution_options(synchronize_session=False)
        )
    session.flush()
    _expire_holds(session, units)


def _expire_items(session: Session, sub_order_id: int) -> None:
    """Order items this session loaded are read again after a core UPDATE moved them."""
    for obj in list(session.identity_map.values()):
        if isinstance(obj, OrderItem) and obj.sub_order_id == sub_order_id:
            session.expire(obj, ["held_units"])


def _expire_holds(session: Session, product_ids: Iterable[int]) -> None:
    """Hold rows this session loaded before a core UPDATE moved (or made) them are read again
    on use, and so are the products' links to them."""
    for product_id in product_ids:
        hold = session.identity_map.get(session.identity_key(OfferStockHold, product_id))
        if hold is not None:
            session.expire(hold)
        product = session.identity_map.get(session.identity_key(Product, product_id))
        if product is not None:
            session.expire(product, ["stock_hold"])
