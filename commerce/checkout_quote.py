"""The checkout quote: the shopper's cart priced in one currency for payment, grouped by
marketplace (hand-offs apart), on the same pricing rules as the cart page (commerce.cart_pricing).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.orm import Session

from commerce.cart_pricing import CartEntry, price_cart
from commerce.fx import FxTable
from commerce.models import CartItem, Marketplace, Product, User

# --- Quote: the cart priced for payment ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QuoteLine:
    """A cart line as checkout prices it. `charge_minor` is in the quote's currency."""

    product_id: int
    external_id: str
    title: str
    product_url: str | None
    image_url: str | None
    quantity: int
    unit_price_minor: int
    currency: str
    charge_minor: int | None
    price_seen_minor: int | None
    currency_seen: str | None

    @property
    def line_total_minor(self) -> int:
        """Unit price × quantity in the offer's currency."""
        return self.unit_price_minor * self.quantity

    @property
    def price_changed(self) -> bool:
        """The price moved since the shopper added the line (same currency only), as the cart
        says: the checkout, reached without the cart page, says it too."""
        return (
            self.price_seen_minor is not None
            and self.currency_seen == self.currency
            and self.price_seen_minor != self.unit_price_minor
        )


@dataclass(frozen=True, slots=True)
class QuoteGroup:
    """One marketplace's lines: the future sub-order (or a hand-off)."""

    marketplace_id: int
    slug: str
    name: str
    logo: str | None
    marketplace_currency: str
    handoff: bool
    lines: tuple[QuoteLine, ...]
    # In the marketplace's currency (None when a rate is missing).
    amount_minor: int | None
    # In the quote's currency: the share of the total (None when a rate is missing).
    charge_minor: int | None


@dataclass(frozen=True, slots=True)
class UnavailableLine:
    """A cart line that cannot be bought now, with the reason."""

    product_id: int
    title: str
    marketplace_name: str
    reason: str


@dataclass(frozen=True, slots=True)
class CheckoutQuote:
    """The cart priced in one currency: what the checkout page shows and the order charges."""

    currency: str
    groups: tuple[QuoteGroup, ...]
    # What OneCart charges: the orderable groups' shares (None when a rate is missing).
    total_minor: int | None
    # What the hand-off items come to, in the same currency (shown, never charged).
    handoff_total_minor: int | None
    rates: Mapping[str, Decimal]
    rates_as_of: date | None
    missing_rates: tuple[str, ...]
    unavailable: tuple[UnavailableLine, ...]
    # The published rates behind every conversion (units per 1 USD), stored with the order.
    source_rates: Mapping[str, Decimal] = field(default_factory=dict)

    @property
    def orderable_groups(self) -> tuple[QuoteGroup, ...]:
        """The groups OneCart places and charges."""
        return tuple(group for group in self.groups if not group.handoff)

    @property
    def charged_rates(self) -> dict[str, Decimal]:
        """The rates behind what OneCart charges: those of the orderable groups' currencies (the
        hand-off items' rates only convert the total shown beside it)."""
        used = {line.currency for group in self.orderable_groups for line in group.lines}
        return {code: rate for code, rate in self.rates.items() if code in used}

    @property
    def handoff_rates(self) -> dict[str, Decimal]:
        """The rates that only convert the hand-off items' figure (never stored or charged)."""
        charged = self.charged_rates
        used = {line.currency for group in self.handoff_groups for line in group.lines}
        return {
            code: rate for code, rate in self.rates.items() if code in used and code not in charged
        }

    @property
    def handoff_groups(self) -> tuple[QuoteGroup, ...]:
        """The groups the shopper completes on the marketplace's site."""
        return tuple(group for group in self.groups if group.handoff)

    @property
    def is_empty(self) -> bool:
        """No purchasable line at all."""
        return not self.groups

    @property
    def digest(self) -> str:
        """What the checkout form is bound to: the currency its total is shown in and every
        orderable line's product, quantity and price (not only the total, which two different
        carts can share, or one cart in two currencies pegged one to one)."""
        lines = sorted(
            f"{group.marketplace_id}:{line.product_id}:{line.quantity}:"
            f"{line.unit_price_minor}:{line.currency}"
            for group in self.orderable_groups
            for line in group.lines
        )
        return hashlib.sha256("|".join([self.currency, *lines]).encode()).hexdigest()[:32]

    @property
    def can_pay(self) -> bool:
        """Something to pay for, and every amount convertible."""
        return bool(self.orderable_groups) and self.total_minor is not None and self.total_minor > 0


def build_quote(session: Session, user: User, *, currency: str, fx: FxTable) -> CheckoutQuote:
    """Price the shopper's cart in `currency`, grouped by marketplace (hand-offs apart).

    Priced by :func:`commerce.cart_pricing.price_cart`, as the cart page is, so the total equals
    the cart's payable total.
    """
    rows = session.execute(
        sa.select(CartItem, Product, Marketplace)
        .join(Product, CartItem.product_id == Product.id)
        .join(Marketplace, Product.marketplace_id == Marketplace.id)
        .where(CartItem.user_id == user.id)
        .order_by(Marketplace.name, Product.title, Product.id)
    ).all()
    priced = price_cart(
        [
            CartEntry(
                product, marketplace, item.quantity, item.price_seen_minor, item.currency_seen
            )
            for item, product, marketplace in rows
        ],
        currency=currency,
        fx=fx,
    )
    groups: list[QuoteGroup] = []
    unavailable: list[UnavailableLine] = []
    for group in priced.groups:
        marketplace = group.marketplace
        for line in group.lines:
            if not line.available:
                unavailable.append(
                    UnavailableLine(
                        line.entry.product.id,
                        line.entry.product.title,
                        marketplace.name,
                        line.unavailable_reason or "",
                    )
                )
        lines = [
            QuoteLine(
                product_id=line.entry.product.id,
                external_id=line.entry.product.external_id,
                title=line.entry.product.title,
                product_url=line.entry.product.product_url,
                image_url=line.entry.product.image_url,
                quantity=line.entry.quantity,
                unit_price_minor=line.entry.product.price_minor,
                currency=line.entry.product.currency,
                charge_minor=line.converted_minor,
                price_seen_minor=line.entry.price_seen_minor,
                currency_seen=line.entry.currency_seen,
            )
            for line in group.available_lines
        ]
        if not lines:
            continue
        groups.append(
            QuoteGroup(
                marketplace_id=marketplace.id,
                slug=marketplace.slug,
                name=marketplace.name,
                logo=marketplace.logo,
                marketplace_currency=marketplace.currency,
                handoff=group.handoff,
                lines=tuple(lines),
                amount_minor=group.amount_minor,
                charge_minor=group.converted_minor,
            )
        )
    currencies = {line.currency for group in groups for line in group.lines}
    return CheckoutQuote(
        currency=currency,
        groups=tuple(groups),
        total_minor=priced.payable_minor,
        handoff_total_minor=priced.handoff_minor,
        rates=priced.rates,
        rates_as_of=priced.rates_as_of,
        missing_rates=priced.missing_rates,
        unavailable=tuple(unavailable),
        source_rates={
            code: fx.per_usd[code] for code in sorted({*currencies, currency}) if code in fx.per_usd
        },
    )
