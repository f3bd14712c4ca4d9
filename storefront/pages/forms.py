"""The support form; rules (lengths, e-mail format) are checked by commerce.support."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import EmailField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional


class SupportForm(FlaskForm):
    """A support request: who, how to reach them, an optional order number and the message."""

    name = StringField(
        "Your name",
        validators=[DataRequired("Tell us your name."), Length(max=120)],
        render_kw={"autocomplete": "name"},
    )
    email = EmailField(
        "E-mail address",
        validators=[DataRequired("Enter the e-mail address we should answer."), Length(max=254)],
        render_kw={"autocomplete": "email"},
    )
    order_number = StringField(
        "Order number (optional)",
        validators=[Optional(), Length(max=40)],
        description="If your question is about an order, its number helps us find it.",
    )
    subject = StringField("Subject (optional)", validators=[Optional(), Length(max=200)])
    message = TextAreaField(
        "How can we help?",
        validators=[DataRequired("Describe what you need help with."), Length(max=5000)],
        render_kw={"rows": 6},
    )
