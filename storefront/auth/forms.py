"""Forms of the auth area. Field-level rules live in commerce.accounts; these only shape input."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, HiddenField, PasswordField, StringField
from wtforms.validators import DataRequired, Length

from storefront.account_fields import (
    email_address_field,
    first_name_field,
    last_name_field,
    new_password_field,
    password_confirmation_field,
)


class LoginForm(FlaskForm):
    """Username or e-mail plus password; `next` carries where to go afterwards."""

    login = StringField(
        "Username or e-mail",
        validators=[DataRequired("Enter your username or e-mail address."), Length(max=254)],
        render_kw={"autocomplete": "username", "autocapitalize": "none", "spellcheck": "false"},
    )
    password = PasswordField(
        "Password",
        validators=[DataRequired("Enter your password."), Length(max=256)],
        render_kw={"autocomplete": "current-password"},
    )
    remember = BooleanField("Keep me signed in on this device")
    next = HiddenField()


class SignupForm(FlaskForm):
    """A new account; uniqueness, e-mail format and password strength are checked by the service."""

    username = StringField(
        "Username",
        validators=[DataRequired("Choose a username."), Length(max=40)],
        render_kw={"autocomplete": "username", "autocapitalize": "none", "spellcheck": "false"},
    )
    email = email_address_field()
    first_name = first_name_field()
    last_name = last_name_field()
    password = new_password_field("Password", "Choose a password.", strength_with_form=False)
    confirm_password = password_confirmation_field(
        "password", "Confirm password", "Repeat your password."
    )
    next = HiddenField()


class ForgotPasswordForm(FlaskForm):
    """The address a password-reset link goes to."""

    email = email_address_field()


class ResetPasswordForm(FlaskForm):
    """A new password, chosen through a reset link."""

    new_password = new_password_field()
    confirm_new_password = password_confirmation_field("new_password")


class ConfirmSignupForm(FlaskForm):
    """The button behind an e-mailed sign-up link (CSRF-protected, no fields)."""
