"""The profile page and its three forms (details, password, wallet top-up).

Each form posts to its own URL; a failed submission re-renders the whole page with that form's
errors, the other two forms filled from the account.
"""

from __future__ import annotations

import re

import sqlalchemy as sa
from flask import Blueprint, flash, redirect, render_template, url_for
from flask_login import current_user, login_required, login_user
from werkzeug.wrappers import Response
from wtforms.fields import SelectChoice

from commerce.accounts import AccountError, ProfileChanges, change_password, update_profile
from commerce.models import FxRate, User
from commerce.wallet import (
    WalletError,
    list_wallet_entries,
    new_topup_reference,
    top_up,
    topup_limit,
    wallet_balance,
)
from onecart.money import MoneyError, parse_decimal
from storefront.account.forms import PasswordChangeForm, ProfileForm, TopUpForm
from storefront.database import db_session
from storefront.form_errors import attach_service_errors

bp = Blueprint("account", __name__)

TOPUP_REFERENCE_PATTERN = re.compile(r"^sandbox-topup-[A-Za-z0-9_-]{8,40}$")


def display_currency_choices(current: str) -> list[SelectChoice]:
    """USD plus every currency the pipeline has published a rate for (and the one in use)."""
    currencies = set(db_session().scalars(sa.select(FxRate.currency))) | {"USD", current}
    return [SelectChoice(code) for code in sorted(currencies)]


def _user() -> User:
    return current_user._get_current_object()  # type: ignore[attr-defined,no-any-return]


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
    return render_template(
        "account/profile.html",
        user=user,
        profile_form=profile_form or _profile_form(),
        password_form=password_form or PasswordChangeForm(formdata=None),
        topup_form=topup_form or _topup_form(),
        balance=wallet_balance(db, user),
        entries=list_wallet_entries(db, user),
        topup_limit=topup_limit(user.wallet_currency),
    )


@bp.get("/profile")
@login_required
def profile() -> str:
    """Account details, password change, wallet balance, ledger and top-up."""
    return _render_profile()


@bp.post("/profile")
@login_required
def update_details() -> Response | str:
    """Save name, e-mail, phone and display currency."""
    form = _profile_form(submitted=True)
    if not form.validate_on_submit():
        return _render_profile(profile_form=form)
    db = db_session()
    try:
        update_profile(
            db,
            _user(),
            ProfileChanges(
                first_name=form.first_name.data or "",
                last_name=form.last_name.data or "",
                email=form.email.data or "",
                phone_number=form.phone_number.data,
                display_currency=form.display_currency.data or "",
                current_password=form.email_password.data or "",
            ),
        )
    except AccountError as exc:
        db.rollback()
        attach_service_errors(form, exc.errors)
        return _render_profile(profile_form=form)
    db.commit()
    flash("Your profile has been saved.", "success")
    return redirect(url_for("account.profile"))


@bp.post("/profile/password")
@login_required
def update_password() -> Response | str:
    """Change the password (the current one is required); other devices are signed out."""
    form = PasswordChangeForm()
    if not form.validate_on_submit():
        return _render_profile(password_form=form)
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
        return _render_profile(password_form=form)
    db.commit()
    login_user(user)  # the session nonce rotated: re-issue this browser's login
    flash("Your password has been changed. Other devices have been signed out.", "success")
    return redirect(url_for("account.profile"))


@bp.post("/profile/wallet/top-up")
@login_required
def wallet_top_up() -> Response | str:
    """Top up the wallet through the sandbox payment; a resubmitted form counts once."""
    form = _topup_form(submitted=True)
    if not form.validate_on_submit():
        return _render_profile(topup_form=form)
    if not TOPUP_REFERENCE_PATTERN.match(form.reference.data or ""):
        form.form_errors.append("This form has expired. Please try again.")
        form.reference.data = new_topup_reference()
        return _render_profile(topup_form=form)
    db = db_session()
    user = _user()
    try:
        amount = parse_decimal((form.amount.data or "").strip())
        receipt = top_up(db, user, amount, reference=form.reference.data)
    except (MoneyError, WalletError) as exc:
        db.rollback()
        message = str(exc) if isinstance(exc, WalletError) else "Enter an amount like 25 or 25.50."
        form.amount.errors = [*form.amount.errors, message]
        return _render_profile(topup_form=form)
    db.commit()
    if receipt.created:
        flash("Your wallet has been topped up.", "success")
    else:
        flash("That top-up was already recorded; nothing was charged twice.", "info")
    return redirect(url_for("account.profile"))
