"""About, Support (form → ticket → confirmation with its reference) and the shopper's tickets."""

from __future__ import annotations

import sqlalchemy as sa
from flask import Blueprint, abort, redirect, render_template, session, url_for
from flask_login import current_user, login_required
from werkzeug.wrappers import Response

from commerce.models import Marketplace
from commerce.support import SupportError, create_ticket, find_user_ticket, list_user_tickets
from storefront.database import db_session
from storefront.form_errors import attach_service_errors, form_page
from storefront.limits import enforce_form_limit
from storefront.pages.forms import SupportForm

bp = Blueprint("pages", __name__)

LAST_TICKET_SESSION_KEY = "last_support_ticket"


@bp.get("/about")
def about() -> str:
    """What OneCart is, how it works and which marketplaces it covers."""
    marketplaces = db_session().scalars(
        sa.select(Marketplace).where(Marketplace.active.is_(True)).order_by(Marketplace.name)
    )
    return render_template("pages/about.html", marketplaces=list(marketplaces))


@bp.route("/support", methods=["GET", "POST"])
def support() -> Response | tuple[str, int]:
    """The support form; prefilled with the signed-in shopper's name and e-mail."""
    form = SupportForm()
    if not form.is_submitted() and current_user.is_authenticated:
        form.name.data = current_user.full_name or current_user.username
        form.email.data = current_user.email
    if not form.validate_on_submit():
        return form_page(form, render_template("pages/support.html", form=form))
    # Per client: the form needs no account, so nothing else stops a flood of tickets.
    enforce_form_limit("support")
    db = db_session()
    try:
        ticket = create_ticket(
            db,
            name=form.name.data or "",
            email=form.email.data or "",
            order_number=form.order_number.data,
            subject=form.subject.data or "",
            message=form.message.data or "",
            user=current_user if current_user.is_authenticated else None,
        )
    except SupportError as exc:
        db.rollback()
        attach_service_errors(form, exc.errors)
        return form_page(form, render_template("pages/support.html", form=form))
    db.commit()
    session[LAST_TICKET_SESSION_KEY] = ticket.reference
    return redirect(url_for("pages.support_received"))


@bp.get("/support/received")
def support_received() -> Response | str:
    """Confirmation with the reference of the ticket this browser just sent."""
    reference = session.get(LAST_TICKET_SESSION_KEY)
    if not reference:
        return redirect(url_for("pages.support"))
    return render_template("pages/support_received.html", reference=reference)


@bp.get("/support/tickets")
@login_required
def tickets() -> str:
    """The signed-in shopper's own tickets."""
    return render_template(
        "pages/tickets.html", tickets=list_user_tickets(db_session(), current_user)
    )


@bp.get("/support/tickets/<reference>")
@login_required
def ticket_detail(reference: str) -> str:
    """One of the shopper's tickets; anyone else's is a 404 (its existence is not revealed)."""
    ticket = find_user_ticket(db_session(), current_user, reference)
    if ticket is None:
        abort(404)
    return render_template("pages/ticket_detail.html", ticket=ticket)
