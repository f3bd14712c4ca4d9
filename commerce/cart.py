"""The unified cart: one cart across marketplaces, for signed-in shoppers (DB) and guests (session).

Guest carts are plain lists of dicts that the web layer keeps in the Flask session and passes in
and out, so every rule here is testable without Flask. Services flush but never commit: the caller
owns the transaction (a view commits after a successful call).

Rules: one line per offer; quantities 1..99; adding an offer already in the cart adds to its
quantity; an offer that left the catalog or went out of stock stays in the cart flagged
unavailable (never an error) and is left out of the totals; offers from marketplaces without an
order API are flagged hand-off (completed on the marketplace's own site).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from commerce.cart_pricing import CartEntry, price_cart
from commerce.fx import FxTable
from commerce.models import CartItem, Marketplace, Product, User

QUANTITY_MIN = 1
QUANTITY_MAX = 99
# A guest cart lives in a signed cookie; this keeps it well under the browser's 4 KB limit.
GUEST_CART_MAX_LINES = 30
CART_MAX_LINES = 100

GuestLine = dict[str, Any]


class CartErrorCode(enum.StrEnum):
    """Why a cart change was refused (stable strings for JSON answers and tests)."""

    INVALID_QUANTITY = "invalid_quantity"
    UNKNOWN_PRODUCT = "unknown_product"
    UNAVAILABLE = "unavailable"
    NOT_IN_CART = "not_in_cart"
    TOO_MANY_LINES = "too_many_lines"


class CartError(ValueError):
    """A cart change that cannot be made; the message is written for the shopper."""

    def __init__(self, code: CartErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def parse_quantity(raw: object) -> int:
    """A quantity from a form field, or a CartError saying what is allowed."""
    text = str(raw).strip() if raw is not None and not isinstance(raw, bool) else ""
    if not text.lstrip("+").isdigit():
        raise CartError(
            CartErrorCode.INVALID_QUANTITY,
            f"Quantity must be a whole number from {QUANTITY_MIN} to {QUANTITY_MAX}.",
        )
    return check_quantity(int(text))


def check_quantity(quantity: int) -> int:
    """The quantity itself when it is within 1..99, else a CartError."""
    if isinstance(quantity, bool) or not isinstance(quantity, int):
        raise CartError(CartErrorCode.INVALID_QUANTITY, "Quantity must be a whole number.")
    if not QUANTITY_MIN <= quantity <= QUANTITY_MAX:
        raise CartError(
            CartErrorCode.INVALID_QUANTITY,
            f"Quantity must be from {QUANTITY_MIN} to {QUANTITY_MAX}.",
        )
    return quantity


def parse_product_id(raw: object) -> int:
    """A product id from a form field, or a CartError (never a 500 on a tampered form)."""
    text = str(raw).strip() if raw is not None and not isinstance(raw, bool) else ""
    if not text.isdigit() or len(text) > 18:
        raise CartError(CartErrorCode.UNKNOWN_PRODUCT, "That product does not exist.")
    return int(text)


def _load_product(session: Session, product_id: int) -> Product:
    product = session.get(Product, product_id)
    if product is None:
        raise CartError(CartErrorCode.UNKNOWN_PRODUCT, "That product does not exist.")
    return product


def _require_purchasable(product: Product) -> None:
    if product.removed_at is not None or not product.available or not product.marketplace.active:
        raise CartError(
            CartErrorCode.UNAVAILABLE,
            f"“{product.title}” is not available right now, so it was not added.",
        )


def _combined_quantity(current: int, added: int, title: str) -> int:
    total = current + added
    if total > QUANTITY_MAX:
        raise CartError(
            CartErrorCode.INVALID_QUANTITY,
            f"You can have at most {QUANTITY_MAX} of “{title}” in your cart "
            f"(you already have {current}).",
        )
    return total


# --- Signed-in shoppers (DB) -------------------------------------------------------------------


def _user_line(session: Session, user: User, product_id: int) -> CartItem | None:
    return session.scalars(
        sa.select(CartItem).where(CartItem.user_id == user.id, CartItem.product_id == product_id)
    ).one_or_none()


def add_to_cart(session: Session, user: User, product_id: int, quantity: int = 1) -> CartItem:
    """Put `quantity` of an offer in the shopper's cart (added to any quantity already there)."""
    check_quantity(quantity)
    product = _load_product(session, product_id)
    _require_purchasable(product)
    line = _user_line(session, user, product_id)
    if line is None:
        line_count = session.scalar(
            sa.select(sa.func.count()).select_from(CartItem).where(CartItem.user_id == user.id)
        )
        if (line_count or 0) >= CART_MAX_LINES:
            raise CartError(
                CartErrorCode.TOO_MANY_LINES,
                f"A cart holds at most {CART_MAX_LINES} different items.",
            )
        line = CartItem(
            user_id=user.id,
            product_id=product.id,
            relation_token=product.relation_token,
            quantity=quantity,
            price_seen_minor=product.price_minor,
            currency_seen=product.currency,
            added_at=datetime.now(UTC),
        )
        session.add(line)
    else:
        line.quantity = _combined_quantity(line.quantity, quantity, product.title)
        # The shopper just saw today's price: that is the one to compare against later.
        line.price_seen_minor = product.price_minor
        line.currency_seen = product.currency
    session.flush()
    return line


def update_cart_quantity(session: Session, user: User, product_id: int, quantity: int) -> CartItem:
    """Set a line's quantity (1..99); removing is a separate, explicit action."""
    check_quantity(quantity)
    line = _user_line(session, user, product_id)
    if line is None:
        raise CartError(CartErrorCode.NOT_IN_CART, "That item is no longer in your cart.")
    line.quantity = quantity
    session.flush()
    return line


def remove_from_cart(session: Session, user: User, product_id: int) -> None:
    """Take a line out of the shopper's cart."""
    line = _user_line(session, user, product_id)
    if line is None:
        raise CartError(CartErrorCode.NOT_IN_CART, "That item is no longer in your cart.")
    session.delete(line)
    session.flush()


def cart_item_count(session: Session, user: User) -> int:
    """Units in the shopper's cart (the header's cart count)."""
    total = session.scalar(
        sa.select(sa.func.coalesce(sa.func.sum(CartItem.quantity), 0)).where(
            CartItem.user_id == user.id
        )
    )
    return int(total or 0)


# --- Guests (session data) ---------------------------------------------------------------------


def normalize_guest_lines(raw: object) -> list[GuestLine]:
    """The guest cart as valid lines, whatever the session held.

    A session written by an older version, or edited, must not break the cart page: lines that
    are not well-formed are dropped, duplicates of one product are combined (capped at 99).
    """
    if not isinstance(raw, list):
        return []
    lines: dict[int, GuestLine] = {}
    for item in raw:
        if not isinstance(item, Mapping):
            continue
        product_id = item.get("product_id")
        quantity = item.get("quantity")
        if not isinstance(product_id, int) or isinstance(product_id, bool) or product_id <= 0:
            continue
        if not isinstance(quantity, int) or isinstance(quantity, bool) or quantity < QUANTITY_MIN:
            continue
        price_seen = item.get("price_seen_minor")
        currency_seen = item.get("currency_seen")
        added_at = item.get("added_at")
        line = {
            "product_id": product_id,
            "quantity": min(quantity, QUANTITY_MAX),
            "price_seen_minor": price_seen if isinstance(price_seen, int) else None,
            "currency_seen": currency_seen if isinstance(currency_seen, str) else None,
            "added_at": added_at if isinstance(added_at, str) else None,
        }
        if product_id in lines:
            existing = lines[product_id]
            existing["quantity"] = min(existing["quantity"] + line["quantity"], QUANTITY_MAX)
        else:
            lines[product_id] = line
    return list(lines.values())[:GUEST_CART_MAX_LINES]


def add_to_guest_cart(
    session: Session, guest_lines: object, product_id: int, quantity: int = 1
) -> list[GuestLine]:
    """The guest cart with `quantity` of an offer added; the caller stores the returned list."""
    check_quantity(quantity)
    product = _load_product(session, product_id)
    _require_purchasable(product)
    lines = normalize_guest_lines(guest_lines)
    for line in lines:
        if line["product_id"] == product_id:
            line["quantity"] = _combined_quantity(line["quantity"], quantity, product.title)
            line["price_seen_minor"] = product.price_minor
            line["currency_seen"] = product.currency
            return lines
    if len(lines) >= GUEST_CART_MAX_LINES:
        raise CartError(
            CartErrorCode.TOO_MANY_LINES,
            f"A guest cart holds at most {GUEST_CART_MAX_LINES} different items; "
            "sign in to keep a larger cart.",
        )
    lines.append(
        {
            "product_id": product.id,
            "quantity": quantity,
            "price_seen_minor": product.price_minor,
            "currency_seen": product.currency,
            "added_at": datetime.now(UTC).isoformat(),
        }
    )
    return lines


def update_guest_quantity(guest_lines: object, product_id: int, quantity: int) -> list[GuestLine]:
    """The guest cart with one line's quantity set (1..99)."""
    check_quantity(quantity)
    lines = normalize_guest_lines(guest_lines)
    for line in lines:
        if line["product_id"] == product_id:
            line["quantity"] = quantity
            return lines
    raise CartError(CartErrorCode.NOT_IN_CART, "That item is no longer in your cart.")


def remove_from_guest_cart(guest_lines: object, product_id: int) -> list[GuestLine]:
    """The guest cart without one line."""
    lines = normalize_guest_lines(guest_lines)
    kept = [line for line in lines if line["product_id"] != product_id]
    if len(kept) == len(lines):
        raise CartError(CartErrorCode.NOT_IN_CART, "That item is no longer in your cart.")
    return kept


def guest_item_count(guest_lines: object) -> int:
    """Units in a guest cart (the header's cart count)."""
    return sum(line["quantity"] for line in normalize_guest_lines(guest_lines))


@dataclass(frozen=True, slots=True)
class MergeResult:
    """What merging a guest cart at sign-in did, so the site can tell the shopper."""

    merged: int
    capped: tuple[str, ...] = ()
    unknown: tuple[int, ...] = ()


def merge_guest_cart(session: Session, user: User, guest_lines: object) -> MergeResult:
    """Move a guest cart into the shopper's account cart at sign-in.

    Quantities of an offer already in the account cart are added; nothing is dropped except ids
    that do not exist at all. A sum above 99 is capped at 99 and reported. Unavailable offers are
    kept too (they show as unavailable), because the shopper put them there.
    """
    lines = normalize_guest_lines(guest_lines)
    if not lines:
        return MergeResult(merged=0)
    products = {
        product.id: product
        for product in session.scalars(
            sa.select(Product).where(Product.id.in_([line["product_id"] for line in lines]))
        )
    }
    existing = {
        item.product_id: item
        for item in session.scalars(sa.select(CartItem).where(CartItem.user_id == user.id))
    }
    merged = 0
    capped: list[str] = []
    unknown: list[int] = []
    for line in lines:
        product = products.get(line["product_id"])
        if product is None:
            unknown.append(line["product_id"])
            continue
        item = existing.get(product.id)
        if item is None:
            price_seen = line.get("price_seen_minor")
            currency_seen = line.get("currency_seen")
            if not isinstance(price_seen, int) or not isinstance(currency_seen, str):
                price_seen, currency_seen = product.price_minor, product.currency
            added_at = _parse_timestamp(line.get("added_at"))
            item = CartItem(
                user_id=user.id,
                product_id=product.id,
                relation_token=product.relation_token,
                quantity=line["quantity"],
                price_seen_minor=price_seen,
                currency_seen=currency_seen,
                added_at=added_at,
            )
            session.add(item)
            existing[product.id] = item
        else:
            total = item.quantity + line["quantity"]
            if total > QUANTITY_MAX:
                capped.append(product.title)
                total = QUANTITY_MAX
            item.quantity = total
        merged += 1
    session.flush()
    return MergeResult(merged=merged, capped=tuple(capped), unknown=tuple(unknown))


def _parse_timestamp(value: object) -> datetime:
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            parsed = None
        if parsed is not None and parsed.tzinfo is not None:
            return parsed.astimezone(UTC)
    return datetime.now(UTC)


# --- The cart page -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CheaperOffer:
    """The same product, available on another marketplace for less."""

    product_id: int
    marketplace_name: str
    marketplace_slug: str
    price_minor: int
    currency: str
    display_price_minor: int
    saving_display_minor: int


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
    """The lines of one marketplace with its subtotal in the marketplace's own currency."""

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


@dataclass(frozen=True, slots=True)
class CartView:
    """The whole cart: marketplace groups, one total in the display currency, and the rates used.

    `total_display_minor` covers every available line; `payable_display_minor` only the
    marketplaces OneCart can order from, `handoff_display_minor` the rest. A total is None when a
    rate it needs is missing (listed in `missing_rates`).
    """

    display_currency: str
    groups: list[MarketplaceCartGroup]
    total_display_minor: int | None
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
    def has_handoff(self) -> bool:
        return any(group.handoff for group in self.groups)


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
        own_display = fx.convert_or_none(product.price_minor, product.currency, display_currency)
        other_display = fx.convert_or_none(other.price_minor, other.currency, display_currency)
        if own_display is None or other_display is None or other_display >= own_display:
            continue
        hints[product.id] = CheaperOffer(
            product_id=other.id,
            marketplace_name=other_market.name,
            marketplace_slug=other_market.slug,
            price_minor=other.price_minor,
            currency=other.currency,
            display_price_minor=other_display,
            saving_display_minor=own_display - other_display,
        )
    return hints


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
                _parse_timestamp(line.get("added_at")),
            )
    notes: list[str] = []
    if not quantities:
        return CartView(
            display_currency=display_currency,
            groups=[],
            total_display_minor=0,
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

    payable = priced.payable_minor
    handoff = priced.handoff_minor
    total = None if payable is None or handoff is None else payable + handoff
    unavailable = sum(1 for group in groups for line in group.lines if not line.available)
    if unavailable:
        notes.append("Items marked unavailable are kept in your cart but left out of the total.")
    return CartView(
        display_currency=display_currency,
        groups=groups,
        total_display_minor=total,
        payable_display_minor=payable,
        handoff_display_minor=handoff,
        rates=priced.rates,
        rates_as_of=priced.rates_as_of,
        missing_rates=priced.missing_rates,
        item_count=sum(line.quantity for group in groups for line in group.lines),
        unavailable_count=unavailable,
        notes=tuple(notes),
    )
