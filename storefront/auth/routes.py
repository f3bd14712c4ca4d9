"""Sign-up, login and logout views: validate the form, call commerce.accounts, commit, redirect.

Login is rate-limited per client IP and per account (commerce.rate_limit), regenerates the
session, merges the guest cart into the account, and only follows same-site `next` paths.
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
from flask_login import current_user, login_required, login_user, logout_user
from werkzeug.exceptions import TooManyRequests
from werkzeug.wrappers import Response

from commerce.accounts import (
    AccountError,
    authenticate,
    load_user_by_session_id,
    login_account_key,
    register_user,
)
from commerce.models import User
from commerce.rate_limit import LoginRateLimiter
from storefront.auth.forms import LoginForm, SignupForm
from storefront.database import db_session
from storefront.extensions import login_manager
from storefront.form_errors import attach_service_errors
from storefront.security import safe_next_url

bp = Blueprint("auth", __name__)
logger = logging.getLogger(__name__)

GUEST_CART_SESSION_KEY = "guest_cart"
HOME_PATH = "/home"
# Session keys that survive the session regeneration at login.
_KEYS_KEPT_AT_LOGIN = (GUEST_CART_SESSION_KEY,)


@login_manager.user_loader
def load_user(session_id: str) -> User | None:
    """Flask-Login's loader: `<id>.<nonce>` from the cookie (see User.get_id)."""
    return load_user_by_session_id(db_session(), session_id)


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
        capped = getattr(result, "capped", ())
        if capped:
            flash(f"Some quantities were capped at the maximum: {', '.join(capped)}.", "warning")
    except Exception:
        db.rollback()
        session[GUEST_CART_SESSION_KEY] = guest_lines
        logger.exception("guest cart merge failed for user %s; lines kept in the session", user.id)


def sign_in(user: User, *, remember: bool = False) -> None:
    """Start a fresh session for `user`, keeping only the guest cart, then merge that cart."""
    kept = {key: session[key] for key in _KEYS_KEPT_AT_LOGIN if key in session}
    session.clear()
    login_user(user, remember=remember)
    _merge_guest_cart(user, kept.get(GUEST_CART_SESSION_KEY))


@bp.route("/login", methods=["GET", "POST"])
def login() -> Response | str:
    """Sign in with username or e-mail and password."""
    form = LoginForm()
    if request.method == "GET":
        form.next.data = safe_next_url(request.args.get("next")) or ""
        if current_user.is_authenticated:
            return _redirect_after_login(form.next.data)
    if not form.validate_on_submit():
        return render_template("auth/login.html", form=form)

    db = db_session()
    client_ip = request.remote_addr or "unknown"
    account_key = login_account_key(db, form.login.data)
    decision = _login_limiter().check(client_ip, account_key)
    if not decision.allowed:
        logger.warning("login rate-limited (%s) from %s", decision.limited_by, client_ip)
        raise TooManyRequests(
            "Too many failed sign-in attempts. Please wait a few minutes and try again.",
            retry_after=decision.retry_after,
        )
    user = authenticate(db, form.login.data, form.password.data)
    if user is None:
        db.rollback()
        _login_limiter().record_failure(client_ip, account_key)
        form.password.errors = ["That username or e-mail and password don't match."]
        return render_template("auth/login.html", form=form)
    db.commit()
    _login_limiter().record_success(account_key)
    sign_in(user, remember=bool(form.remember.data))
    flash(f"Welcome back, {user.first_name or user.username}.", "success")
    return _redirect_after_login(form.next.data)


@bp.route("/signup", methods=["GET", "POST"])
def signup() -> Response | str:
    """Create an account and sign in."""
    form = SignupForm()
    if request.method == "GET":
        form.next.data = safe_next_url(request.args.get("next")) or ""
    if not form.validate_on_submit():
        return render_template("auth/signup.html", form=form)
    db = db_session()
    try:
        user = register_user(
            db,
            username=form.username.data,
            email=form.email.data,
            password=form.password.data,
            first_name=form.first_name.data or "",
            last_name=form.last_name.data or "",
        )
    except AccountError as exc:
        db.rollback()
        attach_service_errors(form, exc.errors)
        return render_template("auth/signup.html", form=form)
    db.commit()
    sign_in(user)
    flash("Your account is ready. Welcome to OneCart!", "success")
    return _redirect_after_login(form.next.data)


@bp.post("/logout")
@login_required
def logout() -> Response:
    """Sign out (POST only, so a link on another site can't sign anyone out)."""
    logout_user()
    session.clear()
    flash("You have been signed out.", "info")
    return redirect("/")
