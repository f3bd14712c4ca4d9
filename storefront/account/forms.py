"""Forms of the profile page (three independent forms, each posting to its own URL)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import EmailField, HiddenField, PasswordField, SelectField, StringField
from wtforms.validators import DataRequired, EqualTo, Length, Optional


class ProfileForm(FlaskForm):
    """Name, e-mail, phone and the currency prices are shown in."""

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
    email = EmailField(
        "E-mail address",
        validators=[DataRequired("Enter your e-mail address."), Length(max=254)],
        render_kw={"autocomplete": "email"},
    )
    phone_number = StringField(
        "Phone number",
        validators=[Optional(), Length(max=32)],
        render_kw={"autocomplete": "tel", "inputmode": "tel"},
    )
    display_currency = SelectField(
        "Show prices in", validators=[DataRequired("Choose a currency.")], choices=[]
    )
    email_password = PasswordField(
        "Current password",
        validators=[Optional(), Length(max=256)],
        description="Needed only when you change your e-mail address.",
        render_kw={"autocomplete": "current-password"},
    )


class PasswordChangeForm(FlaskForm):
    """A new password, allowed only with the current one."""

    current_password = PasswordField(
        "Current password",
        validators=[DataRequired("Enter your current password.")],
        render_kw={"autocomplete": "current-password"},
    )
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


class TopUpForm(FlaskForm):
    """Add money to the wallet; `reference` makes a resubmitted form count once."""

    amount = StringField(
        "Amount",
        validators=[DataRequired("Enter an amount."), Length(max=20)],
        render_kw={"inputmode": "decimal", "autocomplete": "off"},
    )
    reference = HiddenField(validators=[DataRequired(), Length(max=64)])
