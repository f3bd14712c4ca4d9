"""The checkout form: shipping address, payment method, and the hidden token and total seen."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import Field, HiddenField, RadioField, SelectField
from wtforms.fields import SelectChoice
from wtforms.validators import DataRequired, Optional, ValidationError

from commerce.countries import shipping_countries
from commerce.order_models import PaymentMethod
from commerce.payments.gateway import is_payment_intent_id
from storefront.account_fields import phone_number_field, text_field


def country_choices() -> list[SelectChoice]:
    """ISO 3166-1 countries (two-letter codes) with their English names, sorted by name."""
    return [SelectChoice(code, name) for code, name in shipping_countries()]


def payment_intent_id_shape(form: FlaskForm, field: Field) -> None:
    if not is_payment_intent_id(field.data):
        raise ValidationError("Not a card payment of this checkout.")


class CheckoutForm(FlaskForm):
    """Everything the shopper sends to pay; amounts are never trusted from it, only compared."""

    validation_token = HiddenField(validators=[DataRequired()])
    total_seen = HiddenField()
    wallet_total_seen = HiddenField()
    cart_digest = HiddenField()
    # The display currency the page showed its totals in: a submit after the currency was
    # switched in another tab is refused (the digest), and this says why in the shopper's words.
    currency_seen = HiddenField()
    # Handed over by Stripe.js, so as forgeable as any field: its shape is checked before any use.
    payment_intent_id = HiddenField(validators=[Optional(), payment_intent_id_shape])

    name = text_field(
        "Full name",
        max_length=160,
        required="Enter the name to ship to.",
        autocomplete="shipping name",
    )
    line1 = text_field(
        "Address",
        max_length=200,
        required="Enter the street address.",
        autocomplete="shipping address-line1",
    )
    line2 = text_field(
        "Apartment, suite (optional)", max_length=200, autocomplete="shipping address-line2"
    )
    city = text_field(
        "City", max_length=120, required="Enter the city.", autocomplete="shipping address-level2"
    )
    postal_code = text_field("Postal code", max_length=20, autocomplete="shipping postal-code")
    country = SelectField(
        "Country",
        validators=[DataRequired("Choose a country.")],
        choices=[],
        render_kw={"autocomplete": "shipping country"},
    )
    phone = phone_number_field("Phone (for the courier)")
    payment_method = RadioField(
        "Pay with",
        choices=[
            SelectChoice(PaymentMethod.WALLET.value, "Wallet"),
            SelectChoice(PaymentMethod.STRIPE.value, "Card"),
        ],
        validators=[DataRequired("Choose how to pay.")],
        default=PaymentMethod.STRIPE.value,
    )
    test_card = SelectField("Test card", choices=[], validators=[Optional()])
