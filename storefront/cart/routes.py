"""Cart views: the cart page and its add / update / remove forms (POST + CSRF, then redirect).

Signed-in shoppers' carts live in the DB; guests' carts are a list in the session (key
`guest_cart`, shared with storefront.auth), handed to commerce.cart and stored back. At sign-in,
storefront.auth.sign_in merges the guest cart into the account's cart with
commerce.cart.merge_guest_cart, so nothing put in the cart before signing in is lost.

Hand-off items (bought on a marketplace's own site) leave the cart at checkout and live on in the
order; the shopper's "bought" / "remove" buttons for them on the order page post here too.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_required
from sqlalchemy.orm import Session

from commerce.cart import (
    CartError,
    add_to_cart,
    add_to_guest_cart,
    cart_item_count,
    guest_item_count,
    parse_product_id,
    remove_from_cart,
    remove_from_guest_cart,
    swap_cart_offer,
    swap_guest_offer,
    update_cart_quantity,
    update_guest_quantity,
)
from commerce.cart_view import build_cart_view
from commerce.fx import format_rate
from commerce.handoff import HandoffItemNotFound, handoff_cart_url, set_handoff_item_status
from commerce.models import Product, User
from commerce.order_models import HandoffItemStatus
from onecart.bidi import isolated
from storefront.cart.forms import (
    CART_FOCUS_SESSION_KEY,
    AddToCartForm,
    HandoffItemForm,
    RemoveCartLineForm,
    SwapCartLineForm,
    UpdateCartLineForm,
)
from storefront.catalog.shopper import display_currency, fx_table
from storefront.database import db_session
from storefront.security import safe_next_url

bp = Blueprint("cart", __name__, template_folder="templates")

GUEST_CART_SESSION_KEY = "guest_cart"


def _signed_in_user() -> User | None:
    return current_user._get_current_object() if current_user.is_authenticated else None  # type: ignore[attr-defined]


@bp.app_template_global("handoff_cart_url")
def handoff_cart_url_for_group(group: Any) -> str | None:
    """One URL that opens a hand-off group's items in one cart on its marketplace (Amazon's
    add-to-cart form), or None; `group` is a cart group or a checkout quote group."""
    lines = [
        (line.product_id, line.quantity) for line in group.lines if getattr(line, "available", True)
    ]
    return handoff_cart_url(db_session(), group.slug, lines)


@bp.app_template_global("handoff_item_form")
def handoff_item_form(status: str) -> HandoffItemForm:
    """The form of one bought / remove / undo button on the order page's hand-off items."""
    return HandoffItemForm(formdata=None, status=HandoffItemStatus(status).value)


@bp.app_template_global("format_rate")
def format_rate_for_page(rate: Decimal) -> str:
    """Exchange rates as shoppers read them (see commerce.fx.format_rate)."""
    return format_rate(rate)


@bp.app_context_processor
def cart_count() -> dict[str, Any]:
    """`cart_count` for the layout's header: units in the shopper's cart."""
    user = _signed_in_user()
    if user is not None:
        return {"cart_count": cart_item_count(db_session(), user)}
    return {"cart_count": guest_item_count(session.get(GUEST_CART_SESSION_KEY))}


def _first_error(form: Any) -> str:
    for errors in form.errors.values():
        if errors:
            return str(errors[0])
    return "Please check the form and try again."


def _back(target: str | None, default: str) -> Response:
    return redirect(safe_next_url(target) or default, code=303)


def _at_line(product_id: object) -> str:
    """The cart at one line (`#line-<id>`): the browser scrolls there and a keyboard user's next
    Tab continues from it, instead of from the top of the page. The cart when the id is bad."""
    try:
        return url_for("cart.view_cart", _anchor=f"line-{parse_product_id(product_id)}")
    except CartError:
        return url_for("cart.view_cart")


@bp.get("/cart")
def view_cart() -> str:
    """The cart in two parts: "Pay with OneCart" (one total in the display currency) and "Buy on
    the marketplace" (links, never charged), with subtotals, rates and cheaper-offer hints."""
    cart = build_cart_view(
        db_session(),
        user=_signed_in_user(),
        guest_lines=session.get(GUEST_CART_SESSION_KEY),
        display_currency=display_currency(),
        fx=fx_table(),
    )
    return render_template(
        "cart/cart.html",
        cart=cart,
        update_form=UpdateCartLineForm,
        remove_form=RemoveCartLineForm,
        swap_form=SwapCartLineForm,
    )


def _change_cart(
    product_id_text: str | None,
    for_account: Callable[[Session, User, int], object],
    for_guest: Callable[[Session, list[Any] | None, int], list[Any]],
) -> tuple[int | None, str | None]:
    """Apply one change to the shopper's cart (the account's in the DB, or the guest cart in the
    session) and commit it. Returns the line's product id, and the reason when commerce.cart
    refused the change (nothing is changed then)."""
    try:
        product_id = parse_product_id(product_id_text)
        user = _signed_in_user()
        if user is not None:
            for_account(db_session(), user, product_id)
        else:
            session[GUEST_CART_SESSION_KEY] = for_guest(
                db_session(), session.get(GUEST_CART_SESSION_KEY), product_id
            )
        db_session().commit()
    except CartError as error:
        db_session().rollback()
        return None, error.message
    return product_id, None


@bp.post("/cart/add")
def add() -> Response:
    """Add an offer (from the product page), then go back."""
    form = AddToCartForm()
    back_to = url_for("cart.view_cart")
    if (form.next.data or "").startswith("/product/") and form.product_id.data:
        session[CART_FOCUS_SESSION_KEY] = str(form.product_id.data)[:20]
    if not form.validate():
        flash(_first_error(form), "error")
        return _back(form.next.data or request.referrer, back_to)
    quantity = form.quantity.data or 0
    notices: list[str] = []
    product_id, refused = _change_cart(
        form.product_id.data,
        lambda db, user, product_id: add_to_cart(db, user, product_id, quantity, notices=notices),
        lambda db, lines, product_id: add_to_guest_cart(
            db, lines, product_id, quantity, notices=notices
        ),
    )
    if refused:
        flash(refused, "error")
        return _back(form.next.data, back_to)
    if notices:
        # Fewer than asked went in (the marketplace's stock): say so instead of "Added".
        for notice in notices:
            flash(notice, "warning")
        return _back(form.next.data, back_to)
    product = db_session().get(Product, product_id)
    flash(f"Added “{isolated(product.title) if product else 'item'}” to your cart.", "success")
    return _back(form.next.data, back_to)


@bp.post("/cart/update")
def update() -> Response:
    """Set a line's quantity (1..99, at most the offer's published stock)."""
    form = UpdateCartLineForm()
    if form.validate():
        quantity = form.quantity.data or 0
        notices: list[str] = []
        _, refused = _change_cart(
            form.product_id.data,
            lambda db, user, product_id: update_cart_quantity(
                db, user, product_id, quantity, notices=notices
            ),
            lambda db, lines, product_id: update_guest_quantity(
                lines, product_id, quantity, session=db, notices=notices
            ),
        )
        _flash_outcome(refused, "Quantity updated.", notices)
    else:
        flash(_first_error(form), "error")
    return _back(None, _at_line(form.product_id.data))


@bp.post("/cart/remove")
def remove() -> Response:
    """Remove a line."""
    form = RemoveCartLineForm()
    if form.validate():
        _, refused = _change_cart(
            form.product_id.data,
            lambda db, user, product_id: remove_from_cart(db, user, product_id),
            lambda db, lines, product_id: remove_from_guest_cart(lines, product_id),
        )
        _flash_outcome(refused, "Item removed from your cart.")
    else:
        flash(_first_error(form), "error")
    return _back(None, url_for("cart.view_cart"))


@bp.post("/cart/swap")
def swap() -> Response:
    """Replace a line by the cheaper offer of the same product, keeping its quantity."""
    form = SwapCartLineForm()
    if not form.validate():
        flash(_first_error(form), "error")
        return _back(None, url_for("cart.view_cart"))

    def replacement() -> int:
        return parse_product_id(form.replacement_id.data)

    notices: list[str] = []
    _, refused = _change_cart(
        form.product_id.data,
        lambda db, user, product_id: swap_cart_offer(
            db, user, product_id, replacement(), notices=notices
        ),
        lambda db, lines, product_id: swap_guest_offer(
            db, lines, product_id, replacement(), notices=notices
        ),
    )
    if refused:
        flash(refused, "error")
    else:
        offer = db_session().get(Product, replacement())
        marketplace = offer.marketplace.name if offer else "the other marketplace"
        flash(f"Your cart now has the {marketplace} offer instead.", "success")
        for notice in notices:
            flash(notice, "warning")
        return _back(None, _at_line(form.replacement_id.data))
    return _back(None, _at_line(form.product_id.data))


def _flash_outcome(refused: str | None, done: str, notices: list[str] | None = None) -> None:
    """The refusal, or what was capped at the marketplace's stock, or that it was done."""
    if refused:
        flash(refused, "error")
    elif notices:
        for notice in notices:
            flash(notice, "warning")
    else:
        flash(done, "success")


HANDOFF_FLASH = {
    HandoffItemStatus.BOUGHT: "Marked “{title}” as bought on {marketplace}.",
    HandoffItemStatus.REMOVED: "Removed “{title}” from the items to buy on {marketplace}.",
    HandoffItemStatus.TO_BUY: "“{title}” is back on your list to buy on {marketplace}.",
}


@bp.post("/orders/<number>/handoff-items/<int:item_id>")
@login_required
def handoff_item(number: str, item_id: int) -> Response:
    """Mark an item of the order bought on its marketplace's site, remove it, or undo that."""
    form = HandoffItemForm()
    back_to = url_for("orders.detail", number=number, _anchor="handoff-items")
    if not form.validate():
        flash(_first_error(form), "error")
        return redirect(back_to, code=303)
    user = _signed_in_user()
    assert user is not None  # login_required
    status = HandoffItemStatus(form.status.data)
    try:
        item = set_handoff_item_status(db_session(), user.id, number, item_id, status)
    except HandoffItemNotFound:
        db_session().rollback()
        abort(404)
    db_session().commit()
    flash(
        HANDOFF_FLASH[status].format(
            title=isolated(item.title), marketplace=item.sub_order.marketplace.name
        ),
        "success",
    )
    return redirect(back_to, code=303)
