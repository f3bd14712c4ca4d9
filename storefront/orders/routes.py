"""Orders and notifications: confirmation, history, detail with a timeline per marketplace and one
merged delivery timeline, cancellation (a confirmation step first, then each marketplace's
outcome and refund), confirming receipt where the marketplace reports no delivery, the read-only
status page opened with the order's authentication token, and the notifications list.

Every lookup is scoped to the signed-in shopper (another account's order number is a 404, exactly
like a number that does not exist). The status page shows one order and links nowhere that the
token would open; a wrong or replaced token is a plain 404.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user, login_required

from commerce.cancellation import cancellation_answer
from commerce.countries import country_name
from commerce.notifications import list_notifications, mark_all_read, mark_read, unread_count
from commerce.order_models import Order, SubOrderStatus
from commerce.order_part_states import why_not_cancellable
from commerce.order_timeline import (
    OrderView,
    build_order_view,
    order_status_label,
    payment_words,
)
from commerce.orders import (
    OrderActionError,
    find_order_by_status_token,
    get_user_order,
    list_user_orders,
    order_is_cancellable,
    request_cancellation,
    rotate_status_token,
)
from commerce.sweeper import dispatch_outbox
from commerce.tracking import confirm_receipt
from storefront.database import db_session, session_factory
from storefront.errors.routes import json_endpoint
from storefront.jobs import (
    JobPolicy,
    enqueue_outbox_message,
    redis_connection,
)
from storefront.security import public_url_for

logger = logging.getLogger(__name__)

bp = Blueprint(
    "orders",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/static/orders",
    cli_group="orders",
)


def _user_id() -> int:
    return int(current_user.id)


def _job_policy() -> JobPolicy:
    return JobPolicy.from_dict(current_app.config.get("ORDER_JOB_POLICY"))


@bp.app_template_global()
def order_status_text(order: Order) -> str:
    """The order's status in words for templates ("Partly cancelled" included)."""
    return order_status_label(order)


@bp.app_template_global("payment_words")
def payment_words_for(order: Order) -> str:
    """How the order was paid and where that payment stands, in words (order_timeline)."""
    return payment_words(order)


@bp.app_context_processor
def unread_notifications() -> dict[str, Any]:
    """`unread_notifications` for the layout's header: the signed-in shopper's unread count."""
    if not current_user.is_authenticated:
        return {"unread_notifications": 0}
    return {"unread_notifications": unread_count(db_session(), _user_id())}


def _own_order(number: str) -> Order:
    order = get_user_order(db_session(), _user_id(), number)
    if order is None:
        abort(404)
    return order


def _status_link(order: Order) -> str:
    return public_url_for("orders.status_page", token=order.status_token)


@bp.get("/orders")
@login_required
def history() -> str:
    """The shopper's orders, newest first."""
    return render_template("orders/history.html", orders=list_user_orders(db_session(), _user_id()))


# Parts still being placed with their marketplace: while any is, the order pages poll
# /orders/<number>/status.json (static/order_status.js) and offer a "Refresh" link.
PLACING_STATUSES = frozenset(
    {SubOrderStatus.PENDING, SubOrderStatus.PLACING, SubOrderStatus.RECONCILING}
)


def _placing(order: Order) -> bool:
    return any(sub.status in PLACING_STATUSES for sub in order.sub_orders)


def _cancelling(view: OrderView) -> bool:
    """A cancellation still waits for a marketplace's answer ("asking ShopWave to cancel…")."""
    return any(line.outcome == "pending" for _, line in view.cancellation)


def _progress(order: Order, view: OrderView) -> str | None:
    """What the page waits for while it polls (`placing`, `cancelling`), else None."""
    if _placing(order):
        return "placing"
    return "cancelling" if _cancelling(view) else None


def _render_order(order: Order, *, confirmation: bool) -> str:
    view = build_order_view(db_session(), order)
    cancellable = order_is_cancellable(order)
    return render_template(
        "orders/detail.html",
        order=order,
        view=view,
        progress=_progress(order, view),
        confirmation=confirmation,
        status_link=_status_link(order),
        cancellable=cancellable,
        not_cancellable_why=None if cancellable else why_not_cancellable(order),
        country_name=country_name,
    )


@bp.get("/orders/<number>/confirmation")
@login_required
def confirmation(number: str) -> str:
    """Thank-you page right after checkout: one number, one total, every item by marketplace."""
    return _render_order(_own_order(number), confirmation=True)


@bp.get("/orders/<number>")
@login_required
def detail(number: str) -> str:
    """One order: its status, a timeline per marketplace (tracking number and carrier once
    shipped) and the merged delivery timeline of the whole order."""
    return _render_order(_own_order(number), confirmation=False)


def _status_answer(order: Order) -> Response:
    """The parts' states as the order pages word them, for their polling script (no-store).
    `pending` says whether the page still waits: a part being placed, or a marketplace's answer
    to a cancellation."""
    view = build_order_view(db_session(), order)
    parts = [
        {
            "id": part.sub_order.id,
            "marketplace": part.sub_order.marketplace.name,
            "state": part.state,
            "state_key": part.state_key,
            "order_number": part.sub_order.display_number,
            "pending": part.sub_order.status in PLACING_STATUSES,
        }
        for part in view.sub_orders
    ]
    response = jsonify(
        {
            "number": order.number,
            "status": view.status_label,
            "pending": any(part["pending"] for part in parts) or _cancelling(view),
            "parts": parts,
            # As the status page writes it (UTC), which order_status.js updates in place.
            "last_update": view.last_update.strftime("%d %b %Y %H:%M"),
        }
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/orders/<number>/status.json")
@json_endpoint
@login_required
def status_json(number: str) -> Response:
    """The order page's polling answer (owner only, like the page; a lapsed sign-in is a JSON
    401, not a redirect to the sign-in page)."""
    return _status_answer(_own_order(number))


@bp.get("/orders/<number>/cancel")
@login_required
def cancel_confirmation(number: str) -> Response | str:
    """The confirmation step: what cancelling would do at each marketplace, before anything
    is done."""
    order = _own_order(number)
    if not order_is_cancellable(order):
        flash("This order can no longer be cancelled.", "error")
        return redirect(url_for("orders.detail", number=number), code=303)
    return render_template(
        "orders/cancel_confirm.html", order=order, view=build_order_view(db_session(), order)
    )


@bp.post("/orders/<number>/cancel")
@login_required
def cancel(number: str) -> Response:
    """Cancel once the shopper confirmed (`confirm=yes` from the confirmation page); without it,
    show the confirmation page. The cancellation job does the rest."""
    session = db_session()
    if request.form.get("confirm") != "yes":
        _own_order(number)
        return redirect(url_for("orders.cancel_confirmation", number=number), code=303)
    try:
        order = request_cancellation(session, _user_id(), number)
    except OrderActionError as exc:
        session.rollback()
        if get_user_order(session, _user_id(), number) is None:
            abort(404)
        flash(exc.message, "error")
        return redirect(url_for("orders.detail", number=number), code=303)
    session.commit()
    _dispatch(order.id)
    # Said from the state the cancellation left, not from the preview: a placement may have
    # claimed a part since the confirmation page was shown.
    flash(cancellation_answer(order), "success")
    return redirect(url_for("orders.detail", number=number) + "#cancellation", code=303)


@bp.post("/orders/<number>/sub-orders/<int:sub_order_id>/received")
@login_required
def received(number: str, sub_order_id: int) -> Response:
    """The shopper confirms a part arrived, for a marketplace that does not report delivery."""
    session = db_session()
    if not confirm_receipt(session, _user_id(), number, sub_order_id):
        session.rollback()
        _own_order(number)
        flash("That part of the order is not waiting for your confirmation.", "error")
        return redirect(url_for("orders.detail", number=number), code=303)
    session.commit()
    flash("Thanks — marked as received.", "success")
    # Back at that part's panel (not the top of the page), as the hand-off items' buttons do.
    return redirect(
        url_for("orders.detail", number=number, _anchor=f"part-{sub_order_id}"), code=303
    )


def _dispatch(order_id: int) -> None:
    connection = redis_connection(current_app.config["REDIS_URL"])
    policy = _job_policy()
    try:
        dispatch_outbox(
            session_factory(),
            lambda message: enqueue_outbox_message(connection, policy, message),
            order_id=order_id,
        )
    except Exception:  # recorded in the outbox: the sweeper enqueues it later
        logger.exception("enqueueing jobs of order %s failed", order_id)
    finally:
        connection.close()


@bp.post("/orders/<number>/status-link")
@login_required
def new_status_link(number: str) -> Response:
    """Replace the order's status link (the old one stops working)."""
    order = _own_order(number)
    rotate_status_token(db_session(), order)
    db_session().commit()
    flash("Here is a new status link; the old one no longer works.", "success")
    return redirect(url_for("orders.detail", number=number), code=303)


def _order_by_token(token: str) -> Order:
    order = find_order_by_status_token(db_session(), token)
    if order is None:
        abort(404)
    return order


def _keep_token_private(response: Response) -> Response:
    # The token is a credential: keep it out of caches and out of Referer headers.
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@bp.get("/order-status/<token>")
def status_page(token: str) -> Response | str:
    """The read-only status of one order, for whoever has its link (no sign-in needed). While
    a part is being placed it polls its own JSON status, as the owner's page does."""
    order = _order_by_token(token)
    view = build_order_view(db_session(), order)
    return _keep_token_private(
        Response(
            render_template(
                "orders/status.html", order=order, view=view, progress=_progress(order, view)
            )
        )
    )


@bp.get("/order-status/<token>/status.json")
@json_endpoint
def public_status_json(token: str) -> Response:
    """The status page's polling answer, under the same token (a wrong one is a JSON 404)."""
    return _keep_token_private(_status_answer(_order_by_token(token)))


@bp.get("/notifications")
@login_required
def notifications() -> str:
    """The shopper's notifications, unread first highlighted."""
    return render_template(
        "orders/notifications.html",
        notifications=list_notifications(db_session(), _user_id()),
    )


@bp.post("/notifications/read")
@login_required
def read_all() -> Response:
    """Mark every notification read."""
    mark_all_read(db_session(), _user_id())
    db_session().commit()
    return redirect(url_for("orders.notifications"), code=303)


@bp.post("/notifications/<int:notification_id>/read")
@login_required
def read_one(notification_id: int) -> Response:
    """Mark one of the shopper's notifications read (someone else's is a 404)."""
    if not mark_read(db_session(), _user_id(), notification_id):
        db_session().rollback()
        abort(404)
    db_session().commit()
    # Back at that notification, not at the top of the list.
    return redirect(url_for("orders.notifications", _anchor=f"note-{notification_id}"), code=303)
