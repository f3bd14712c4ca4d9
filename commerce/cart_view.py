"""The cart page's view of a cart: lines grouped by marketplace, split into what OneCart charges
("Pay with OneCart") and what the shopper buys on a marketplace's own site ("Buy on the
marketplace"), priced once by commerce.cart_pricing.price_cart, with cheaper-offer hints.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.orm import Session

from commerce.cart import normalize_guest_lines, parse_timestamp
from commerce.cart_pricing import CartEntry, is_handoff_marketplace, price_cart
from commerce.fx import FxTable
from commerce.models import CartItem, Marketplace, Product, User
from commerce.offer_stock import stock_left
from commerce.payments.gateway import floor_card_amount


@dataclass(frozen=True, slots=True)
class CheaperOffer:
    """The same product, available on another marketplace for less. `handoff`: that
    marketplace takes no orders through OneCart (the shopper would buy it on its own site).
    `in_cart`: that offer is a line of this cart already (switching merges the two lines)."""

    product_id: int
    marketplace_name: str
    marketplace_slug: str
    price_minor: int
    currency: str
    display_price_minor: int
    saving_display_minor: int
    handoff: bool = False
    in_cart: bool = False


@dataclass(frozen=True, slots=True)
class CartLineView:
    """One cart line as the page shows it (money in integer minor units)."""

    product_id: int
    title: str
    image_url: str | None
    product_url: str | None
    relation_token: str | None
    quantity: int
    unit_price_minor: int
    currency: str
    line_total_minor: int
    display_line_total_minor: int | None
    price_seen_minor: int | None
    currency_seen: str | None
    available: bool
    unavailable_reason: str | None
    handoff: bool
    cheaper_offer: CheaperOffer | None
    # The other marketplaces this product is in the cart from (the same product's offers).
    also_in_cart: tuple[str, ...] = ()
    # What is left of the offer when the marketplace publishes its stock (less the units our own
    # orders hold where its orders take none: commerce.offer_stock); None: unknown, no limit.
    stock_left: int | None = None

    @property
    def above_stock(self) -> bool:
        """The line holds more than the marketplace has left (the stock fell after it was
        added): checkout lowers it to the stock, and the page says so beforehand."""
        return self.stock_left is not None and 0 < self.stock_left < self.quantity

    @property
    def price_changed(self) -> bool:
        """The price moved since the shopper added the line (same currency only)."""
        return (
            self.price_seen_minor is not None
            and self.currency_seen == self.currency
            and self.price_seen_minor != self.unit_price_minor
        )


@dataclass(frozen=True, slots=True)
class MarketplaceCartGroup:
    """The lines of one marketplace with its subtotal in the marketplace's own currency (a
    hand-off marketplace's in its items' currencies: `own_subtotals`)."""

    slug: str
    name: str
    logo: str | None
    currency: str
    handoff: bool
    lines: list[CartLineView]
    subtotal_minor: int | None
    display_subtotal_minor: int | None

    @property
    def available_lines(self) -> list[CartLineView]:
        return [line for line in self.lines if line.available]

    @property
    def own_subtotals(self) -> list[tuple[str, int]]:
        """(currency, minor) per currency the available items are priced in, first seen first.

        What a hand-off marketplace asks on its own site: OneCart converts nothing of those
        items, so their subtotal stays in the items' currencies (a feed such as Sokoni's prices
        items in KES and in NGN), not in the one currency the marketplace is listed with."""
        totals: dict[str, int] = {}
        for line in self.available_lines:
            totals[line.currency] = totals.get(line.currency, 0) + line.line_total_minor
        return list(totals.items())

    @property
    def own_currencies(self) -> list[str]:
        return [currency for currency, _ in self.own_subtotals]


@dataclass(frozen=True, slots=True)
class CartView:
    """The whole cart in two parts: what OneCart charges (`payable_groups`, one total:
    `payable_display_minor`) and what the shopper buys on the marketplaces' own sites
    (`handoff_groups`, `handoff_display_minor`, shown for reference and never added to the
    OneCart total). A total is None when a rate it needs is missing (listed in `missing_rates`).
    """

    display_currency: str
    groups: list[MarketplaceCartGroup]
    payable_display_minor: int | None
    handoff_display_minor: int | None
    rates: dict[str, Decimal]
    rates_as_of: date | None
    missing_rates: tuple[str, ...]
    item_count: int
    unavailable_count: int
    notes: tuple[str, ...] = field(default=())

    @property
    def is_empty(self) -> bool:
        return not self.groups

    @property
    def payable_groups(self) -> list[MarketplaceCartGroup]:
        """The marketplaces OneCart orders from and charges for."""
        return [group for group in self.groups if not group.handoff]

    @property
    def handoff_groups(self) -> list[MarketplaceCartGroup]:
        """The marketplaces whose items the shopper buys on their own sites."""
        return [group for group in self.groups if group.handoff]

    @property
    def has_handoff(self) -> bool:
        return bool(self.handoff_groups)

    @property
    def payable_item_count(self) -> int:
        """Units of available items OneCart can order (what checkout would pay for)."""
        return sum(line.quantity for group in self.payable_groups for line in group.available_lines)


def _cheaper_offers(
    session: Session,
    rows: Sequence[tuple[Product, Marketplace]],
    fx: FxTable,
    display_currency: str,
) -> dict[int, CheaperOffer]:
    tokens = {product.relation_token for product, _ in rows if product.relation_token}
    if not tokens:
        return {}
    candidates = session.execute(
        sa.select(Product, Marketplace)
        .join(Marketplace, Product.marketplace_id == Marketplace.id)
        .where(
            Product.relation_token.in_(sorted(tokens)),
            Product.removed_at.is_(None),
            Product.available.is_(True),
            Marketplace.active.is_(True),
        )
    ).all()
    by_token: dict[str, list[tuple[Product, Marketplace, int]]] = {}
    for product, marketplace in candidates:
        usd = fx.convert_or_none(product.price_minor, product.currency, "USD")
        if usd is not None:
            by_token.setdefault(product.relation_token or "", []).append(
                (product, marketplace, usd)
            )
    hints: dict[int, CheaperOffer] = {}
    in_cart = {product.id for product, _ in rows}
    # The same product on several lines, all dearer than one offer: the hint is said on the
    # first of them only (it repeated on each), and each line names the others (also_in_cart).
    hinted: set[int] = set()
    for product, marketplace in rows:
        own_usd = fx.convert_or_none(product.price_minor, product.currency, "USD")
        if not product.relation_token or own_usd is None:
            continue
        others = [
            (other, other_market, usd)
            for other, other_market, usd in by_token.get(product.relation_token, [])
            if other_market.id != marketplace.id and usd < own_usd
        ]
        if not others:
            continue
        other, other_market, _usd = min(others, key=lambda item: (item[2], item[0].id))
        if other.id in hinted:
            continue
        own_display = fx.convert_or_none(product.price_minor, product.currency, display_currency)
        other_display = fx.convert_or_none(other.price_minor, other.currency, display_currency)
        if own_display is None or other_display is None:
            continue
        # As the cart quotes both lines (card steps, rounded down), so the saving is the
        # difference of the two amounts the shopper reads.
        own_display = floor_card_amount(own_display, display_currency)
        other_display = floor_card_amount(other_display, display_currency)
        if other_display >= own_display:
            continue
        hints[product.id] = CheaperOffer(
            product_id=other.id,
            marketplace_name=other_market.name,
            marketplace_slug=other_market.slug,
            price_minor=other.price_minor,
            currency=other.currency,
            display_price_minor=other_display,
            saving_display_minor=own_display - other_display,
            handoff=is_handoff_marketplace(other_market),
            in_cart=other.id in in_cart,
        )
        hinted.add(other.id)
    return hints


def _also_in_cart(rows: Sequence[tuple[Product, Marketplace]]) -> dict[int, tuple[str, ...]]:
    """For each line of a product that is in the cart more than once (offers of the same
    product on other marketplaces), the other lines' marketplaces."""
    by_token: dict[str, list[tuple[int, str]]] = {}
    for product, marketplace in rows:
        if product.relation_token:
            by_token.setdefault(product.relation_token, []).append((product.id, marketplace.name))
    return {
        product_id: tuple(name for other_id, name in lines if other_id != product_id)
        for lines in by_token.values()
        if len(lines) > 1
        for product_id, _name in lines
    }


def build_cart_view(
    session: Session,
    *,
    user: User | None = None,
    guest_lines: object = None,
    display_currency: str = "USD",
    fx: FxTable,
) -> CartView:
    """Everything the cart page shows, computed once: groups, subtotals, totals, hints, flags."""
    quantities: dict[int, tuple[int, int | None, str | None, datetime | None]] = {}
    if user is not None:
        for item in session.scalars(
            sa.select(CartItem).where(CartItem.user_id == user.id).order_by(CartItem.added_at)
        ):
            quantities[item.product_id] = (
                item.quantity,
                item.price_seen_minor,
                item.currency_seen,
                item.added_at,
            )
    else:
        for line in normalize_guest_lines(guest_lines):
            quantities[line["product_id"]] = (
                line["quantity"],
                line.get("price_seen_minor"),
                line.get("currency_seen"),
                parse_timestamp(line.get("added_at")),
            )
    notes: list[str] = []
    if not quantities:
        return CartView(
            display_currency=display_currency,
            groups=[],
            payable_display_minor=0,
            handoff_display_minor=0,
            rates={},
            rates_as_of=fx.as_of,
            missing_rates=(),
            item_count=0,
            unavailable_count=0,
        )

    rows = session.execute(
        sa.select(Product, Marketplace)
        .join(Marketplace, Product.marketplace_id == Marketplace.id)
        .where(Product.id.in_(list(quantities)))
    ).all()
    found = {product.id for product, _ in rows}
    if len(found) < len(quantities):
        notes.append("Some items in your cart no longer exist and are not shown.")
    rows = sorted(rows, key=lambda row: (row[1].name.lower(), row[0].title.lower(), row[0].id))
    hints = _cheaper_offers(
        session, [(p, m) for p, m in rows if p.is_purchasable], fx, display_currency
    )

    also = _also_in_cart(rows)

    priced = price_cart(
        [
            CartEntry(
                product=product,
                marketplace=marketplace,
                quantity=quantities[product.id][0],
                price_seen_minor=quantities[product.id][1],
                currency_seen=quantities[product.id][2],
            )
            for product, marketplace in rows
        ],
        currency=display_currency,
        fx=fx,
    )
    groups: list[MarketplaceCartGroup] = []
    for group in priced.groups:
        marketplace = group.marketplace
        lines = [
            CartLineView(
                product_id=line.entry.product.id,
                title=line.entry.product.title,
                image_url=line.entry.product.image_url,
                product_url=line.entry.product.product_url,
                relation_token=line.entry.product.relation_token,
                quantity=line.entry.quantity,
                unit_price_minor=line.entry.product.price_minor,
                currency=line.entry.product.currency,
                line_total_minor=line.line_total_minor,
                display_line_total_minor=line.converted_minor,
                price_seen_minor=line.entry.price_seen_minor,
                currency_seen=line.entry.currency_seen,
                available=line.available,
                unavailable_reason=line.unavailable_reason,
                handoff=group.handoff,
                cheaper_offer=hints.get(line.entry.product.id),
                also_in_cart=also.get(line.entry.product.id, ()),
                stock_left=stock_left(line.entry.product),
            )
            for line in group.lines
        ]
        groups.append(
            MarketplaceCartGroup(
                slug=marketplace.slug,
                name=marketplace.name,
                logo=marketplace.logo,
                currency=marketplace.currency,
                handoff=group.handoff,
                lines=lines,
                subtotal_minor=group.amount_minor,
                display_subtotal_minor=group.converted_minor,
            )
        )

    unavailable = sum(1 for group in groups for line in group.lines if not line.available)
    if unavailable:
        notes.append("Items marked unavailable are kept in your cart but left out of the totals.")
    return CartView(
        display_currency=display_currency,
        groups=groups,
        payable_display_minor=priced.payable_minor,
        handoff_display_minor=priced.handoff_minor,
        rates=priced.rates,
        rates_as_of=priced.rates_as_of,
        missing_rates=priced.missing_rates,
        item_count=sum(line.quantity for group in groups for line in group.lines),
        unavailable_count=unavailable,
        notes=tuple(notes),
    )
