"""The checkout route exists now so links work; paying arrives with the checkout issue."""

from __future__ import annotations

from flask import Blueprint, render_template, session
from flask_login import current_user

from commerce.cart import build_cart_view
from storefront.cart.routes import GUEST_CART_SESSION_KEY
from storefront.catalog.shopper import display_currency, fx_table
from storefront.database import db_session

bp = Blueprint("checkout", __name__, template_folder="templates")


@bp.get("/checkout")
def checkout() -> str:
    """The cart summary and an honest note: payment is not available yet."""
    cart = build_cart_view(
        db_session(),
        user=current_user._get_current_object() if current_user.is_authenticated else None,  # type: ignore[attr-defined]
        guest_lines=session.get(GUEST_CART_SESSION_KEY),
        display_currency=display_currency(),
        fx=fx_table(),
    )
    return render_template("checkout/checkout.html", cart=cart)
