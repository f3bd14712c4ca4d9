"""Small security rules shared by the blueprints: safe post-login redirects, response headers,
and input no database column can hold."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Response, abort, current_app, g, request, url_for
from werkzeug.routing import IntegerConverter

# No external origins: the site ships its own CSS and scripts. Product images come from the
# marketplaces' hosts, so images may load from any http(s) origin.
DEFAULT_CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data: http: https:; style-src 'self'; "
    "script-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
    "frame-ancestors 'none'"
)

# Pages with Stripe's Payment Element (checkout, a card top-up): Stripe.js loads from Stripe and
# frames its card fields, with the sources Stripe's integration security guide lists for it
# (js.stripe.com and its subdomains for scripts and frames, hooks.stripe.com for 3-D Secure,
# api.stripe.com). The guide lists no style source for Stripe.js, so no <style> may be added to
# the page (one could read the client secret and CSRF token with attribute selectors and send
# them out as background images); only style attributes, which Stripe.js sets on the elements it
# mounts and which select nothing, are allowed (style-src-attr; a browser without it applies
# style-src to them too).
STRIPE_JS_CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data: http: https:; style-src 'self'; "
    "style-src-attr 'unsafe-inline'; "
    "script-src 'self' https://js.stripe.com https://*.js.stripe.com; "
    "frame-src https://js.stripe.com https://*.js.stripe.com https://hooks.stripe.com; "
    "connect-src 'self' https://api.stripe.com; object-src 'none'; "
    "base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)


def safe_next_url(target: str | None) -> str | None:
    """`target` if it is a same-site relative path ("/cart?x=1"), else None.

    Rejects anything a browser could read as another host: absolute URLs, scheme-relative
    "//evil.com", backslash tricks ("/\\evil.com" — browsers treat "\\" as "/"), and control
    characters (which browsers strip before parsing).
    """
    if not target:
        return None
    if "\\" in target or any(ord(ch) < 32 or ord(ch) == 127 for ch in target):
        return None
    if not target.startswith("/") or target.startswith("//"):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    return target


def public_url_for(endpoint: str, **values: object) -> str:
    """An absolute link to `endpoint` for use outside this page (e-mails, a status link the
    shopper passes on, Stripe's return address): on PUBLIC_URL (ONECART_PUBLIC_URL, required in
    production while links are e-mailed) when configured, so neither a forged Host header nor
    the plain-http hop behind a TLS proxy decides where it points; else this request's own."""
    base = str(current_app.config.get("PUBLIC_URL") or "").rstrip("/")
    if base:
        return base + url_for(endpoint, **values)
    return url_for(endpoint, _external=True, **values)


HSTS_MAX_AGE_SECONDS = 365 * 24 * 60 * 60
# The largest id our primary keys hold (INTEGER: 32 bits on PostgreSQL, the smaller of the two).
MAX_ROUTE_ID = 2**31 - 1


class BoundedIntConverter(IntegerConverter):
    """Werkzeug's `int` converter, refusing (404) what no row id can be: more than 10 digits or
    more than MAX_ROUTE_ID. An oversized id would otherwise reach the database and fail there."""

    regex = r"\d{1,10}"

    def __init__(self, map: object, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("max", MAX_ROUTE_ID)
        super().__init__(map, *args, **kwargs)  # type: ignore[arg-type]


FORM_MIMETYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
NUL_REFUSED = (
    "That request contains a character OneCart cannot accept (a NUL byte). Please remove it and "
    "try again."
)


def refuse_nul_characters() -> None:
    """Answer 400 to a path, query or form value holding NUL: PostgreSQL text cannot store or
    compare it (the query itself would fail, a 500) and SQLite would store it as given."""
    values = [request.path]
    for key, items in request.args.lists():
        values += [key, *items]
    if request.mimetype in FORM_MIMETYPES:
        for key, items in request.form.lists():
            values += [key, *items]
    if any("\x00" in value for value in values):
        abort(400, NUL_REFUSED)


def set_security_headers(
    response: Response, *, content_security_policy: str, hsts_max_age: int = 0
) -> Response:
    """Headers every page gets: no sniffing, no framing, a strict referrer policy and the CSP;
    Strict-Transport-Security too when `hsts_max_age` is set (production)."""
    headers = response.headers
    # The names already set, read once: Headers.setdefault finds a missing header through a
    # KeyError it raises and catches, one per header on every answer.
    present = {name.lower() for name, _value in headers}
    wanted = [
        ("X-Content-Type-Options", "nosniff"),
        ("X-Frame-Options", "DENY"),
        ("Referrer-Policy", "strict-origin-when-cross-origin"),
    ]
    if hsts_max_age > 0:
        wanted.insert(
            0, ("Strict-Transport-Security", f"max-age={hsts_max_age}; includeSubDomains")
        )
    if content_security_policy:
        wanted.append(("Content-Security-Policy", content_security_policy))
    for name, value in wanted:
        if name.lower() not in present:
            headers.add(name, value)
    return response


def keep_signed_in_pages_private(response: Response) -> Response:
    """`Cache-Control: no-store` on what a signed-in visitor is answered (unless the view set its
    own): the profile (address, phone, wallet), orders and admin pages must not stay in the
    browser's cache, where the next person at a shared computer reads them with Back after the
    shopper signed out, nor in a cache on the way. Only requests that loaded the signed-in user
    (every page does, for the layout) are marked, so a guest's listing keeps its headers."""
    user = g.get("_login_user")
    if getattr(user, "is_authenticated", False) and "Cache-Control" not in response.headers:
        response.headers["Cache-Control"] = "no-store"
    return response
