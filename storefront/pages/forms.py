"""The support form; rules (lengths, e-mail format) are checked by commerce.support."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import EmailField, TextAreaField

from storefront.account_fields import text_field


class SupportForm(FlaskForm):
    """A support request: who, how to reach them, an optional order number and the message."""

    name = text_field(
        "Your name", max_length=120, required="Tell us your name.", autocomplete="name"
    )
    email = text_field(
        "E-mail address",
        max_length=254,
        required="Enter the e-mail address we should answer.",
        autocomplete="email",
        field_class=EmailField,
    )
    order_number = text_field(
        "Order number (optional)",
        max_length=40,
        description="If your question is about an order, its number helps us find it.",
    )
    subject = text_field("Subject (optional)", max_length=200)
    message = text_field(
        "How can we help?",
        max_length=5000,
        required="Describe what you need help with.",
        field_class=TextAreaField,
        render_kw={"rows": 6},
    )
