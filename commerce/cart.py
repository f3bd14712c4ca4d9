"""The unified cart: one cart across marketplaces, for signed-in shoppers (DB) and guests (session).

Guest carts are plain lists of dicts that the web layer keeps in the Flask session and passes in
and out, so every rule here is testable without Flask. Services flush but never commit: the caller
owns the transaction (a view commits after a successful call).

Rules: one line per offer; quantities 1..99; adding an offer already in the cart adds to its
quantity; an offer that left the catalog or went out of stock stays in the cart flagged
unavailable (never an error) and is left out of the totals. When the marketplace publishes an
offer's stock, a line never holds more than is left of it (the stock, less the units our own live
orders hold where the marketplace's orders take none: commerce.offer_stock): a larger quantity is
capped at it and the shopper told so ("Only 3 left at ShopWave; your cart has 3."), and an offer
with none left is refused; an offer without a published stock has no limit but 99. The cart holds
no stock: the units are held by the order, at checkout. Offers from marketplaces without an
order API are flagged hand-off (completed on the marketplace's own site). Swapping a line for
another marketplace's offer of the same product replaces the line, keeping its quantity.

The cart page's view of all this (groups, totals, hints) is commerce.cart_view.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from commerce.models import CartItem, Product, User
from commerce.offer_stock import stock_left
from onecart.bidi import isolated
from onecart.params import ParameterError, bounded_int

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
    OUT_OF_STOCK = "out_of_stock"
    NOT_IN_CART = "not_in_cart"
    TOO_MANY_LINES = "too_many_lines"
    DIFFERENT_PRODUCT = "different_product"


class CartError(ValueError):
    """A cart change that cannot be made; the message is written for the shopper."""

    def __init__(self, code: CartErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def parse_quantity(raw: object) -> int:
    """A quantity from a form field, or a CartError saying what is allowed."""
    text = str(raw).strip() if raw is not None and not isinstance(raw, bool) else ""
    try:
        # ASCII digits only, and few of them: "²" is a digit to str.isdigit() but not to int().
        quantity = bounded_int(text, minimum=0, maximum=999_999_999)
    except ParameterError:
        raise CartError(
            CartErrorCode.INVALID_QUANTITY,
            f"Quantity must be a whole number from {QUANTITY_MIN} to {QUANTITY_MAX}.",
        ) from None
    return check_quantity(quantity)


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
    if text.startswith("+"):
        raise CartError(CartErrorCode.UNKNOWN_PRODUCT, "That product does not exist.")
    try:
        return bounded_int(text, minimum=0, maximum=10**18 - 1, max_chars=18)
    except ParameterError:
        raise CartError(CartErrorCode.UNKNOWN_PRODUCT, "That product does not exist.") from None


def _load_product(session: Session, product_id: int) -> Product:
    product = session.get(Product, product_id)
    if product is None:
        raise CartError(CartErrorCode.UNKNOWN_PRODUCT, "That product does not exist.")
    return product


def _require_purchasable(product: Product) -> None:
    if product.removed_at is not None or not product.available or not product.marketplace.active:
        raise CartError(
            CartErrorCode.UNAVAILABLE,
            f"“{isolated(product.title)}” is not available right now, so it was not added.",
        )


def _require_in_stock(product: Product) -> None:
    """An offer with none left (its published stock 0, or all of it held by our own orders:
    commerce.offer_stock) cannot be put in the cart (nor have its quantity raised); an unknown
    stock (None) is not a limit."""
    left = stock_left(product)
    if left is not None and left <= 0:
        raise CartError(
            CartErrorCode.OUT_OF_STOCK,
            f"“{isolated(product.title)}” is out of stock at {product.marketplace.name}, "
            "so your cart was not changed.",
        )


def stock_limit_message(product: Product, quantity: int) -> str:
    """What the shopper is told when a line was capped at what is left of the offer."""
    return (
        f"Only {stock_left(product)} left at {product.marketplace.name}; your cart has {quantity}."
    )


def cap_at_stock(product: Product, wanted: int, notices: list[str] | None) -> int:
    """`wanted`, or what is left of the offer when that is lower (noted in `notices` for the
    shopper). The caller has checked something is left."""
    left = stock_left(product)
    if left is None or wanted <= left:
        return wanted
    if notices is not None:
        notices.append(stock_limit_message(product, left))
    return left


def _added_quantity(product: Product, current: int, added: int, notices: list[str] | None) -> int:
    """`current` + `added` of `product`, capped at what is left of it; the 99 limit refuses
    only a sum the stock does not already cap."""
    left = stock_left(product)
    if left is not None and left < current + added:
        return cap_at_stock(product, current + added, notices)
    return _combined_quantity(current, added, product.title)


def _combined_quantity(current: int, added: int, title: str) -> int:
    total = current + added
    if total > QUANTITY_MAX:
        raise CartError(
            CartErrorCode.INVALID_QUANTITY,
            f"You can have at most {QUANTITY_MAX} of “{isolated(title)}” in your cart "
            f"(you already have {current}).",
        )
    return total


# --- Signed-in shoppers (DB) -------------------------------------------------------------------


def _user_line(session: Session, user: User, product_id: int) -> CartItem | None:
    return session.scalars(
        sa.select(CartItem).where(CartItem.user_id == user.id, CartItem.product_id == product_id)
    ).one_or_none()


def add_to_cart(
    session: Session,
    user: User,
    product_id: int,
    quantity: int = 1,
    *,
    notices: list[str] | None = None,
) -> CartItem:
    """Put `quantity` of an offer in the shopper's cart (added to any quantity already there),
    at most the offer's published stock (a cap is told in `notices`)."""
    check_quantity(quantity)
    product = _load_product(session, product_id)
    _require_purchasable(product)
    _require_in_stock(product)
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
            quantity=cap_at_stock(product, quantity, notices),
            price_seen_minor=product.price_minor,
            currency_seen=product.currency,
            added_at=datetime.now(UTC),
        )
        session.add(line)
    else:
        line.quantity = _added_quantity(product, line.quantity, quantity, notices)
        # The shopper just saw today's price: that is the one to compare against later.
        line.price_seen_minor = product.price_minor
        line.currency_seen = product.currency
    session.flush()
    return line


def _stock_checked_quantity(
    product: Product | None, current: int, wanted: int, notices: list[str] | None
) -> int:
    """A line's new quantity under the offer's published stock: lowering is always allowed,
    raising an out-of-stock offer is refused, and more than the stock is capped at it."""
    if product is None:
        return wanted
    if wanted > current:
        _require_in_stock(product)
    left = stock_left(product)
    if left is not None and left <= 0:
        return wanted
    return cap_at_stock(product, wanted, notices)


def update_cart_quantity(
    session: Session,
    user: User,
    product_id: int,
    quantity: int,
    *,
    notices: list[str] | None = None,
) -> CartItem:
    """Set a line's quantity (1..99, at most the offer's published stock: a cap is told in
    `notices`); removing is a separate, explicit action."""
    check_quantity(quantity)
    line = _user_line(session, user, product_id)
    if line is None:
        raise CartError(CartErrorCode.NOT_IN_CART, "That item is no longer in your cart.")
    line.quantity = _stock_checked_quantity(
        session.get(Product, product_id), line.quantity, quantity, notices
    )
    session.flush()
    return line


def remove_from_cart(session: Session, user: User, product_id: int) -> None:
    """Take a line out of the shopper's cart."""
    line = _user_line(session, user, product_id)
    if line is None:
        raise CartError(CartErrorCode.NOT_IN_CART, "That item is no longer in your cart.")
    session.delete(line)
    session.flush()


def _require_same_product(current: Product | None, replacement: Product) -> None:
    if (
        current is None
        or not current.relation_token
        or current.relation_token != replacement.relation_token
    ):
        raise CartError(
            CartErrorCode.DIFFERENT_PRODUCT,
            f"“{isolated(replacement.title)}” is not the same product, so your cart was not changed.",
        )


def swap_cart_offer(
    session: Session,
    user: User,
    product_id: int,
    replacement_id: int,
    *,
    notices: list[str] | None = None,
) -> CartItem:
    """Replace a cart line by another marketplace's offer of the same product (a cheaper-offer
    hint's button), keeping the line's quantity and its place in the cart.

    When the replacement is already in the cart the two lines become one (quantities added,
    at most 99); the swapped-out offer never stays beside it. The quantity is capped at the
    replacement's published stock (told in `notices`).
    """
    line = _user_line(session, user, product_id)
    if line is None:
        raise CartError(CartErrorCode.NOT_IN_CART, "That item is no longer in your cart.")
    replacement = _load_product(session, replacement_id)
    _require_purchasable(replacement)
    if replacement.id == product_id:
        return line
    _require_same_product(session.get(Product, product_id), replacement)
    _require_in_stock(replacement)
    existing = _user_line(session, user, replacement.id)
    if existing is not None:
        existing.quantity = _added_quantity(replacement, existing.quantity, line.quantity, notices)
        session.delete(line)
        line = existing
    else:
        line.product_id = replacement.id
        line.relation_token = replacement.relation_token
        line.quantity = cap_at_stock(replacement, line.quantity, notices)
    line.price_seen_minor = replacement.price_minor
    line.currency_seen = replacement.currency
    session.flush()
    return line


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
    session: Session,
    guest_lines: object,
    product_id: int,
    quantity: int = 1,
    *,
    notices: list[str] | None = None,
) -> list[GuestLine]:
    """The guest cart with `quantity` of an offer added (at most its published stock: a cap is
    told in `notices`); the caller stores the returned list."""
    check_quantity(quantity)
    product = _load_product(session, product_id)
    _require_purchasable(product)
    _require_in_stock(product)
    lines = normalize_guest_lines(guest_lines)
    for line in lines:
        if line["product_id"] == product_id:
            line["quantity"] = _added_quantity(product, line["quantity"], quantity, notices)
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
            "quantity": cap_at_stock(product, quantity, notices),
            "price_seen_minor": product.price_minor,
            "currency_seen": product.currency,
            "added_at": datetime.now(UTC).isoformat(),
        }
    )
    return lines


def update_guest_quantity(
    guest_lines: object,
    product_id: int,
    quantity: int,
    *,
    session: Session | None = None,
    notices: list[str] | None = None,
) -> list[GuestLine]:
    """The guest cart with one line's quantity set (1..99; with the catalog's `session`, at
    most the offer's published stock: a cap is told in `notices`)."""
    check_quantity(quantity)
    lines = normalize_guest_lines(guest_lines)
    for line in lines:
        if line["product_id"] == product_id:
            product = session.get(Product, product_id) if session is not None else None
            line["quantity"] = _stock_checked_quantity(product, line["quantity"], quantity, notices)
            return lines
    raise CartError(CartErrorCode.NOT_IN_CART, "That item is no longer in your cart.")


def remove_from_guest_cart(guest_lines: object, product_id: int) -> list[GuestLine]:
    """The guest cart without one line."""
    lines = normalize_guest_lines(guest_lines)
    kept = [line for line in lines if line["product_id"] != product_id]
    if len(kept) == len(lines):
        raise CartError(CartErrorCode.NOT_IN_CART, "That item is no longer in your cart.")
    return kept


def swap_guest_offer(
    session: Session,
    guest_lines: object,
    product_id: int,
    replacement_id: int,
    *,
    notices: list[str] | None = None,
) -> list[GuestLine]:
    """The guest cart with one line replaced by another offer of the same product (same
    quantity, same place); see swap_cart_offer."""
    lines = normalize_guest_lines(guest_lines)
    line = next((line for line in lines if line["product_id"] == product_id), None)
    if line is None:
        raise CartError(CartErrorCode.NOT_IN_CART, "That item is no longer in your cart.")
    replacement = _load_product(session, replacement_id)
    _require_purchasable(replacement)
    if replacement.id == product_id:
        return lines
    _require_same_product(session.get(Product, product_id), replacement)
    _require_in_stock(replacement)
    existing = next((other for other in lines if other["product_id"] == replacement.id), None)
    if existing is not None:
        existing["quantity"] = _added_quantity(
            replacement, existing["quantity"], line["quantity"], notices
        )
        lines.remove(line)
        line = existing
    else:
        line["product_id"] = replacement.id
        line["quantity"] = cap_at_stock(replacement, line["quantity"], notices)
    line["price_seen_minor"] = replacement.price_minor
    line["currency_seen"] = replacement.currency
    return lines


def guest_item_count(guest_lines: object) -> int:
    """Units in a guest cart (the header's cart count)."""
    return sum(line["quantity"] for line in normalize_guest_lines(guest_lines))


@dataclass(frozen=True, slots=True)
class MergeResult:
    """What merging a guest cart at sign-in did, so the site can tell the shopper."""

    merged: int
    capped: tuple[str, ...] = ()
    unknown: tuple[int, ...] = ()
    # One per line lowered to its offer's published stock, naming the product.
    stock_notices: tuple[str, ...] = ()
    # One per line the account's cart held before this sign-in, naming the product and how
    # many: signing in (often at the checkout) must not silently add to what the shopper saw.
    earlier_lines: tuple[str, ...] = ()


def merge_guest_cart(session: Session, user: User, guest_lines: object) -> MergeResult:
    """Move a guest cart into the shopper's account cart at sign-in.

    Quantities of an offer already in the account cart are added; nothing is dropped except ids
    that do not exist at all. A line is capped at the offer's published stock (as the cart's own
    changes are; reported in `stock_notices`), and a sum above 99 at 99 (reported in `capped`).
    Unavailable and out-of-stock offers are kept too (they show as unavailable), because the
    shopper put them there.
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
        for item in session.scalars(
            sa.select(CartItem).where(CartItem.user_id == user.id).order_by(CartItem.id)
        )
    }
    earlier = {product_id: item.quantity for product_id, item in existing.items()}
    merged = 0
    guest_quantity: dict[int, int] = {}
    capped: list[str] = []
    stock_notices: list[str] = []
    unknown: list[int] = []
    for line in lines:
        product = products.get(line["product_id"])
        if product is None:
            unknown.append(line["product_id"])
            continue
        guest_quantity[product.id] = guest_quantity.get(product.id, 0) + line["quantity"]
        item = existing.get(product.id)
        if item is None:
            price_seen = line.get("price_seen_minor")
            currency_seen = line.get("currency_seen")
            if not isinstance(price_seen, int) or not isinstance(currency_seen, str):
                price_seen, currency_seen = product.price_minor, product.currency
            added_at = parse_timestamp(line.get("added_at"))
            item = CartItem(
                user_id=user.id,
                product_id=product.id,
                relation_token=product.relation_token,
                quantity=_merged_quantity(product, line["quantity"], stock_notices),
                price_seen_minor=price_seen,
                currency_seen=currency_seen,
                added_at=added_at,
            )
            session.add(item)
            existing[product.id] = item
        else:
            total = _merged_quantity(product, item.quantity + line["quantity"], stock_notices)
            if total > QUANTITY_MAX:
                capped.append(product.title)
                total = QUANTITY_MAX
            item.quantity = total
        merged += 1
    session.flush()
    return MergeResult(
        merged=merged,
        capped=tuple(capped),
        unknown=tuple(unknown),
        stock_notices=tuple(stock_notices),
        earlier_lines=tuple(
            _earlier_line(existing[product_id], before, added=guest_quantity.get(product_id, 0))
            for product_id, before in earlier.items()
        ),
    )


def _earlier_line(item: CartItem, before: int, *, added: int) -> str:
    """“Title” (2 from before + 1 now = 3), or “Title” (2) for a line the guest did not add."""
    title = f"“{isolated(item.product.title)}”"
    if not added:
        return f"{title} ({before})"
    return f"{title} ({before} from before + {added} now = {item.quantity})"


def _merged_quantity(product: Product, wanted: int, stock_notices: list[str]) -> int:
    """A merged line's quantity, capped at what is left of the offer (noted, naming the
    product: the sign-in page tells of every line at once). Nothing left caps nothing: the line
    is kept and shows as out of stock."""
    left = stock_left(product)
    if left is None or left <= 0 or wanted <= left:
        return wanted
    stock_notices.append(f"“{isolated(product.title)}”: {stock_limit_message(product, left)}")
    return left


def parse_timestamp(value: object) -> datetime:
    """An aware UTC timestamp from a guest line's ISO string (now, when it is missing or bad)."""
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            parsed = None
        if parsed is not None and parsed.tzinfo is not None:
            return parsed.astimezone(UTC)
    return datetime.now(UTC)
