"""Admin views for marketplaces and for orders that need an operator. Every route requires an
admin: anonymous visitors are sent to login, signed-in non-admins get 403. API keys are shown
masked only."""

from __future__ import annotations

from datetime import datetime, timedelta

import redis
import sqlalchemy as sa
from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy.orm import selectinload
from werkzeug.wrappers import Response

from commerce.acknowledgements import acknowledge_dispute, acknowledge_unowned_hold
from commerce.attention import (
    OPERATOR_CANCELLABLE_STATUSES,
    cancel_under_way,
    cancelled_by_operator,
    mark_placed_by_operator,
    operator_refund_label,
    refund_by_operator,
)
from commerce.card_hold_resolutions import HoldFinding, resolve_flagged_hold
from commerce.card_holds import NO_SUCH_INTENT
from commerce.dispute_models import PaymentDispute, UnownedCardHold
from commerce.disputes import list_disputes
from commerce.exactly_once_models import CardHoldInDoubt
from commerce.flag_resolution import FlagResolutionError, recent_resolutions, resolve_flag
from commerce.marketplace_admin import (
    MarketplaceChangedError,
    MarketplaceEditError,
    MarketplaceInput,
    absorbed_extras,
    create_marketplace,
    edit_fingerprint,
    list_marketplaces,
    set_marketplace_active,
    update_marketplace,
)
from commerce.models import Marketplace, User, utc_now
from commerce.operator_actions import (
    describe_marketplace_change,
    marketplace_state,
    marketplace_subject,
    record_operator_action,
)
from commerce.order_models import (
    MarketplaceOrder,
    Order,
    Payment,
    RefundStatus,
    SubOrderStatus,
)
from commerce.tracking_health import open_sub_orders_by_marketplace, tracking_failing_long
from commerce.wallet_admin import find_shoppers, ledger_cause, wallet_overview
from storefront.admin.forms import MarketplaceForm
from storefront.auth.routes import password_entered_recently
from storefront.catalog.shopper import forget_marketplaces
from storefront.database import db_session, session_factory
from storefront.extensions import login_manager
from storefront.form_errors import attach_service_errors, form_page
from storefront.jobs import DEFAULT_QUEUE
from storefront.page_numbers import page_number
from storefront.search_jobs import enqueue_listings_refresh, listings_refresh_states

bp = Blueprint("admin", __name__, url_prefix="/admin")

# How long a hold in doubt resolved as "Stripe knows no such intent" stays listed.
NO_SUCH_INTENT_SHOWN_FOR = timedelta(days=7)


@bp.before_request
def require_admin() -> Response | None:
    """The gate for the whole area: an admin, signed in with the password in this browser
    session (not only by the remember cookie)."""
    if not current_user.is_authenticated:
        return login_manager.unauthorized()  # type: ignore[no-any-return]
    if not current_user.is_admin:
        abort(403)
    if not password_entered_recently():
        # Signed in by the remember cookie alone (a restarted browser, or a copy of the
        # cookie), or with a password typed more than ADMIN_FRESH_SIGN_IN ago (a session a
        # browser restored): the password proves the person before refunds, flags or keys.
        flash("Please enter your password again to open the admin area.", "info")
        next_path = request.full_path if request.query_string else request.path
        if request.method != "GET":  # a form's target cannot be opened afterwards
            next_path = url_for("admin.index")
        return redirect(url_for("auth.login", next=next_path))
    return None


def _sandbox_mode() -> bool:
    """Sandbox mode lets marketplaces live on loopback and private addresses (the demo's do)."""
    return bool(current_app.config["SANDBOX_MODE"])


def _form_input(form: MarketplaceForm) -> MarketplaceInput:
    return MarketplaceInput(
        name=form.name.data or "",
        kind=form.kind.data or "",
        api_base_url=form.api_base_url.data or "",
        currency=form.currency.data or "",
        country=form.country.data or "",
        relation_identifier=form.relation_identifier.data or "",
        description=form.description.data or "",
        logo=form.logo.data or None,
        rating=form.rating.data or None,
        active=bool(form.active.data),
        api_key=form.api_key.data or None,
        clear_api_key=bool(form.clear_api_key.data),
        api_key_env=form.api_key_env.data or None,
    )


def _marketplace_or_404(marketplace_id: int) -> Marketplace:
    marketplace = db_session().get(Marketplace, marketplace_id)
    if marketplace is None:
        abort(404)
    return marketplace


@bp.get("/")
def index() -> Response:
    """The admin area starts at the marketplace list."""
    return redirect(url_for("admin.marketplaces"))


# How far back the marketplace list sums the shipping and tax OneCart paid.
ABSORBED_WINDOW = timedelta(days=30)
# The state of a marketplace's latest listings refresh (RQ's job states), in an operator's words.
REFRESH_LABELS = {
    "queued": "search update queued",
    "deferred": "search update queued",
    "scheduled": "search update queued",
    "started": "search updating",
    "finished": "search up to date",
    "failed": "search update failed: the next catalog update (within 30 minutes) retries",
    "stopped": "search update stopped: the next catalog update (within 30 minutes) retries",
    "canceled": "search update cancelled: the next catalog update (within 30 minutes) retries",
}


@bp.get("/marketplaces")
def marketplaces() -> str:
    """Every marketplace with its status, masked key, the shipping and tax OneCart paid on its
    sub-orders in the last 30 days (to weigh its allowance), and whether order tracking gets
    answers from it (a marketplace failing for more than a day is marked, with its open
    sub-orders that are waiting; commerce.tracking_health), and the state of the search update a
    toggle queued (storefront.search_jobs)."""
    db = db_session()
    now = utc_now()
    listed = list_marketplaces(db)
    failing_long = {market.id for market in listed if tracking_failing_long(market, now)}
    return render_template(
        "admin/marketplaces.html",
        marketplaces=listed,
        absorbed=absorbed_extras(db, since=now - ABSORBED_WINDOW),
        tracking_failing_long=failing_long,
        open_sub_orders=open_sub_orders_by_marketplace(db, sorted(failing_long)),
        refreshes=listings_refresh_states(
            current_app.config["REDIS_URL"], [m.slug for m in listed]
        ),
        refresh_labels=REFRESH_LABELS,
    )


@bp.route("/marketplaces/new", methods=["GET", "POST"])
def new_marketplace() -> Response | tuple[str, int]:
    """Add a marketplace."""
    form = MarketplaceForm()
    if not form.validate_on_submit():
        return form_page(
            form,
            render_template("admin/marketplace_form.html", form=form, marketplace=None),
        )
    db = db_session()
    try:
        marketplace = create_marketplace(
            db, form.slug.data or "", _form_input(form), allow_private_hosts=_sandbox_mode()
        )
    except MarketplaceEditError as exc:
        db.rollback()
        attach_service_errors(form, exc.errors)
        return form_page(
            form,
            render_template("admin/marketplace_form.html", form=form, marketplace=None),
        )
    _record_marketplace_action(
        marketplace,
        "marketplace_added",
        describe_marketplace_change({}, marketplace_state(marketplace)),
    )
    db.commit()
    flash(f"{marketplace.name} was added.", "success")
    return redirect(url_for("admin.marketplaces"))


@bp.route("/marketplaces/<int:marketplace_id>/edit", methods=["GET", "POST"])
def edit_marketplace(marketplace_id: int) -> Response | tuple[str, int]:
    """Edit a marketplace; the API key field starts empty and blank keeps the stored key."""
    marketplace = _marketplace_or_404(marketplace_id)
    form = MarketplaceForm(obj=marketplace)
    form.api_key.data = form.api_key.data if form.is_submitted() else ""
    if not form.is_submitted():
        form.rating.data = str(marketplace.rating) if marketplace.rating is not None else ""
        form.seen.data = edit_fingerprint(marketplace)
    if not form.validate_on_submit():
        return form_page(
            form,
            render_template("admin/marketplace_form.html", form=form, marketplace=marketplace),
        )
    db = db_session()
    was_active = marketplace.active
    before = marketplace_state(marketplace)
    try:
        key_dropped = update_marketplace(
            db,
            marketplace,
            _form_input(form),
            allow_private_hosts=_sandbox_mode(),
            seen=form.seen.data or None,
        )
    except MarketplaceChangedError as exc:
        db.rollback()
        attach_service_errors(form, exc.errors)
        form.seen.data = edit_fingerprint(marketplace)  # a second save applies it knowingly
        html = render_template("admin/marketplace_form.html", form=form, marketplace=marketplace)
        return html, 409
    except MarketplaceEditError as exc:
        db.rollback()
        attach_service_errors(form, exc.errors)
        return form_page(
            form,
            render_template("admin/marketplace_form.html", form=form, marketplace=marketplace),
        )
    change = describe_marketplace_change(before, marketplace_state(marketplace))
    if change:  # a save that changed nothing is no action
        _record_marketplace_action(marketplace, "marketplace_edited", change)
    db.commit()
    saved = f"{marketplace.name} was saved."
    if marketplace.active != was_active:
        saved += f" {_listings_refresh(marketplace)}"
    flash(saved, "success")
    if key_dropped:
        flash(
            "The API base URL moved to another host, so the stored API key was removed (and "
            "a key variable marketplaces.toml gives to the old host is not sent there): enter "
            "the key for the new host to send one.",
            "warning",
        )
    return redirect(url_for("admin.marketplaces"))


@bp.post("/marketplaces/<int:marketplace_id>/disable")
def disable_marketplace(marketplace_id: int) -> Response:
    """Hide a marketplace from shoppers (its data stays)."""
    marketplace = _marketplace_or_404(marketplace_id)
    if marketplace.active:
        set_marketplace_active(db_session(), marketplace, False)
        _record_marketplace_action(marketplace, "marketplace_disabled", "hidden from shoppers")
    db_session().commit()
    flash(f"{marketplace.name} is now disabled. {_listings_refresh(marketplace)}", "info")
    return redirect(url_for("admin.marketplaces"))


@bp.post("/marketplaces/<int:marketplace_id>/enable")
def enable_marketplace(marketplace_id: int) -> Response:
    """Show a disabled marketplace again."""
    marketplace = _marketplace_or_404(marketplace_id)
    if not marketplace.active:
        set_marketplace_active(db_session(), marketplace, True)
        _record_marketplace_action(marketplace, "marketplace_enabled", "shown to shoppers again")
    db_session().commit()
    flash(f"{marketplace.name} is active again. {_listings_refresh(marketplace)}", "success")
    return redirect(url_for("admin.marketplaces"))


def _record_marketplace_action(marketplace: Marketplace, action: str, detail: str) -> None:
    """Record what the signed-in admin did to `marketplace`, in the request's transaction
    (commerce.operator_actions; never the key's value)."""
    record_operator_action(
        db_session(),
        operator=current_user.username,
        action=action,
        subject=marketplace_subject(marketplace),
        detail=detail,
        marketplace_id=marketplace.id,
    )


def _listings_refresh(marketplace: Marketplace) -> str:
    """Queue the job that takes the marketplace's offers out of search (or puts them back) and
    say when shoppers will see it."""
    change = "leave" if not marketplace.active else "return to"
    forget_marketplaces()
    try:
        enqueue_listings_refresh(
            current_app.config["REDIS_URL"],
            marketplace.slug,
            current_app.config["MEILI_INDEX"],
            queue_name=current_app.config.get("SEARCH_JOBS_QUEUE") or DEFAULT_QUEUE,
        )
    except redis.RedisError:
        current_app.logger.warning("listings refresh of %s not queued", marketplace.slug)
        return (
            f"The job queue is unavailable: its offers {change} search at the next catalog "
            "update (within 30 minutes)."
        )
    return f"{marketplace.name}'s offers {change} search within a minute."


# --- Orders that need an operator ------------------------------------------------------------


@bp.get("/attention")
def attention() -> str:
    """Sub-orders whose placement outcome is unknown on a marketplace that cannot be asked,
    orders flagged for an operator (a capture or refund refused for good, a disputed payment)
    and the latest resolved, card holds in doubt the sweeper has not resolved yet, holds found
    captured without an order (commerce.card_holds), and holds naming no account of this shop
    (commerce.unrecorded_card_holds),
    and disputes, open and recently closed (commerce.disputes), with the facts."""
    return _attention_page()


# Unanswered placements listed at once, those waiting longest first (each row holds two forms;
# an outage can leave thousands, and each is settled from the top).
SUB_ORDERS_SHOWN = 200
# Flagged orders per page of /admin/attention (`?flagged_page=N`, newest activity first).
FLAGGED_PAGE_SIZE = 100


def _attention_page(resolve_form: dict[str, object] | None = None) -> str:
    """The attention page; `resolve_form` re-shows one flagged order's resolve form with a
    message and the note the operator typed (order_id, message, note)."""
    db = db_session()
    sub_orders = list(
        db.scalars(
            sa.select(MarketplaceOrder)
            .where(MarketplaceOrder.status == SubOrderStatus.NEEDS_ATTENTION)
            .options(
                selectinload(MarketplaceOrder.order).selectinload(Order.payment),
                selectinload(MarketplaceOrder.marketplace),
                selectinload(MarketplaceOrder.items),
            )
            .order_by(
                sa.func.coalesce(MarketplaceOrder.attention_since, MarketplaceOrder.updated_at),
                MarketplaceOrder.id,
            )
            .limit(SUB_ORDERS_SHOWN)
        )
    )
    sub_orders_count = len(sub_orders)
    if sub_orders_count == SUB_ORDERS_SHOWN:
        sub_orders_count = db.scalar(
            sa.select(sa.func.count())
            .select_from(MarketplaceOrder)
            .where(MarketplaceOrder.status == SubOrderStatus.NEEDS_ATTENTION)
        )
    flagged_count = db.scalar(
        sa.select(sa.func.count()).select_from(Order).where(Order.attention_reason.is_not(None))
    )
    flagged_pages = max(1, -(-(flagged_count or 0) // FLAGGED_PAGE_SIZE))
    flagged_page = min(page_number(request.args.get("flagged_page")), flagged_pages)
    flagged = list(
        db.scalars(
            sa.select(Order)
            .where(Order.attention_reason.is_not(None))
            .options(
                selectinload(Order.payment).selectinload(Payment.refunds),
                selectinload(Order.sub_orders).selectinload(MarketplaceOrder.marketplace),
            )
            .order_by(Order.updated_at.desc(), Order.id.desc())
            .offset((flagged_page - 1) * FLAGGED_PAGE_SIZE)
            .limit(FLAGGED_PAGE_SIZE)
        )
    )
    holds = list(
        db.scalars(
            sa.select(CardHoldInDoubt)
            .where(CardHoldInDoubt.resolved_at.is_(None))
            .order_by(CardHoldInDoubt.created_at)
            .limit(200)
        )
    )
    # Captured without an order: an operator refunds them in Stripe (listed apart).
    captured = [hold for hold in holds if hold.captured_without_order_at is not None]
    holds = [hold for hold in holds if hold.captured_without_order_at is None]
    # Resolved because Stripe knows no such intent (a forged form's id): nothing was released,
    # so an operator can still see what was asked and why the sweeper stopped asking.
    missing = list(
        db.scalars(
            sa.select(CardHoldInDoubt)
            .where(
                CardHoldInDoubt.resolved_at > utc_now() - NO_SUCH_INTENT_SHOWN_FOR,
                CardHoldInDoubt.resolution.startswith(NO_SUCH_INTENT),
            )
            .order_by(CardHoldInDoubt.resolved_at.desc())
            .limit(50)
        )
    )
    unowned = list(
        db.scalars(
            sa.select(UnownedCardHold)
            .where(UnownedCardHold.gone_at.is_(None), UnownedCardHold.acknowledged_at.is_(None))
            .order_by(UnownedCardHold.hold_created_at)
            .limit(200)
        )
    )
    return render_template(
        "admin/attention.html",
        sub_orders=sub_orders,
        sub_orders_count=sub_orders_count,
        flagged=flagged,
        flagged_count=flagged_count,
        flagged_page=flagged_page,
        flagged_pages=flagged_pages,
        holds=holds,
        captured=captured,
        missing=missing,
        unowned=unowned,
        disputes=list_disputes(db),
        resolutions=recent_resolutions(db),
        resolve_form=resolve_form or {},
        cancellable_statuses=OPERATOR_CANCELLABLE_STATUSES,
        cancel_under_way=cancel_under_way,
        operator_refund_label=operator_refund_label,
    )


@bp.post("/attention/<int:sub_order_id>/placed")
def attention_mark_placed(sub_order_id: int) -> Response:
    """The marketplace holds the order: record its id (the payment is then settled)."""
    marketplace_order_id = (request.form.get("marketplace_order_id") or "").strip()
    if not marketplace_order_id or len(marketplace_order_id) > 120:
        flash("Enter the marketplace's order id (at most 120 characters).", "error")
        return redirect(url_for("admin.attention"))
    part = _sub_order_name(sub_order_id)
    placed = mark_placed_by_operator(
        session_factory(), sub_order_id, marketplace_order_id, operator=current_user.username
    )
    if placed:
        flash(f"{part} is recorded as placed.", "success")
    else:
        flash(f"{part} no longer needs attention.", "info")
    return redirect(url_for("admin.attention"))


@bp.post("/attention/<int:sub_order_id>/refund")
def attention_refund(sub_order_id: int) -> Response:
    """The marketplace holds no order: the sub-order fails and its share is refunded where it
    was paid from (the confirmation says where: the wallet or the card)."""
    part = _sub_order_name(sub_order_id)
    order_number = part.split(": ", 1)[0]
    result = refund_by_operator(session_factory(), sub_order_id, operator=current_user.username)
    if result is not None:
        failed = result.refund is not None and result.refund.status == RefundStatus.FAILED
        flash(f"{order_number}: {result.said()}", "error" if failed else "success")
    else:
        flash(f"{part} no longer needs attention.", "info")
    return redirect(url_for("admin.attention"))


@bp.post("/attention/<int:sub_order_id>/cancelled")
def attention_cancelled(sub_order_id: int) -> Response:
    """The marketplace confirmed (to the operator) that it cancelled a placed part whose cancel
    OneCart could not confirm: the part ends cancelled, its share refunded, its units for sale."""
    part = _sub_order_name(sub_order_id)
    if cancelled_by_operator(session_factory(), sub_order_id, operator=current_user.username):
        flash(f"{part} is recorded as cancelled; its share is refunded.", "success")
    else:
        flash(
            f"{part} is not placed, was delivered, or its cancel is being asked of the "
            "marketplace right now: nothing was changed.",
            "info",
        )
    return redirect(url_for("admin.attention"))


def _sub_order_name(sub_order_id: int) -> str:
    """A sub-order as the attention page names it ("OC-…: DummyMart"); 404 when there is none."""
    row = (
        db_session()
        .execute(
            sa.select(Order.number, Marketplace.name)
            .join(MarketplaceOrder, MarketplaceOrder.order_id == Order.id)
            .join(Marketplace, Marketplace.id == MarketplaceOrder.marketplace_id)
            .where(MarketplaceOrder.id == sub_order_id)
        )
        .first()
    )
    if row is None:
        abort(404)
    return f"{row.number}: {row.name}"


@bp.post("/attention/orders/<int:order_id>/resolve")
def attention_resolve_order(order_id: int) -> Response | tuple[str, int]:
    """The operator dealt with a flagged order: its flag is cleared if it still reads what their
    page showed and no dispute of the order is open (commerce.flag_resolution); otherwise the page
    comes back with why and the flag as it reads now."""
    note = request.form.get("note") or ""
    try:
        result = resolve_flag(
            session_factory(),
            order_id,
            request.form.get("reason") or "",
            current_user.username,
            note,
        )
    except LookupError:
        abort(404)
    except FlagResolutionError as exc:
        return _attention_page({"order_id": order_id, "message": str(exc), "note": note}), 400
    if not result.resolved:
        return _attention_page({"order_id": order_id, "message": result.message, "note": note}), 409
    flash(result.message, "success")
    return redirect(url_for("admin.attention", flagged_page=request.args.get("flagged_page")))


@bp.post("/attention/disputes/<int:dispute_id>/acknowledge")
def attention_acknowledge_dispute(dispute_id: int) -> Response:
    """The operator dealt with the dispute in Stripe: off the list (kept on the order's and the
    wallet's pages), with who and when."""
    if db_session().get(PaymentDispute, dispute_id) is None:
        abort(404)
    if acknowledge_dispute(session_factory(), dispute_id, current_user.username):
        flash("The dispute is acknowledged and left the list.", "success")
    else:
        flash("That dispute was acknowledged already.", "info")
    return redirect(url_for("admin.attention"))


@bp.post("/attention/card-holds/<int:hold_id>/resolve")
def attention_resolve_card_hold(hold_id: int) -> Response:
    """The operator looked in Stripe for a hold the sweeper put before them: no payment under
    its key (resolved), or the PaymentIntent Stripe holds (recorded; the sweeper releases it
    unless an order uses it). Taken only as the page showed the row (commerce.card_hold_resolutions)."""
    if db_session().get(CardHoldInDoubt, hold_id) is None:
        abort(404)
    try:
        finding = HoldFinding(request.form.get("finding") or "")
        seen = datetime.fromisoformat(request.form.get("seen") or "")
        if seen.tzinfo is None:
            raise ValueError("the page's time names no zone")
    except ValueError:
        flash("Choose what you found in Stripe for that card hold: nothing was changed.", "error")
        return redirect(url_for("admin.attention"))
    answer = resolve_flagged_hold(
        session_factory(),
        hold_id,
        finding,
        operator=current_user.username,
        seen=seen,
        intent_id=(request.form.get("intent_id") or "")[:300],
    )
    flash(answer.message, "success" if answer.done else "error")
    return redirect(url_for("admin.attention"))


@bp.post("/attention/unowned-holds/<int:hold_id>/acknowledge")
def attention_acknowledge_unowned_hold(hold_id: int) -> Response:
    """The operator dealt with the hold in Stripe: off the list, with who and when."""
    if db_session().get(UnownedCardHold, hold_id) is None:
        abort(404)
    if acknowledge_unowned_hold(session_factory(), hold_id, current_user.username):
        flash("The card hold is acknowledged and left the list.", "success")
    else:
        flash("That card hold was acknowledged already.", "info")
    return redirect(url_for("admin.attention"))


# --- Shoppers' wallets ------------------------------------------------------------------------


@bp.get("/wallets")
def wallets() -> str:
    """Find a shopper (username, e-mail or id) to look at their wallet."""
    query = (request.args.get("q") or "").strip()[:254]
    found = find_shoppers(db_session(), query)
    return render_template(
        "admin/wallets.html", query=query, shoppers=found.users, total=found.total
    )


@bp.get("/users/<int:user_id>/wallet")
def user_wallet(user_id: int) -> str:
    """One shopper's wallet: balance, ledger newest first (top-ups, take-backs, dispute holds),
    and their disputes."""
    user = db_session().get(User, user_id)
    if user is None:
        abort(404)
    return render_template(
        "admin/user_wallet.html",
        overview=wallet_overview(db_session(), user, page=page_number(request.args.get("page"))),
        ledger_cause=ledger_cause,
    )
