"""The form fields several account forms ask for the same way: an e-mail address, a person's
names and phone number, and a new password with its confirmation (sign-up, profile, password
change and reset, forgotten password, and the checkout's phone for the courier), and the shape
of any length-bounded text field (text_field: the checkout's address, the support form). Each
call makes a new field, so a form's fields keep the order they are declared in."""

from __future__ import annotations

from typing import Any

from wtforms import EmailField, PasswordField, StringField
from wtforms.fields.core import Field, UnboundField
from wtforms.validators import DataRequired, EqualTo, Length, Optional, ValidationError

from commerce.accounts import password_problems

PASSWORD_RULES = "At least 10 characters, mixing letters with digits or symbols."


def text_field(
    label: str,
    *,
    max_length: int,
    required: str | None = None,
    autocomplete: str | None = None,
    field_class: type[Field] = StringField,
    **options: Any,
) -> UnboundField:
    """A text field of at most `max_length` characters: required when `required` is given (the
    message shown when it is left empty), optional otherwise; `autocomplete` is the browser's
    fill-in hint. Other `options` (description, render_kw) go to the field as they are."""
    presence = DataRequired(required) if required is not None else Optional()
    render_kw = dict(options.pop("render_kw", None) or {})
    if autocomplete is not None:
        render_kw["autocomplete"] = autocomplete
    return field_class(
        label,
        validators=[presence, Length(max=max_length)],
        render_kw=render_kw or None,
        **options,
    )


def email_address_field() -> UnboundField:
    """The account's e-mail address (required)."""
    return EmailField(
        "E-mail address",
        validators=[DataRequired("Enter your e-mail address."), Length(max=254)],
        render_kw={"autocomplete": "email"},
    )


def first_name_field() -> UnboundField:
    """The person's first name (optional)."""
    return StringField(
        "First name",
        validators=[Optional(), Length(max=80)],
        render_kw={"autocomplete": "given-name"},
    )


def last_name_field() -> UnboundField:
    """The person's last name (optional)."""
    return StringField(
        "Last name",
        validators=[Optional(), Length(max=80)],
        render_kw={"autocomplete": "family-name"},
    )


def phone_number_field(label: str) -> UnboundField:
    """A phone number (optional), as browsers and phones fill it in."""
    return StringField(
        label,
        validators=[Optional(), Length(max=32)],
        render_kw={"autocomplete": "tel", "inputmode": "tel"},
    )


def new_password_field(
    label: str = "New password",
    required: str = "Choose a new password.",
    *,
    strength_with_form: bool = True,
) -> UnboundField:
    """A password being chosen; its strength is checked by commerce.accounts. With
    `strength_with_form` the rules that need no account are checked with the form too (see
    _strong_enough); sign-up leaves them to the service, which reports them together with a
    taken username or address: checked first, a short password hid those."""
    strength = [_strong_enough] if strength_with_form else []
    return PasswordField(
        label,
        validators=[DataRequired(required), Length(max=128), *strength],
        description=PASSWORD_RULES,
        render_kw={"autocomplete": "new-password"},
    )


def _strong_enough(_form: Any, field: Field) -> None:
    """The strength rules that need no account (commerce.accounts checks them again, with the
    username and e-mail address, once the form is valid): checked with the form, so a password
    both too short and mistyped in the confirmation gets both messages at once."""
    problems = password_problems(field.data or "")
    if problems:
        # One message per rule, as the service gives them.
        field.errors.extend(problems[:-1])
        raise ValidationError(problems[-1])


def password_confirmation_field(
    password_field: str,
    label: str = "Confirm new password",
    required: str = "Repeat the new password.",
) -> UnboundField:
    """The chosen password typed again; must equal the form's field `password_field`."""
    return PasswordField(
        label,
        validators=[
            DataRequired(required),
            EqualTo(password_field, "The two passwords don't match."),
        ],
        render_kw={"autocomplete": "new-password"},
    )
