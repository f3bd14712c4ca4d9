"""/admin/actions: what operators did in the admin area (commerce.operator_actions), newest
first, a page at a time, by order number or marketplace. On the admin blueprint, so its gate
(storefront.admin.routes.require_admin: an admin who typed the password lately) applies."""

from __future__ import annotations

import sqlalchemy as sa
from flask import render_template, request

from commerce.models import Marketplace
from commerce.operator_actions import ORDER_NUMBER_FILTER_MAX_LENGTH, list_operator_actions
from storefront.admin.routes import bp
from storefront.database import db_session
from storefront.page_numbers import page_number

ACTIONS_PAGE_SIZE = 50
# A marketplace id as the filter's <select> sends it (ids are positive 64-bit integers at most).
MARKETPLACE_ID_MAX_DIGITS = 18


@bp.get("/actions")
def operator_actions() -> tuple[str, int]:
    """Who marked a part placed, refunded, cancelled, or added, edited, disabled or enabled a
    marketplace: newest first, ACTIONS_PAGE_SIZE a page, `?order=OC-…` and `?marketplace=<id>`."""
    order_number = (request.args.get("order") or "").strip()[:ORDER_NUMBER_FILTER_MAX_LENGTH]
    raw_marketplace = (request.args.get("marketplace") or "").strip()
    marketplaces = db_session().execute(
        sa.select(Marketplace.id, Marketplace.name, Marketplace.slug).order_by(
            Marketplace.name, Marketplace.id
        )
    )
    marketplaces = list(marketplaces)
    marketplace_id: int | None = None
    if raw_marketplace:
        if not (
            raw_marketplace.isascii()
            and raw_marketplace.isdigit()
            and len(raw_marketplace) <= MARKETPLACE_ID_MAX_DIGITS
        ):
            return render_template(
                "admin/operator_actions.html",
                listing=None,
                error="Choose a marketplace from the list (or all marketplaces).",
                order_number=order_number,
                marketplace_id=None,
                marketplaces=marketplaces,
            ), 400
        marketplace_id = int(raw_marketplace)
    listing = list_operator_actions(
        db_session(),
        order_number=order_number,
        marketplace_id=marketplace_id,
        page=page_number(request.args.get("page")),
        page_size=ACTIONS_PAGE_SIZE,
    )
    return render_template(
        "admin/operator_actions.html",
        listing=listing,
        error=None,
        order_number=order_number,
        marketplace_id=marketplace_id,
        marketplaces=marketplaces,
    ), 200
