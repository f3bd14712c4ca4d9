"""Pricing a cart, once: the rules behind both the cart page (commerce.cart_view.build_cart_view) and the
checkout quote (commerce.checkout_quote.build_quote), so the total the shopper sees on the cart
page is the total the checkout charges.

Each line is converted to the target currency on its own (integer minor units, the FX table's
rounding), a marketplace's subtotal is the sum of its available lines in its own currency, and the
payable total is the sum of the converted lines of the marketplaces OneCart can order from;
hand-off marketplaces' lines are totalled apart (shown, never charged). Unavailable lines (removed,
out of stock, marketplace disabled) are kept with their reason and left out of every sum. A total
that needs a missing rate is None, and the missing currencies are listed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from commerce.fx import FxTable
from commerce.models import Marketplace, Product
from commerce.offer_stock import held_out
from commerce.payments.gateway import floor_card_amount

ORDER_CAPABILITY = "order"


@dataclass(frozen=True, slots=True)
class CartEntry:
    """One cart line to price: the product, its marketplace, the quantity and what the shopper
    saw when adding it."""

    product: Product
    marketplace: Marketplace
    quantity: int
    price_seen_minor: int | None = None
    currency_seen: str | None = None


@dataclass(frozen=True, slots=True)
class PricedLine:
    """A line priced: its total in the product's currency and in the target currency."""

    entry: CartEntry
    line_total_minor: int
    converted_minor: int | None
    unavailable_reason: str | None

    @property
    def available(self) -> bool:
        return self.unavailable_reason is None


@dataclass(frozen=True, slots=True)
class PricedGroup:
    """One marketplace's lines (in cart order) and the subtotals of the available ones."""

    marketplace: Marketplace
    handoff: bool
    lines: tuple[PricedLine, ...]
    # In the marketplace's own currency, and in the target currency (None: a rate is missing).
    amount_minor: int | None
    converted_minor: int | None

    @property
    def available_lines(self) -> tuple[PricedLine, ...]:
        return tuple(line for line in self.lines if line.available)


@dataclass(frozen=True, slots=True)
class PricedCart:
    """The cart priced in `currency`."""

    currency: str
    groups: tuple[PricedGroup, ...]
    payable_minor: int | None
    handoff_minor: int | None
    missing_rates: tuple[str, ...]
    rates: dict[str, Decimal]
    rates_as_of: date | None

    @property
    def available_lines(self) -> tuple[PricedLine, ...]:
        return tuple(line for group in self.groups for line in group.available_lines)


def is_handoff_marketplace(marketplace: Marketplace) -> bool:
    """Marketplaces without an order API: the shopper completes the purchase there."""
    return ORDER_CAPABILITY not in (marketplace.capabilities or [])


def unavailable_reason(product: Product, marketplace: Marketplace) -> str | None:
    """Why a line cannot be bought now, or None."""
    if product.removed_at is not None:
        return f"No longer sold on {marketplace.name}."
    if not marketplace.active:
        return f"{marketplace.name} is not available on OneCart right now."
    if not product.available or held_out(product):
        # held_out: the marketplace still lists units, but our own live orders hold them all.
        return "Out of stock."
    return None


def sum_or_none(values: Iterable[int | None]) -> int | None:
    """The sum, or None as soon as one value is unknown."""
    total = 0
    for value in values:
        if value is None:
            return None
        total += value
    return total


def charged_price_minor(
    fx: FxTable, minor: int, currency: str, display_currency: str
) -> int | None:
    """`minor` of `currency` as the cart will charge it in `display_currency` (None without a
    rate): converted, then rounded down to the card amount step as price_cart rounds a line. Every
    page that shows a price in the display currency (listing cards, the product page) uses it,
    so an item shows one price from the listing to the checkout (KWD 88.830, not 88.834 on the
    product page and 88.830 in the cart). Constant time: a listing calls it once per card."""
    converted = fx.convert_or_none(minor, currency, display_currency)
    return None if converted is None else floor_card_amount(converted, display_currency)


def price_cart(entries: Sequence[CartEntry], *, currency: str, fx: FxTable) -> PricedCart:
    """Price `entries` in `currency`, grouped by marketplace in the order they first appear."""
    missing: set[str] = set() if fx.has(currency) else {currency}
    grouped: dict[int, list[PricedLine]] = {}
    markets: dict[int, Marketplace] = {}
    for entry in entries:
        product, marketplace = entry.product, entry.marketplace
        reason = unavailable_reason(product, marketplace)
        line_total = product.price_minor * entry.quantity
        converted = fx.convert_or_none(line_total, product.currency, currency)
        if converted is not None:
            # Quoted in card steps, rounded down (never more than the exact price): the cart, the
            # checkout total and every share are then amounts Stripe accepts to capture or
            # refund in part (three-decimal currencies take steps of 10).
            converted = floor_card_amount(converted, currency)
        if reason is None and converted is None:
            missing.update(c for c in (product.currency, currency) if not fx.has(c))
        markets[marketplace.id] = marketplace
        grouped.setdefault(marketplace.id, []).append(
            PricedLine(entry, line_total, converted, reason)
        )
    groups: list[PricedGroup] = []
    for marketplace_id, lines in grouped.items():
        marketplace = markets[marketplace_id]
        available = [line for line in lines if line.available]
        amount = sum_or_none(
            fx.convert_or_none(
                line.line_total_minor, line.entry.product.currency, marketplace.currency
            )
            for line in available
        )
        if amount is None:
            missing.update(
                c
                for c in {marketplace.currency, *(ln.entry.product.currency for ln in available)}
                if not fx.has(c)
            )
        groups.append(
            PricedGroup(
                marketplace=marketplace,
                handoff=is_handoff_marketplace(marketplace),
                lines=tuple(lines),
                amount_minor=amount,
                converted_minor=sum_or_none(line.converted_minor for line in available),
            )
        )
    available_groups = [group for group in groups if group.available_lines]
    payable = sum_or_none(g.converted_minor for g in available_groups if not g.handoff)
    handoff = sum_or_none(g.converted_minor for g in available_groups if g.handoff)
    currencies = {line.entry.product.currency for group in groups for line in group.available_lines}
    return PricedCart(
        currency=currency,
        groups=tuple(groups),
        payable_minor=payable,
        handoff_minor=handoff,
        missing_rates=tuple(sorted(missing)),
        rates=fx.rates_for(currencies, currency),
        rates_as_of=fx.as_of,
    )
