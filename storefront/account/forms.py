"""Forms of the profile page (three independent forms, each posting to its own URL)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import HiddenField, PasswordField, SelectField, StringField
from wtforms.validators import DataRequired, Length, Optional

from storefront.account_fields import (
    email_address_field,
    first_name_field,
    last_name_field,
    new_password_field,
    password_confirmation_field,
    phone_number_field,
)


class ProfileForm(FlaskForm):
    """Name, e-mail, phone and the currency prices are shown in."""

    first_name = first_name_field()
    last_name = last_name_field()
    email = email_address_field()
    phone_number = phone_number_field("Phone number")
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
    new_password = new_password_field()
    confirm_new_password = password_confirmation_field("new_password")


class TopUpForm(FlaskForm):
    """Add money to the wallet; `reference` makes a resubmitted form count once."""

    amount = StringField(
        "Amount",
        validators=[DataRequired("Enter an amount."), Length(max=20)],
        render_kw={"inputmode": "decimal", "autocomplete": "off"},
    )
    reference = HiddenField(validators=[DataRequired(), Length(max=64)])
