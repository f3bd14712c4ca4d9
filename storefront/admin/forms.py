"""The marketplace form. The API key field is write-only: it is never filled from the database."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    HiddenField,
    PasswordField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.fields import SelectChoice
from wtforms.validators import DataRequired, Length, Optional

from adapters.registry import ADAPTER_KINDS, MATCH_IDENTIFIERS


class MarketplaceForm(FlaskForm):
    """Add or edit a marketplace; `slug` is only editable when adding."""

    slug = StringField(
        "Slug",
        validators=[Optional(), Length(max=41)],
        description="Lower-case letters, digits and '-'; permanent once created.",
    )
    name = StringField("Name", validators=[DataRequired("Enter a name."), Length(max=120)])
    kind = SelectField(
        "API format",
        choices=[SelectChoice(kind) for kind in sorted(ADAPTER_KINDS)],
        validators=[DataRequired()],
    )
    api_base_url = StringField(
        "API base URL", validators=[DataRequired("Enter the API's base URL."), Length(max=500)]
    )
    api_key = PasswordField(
        "API key",
        validators=[Optional(), Length(max=500)],
        description="Stored encrypted. Leave blank to keep the current key.",
        render_kw={"autocomplete": "off"},
    )
    clear_api_key = BooleanField("Remove the stored API key")
    api_key_env = StringField(
        "API key environment variable (optional)",
        validators=[Optional(), Length(max=80)],
        description="Where the key is read from when none is stored: a variable "
        "marketplaces.toml names for this host (ONECART_MARKETPLACE_KEY_…).",
    )
    currency = StringField(
        "Currency", validators=[DataRequired("Enter a currency."), Length(max=3)]
    )
    country = StringField("Country", validators=[DataRequired("Enter a country."), Length(max=2)])
    relation_identifier = SelectField(
        "Product identifier for matching",
        choices=[SelectChoice(name) for name in sorted(MATCH_IDENTIFIERS)],
        validators=[DataRequired()],
    )
    rating = StringField("Rating (0–5)", validators=[Optional(), Length(max=5)])
    logo = StringField("Logo URL", validators=[Optional(), Length(max=500)])
    description = TextAreaField("Description", validators=[Optional(), Length(max=2000)])
    active = BooleanField("Active (shown to shoppers)", default=True)
    # The marketplace as the edit form showed it (commerce.marketplace_admin.edit_fingerprint).
    seen = HiddenField(validators=[Optional(), Length(max=64)])
