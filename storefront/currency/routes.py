"""The site-wide display-currency switcher: the layout's choices (a context processor for every
page) and the form's POST, which stores the choice on the account when signed in, else in the
session. Prices themselves are converted by storefront.catalog.shopper.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from babel.numbers import get_currency_name
from flask import Blueprint, Response, flash, g, redirect, request, session, url_for
from flask_login import current_user

from commerce.fx import supported_display_currencies
from storefront import currency_label, path_exists
from storefront.catalog.shopper import DISPLAY_CURRENCY_SESSION_KEY, display_currency, fx_table
from storefront.currency.forms import DisplayCurrencyForm
from storefront.database import db_session
from storefront.security import safe_next_url

bp = Blueprint("currency", __name__)


@bp.post("/currency")
def choose_currency() -> Response:
    """Set the display currency (the account's setting when signed in, else the session's)."""
    form = DisplayCurrencyForm()
    choices = supported_display_currencies(fx_table())
    form.currency.choices = [(code, code) for code in choices]
    target = safe_next_url(form.next.data) or url_for("catalog.landing")
    if not form.validate_on_submit():
        flash("That currency is not available.", "error")
        return redirect(target, code=303)
    chosen = form.currency.data
    if current_user.is_authenticated:
        current_user.display_currency = chosen
        db_session().commit()
    else:
        session[DISPLAY_CURRENCY_SESSION_KEY] = chosen
    flash(f"Prices are now shown in {currency_label(chosen)}.", "success")
    return redirect(target, code=303)


def _back_after_currency() -> str:
    """Where choosing a currency returns to: this page when a GET can show it again (a form
    page answered by POST returns to its blank GET), else the start page. Error pages pass
    no `next` at all (they must not echo the URL), see base.html."""
    if request.method == "GET":
        return request.full_path
    return request.path if path_exists(request.path) else ""


@dataclass(frozen=True, slots=True)
class CurrencySwitcher:
    """What the layout's display-currency switcher shows: (code, label) choices, the current
    code and where choosing returns to. Plain data rather than a DisplayCurrencyForm, which
    the switcher only read from: building a form per page cost more than the rest of the
    switcher (the POST still validates with the form, see choose_currency)."""

    choices: list[tuple[str, str]]
    current: str
    next: str


def _menu_choices(codes: list[str]) -> list[tuple[str, str]]:
    """(code, label) in the order of the currencies' names, as the menu shows them: listed by
    code, "£ British Pound" came after "€ Euro" and "₩ South Korean Won" among the K's."""
    return list(_named_menu_choices(tuple(codes)))


# The published currencies change once a pipeline run, and every page's layout shows the menu:
# its order and labels are worked out once per set of currencies and process (sorting by name
# asked Babel for every currency's name on every page).
@lru_cache(maxsize=16)
def _named_menu_choices(codes: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    return tuple(
        (code, currency_label(code))
        for code in sorted(codes, key=lambda code: get_currency_name(code, locale="en").casefold())
    )


@bp.app_context_processor
def inject_currency_switcher() -> dict[str, Any]:
    """The display-currency switcher for any page that shows one (built once per request: the
    layout shows it twice, in the header and in the menu)."""

    def currency_switcher() -> CurrencySwitcher:
        switcher = g.get("onecart_currency_switcher")
        if switcher is None:
            switcher = g.onecart_currency_switcher = CurrencySwitcher(
                choices=_menu_choices(supported_display_currencies(fx_table())),
                current=display_currency(),
                next=_back_after_currency(),
            )
        return switcher

    return {"currency_switcher": currency_switcher}
