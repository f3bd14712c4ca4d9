"""The display-currency choice, validated on POST (the layout renders the choices itself)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import HiddenField, SelectField
from wtforms.validators import DataRequired


class DisplayCurrencyForm(FlaskForm):
    """Which currency prices are shown in; choices are the currencies with a published rate."""

    currency = SelectField("Show prices in", validators=[DataRequired()], choices=[])
    next = HiddenField()
