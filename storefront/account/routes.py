"""The profile page and its three forms (details, password, wallet top-up).

Each form posts to its own URL; a failed submission re-renders the whole page with that form's
errors, the other two forms filled from the account. A wallet top-up is a card payment (a Stripe
PaymentIntent confirmed in the browser, credited once Stripe says it succeeded:
commerce.wallet_topup); only in sandbox mode is it the free demo top-up.
"""

from __future__ import annotations

import re

import sqlalchemy as sa
from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from werkzeug.exceptions import TooManyRequests
from werkzeug.wrappers import Response
from wtforms.fields import SelectChoice

from commerce.accounts import AccountError, ProfileChanges, change_password, update_profile
from commerce.email_change import (
    EMAIL_CHANGE_MAX_AGE_S,
    confirm_email_change,
    confirm_new_address_email,
    make_email_change_token,
    old_address_notice,
    user_for_email_change_token,
    waiting_email_change,
)
from commerce.models import FxRate, User
from commerce.orders import wallet_entry_orders
from commerce.payments.gateway import PaymentError
from commerce.payments.stripe_gateway import stripe_client_from_settings
from commerce.wallet import (
    WalletError,
    list_wallet_entries,
    new_topup_reference,
    topup_limit,
    wallet_balance,
)
from commerce.wallet_topup import (
    TopUpState,
    credit_card_topup,
    sandbox_top_up,
    start_card_topup,
    topup_client_secret,
)
from onecart.money import MoneyError, parse_decimal
from onecart.settings import get_settings
from storefront.account.forms import PasswordChangeForm, ProfileForm, TopUpForm
from storefront.auth.forms import ConfirmSignupForm
from storefront.auth.routes import start_login
from storefront.database import db_session
from storefront.form_errors import attach_service_errors, form_page
from storefront.limits import enforce_form_limit
from storefront.outgoing_mail import mail_settings, send_in_background
from storefront.security import STRIPE_JS_CONTENT_SECURITY_POLICY, public_url_for

bp = Blueprint("account", __name__)

TOPUP_REFERENCE_PATTERN = re.compile(r"^sandbox-topup-[A-Za-z0-9_-]{8,40}$")


def _sandbox_mode() -> bool:
    return bool(current_app.config["SANDBOX_MODE"])


def display_currency_choices(current: str) -> list[SelectChoice]:
    """USD plus every currency the pipeline has published a rate for (and the one in use)."""
    currencies = set(db_session().scalars(sa.select(FxRate.currency))) | {"USD", current}
    return [SelectChoice(code) for code in sorted(currencies)]


def _user() -> User:
    return current_user._get_current_object()  # type: ignore[attr-defined,no-any-return]


def _account_key() -> str:
    return f"user:{_user().id}"


def _profile_form(*, submitted: bool = False) -> ProfileForm:
    user = _user()
    form = ProfileForm() if submitted else ProfileForm(formdata=None, obj=user)
    form.display_currency.choices = display_currency_choices(user.display_currency)
    return form


def _topup_form(*, submitted: bool = False) -> TopUpForm:
    if submitted:
        return TopUpForm()
    form = TopUpForm(formdata=None)
    form.reference.data = new_topup_reference()
    return form


def _render_profile(
    profile_form: ProfileForm | None = None,
    password_form: PasswordChangeForm | None = None,
    topup_form: TopUpForm | None = None,
) -> str:
    user = _user()
    db = db_session()
    entries = list_wallet_entries(db, user)
    return render_template(
        "account/profile.html",
        user=user,
        pending_email=waiting_email_change(user),
        profile_form=profile_form or _profile_form(),
        password_form=password_form or PasswordChangeForm(formdata=None),
        topup_form=topup_form or _topup_form(),
        balance=wallet_balance(db, user),
        entries=entries,
        entry_orders=wallet_entry_orders(db, user.id, entries),
        topup_limit=topup_limit(user.wallet_currency),
        sandbox_mode=_sandbox_mode(),
    )


@bp.get("/profile")
@login_required
def profile() -> str:
    """Account details, password change, wallet balance, ledger and top-up."""
    return _render_profile()


@bp.post("/profile")
@login_required
def update_details() -> Response | tuple[str, int]:
    """Save name, e-mail, phone and display currency."""
    form = _profile_form(submitted=True)
    if not form.validate_on_submit():
        return form_page(form, _render_profile(profile_form=form))
    if (form.email.data or "").strip().lower() != _user().email:
        # A new address checks the current password (and, with it, whether the address is
        # taken): limited per account, so a stolen session can neither guess nor probe fast.
        enforce_form_limit("account_changes", _account_key())
    db = db_session()
    user = _user()
    waiting_before = user.pending_email_nonce
    # With address confirmation on (as for sign-up), a new address applies once its owner
    # opens the e-mailed link; the account keeps the old one meanwhile.
    confirm = bool(current_app.config.get("SIGNUP_CONFIRMATION"))
    try:
        update_profile(
            db,
            user,
            ProfileChanges(
                first_name=form.first_name.data or "",
                last_name=form.last_name.data or "",
                email=form.email.data or "",
                phone_number=form.phone_number.data,
                display_currency=form.display_currency.data or "",
                current_password=form.email_password.data or "",
            ),
            confirm_new_email=confirm,
        )
    except AccountError as exc:
        db.rollback()
        attach_service_errors(form, exc.errors)
        return form_page(form, _render_profile(profile_form=form))
    mails_new_address = bool(user.pending_email_nonce) and (
        user.pending_email_nonce != waiting_before
    )
    if mails_new_address:
        # Mails to an address its owner did not ask for share one cap with sign-up's
        # (storefront.auth): accounts are cheap, a stranger's inbox is not.
        try:
            enforce_form_limit(
                "signup_address",
                f"address:{(user.pending_email or '').lower()}",
                message="Many e-mails were sent to that address in the last hour, so no more "
                "are sent for now; nothing was changed. Please wait an hour and try again.",
            )
        except TooManyRequests:
            db.rollback()
            raise
    db.commit()
    if mails_new_address:
        _mail_email_change(user)
        flash(
            f"Your other details are saved. We sent a link to {user.pending_email}: your e-mail "
            f"address changes when you open it (within {EMAIL_CHANGE_MAX_AGE_S // 3600} hours). "
            f"Until then you keep signing in with {user.email}, which we told about the change.",
            "info",
        )
    else:
        flash("Your profile has been saved.", "success")
    return redirect(url_for("account.profile"))


def _mail_email_change(user: User) -> None:
    """The link to the new address, and a notice (no link that changes anything) to the old."""
    mail = mail_settings()
    token = make_email_change_token(user, current_app.config["SECRET_KEY"])
    link = public_url_for("account.confirm_email", token=token)
    send_in_background(confirm_new_address_email(user, link, mail), mail)
    notice = old_address_notice(user, public_url_for("auth.forgot_password"), mail)
    send_in_background(notice, mail)


@bp.route("/profile/email/confirm/<token>", methods=["GET", "POST"])
def confirm_email(token: str) -> Response | tuple[str, int] | str:
    """The link e-mailed to a new address: a button (a POST, so a mail scanner opening the link
    changes nothing) that applies the change. No sign-in needed: the link is the proof, and
    the new address may be read on another device."""
    db = db_session()
    user = user_for_email_change_token(db, token, current_app.config["SECRET_KEY"])
    if user is None:
        return render_template("account/confirm_email.html", form=None, address=None), 404
    form = ConfirmSignupForm()
    if not form.validate_on_submit():
        return render_template("account/confirm_email.html", form=form, address=user.pending_email)
    try:
        address = confirm_email_change(db, user)
    except AccountError:
        db.commit()  # the dropped change
        flash(
            "Another account uses that address now, so your e-mail address was not changed.",
            "error",
        )
        return redirect(url_for("account.profile"))
    except LookupError:
        db.rollback()
        return render_template("account/confirm_email.html", form=None, address=None), 404
    db.commit()
    flash(f"Your e-mail address is now {address}.", "success")
    return redirect(url_for("account.profile"))


@bp.after_request
def keep_email_links_private(response: Response) -> Response:
    """The confirmation token is a credential: no caching, no Referer carrying it elsewhere."""
    if request.endpoint == "account.confirm_email":
        response.headers["Cache-Control"] = "no-store"
        response.headers["Referrer-Policy"] = "no-referrer"
    return response


@bp.post("/profile/password")
@login_required
def update_password() -> Response | tuple[str, int]:
    """Change the password (the current one is required); other devices are signed out."""
    form = PasswordChangeForm()
    if not form.validate_on_submit():
        return form_page(form, _render_profile(password_form=form))
    enforce_form_limit("account_changes", _account_key())
    db = db_session()
    user = _user()
    try:
        change_password(
            db,
            user,
            current_password=form.current_password.data,
            new_password=form.new_password.data,
        )
    except AccountError as exc:
        db.rollback()
        attach_service_errors(form, exc.errors)
        return form_page(form, _render_profile(password_form=form))
    db.commit()
    start_login(user)  # the session nonce rotated: re-issue this browser's login
    flash("Your password has been changed. Other devices have been signed out.", "success")
    return redirect(url_for("account.profile"))


@bp.post("/profile/wallet/top-up")
@login_required
def wallet_top_up() -> Response | tuple[str, int]:
    """Top up the wallet: start a card payment, or in sandbox mode add the amount for free; a
    resubmitted form counts once (its reference is the idempotency key)."""
    form = _topup_form(submitted=True)
    if not form.validate_on_submit():
        return form_page(form, _render_profile(topup_form=form))
    if not TOPUP_REFERENCE_PATTERN.match(form.reference.data or ""):
        form.form_errors.append("This form has expired. Please try again.")
        form.reference.data = new_topup_reference()
        return form_page(form, _render_profile(topup_form=form))
    db = db_session()
    user = _user()
    try:
        amount = parse_decimal((form.amount.data or "").strip())
        if not _sandbox_mode():
            # Before Stripe is asked: a new form reference is a new intent (storefront.limits).
            enforce_form_limit(
                "card_payments",
                f"user:{user.id}",
                message="Too many card payments were started from this account in a short "
                "while. Please wait a few minutes and try again.",
            )
            card = start_card_topup(
                stripe_client_from_settings(get_settings()),
                user,
                amount,
                reference=form.reference.data,
            )
            return redirect(url_for("account.pay_top_up", intent_id=card.intent_id))
        receipt = sandbox_top_up(db, user, amount, reference=form.reference.data, sandbox_mode=True)
    except (MoneyError, WalletError, PaymentError) as exc:
        db.rollback()
        message = (
            "Enter an amount like 25 or 25.50."
            if isinstance(exc, MoneyError)
            else exc.message
            if isinstance(exc, PaymentError)
            else str(exc)
        )
        form.amount.errors = [*form.amount.errors, message]
        return form_page(form, _render_profile(topup_form=form))
    db.commit()
    if receipt.created:
        flash("Your wallet has been topped up (sandbox: no payment was taken).", "success")
    else:
        flash("That top-up was already recorded; nothing was charged twice.", "info")
    return redirect(url_for("account.profile"))


@bp.get("/profile/wallet/top-up/<intent_id>/pay")
@login_required
def pay_top_up(intent_id: str) -> Response | tuple[str, int, dict[str, str]]:
    """The card form for one of the shopper's top-ups (Stripe's Payment Element)."""
    try:
        card = topup_client_secret(stripe_client_from_settings(get_settings()), _user(), intent_id)
    except PaymentError as exc:
        flash(exc.message, "error")
        return redirect(url_for("account.profile"))
    html = render_template(
        "account/topup_pay.html",
        card=card,
        publishable_key=get_settings().stripe_publishable_key,
        return_url=public_url_for("account.top_up_done", intent_id=card.intent_id),
    )
    return html, 200, {"Content-Security-Policy": STRIPE_JS_CONTENT_SECURITY_POLICY}


@bp.get("/profile/wallet/top-up/<intent_id>/done")
@login_required
def top_up_done(intent_id: str) -> Response:
    """Where Stripe sends the shopper back: credit the top-up if Stripe says it succeeded (the
    webhook does the same; whichever comes first credits, the other finds it done)."""
    db = db_session()
    try:
        outcome = credit_card_topup(
            db, stripe_client_from_settings(get_settings()), intent_id, user=_user()
        )
    except PaymentError as exc:
        db.rollback()
        flash(exc.message, "error")
        return redirect(url_for("account.profile"))
    db.commit()
    if outcome.state == TopUpState.CREDITED:
        flash("Your card payment succeeded and your wallet has been topped up.", "success")
    elif outcome.state == TopUpState.PENDING:
        flash("Your card payment is being confirmed; the wallet is credited once it is.", "info")
    else:
        flash("The card payment did not go through; nothing was added or taken.", "error")
    return redirect(url_for("account.profile"))
