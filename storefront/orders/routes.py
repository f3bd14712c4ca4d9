"""Orders and notifications: confirmation, history, detail with sub-orders, cancellation, the
read-only status page opened with the order's authentication token, and the notifications list.

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
    redirect,
    render_template,
    url_for,
)
from flask_login import current_user, login_required

from commerce.notifications import list_notifications, mark_all_read, mark_read, unread_count
from commerce.order_models import Order
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
from storefront.database import db_session, session_factory
from storefront.jobs import (
    JobPolicy,
    enqueue_outbox_message,
    redis_connection,
)

logger = logging.getLogger(__name__)

bp = Blueprint("orders", __name__, template_folder="templates", cli_group="orders")


def _user_id() -> int:
    return int(current_user.id)


def _job_policy() -> JobPolicy:
    return JobPolicy.from_dict(current_app.config.get("ORDER_JOB_POLICY"))


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
    return url_for("orders.status_page", token=order.status_token, _external=True)


@bp.get("/orders")
@login_required
def history() -> str:
    """The shopper's orders, newest first."""
    return render_template("orders/history.html", orders=list_user_orders(db_session(), _user_id()))


@bp.get("/orders/<number>/confirmation")
@login_required
def confirmation(number: str) -> str:
    """Thank-you page right after checkout: one number, one total, every item by marketplace."""
    order = _own_order(number)
    return render_template(
        "orders/detail.html",
        order=order,
        confirmation=True,
        status_link=_status_link(order),
        cancellable=order_is_cancellable(order),
    )


@bp.get("/orders/<number>")
@login_required
def detail(number: str) -> str:
    """One order with its expandable sub-orders (marketplace order id, status, tracking)."""
    order = _own_order(number)
    return render_template(
        "orders/detail.html",
        order=order,
        confirmation=False,
        status_link=_status_link(order),
        cancellable=order_is_cancellable(order),
    )


@bp.post("/orders/<number>/cancel")
@login_required
def cancel(number: str) -> Response:
    """Ask for the order to be cancelled; the cancellation job does the rest."""
    session = db_session()
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
    flash(
        "We are cancelling your order. Parts not placed yet are cancelled now; the marketplaces "
        "confirm the rest shortly, and every cancelled part is refunded.",
        "success",
    )
    return redirect(url_for("orders.detail", number=number), code=303)


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


@bp.get("/order-status/<token>")
def status_page(token: str) -> Response | str:
    """The read-only status of one order, for whoever has its link (no sign-in needed)."""
    order = find_order_by_status_token(db_session(), token)
    if order is None:
        abort(404)
    response = Response(render_template("orders/status.html", order=order))
    # The token is a credential: keep it out of caches and out of Referer headers.
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


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
    return redirect(url_for("orders.notifications"), code=303)
