"""Price-alert views: watch a product from its page, and the watch list on the profile
(change a watch's target or percentage, stop watching). Thin: commerce.price_alerts holds the
rules; alerts themselves are fired by the pipeline after each catalog sync."""

from __future__ import annotations

import re

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from werkzeug.wrappers import Response

from commerce import price_alerts
from commerce.models import User
from commerce.price_alert_models import PriceWatch
from onecart.bidi import isolated
from onecart.money import MoneyError, parse_decimal, to_minor_units
from storefront.alerts.forms import WatchProductForm, WatchSettingsForm
from storefront.catalog.routes import render_product_page
from storefront.catalog.shopper import display_currency, fx_table
from storefront.database import db_session
from storefront.security import safe_next_url

bp = Blueprint("alerts", __name__, template_folder="templates", static_folder="static",
               static_url_path="/static/alerts")  # fmt: skip

WATCHLIST_PATH = "/profile/watchlist"
# Digits grouped by three with commas, as prices are shown ("1,050.50").
_THOUSANDS_GROUPED = re.compile(r"\d{1,3}(,\d{3})+(\.\d*)?")


def _user() -> User:
    return current_user._get_current_object()  # type: ignore[attr-defined,no-any-return]


@bp.app_template_global()
def price_watch_for(group_id: str) -> PriceWatch | None:
    """The signed-in shopper's watch of a product (the product page's control), else None."""
    if not current_user.is_authenticated:
        return None
    return price_alerts.find_watch(db_session(), _user().id, group_id)


# flask.g attribute: the product page's "Watch price" form as the shopper sent it, and why it
# was refused, for the product page /watch renders in answer (rejected_watch_for).
REJECTED_WATCH_ATTR = "rejected_watch"


@bp.app_template_global()
def watch_product_form(
    group_id: str, next_path: str, rejected: dict[str, str] | None = None
) -> WatchProductForm:
    """The product page's "Watch price" form: fresh, or as the shopper sent it when refused."""
    form = WatchProductForm(formdata=None, group_id=group_id, next=next_path)
    if rejected:
        form.target.data = rejected.get("target", "")
        form.drop_percent.data = rejected.get("drop_percent", "")
    return form


@bp.app_template_global()
def rejected_watch_for(group_id: str) -> dict[str, str] | None:
    """The refused "Watch price" form of this product (its values, `error`, and the `field` the
    error is about), shown once: the product page re-renders the form from it."""
    rejected = g.get(REJECTED_WATCH_ATTR)
    if not isinstance(rejected, dict) or rejected.get("group_id") != group_id:
        return None
    return {key: str(value) for key, value in rejected.items()}


class _BadInput(ValueError):
    """A watch form value that cannot be used; its message is shown to the shopper."""


def _invalid_field(form: WatchSettingsForm) -> str:
    """The first of the shopper's fields the form's own validation refused, or ""."""
    return next((name for name in ("target", "drop_percent") if form[name].errors), "")


def _field_of(message: str) -> str:
    """Which field a refusal is about ("target", "drop_percent", or "" for the whole form)."""
    lowered = message.lower()
    if "target" in lowered or "price in" in lowered:
        return "target"
    if "drop" in lowered:
        return "drop_percent"
    return ""


def _settings_from(form: WatchSettingsForm) -> tuple[int | None, str | None, int | None]:
    """(target minor units, its currency, drop percent) from a submitted form."""
    currency = display_currency()
    target_minor: int | None = None
    text = (form.target.data or "").strip().lstrip("$€£¥")
    if text:
        try:
            target_minor = to_minor_units(parse_decimal(_without_thousands_commas(text)), currency)
        except MoneyError as exc:
            raise _BadInput(f"Enter the target as a price in {currency}, like 49.99.") from exc
    drop_percent = int(form.drop_percent.data) if form.drop_percent.data else None
    return target_minor, (currency if target_minor is not None else None), drop_percent


def _without_thousands_commas(text: str) -> str:
    """The target without its thousands separators ("1,050.50" → "1050.50"). A comma anywhere
    else, such as a decimal comma ("10,50"), is left for the parser to refuse rather than read as
    a thousands separator (1,050)."""
    if _THOUSANDS_GROUPED.fullmatch(text):
        return text.replace(",", "")
    return text


def _first_error(form: WatchSettingsForm) -> str:
    for messages in form.errors.values():
        for message in messages:
            return str(message)
    return "Please check the form."


@bp.post("/watch")
@login_required
def watch() -> Response | tuple[str, int]:
    """Start watching a product (or change the watch), then go back to the product."""
    form = WatchProductForm()
    group_id = (form.group_id.data or "").strip()
    back = safe_next_url(form.next.data) or (
        url_for("catalog.product", group_id=group_id) if group_id else WATCHLIST_PATH
    )

    def refused(message: str, field: str | None = None) -> Response | tuple[str, int]:
        # The product page again, answered 422 like every rejected form, with the form as sent
        # and the message beside its field (_watch_control.html), rather than a flash at the
        # top of the page and an empty form. A refusal of the whole request (no such product,
        # too many watches) is a flash on the page the shopper came from.
        field = _field_of(message) if field is None else field
        if not group_id or not field:
            flash(message, "error")
            return redirect(back, code=303)
        setattr(
            g,
            REJECTED_WATCH_ATTR,
            {
                "group_id": group_id[:200],
                "target": (form.target.data or "")[:20],
                "drop_percent": (form.drop_percent.raw_data or [""])[0][:3],
                "error": message,
                "field": field,
            },
        )
        product_path = url_for("catalog.product", group_id=group_id[:200])
        return render_product_page(group_id[:200], page_path=product_path), 422

    if not form.validate():
        return refused(_first_error(form), _invalid_field(form))
    try:
        target_minor, target_currency, drop_percent = _settings_from(form)
        watched = price_alerts.watch_product(
            db_session(),
            _user(),
            group_id,
            target_minor=target_minor,
            target_currency=target_currency,
            drop_percent=drop_percent,
            fx=fx_table(),
        )
    except (_BadInput, price_alerts.WatchError) as exc:
        db_session().rollback()
        return refused(str(exc))
    db_session().commit()
    met = price_alerts.target_already_met(db_session(), _user(), watched, fx_table())
    flash(
        f"Watching the price of “{isolated(watched.title)}”. "
        + (met or "We'll tell you when it drops."),
        "success",
    )
    return redirect(back, code=303)


@bp.get(WATCHLIST_PATH)
@login_required
def watchlist() -> str:
    """The shopper's watched products: price now, where, target, last alert; edit or remove."""
    return _watchlist_page()


def _watchlist_page(refused: WatchSettingsForm | None = None, refused_id: int | None = None) -> str:
    """The watch list; `refused` (the form of watch `refused_id` as sent, its errors set) is
    shown in place of that watch's stored settings."""
    views = price_alerts.list_watches(db_session(), _user(), fx_table())
    forms = {
        view.watch.id: WatchSettingsForm(
            formdata=None,
            prefix=f"w{view.watch.id}",
            target=_target_text(view.target_minor),
            drop_percent=str(view.watch.drop_percent or ""),
        )
        for view in views
    }
    if refused is not None and refused_id in forms:
        forms[refused_id] = refused
    return render_template(
        "alerts/watchlist.html",
        views=views,
        forms=forms,
        currency=display_currency(),
        refused_id=refused_id if refused is not None else None,
    )


def _target_text(minor: int | None) -> str:
    if minor is None:
        return ""
    from onecart.money import from_minor_units

    return str(from_minor_units(minor, display_currency()))


@bp.post(f"{WATCHLIST_PATH}/<int:watch_id>")
@login_required
def edit(watch_id: int) -> Response | tuple[str, int]:
    """Change one watch's target price or percentage (someone else's watch is a 404)."""
    form = WatchSettingsForm(prefix=f"w{watch_id}")

    def refused(message: str, name: str | None = None) -> tuple[str, int]:
        # The watch list again with this watch's form as typed and the message at its field.
        name = _field_of(message) if name is None else name
        field = form.drop_percent if name == "drop_percent" else form.target
        field.errors = [message]
        return _watchlist_page(form, watch_id), 422

    if not form.validate():
        return refused(_first_error(form), _invalid_field(form))
    try:
        target_minor, target_currency, drop_percent = _settings_from(form)
        changed = price_alerts.update_watch(
            db_session(),
            _user().id,
            watch_id,
            target_minor=target_minor,
            target_currency=target_currency,
            drop_percent=drop_percent,
        )
    except (_BadInput, price_alerts.WatchError) as exc:
        db_session().rollback()
        return refused(str(exc))
    if changed is None:
        abort(404)
    db_session().commit()
    met = price_alerts.target_already_met(db_session(), _user(), changed, fx_table())
    flash(
        f"Updated your alert for “{isolated(changed.title)}”." + (f" {met}" if met else ""),
        "success",
    )
    return redirect(url_for("alerts.watchlist"), code=303)


@bp.post(f"{WATCHLIST_PATH}/<int:watch_id>/delete")
@login_required
def remove(watch_id: int) -> Response:
    """Stop watching a product (someone else's watch is a 404)."""
    if not price_alerts.remove_watch(db_session(), _user().id, watch_id):
        abort(404)
    db_session().commit()
    flash("Stopped watching that product.", "success")
    back = safe_next_url(request.form.get("next"))
    return redirect(back or url_for("alerts.watchlist"), code=303)
