"""CSRF protection that lets a guest browse listings without a session.

Flask-WTF keeps a CSRF secret in the session: rendering a form's token for a visitor without a
session creates one, and every such page answers with a freshly signed session cookie (zlib,
HMAC; ~0.5 ms per listing, and a page no shared cache may keep). The listing (GET /search) is
where guests arrive, and its only form for them is the display-currency switcher.

So pages that call `keep_guest_sessionless()` render their forms without a token while the
session holds no CSRF secret (`page_csrf_token` gives ""), and a POST in that state is accepted
when the browser itself attests that it comes from one of our pages: `Sec-Fetch-Site:
same-origin` (Fetch Metadata, sent by every current browser and not settable by scripts), or,
from a browser that predates it, an `Origin` naming this host. That is the whole of the CSRF
check Go's net/http applies since 1.25 (CrossOriginProtection); here it only stands in for the
token until the session has one. Once the session holds a CSRF secret (any page that needs
one, a product page with its add-to-cart form, has minted it), the token is required as before,
whatever the headers say. A POST whose browser sends neither header is refused like a missing
token (400, "reload the page"); that error page mints the secret, so the reloaded form works.

Flask-WTF's HTTPS "strict referrer" check is off (WTF_CSRF_SSL_STRICT, storefront.default_config):
it refuses any POST over HTTPS without a same-host Referer, and our pages whose URL is a
credential (password reset, sign-up and e-mail confirmation links) send `Referrer-Policy:
no-referrer`, so their forms could never be submitted on an HTTPS deployment; browsers and
extensions that strip the Referer were refused everywhere. What it stood for (a form another site
submits, say with a session a network attacker planted) is asked of the headers instead: a POST
whose browser says it comes from another site (`Sec-Fetch-Site` other than same-origin or none,
else an `Origin` naming another host) is refused even with a valid token.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import current_app, g, request, session
from flask_wtf.csrf import CSRFError, CSRFProtect, generate_csrf

from storefront.current import request_globals, this_app

_SESSIONLESS_FLAG = "onecart_sessionless_page"


def keep_guest_sessionless() -> None:
    """Mark this request's page as one a guest gets without a session being created for it."""
    setattr(g, _SESSIONLESS_FLAG, True)


def _session_has_csrf_secret() -> bool:
    return this_app().config["WTF_CSRF_FIELD_NAME"] in session


def page_csrf_token() -> str:
    """The templates' `csrf_token()`: Flask-WTF's token, or "" on a page marked with
    keep_guest_sessionless() while the session holds no CSRF secret (none is created)."""
    if request_globals().get(_SESSIONLESS_FLAG) and not _session_has_csrf_secret():
        return ""
    return generate_csrf()


def browser_attests_same_origin() -> bool:
    """Whether the browser says this request comes from a page of this site.

    `Sec-Fetch-Site` decides when present (only "same-origin" passes: not "same-site", which
    a sibling subdomain gets, nor "none"); otherwise `Origin` must name this host. A request
    with neither header gets no benefit of the doubt.
    """
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None:
        return fetch_site == "same-origin"
    origin = request.headers.get("Origin")
    if not origin or origin == "null":
        return False
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and parts.netloc == request.host


def browser_says_cross_origin() -> bool:
    """Whether the browser says this request comes from a page of another site (False when it
    says nothing: the token alone decides then). `Origin: null`, which a POST from a
    no-referrer page carries, says nothing either."""
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None:
        return fetch_site not in ("same-origin", "none")
    origin = request.headers.get("Origin")
    if not origin or origin == "null":
        return False
    return urlsplit(origin).netloc != request.host


class SessionAwareCSRFProtect(CSRFProtect):
    """Flask-WTF's CSRFProtect, except that a request whose session holds no CSRF secret yet
    (no form token can have been issued to it) passes on the browser's same-origin attestation.
    Flask-WTF's forms then skip their own token check too (`g.csrf_valid`)."""

    def protect(self, apply_exemptions: bool = False) -> None:
        if (
            request.method in current_app.config["WTF_CSRF_METHODS"]
            and not _session_has_csrf_secret()
            and browser_attests_same_origin()
        ):
            g.csrf_valid = True
            return
        super().protect(apply_exemptions=apply_exemptions)
        # Only where the token was checked (an exempt view, a signed webhook, sets no flag).
        if g.get("csrf_valid") and browser_says_cross_origin():
            raise CSRFError("The request came from another site.")
