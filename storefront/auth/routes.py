"""Sign-up, login, logout and password reset views: validate the form, call commerce, commit,
redirect.

Login is rate-limited per client IP and per (account, client IP) in one atomic step before the
password is checked (commerce.rate_limit), regenerates the session, merges the guest cart into the
account, and only follows same-site `next` paths. Logout rotates the account's session nonce, so
the remember cookie and any copy of the session cookie stop working. Sign-up and the reset form
are rate-limited per client (storefront.limits); the reset form answers the same whether or not
the address has an account.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import (
    Blueprint,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_fresh, login_required, login_user, logout_user
from werkzeug.exceptions import TooManyRequests
from werkzeug.wrappers import Response

from commerce.accounts import (
    AccountError,
    authenticate,
    check_new_account,
    create_account,
    load_user_by_session_id,
    login_account_key,
    login_session_id,
    register_user,
    signed_in_at,
    user_id_of_account_key,
)
from commerce.models import User, new_session_nonce, utc_now
from commerce.password_reset import (
    RESET_TOKEN_MAX_AGE_S,
    find_user_by_email,
    make_reset_token,
    reset_email,
    reset_password,
    user_for_reset_token,
)
from commerce.rate_limit import (
    LOGIN_FAILURES_ACROSS_CLIENTS,
    LoginRateLimiter,
    SlidingWindowLimiter,
)
from commerce.signup_confirmation import (
    PENDING_SIGNUP_TTL_S,
    claim_pending_signup,
    confirm_signup_email,
    existing_account_email,
    pending_signup_exists,
    stash_pending_signup,
)
from storefront.auth.forms import (
    ConfirmSignupForm,
    ForgotPasswordForm,
    LoginForm,
    ResetPasswordForm,
    SignupForm,
)
from storefront.auth.known_devices import known_device_for, remember_device_for
from storefront.database import db_session
from storefront.extensions import login_manager
from storefront.form_errors import attach_service_errors, form_page
from storefront.limits import client_address, enforce_form_limit, form_rule
from storefront.outgoing_mail import mail_settings, send_in_background
from storefront.security import public_url_for, safe_next_url

# Set at sign-up, read once by the home page, so a new shopper is welcomed rather than "back".
NEW_ACCOUNT_SESSION_KEY = "new_account"

bp = Blueprint("auth", __name__)
logger = logging.getLogger(__name__)

GUEST_CART_SESSION_KEY = "guest_cart"
HOME_PATH = "/home"
# Session keys that survive the session regeneration at login.
_KEYS_KEPT_AT_LOGIN = (GUEST_CART_SESSION_KEY,)


@login_manager.user_loader
def load_user(session_id: str) -> User | None:
    """Flask-Login's loader: `<id>.<nonce>.<signed in at>` from the session or the remember
    cookie (commerce.accounts.login_session_id), refused past LOGIN_LIFETIME."""
    return load_user_by_session_id(
        db_session(), session_id, lifetime=current_app.config["LOGIN_LIFETIME"]
    )


def password_entered_recently() -> bool:
    """Whether this browser session's sign-in was made with the password (not restored from
    the remember cookie: Flask-Login's "fresh") within ADMIN_FRESH_SIGN_IN. The time is the
    sign-in time the session's login id carries (login_session_id)."""
    if not login_fresh():
        return False
    started = signed_in_at(str(session.get("_user_id") or ""))
    if started is None:
        return False
    age_s = utc_now().timestamp() - started
    return age_s <= current_app.config["ADMIN_FRESH_SIGN_IN"].total_seconds()


@login_manager.unauthorized_handler
def handle_unauthorized() -> Response:
    """Anonymous visitors are sent to the login page (JSON clients get a 401)."""
    from storefront.errors.routes import error_response, wants_json

    if wants_json():
        return error_response(401)
    flash("Please sign in to continue.", "info")
    next_path = request.full_path if request.query_string else request.path
    return redirect(url_for("auth.login", next=next_path))


def _login_limiter() -> LoginRateLimiter:
    return current_app.extensions["login_limiter"]


def _redirect_after_login(next_value: str | None) -> Response:
    return redirect(safe_next_url(next_value) or HOME_PATH)


def _merge_guest_cart(user: User, guest_lines: Any) -> None:
    """Hand the session's guest cart to commerce.cart.merge_guest_cart, when that service exists.

    The lines stay in the session unless the merge succeeded, so nothing is lost at login.
    """
    if not guest_lines:
        return
    try:
        from commerce.cart import merge_guest_cart
    except ImportError:  # the cart service arrives with the cart area; keep the lines until then
        session[GUEST_CART_SESSION_KEY] = guest_lines
        return
    db = db_session()
    try:
        result = merge_guest_cart(db, user, guest_lines)
        db.commit()
        earlier_lines = getattr(result, "earlier_lines", ())
        if earlier_lines:
            flash(
                "Your account's cart already held items, so they are in this cart too: "
                + ", ".join(earlier_lines)
                + ". Check the items and the total before you pay.",
                "warning",
            )
        capped = getattr(result, "capped", ())
        if capped:
            flash(f"Some quantities were capped at the maximum: {', '.join(capped)}.", "warning")
        stock_notices = getattr(result, "stock_notices", ())
        if stock_notices:
            # Once for the whole merge: the lines lowered to what their marketplaces have left.
            flash(" ".join(stock_notices), "warning")
    except Exception:
        db.rollback()
        session[GUEST_CART_SESSION_KEY] = guest_lines
        logger.exception("guest cart merge failed for user %s; lines kept in the session", user.id)


def start_login(user: User, *, remember: bool = False) -> None:
    """Flask-Login's login_user, with the time of this sign-in in what the cookies carry: the
    session's `_user_id` is what the remember cookie is made of too (at the end of the request),
    and the loader refuses either once the sign-in is older than LOGIN_LIFETIME."""
    login_user(user, remember=remember)
    session["_user_id"] = login_session_id(user)
    remember_device_for(user.id)


def sign_in(user: User, greeting: str, *, remember: bool = False) -> None:
    """Start a fresh session for `user`, keeping only the guest cart, then merge that cart.

    The greeting is flashed here, after the session (where flashed messages live) is cleared
    and before the merge flashes what it did to the cart, so the two read in that order.
    """
    kept = {key: session[key] for key in _KEYS_KEPT_AT_LOGIN if key in session}
    session.clear()
    start_login(user, remember=remember)
    flash(greeting, "success")
    _merge_guest_cart(user, kept.get(GUEST_CART_SESSION_KEY))


# The same words whether or not the login names an account (no enumeration).
ACCOUNT_UNDER_ATTACK_MESSAGE = (
    "Many sign-in attempts at this account failed in the last hour, so it takes no more from "
    "new browsers for now. Sign in from a browser where you have signed in before, or reset "
    "your password by e-mail (the browser you reset it in can sign in then), or wait an hour."
)


@bp.route("/login", methods=["GET", "POST"])
def login() -> Response | tuple[str, int]:
    """Sign in with username or e-mail and password."""
    form = LoginForm()
    if request.method == "GET":
        form.next.data = safe_next_url(request.args.get("next")) or ""
        # Signed in with the password in this browser session lately: nothing to ask. Signed
        # in by the remember cookie alone, or hours ago, the admin area sends here for the
        # password again.
        if current_user.is_authenticated and password_entered_recently():
            return _redirect_after_login(form.next.data)
    if not form.validate_on_submit():
        return form_page(form, render_template("auth/login.html", form=form))

    db = db_session()
    client_ip = client_address()
    account_key = login_account_key(db, form.login.data)
    account_id = user_id_of_account_key(account_key)
    device = known_device_for(account_id) if account_id is not None else None
    attempt = _login_limiter().begin_attempt(client_ip, account_key, device)
    if not attempt.allowed:
        logger.warning("login rate-limited (%s) from %s", attempt.limited_by, client_ip)
        raise TooManyRequests(
            ACCOUNT_UNDER_ATTACK_MESSAGE
            if attempt.limited_by == LOGIN_FAILURES_ACROSS_CLIENTS.name
            else "Too many failed sign-in attempts. Please wait a few minutes and try again.",
            retry_after=attempt.retry_after,
        )
    user = authenticate(db, form.login.data, form.password.data)
    if user is None:
        db.rollback()  # the failed attempt stays counted: begin_attempt recorded it
        # The pair is wrong, not either field's format: said on the form, no field marked, and
        # the same words whether the account exists or not.
        form.form_errors.append("The username or e-mail address, or the password, is wrong.")
        return form_page(form, render_template("auth/login.html", form=form))
    db.commit()
    _login_limiter().record_success(client_ip, account_key, attempt, device)
    sign_in(
        user,
        f"Welcome back, {user.first_name or user.username}.",
        remember=bool(form.remember.data),
    )
    return _redirect_after_login(form.next.data)


@bp.route("/signup", methods=["GET", "POST"])
def signup() -> Response | tuple[str, int] | str:
    """Create an account: at once, or (SIGNUP_CONFIRMATION) once the e-mailed link is opened."""
    form = SignupForm()
    if request.method == "GET":
        form.next.data = safe_next_url(request.args.get("next")) or ""
    if not form.validate_on_submit():
        return form_page(form, render_template("auth/signup.html", form=form))
    # Every attempt counts, so the form cannot be used to probe many names or addresses.
    enforce_form_limit("signup")
    if current_app.config.get("SIGNUP_CONFIRMATION"):
        return _signup_by_email_link(form)
    db = db_session()
    try:
        user = register_user(db, **_signup_fields(form))
    except AccountError as exc:
        return _refused_signup(form, exc)
    db.commit()
    sign_in(user, "Your account is ready. Welcome to OneCart!")
    session[NEW_ACCOUNT_SESSION_KEY] = True
    return _redirect_after_login(form.next.data)


def _signup_fields(form: SignupForm) -> dict[str, str]:
    """What the sign-up form says of the new account, as the account services take it."""
    return {
        "username": form.username.data,
        "email": form.email.data,
        "password": form.password.data,
        "first_name": form.first_name.data or "",
        "last_name": form.last_name.data or "",
    }


def _refused_signup(form: SignupForm, refusal: AccountError) -> tuple[str, int]:
    """The sign-up form again, with what the account services refused (nothing written)."""
    db_session().rollback()
    attach_service_errors(form, refusal.errors)
    return form_page(form, render_template("auth/signup.html", form=form))


def _signup_by_email_link(form: SignupForm) -> Response | tuple[str, int] | str:
    """Answer "check your inbox" whether or not the address has an account: a new address gets
    the link that creates the account, a known one a note to its owner."""
    db = db_session()
    try:
        account, email_taken = check_new_account(db, **_signup_fields(form))
    except AccountError as exc:
        return _refused_signup(form, exc)
    # Counted for every address alike, with or without an account (the answer tells nothing).
    enforce_form_limit(
        "signup_address",
        f"address:{account.email.lower()}",
        message="Many sign-up e-mails were sent to this address in the last hour, so no more "
        "are sent for now. Please wait an hour and try again.",
    )
    mail = mail_settings()
    if email_taken:
        owner = find_user_by_email(db, account.email)
        if owner is not None:
            message = existing_account_email(
                owner,
                public_url_for("auth.login"),
                public_url_for("auth.forgot_password"),
                mail,
            )
            send_in_background(message, mail)
    else:
        limiter: SlidingWindowLimiter = current_app.extensions["form_limiter"]
        token = stash_pending_signup(limiter.client, limiter.prefix, account)
        link = public_url_for("auth.confirm_signup", token=token)
        send_in_background(confirm_signup_email(account.email, link, mail), mail)
    db.rollback()
    return render_template(
        "auth/signup_sent.html", address=account.email, hours=PENDING_SIGNUP_TTL_S // 3600
    )


@bp.route("/signup/confirm/<token>", methods=["GET", "POST"])
def confirm_signup(token: str) -> Response | tuple[str, int] | str:
    """The e-mailed link: a button that creates the account (POST, so a mail scanner opening
    the link creates nothing), then signs in."""
    limiter: SlidingWindowLimiter = current_app.extensions["form_limiter"]
    form = ConfirmSignupForm()
    if not form.validate_on_submit():
        if not pending_signup_exists(limiter.client, limiter.prefix, token):
            return render_template("auth/confirm_signup.html", form=None), 404
        return render_template("auth/confirm_signup.html", form=form)
    account = claim_pending_signup(limiter.client, limiter.prefix, token)
    if account is None:
        return render_template("auth/confirm_signup.html", form=None), 404
    db = db_session()
    try:
        user = create_account(db, account)
    except AccountError:
        db.rollback()
        flash(
            "That username or e-mail address was taken while your link waited. "
            "Please sign up again with another username, or log in.",
            "error",
        )
        return redirect(url_for("auth.signup"))
    db.commit()
    sign_in(user, "Your e-mail address is confirmed and your account is ready. Welcome!")
    session[NEW_ACCOUNT_SESSION_KEY] = True
    return redirect("/")


@bp.post("/logout")
@login_required
def logout() -> Response:
    """Sign out (POST only, so a link on another site can't sign anyone out).

    The account's session nonce rotates, so the "keep me signed in" cookie and any copy of the
    session cookie stop working, and Flask-Login deletes the remember cookie.
    """
    user = current_user._get_current_object()  # type: ignore[attr-defined]
    db = db_session()
    user.session_nonce = new_session_nonce()
    db.commit()
    # Clear first: logout_user() leaves the instruction to delete the remember cookie in the
    # session, which a later clear() would drop.
    session.clear()
    logout_user()
    flash("You have been signed out.", "info")
    return redirect("/")


def _reset_link(token: str) -> str:
    return public_url_for("auth.reset_password_page", token=token)


@bp.route("/password/forgot", methods=["GET", "POST"])
def forgot_password() -> tuple[str, int] | str:
    """Ask for a reset link; the answer is the same whether or not the address has an account."""
    form = ForgotPasswordForm()
    minutes = RESET_TOKEN_MAX_AGE_S // 60
    # Without a mail server no link can leave: the page says so (the same for every address)
    # rather than claim one was sent.
    can_mail = bool(mail_settings().host)
    if not form.validate_on_submit():
        return form_page(
            form,
            render_template(
                "auth/forgot_password.html",
                form=form,
                can_mail=can_mail,
                sent=False,
                minutes=minutes,
            ),
        )
    address = (form.email.data or "").strip().lower()
    user = _reset_request_allowed(address)
    if user is not None and can_mail:
        token = make_reset_token(user, current_app.config["SECRET_KEY"])
        send_in_background(reset_email(user, _reset_link(token), mail_settings()), mail_settings())
    db_session().rollback()
    return render_template(
        "auth/forgot_password.html", form=form, can_mail=can_mail, sent=True, minutes=minutes
    )


# Each reset link works for an hour, so while the address's hourly cap is full the latest mail
# sent to it (if it has an account) still holds a working link: the way in for its owner on a
# browser the account never signed in on, whoever asked for the mails.
RESET_LIMITED_MESSAGE = (
    "Many password-reset e-mails were asked for this address in the last hour, so no more are "
    "sent for now. If the address has an account, those e-mails are in its inbox: the link in "
    "the latest one still works (open it in this browser, which can then sign in). Or ask "
    "again from a browser where you have signed in to this account before (it still can), or "
    "wait an hour and try again."
)


def _reset_request_allowed(address: str) -> User | None:
    """Count one reset request (429 when a limit is full); the address's account, if any.

    Per client, and per (address, client): one visitor cannot spend an address's mails. Per
    address across clients, with a higher cap: the owner's inbox is not flooded from many
    addresses. While that shared cap is full, a browser that has signed in to the account
    before (storefront.auth.known_devices) is counted under its own (address, device) limit,
    so strangers spending the cap do not lock the owner out. The answer is the same with or
    without an account, except to that owner's browser.
    """
    client = client_address()
    limiter: SlidingWindowLimiter = current_app.extensions["form_limiter"]
    per_client = limiter.acquire(
        [
            (form_rule("password_reset_ip"), client),
            (form_rule("password_reset_address_client"), f"address:{address}|{client}"),
        ]
    )
    if not per_client.allowed:
        logger.warning("password reset rate-limited (%s) for %s", per_client.limited_by, client)
        raise TooManyRequests(
            "You have asked for many password-reset e-mails in a short while. Please wait a "
            "few minutes and try again.",
            retry_after=per_client.retry_after,
        )
    shared = limiter.acquire([(form_rule("password_reset_address"), f"address:{address}")])
    user = find_user_by_email(db_session(), address)
    if shared.allowed:
        return user
    device = known_device_for(user.id) if user is not None else None
    if device is not None:
        own = limiter.acquire(
            [(form_rule("password_reset_known_device"), f"address:{address}|{device}")]
        )
        if own.allowed:
            return user
    logger.warning("password reset rate-limited (password_reset_address) for %s", client)
    raise TooManyRequests(RESET_LIMITED_MESSAGE, retry_after=shared.retry_after)


@bp.route("/password/reset/<token>", methods=["GET", "POST"])
def reset_password_page(token: str) -> Response | tuple[str, int] | str:
    """Choose a new password through a reset link; afterwards every session is signed out."""
    minutes = RESET_TOKEN_MAX_AGE_S // 60
    db = db_session()
    user = user_for_reset_token(db, token, current_app.config["SECRET_KEY"])
    if user is None:
        return render_template("auth/reset_password.html", form=None, minutes=minutes), 404
    form = ResetPasswordForm()
    if not form.validate_on_submit():
        return form_page(
            form, render_template("auth/reset_password.html", form=form, minutes=minutes)
        )
    try:
        reset_password(db, user, form.new_password.data)
    except AccountError as exc:
        db.rollback()
        attach_service_errors(form, exc.errors)
        return form_page(
            form, render_template("auth/reset_password.html", form=form, minutes=minutes)
        )
    db.commit()
    session.clear()
    logout_user()
    # The mailbox's owner is at this browser: its sign-in is not held up by strangers' failed
    # guesses at the account (ACCOUNT_UNDER_ATTACK_MESSAGE).
    remember_device_for(user.id)
    flash(
        "Your password has been changed and every device was signed out. Please log in.", "success"
    )
    return redirect(url_for("auth.login"))


@bp.after_request
def keep_reset_links_private(response: Response) -> Response:
    """Reset and sign-up tokens are credentials: no caching, and no Referer carrying it elsewhere."""
    if request.endpoint in {"auth.reset_password_page", "auth.confirm_signup"}:
        response.headers["Cache-Control"] = "no-store"
        response.headers["Referrer-Policy"] = "no-referrer"
    return response
