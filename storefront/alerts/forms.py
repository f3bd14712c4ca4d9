"""Watch forms. They check the shape of what was sent; the rules (percentages, positive
targets, a product that exists) live in commerce.price_alerts."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import HiddenField, SelectField, StringField
from wtforms.fields import SelectChoice
from wtforms.validators import DataRequired, Length, Optional

# The percentages offered; commerce.price_alerts accepts any whole number from 1 to 90.
DROP_PERCENT_CHOICES = [
    SelectChoice("", "—"),
    *(SelectChoice(str(percent), f"{percent}% or more") for percent in (5, 10, 15, 20, 30, 50)),
]


class WatchSettingsForm(FlaskForm):
    """A target price (in the shopper's display currency) and/or a percentage drop."""

    target = StringField(
        "Target price", validators=[Optional(), Length(max=20, message="That price is too long.")]
    )
    drop_percent = SelectField("Or when it drops by", choices=DROP_PERCENT_CHOICES, default="")


class WatchProductForm(WatchSettingsForm):
    """Start watching a product (the product page's "Watch price" control)."""

    group_id = HiddenField(validators=[DataRequired(message="Choose a product to watch.")])
    next = HiddenField()
