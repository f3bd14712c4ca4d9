"""Checkout: the page (address, cart by marketplace, unified total, payment method) and its submit.

Thin views: the form is validated here, everything else is commerce.checkout.submit_checkout.
Each rendered form carries a fresh validation token (the order's idempotency key) and the total
the shopper saw; a submit whose total no longer matches re-renders the page with the differences
and takes nothing. After an order is recorded its jobs are enqueued (storefront.jobs); when Redis
is down the order still stands and the sweeper enqueues them later.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from flask import (
    Blueprint,
    Response,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user, login_required
from wtforms.fields import SelectChoice

from commerce.checkout import (
    REVALIDATION_DEADLINE_S,
    CheckoutBusy,
    CheckoutOutcome,
    CheckoutSubmission,
    OutcomeKind,
    ShippingDetails,
    build_quote,
    changes_by_product,
    is_valid_validation_token,
    new_checkout_token,
    payment_currency,
    submit_checkout,
)
from commerce.checkout_intents import TooManyCheckoutIntents, prepare_checkout_intent
from commerce.fx import FxTable
from commerce.marketplace_access import lookup_adapter_for_marketplace
from commerce.models import User
from commerce.order_models import PaymentMethod
from commerce.payments.gateway import PaymentDeclined, PaymentError, to_stripe_amount
from commerce.payments.stripe_gateway import (
    SANDBOX_PAYMENT_METHODS,
    SANDBOX_TEST_CARDS,
    StripeGateway,
    is_sandbox_mode,
)
from commerce.wallet import wallet_balance
from onecart.money import Money
from onecart.settings import get_settings
from storefront import currency_label
from storefront.catalog.shopper import display_currency, fx_table
from storefront.checkout.forms import CheckoutForm, country_choices
from storefront.database import db_session, session_factory
from storefront.errors.routes import error_response, json_endpoint
from storefront.jobs import JobPolicy, dispatch_order_jobs
from storefront.limits import enforce_form_limit
from storefront.security import STRIPE_JS_CONTENT_SECURITY_POLICY

logger = logging.getLogger(__name__)

bp = Blueprint(
    "checkout",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/checkout/static",
)


def _user() -> User:
    return current_user._get_current_object()  # type: ignore[attr-defined,no-any-return]


def job_policy() -> JobPolicy:
    """The order jobs' queue and timings (app.config["ORDER_JOB_POLICY"] overrides defaults)."""
    return JobPolicy.from_dict(current_app.config.get("ORDER_JOB_POLICY"))


def _card_gateway() -> StripeGateway:
    return StripeGateway.from_settings(get_settings())


def _new_form(user: User) -> CheckoutForm:
    form = CheckoutForm(formdata=None)
    shipping = ShippingDetails.from_profile(user)
    form.name.data = shipping.name
    form.line1.data = shipping.line1
    form.line2.data = shipping.line2
    form.city.data = shipping.city
    form.postal_code.data = shipping.postal_code
    form.country.data = shipping.country or None
    form.phone.data = shipping.phone
    form.validation_token.data = new_checkout_token()
    # No choice yet: _render picks the wallet when it covers the order, else the card.
    form.payment_method.data = None
    return form


def _prepare_choices(form: CheckoutForm) -> None:
    form.country.choices = [SelectChoice("", "Choose a country"), *country_choices()]
    form.test_card.choices = [
        SelectChoice(card.payment_method, card.label) for card in SANDBOX_TEST_CARDS
    ]


def _render(
    form: CheckoutForm,
    *,
    outcome: CheckoutOutcome | None = None,
    form_problem: str = "",
    status: int = 200,
) -> tuple[str, int, dict[str, str]]:
    """The checkout page for the current cart, with the totals the form will carry."""
    user = _user()
    session = db_session()
    fx = fx_table()
    currency = display_currency()
    quote = build_quote(session, user, currency=currency, fx=fx)
    wallet_currency = payment_currency(user, PaymentMethod.WALLET, currency)
    wallet_quote = (
        quote
        if wallet_currency == currency
        else build_quote(session, user, currency=wallet_currency, fx=fx)
    )
    form.total_seen.data = "" if quote.total_minor is None else str(quote.total_minor)
    form.cart_digest.data = quote.digest
    form.currency_seen.data = currency
    form.wallet_total_seen.data = (
        "" if wallet_quote.total_minor is None else str(wallet_quote.total_minor)
    )
    _prepare_choices(form)
    balance = wallet_balance(session, user)
    wallet_covers = (
        wallet_quote.total_minor is not None and balance.minor >= wallet_quote.total_minor
    )
    if form.payment_method.data is None:
        # A first visit: the way to pay that works without more steps (a re-rendered form keeps
        # the shopper's own choice).
        form.payment_method.data = (
            PaymentMethod.WALLET.value if wallet_covers else PaymentMethod.STRIPE.value
        )
    settings = get_settings()
    sandbox = is_sandbox_mode(settings)
    headers: dict[str, str] = {}
    if not sandbox:
        headers["Content-Security-Policy"] = STRIPE_JS_CONTENT_SECURITY_POLICY
    html = render_template(
        "checkout/checkout.html",
        form=form,
        quote=quote,
        wallet_quote=wallet_quote,
        balance=balance,
        wallet_covers=wallet_covers,
        sandbox_mode=sandbox,
        publishable_key=settings.stripe_publishable_key,
        # Stripe.js wants the amount the PaymentIntent will carry, in Stripe's units.
        card_amount=to_stripe_amount(quote.total_minor or 0, quote.currency),
        outcome=outcome,
        form_problem=form_problem,
        changes=changes_by_product(outcome.changes) if outcome else {},
    )
    return html, status, headers


@bp.get("/checkout")
@login_required
def checkout() -> tuple[str, int, dict[str, str]]:
    """The checkout page: address (from the profile), cart by marketplace, total, payment."""
    return _render(_new_form(_user()))


# Said at the top of a page re-rendered for fields that cannot be fixed by typing (hidden or
# forged); the shopper's own fields are marked where they are.
PAYMENT_METHOD_PROBLEM = "Choose how to pay: wallet or card."
EXPIRED_FORM_PROBLEM = (
    "This checkout form was incomplete or has expired, so nothing was charged. "
    "Check your order below and place it again."
)
FIELDS_PROBLEM = "Please correct the details marked below; nothing was charged."
# Outside sandbox mode a card is entered in Stripe.js, which hands the form a PaymentIntent.
CARD_DETAILS_PROBLEM = "Enter your card details to pay by card; nothing was charged."
CARD_PAYMENT_PROBLEM = (
    "The card payment this page started is not valid, so nothing was charged. "
    "Place your order again to pay by card."
)


def _form_problem(form: CheckoutForm) -> str:
    """Why the submitted form was refused, for the page re-rendered with it. A missing or
    tampered validation token gets a fresh one, so placing the order again works."""
    problems: list[str] = []
    if not is_valid_validation_token(form.validation_token.data):
        form.validation_token.data = new_checkout_token()
        form.validation_token.errors = []
        problems.append(EXPIRED_FORM_PROBLEM)
    if form.payment_method.errors:
        form.payment_method.errors = [PAYMENT_METHOD_PROBLEM]
        form.payment_method.data = PaymentMethod.STRIPE.value
        problems.append(PAYMENT_METHOD_PROBLEM)
    if form.payment_intent_id.errors:
        # Not Stripe's shape (forged or mangled): never handed back, or checkout.js would
        # submit it again instead of asking for a PaymentIntent of its own.
        form.payment_intent_id.data = ""
        form.payment_intent_id.errors = []
        problems.append(CARD_PAYMENT_PROBLEM)
    if any(
        field.errors for field in form if field.name not in ("validation_token", "payment_method")
    ):
        problems.append(FIELDS_PROBLEM)
    return " ".join(dict.fromkeys(problems))


def _int_or_none(value: object) -> int | None:
    text = str(value or "").strip()
    if not (text.isascii() and text.lstrip("-").isdigit()) or len(text) > 18:
        return None
    return int(text)


def _submission(form: CheckoutForm, user: User) -> CheckoutSubmission:
    method = PaymentMethod(form.payment_method.data)
    return CheckoutSubmission(
        user_id=user.id,
        validation_token=str(form.validation_token.data or ""),
        payment_method=method,
        display_currency=display_currency(),
        total_seen_minor=_int_or_none(form.total_seen.data),
        wallet_total_seen_minor=_int_or_none(form.wallet_total_seen.data),
        cart_digest_seen=str(form.cart_digest.data or "")[:64] or None,
        shipping=ShippingDetails(
            name=form.name.data or "",
            line1=form.line1.data or "",
            line2=form.line2.data or "",
            city=form.city.data or "",
            postal_code=form.postal_code.data or "",
            country=form.country.data or "",
            phone=form.phone.data or "",
        ),
        # The server-side test cards are a sandbox convenience: with real keys a posted one is
        # never sent to Stripe (the submit is refused below).
        card_payment_method=(form.test_card.data or None)
        if method == PaymentMethod.STRIPE and is_sandbox_mode(get_settings())
        else None,
        # Kept for wallet payments too: a hold Stripe.js made before the shopper switched to
        # the wallet is released by the submit (never left on the card).
        payment_intent_id=form.payment_intent_id.data or None,
    )


@bp.post("/checkout")
@login_required
def place_order() -> Response | tuple[str, int, dict[str, str]]:
    """Submit the checkout: one order and one payment, or the page again saying why not."""
    user = _user()
    form = CheckoutForm()
    _prepare_choices(form)
    if not form.validate():
        return _render(form, form_problem=_form_problem(form), status=422)
    submission = _submission(form, user)
    fx = fx_table()
    # End this request's read transaction: its pooled connection must not sit idle while this
    # shopper's other submits wait for the checkout lock.
    db_session().commit()
    if (
        submission.payment_method == PaymentMethod.STRIPE
        and not submission.payment_intent_id
        and submission.card_payment_method not in SANDBOX_PAYMENT_METHODS
    ):
        if not is_sandbox_mode(get_settings()):
            return _render(form, form_problem=CARD_DETAILS_PROBLEM, status=422)
        form.test_card.errors = ["Choose a card."]
        return _render(form, status=422)
    try:
        outcome = _submit(submission, fx)
    except CheckoutBusy as exc:
        # Another submit of this shopper holds the lock (a double click, a second tab): say so
        # and let them look at their orders; nothing was charged by this request.
        html = render_template("checkout/busy.html", message=exc.message)
        return html, 409, {"Retry-After": "5"}
    if outcome.kind in (OutcomeKind.CREATED, OutcomeKind.EXISTING):
        if outcome.kind == OutcomeKind.CREATED and outcome.order_id is not None:
            _dispatch(outcome.order_id)
        return redirect(url_for("orders.confirmation", number=outcome.order_number), code=303)
    for name, message in outcome.field_errors.items():
        field = getattr(form, name, None)
        if field is not None:
            field.errors = [message]
    if not outcome.keep_card_hold:
        # The card hold this form brought was released or refused: the page must not hand it
        # back, or checkout.js would submit it again instead of asking for one for the new total.
        form.payment_intent_id.data = ""
    if outcome.kind == OutcomeKind.CHANGED:
        outcome = _with_currency_switch_said(outcome, str(form.currency_seen.data or ""))
    db_session().expire_all()
    # A payment being checked is no error of the form: accepted, the outcome follows.
    status = {OutcomeKind.CHANGED: 409, OutcomeKind.IN_DOUBT: 202}.get(outcome.kind, 422)
    return _render(form, outcome=outcome, status=status)


def _with_currency_switch_said(outcome: CheckoutOutcome, currency_seen: str) -> CheckoutOutcome:
    """A changed total because the display currency was switched since the page was opened (in
    another tab): said as such, not as a price change the shopper would look for in vain."""
    now = display_currency()
    if not currency_seen or currency_seen == now or not fx_table().has(currency_seen):
        return outcome
    message = (
        f"Prices are now shown in {currency_label(now)}, not in {currency_label(currency_seen)} "
        "as when this checkout page was opened (the currency was changed in another tab or "
        f"window). Please review the total in {currency_label(now)}; nothing was charged."
    )
    if outcome.changes:
        message += " Prices or availability changed as well: see the items marked below."
    return replace(outcome, message=message)


def _submit(submission: CheckoutSubmission, fx: FxTable) -> CheckoutOutcome:
    return submit_checkout(
        session_factory(),
        submission,
        fx=fx,
        adapter_for=lookup_adapter_for_marketplace,
        card_gateway=_card_gateway()
        if submission.payment_method == PaymentMethod.STRIPE or submission.payment_intent_id
        else None,
        revalidation_deadline_s=float(
            current_app.config.get("CHECKOUT_REVALIDATION_SECONDS", REVALIDATION_DEADLINE_S)
        ),
    )


def _dispatch(order_id: int) -> None:
    """Enqueue the order's jobs; an unreachable Redis is logged, never shown as a failure."""
    try:
        _dispatched, failed = dispatch_order_jobs(
            session_factory(), current_app.config["REDIS_URL"], job_policy(), order_id
        )
    except Exception:  # the order is recorded; the sweeper enqueues whatever did not make it
        logger.exception("enqueueing the jobs of order %s failed", order_id)
        return
    if failed:
        logger.warning("order %s: %s job(s) left for the sweeper", order_id, failed)


@bp.post("/checkout/payment-intent")
@json_endpoint
@login_required
def payment_intent() -> Response:
    """For Stripe.js (real keys only): a PaymentIntent for the total this form shows.

    The browser confirms it with the Payment Element and then submits the form with its id;
    the submit checks amount, currency and token before accepting it. Every answer is JSON:
    errors in the site's shape (storefront.errors), which checkout.js shows as they are.
    """
    settings = get_settings()
    if is_sandbox_mode(settings):
        return error_response(404, "Stripe.js is not used in sandbox mode.")
    payload = request.get_json(silent=True)
    token = payload.get("validation_token") if isinstance(payload, dict) else None
    if not is_valid_validation_token(token):
        return error_response(400, "This checkout form has expired; reload the page.")
    user = _user()
    # Before Stripe is asked: a new form token is a new intent (storefront.limits).
    enforce_form_limit(
        "card_payments",
        f"user:{user.id}",
        message="Too many card payments were started from this account in a short while. "
        "Please wait a few minutes and try again.",
    )
    currency = display_currency()
    quote = build_quote(db_session(), user, currency=currency, fx=fx_table())
    if not quote.can_pay or quote.total_minor is None:
        return error_response(400, "There is nothing to pay for.")
    amount = Money(quote.total_minor, currency)
    try:
        intent_id, client_secret = prepare_checkout_intent(
            _card_gateway(), amount, validation_token=str(token), user_id=user.id
        )
    except TooManyCheckoutIntents as exc:  # a new form (a reload) starts with fresh keys
        return error_response(409, exc.message)
    except PaymentDeclined as exc:  # Stripe refused the request itself: retrying will not help
        return error_response(422, exc.message)
    except PaymentError as exc:  # Stripe did not answer as it should: the shopper may retry
        return error_response(502, exc.message)
    return jsonify(payment_intent_id=intent_id, client_secret=client_secret)
