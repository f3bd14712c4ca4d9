"""Forms of the auth area. Field-level rules live in commerce.accounts; these only shape input."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, HiddenField, PasswordField, StringField
from wtforms.validators import DataRequired, EqualTo, Length, Optional


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
    email = EmailField(
        "E-mail address",
        validators=[DataRequired("Enter your e-mail address."), Length(max=254)],
        render_kw={"autocomplete": "email"},
    )
    first_name = StringField(
        "First name",
        validators=[Optional(), Length(max=80)],
        render_kw={"autocomplete": "given-name"},
    )
    last_name = StringField(
        "Last name",
        validators=[Optional(), Length(max=80)],
        render_kw={"autocomplete": "family-name"},
    )
    password = PasswordField(
        "Password",
        validators=[DataRequired("Choose a password."), Length(max=128)],
        description="At least 10 characters, mixing letters with digits or symbols.",
        render_kw={"autocomplete": "new-password"},
    )
    confirm_password = PasswordField(
        "Confirm password",
        validators=[
            DataRequired("Repeat your password."),
            EqualTo("password", "The two passwords don't match."),
        ],
        render_kw={"autocomplete": "new-password"},
    )
    next = HiddenField()


class ForgotPasswordForm(FlaskForm):
    """The address a password-reset link goes to."""

    email = EmailField(
        "E-mail address",
        validators=[DataRequired("Enter your e-mail address."), Length(max=254)],
        render_kw={"autocomplete": "email"},
    )


class ResetPasswordForm(FlaskForm):
    """A new password, chosen through a reset link."""

    new_password = PasswordField(
        "New password",
        validators=[DataRequired("Choose a new password."), Length(max=128)],
        description="At least 10 characters, mixing letters with digits or symbols.",
        render_kw={"autocomplete": "new-password"},
    )
    confirm_new_password = PasswordField(
        "Confirm new password",
        validators=[
            DataRequired("Repeat the new password."),
            EqualTo("new_password", "The two passwords don't match."),
        ],
        render_kw={"autocomplete": "new-password"},
    )


class ConfirmSignupForm(FlaskForm):
    """The button behind an e-mailed sign-up link (CSRF-protected, no fields)."""
