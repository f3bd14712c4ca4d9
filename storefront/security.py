"""Small security rules shared by the blueprints: safe post-login redirects and response headers."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Response

# No external origins: the site ships its own CSS and scripts. Product images come from the
# marketplaces' hosts, so images may load from any http(s) origin.
DEFAULT_CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data: http: https:; style-src 'self'; "
    "script-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
    "frame-ancestors 'none'"
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


def set_security_headers(response: Response, *, content_security_policy: str) -> Response:
    """Headers every page gets: no sniffing, no framing, a strict referrer policy and the CSP."""
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
    if content_security_policy:
        response.headers.setdefault("Content-Security-Policy", content_security_policy)
    return response
