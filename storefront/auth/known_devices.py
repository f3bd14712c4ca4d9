"""The "signed in here before" cookie: lets an account's owner still get a password-reset mail
while strangers have used up the address's hourly cap.

A stranger can spend an address's reset mails (the per-address cap protects the owner's inbox
from floods, so it must be shared by every client); the owner's own browser should not be locked
out by that. At every sign-in the browser gets a long-lived, signed, HttpOnly cookie holding a random device
id and, for each account that signed in there (the latest few), a tag: an HMAC of the device id
and the account's id under SECRET_KEY. A reset request that carries it for the address's account
is counted under its own (address, device) limit instead of the shared one. Nobody can make such
a cookie without having signed in as the account (it is signed with SECRET_KEY), and it carries
no credential: it only decides which limit counts.

The cookie is signed, not encrypted, so it names no account: the next person at a shared
computer reads a device id and opaque tags (not linkable across devices), not which accounts
signed in there. It stays at sign-out on purpose: it identifies the browser, not a session, and
the owner it serves is, by then, signed out and asking for a new password; what it grants (3 more
reset mails an hour to the account's own address) is harmless in anyone else's hands. A cookie
from before the tags (account ids in clear) counts for nothing until the next sign-in.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any

from flask import after_this_request, current_app, request
from itsdangerous import BadSignature, URLSafeTimedSerializer
from werkzeug.wrappers import Response

KNOWN_DEVICE_COOKIE = "onecart_known_device"
KNOWN_DEVICE_SALT = "onecart-known-device"
KNOWN_DEVICE_MAX_AGE_S = 180 * 24 * 60 * 60
# A shared computer keeps the latest few accounts, not an unbounded list.
MAX_ACCOUNTS_PER_DEVICE = 5


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=KNOWN_DEVICE_SALT)


def _account_tag(device: str, user_id: int) -> str:
    """What the cookie keeps for `user_id` on `device`: only the server can make or match it."""
    key = str(current_app.config["SECRET_KEY"]).encode()
    message = f"{KNOWN_DEVICE_SALT}|{device}|{user_id}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()[:32]


def _read() -> dict[str, Any] | None:
    raw = request.cookies.get(KNOWN_DEVICE_COOKIE)
    if not raw or len(raw) > 1024:
        return None
    try:
        payload: Any = _serializer().loads(raw, max_age=KNOWN_DEVICE_MAX_AGE_S)
    except BadSignature:  # SignatureExpired is a BadSignature
        return None
    if (
        not isinstance(payload, dict)
        or not isinstance(payload.get("d"), str)
        or not isinstance(payload.get("u"), list)
    ):
        return None
    return payload


def remember_device_for(user_id: int) -> None:
    """Add `user_id` to this browser's cookie (set on the response of the current request)."""
    payload = _read() or {"d": secrets.token_urlsafe(12), "u": []}
    tag = _account_tag(payload["d"], user_id)
    # Only tags carry over: an older cookie's clear account ids are dropped.
    tags = [tag] + [other for other in payload["u"] if isinstance(other, str) and other != tag]
    value = _serializer().dumps({"d": payload["d"], "u": tags[:MAX_ACCOUNTS_PER_DEVICE]})

    @after_this_request
    def _set_cookie(response: Response) -> Response:
        response.set_cookie(
            KNOWN_DEVICE_COOKIE,
            value,
            max_age=KNOWN_DEVICE_MAX_AGE_S,
            httponly=True,
            samesite="Lax",
            secure=bool(current_app.config.get("SESSION_COOKIE_SECURE")),
        )
        return response


def known_device_for(user_id: int) -> str | None:
    """This browser's device id when `user_id` has signed in on it (cookie still valid)."""
    payload = _read()
    if payload is None:
        return None
    tag = _account_tag(payload["d"], user_id)
    if not any(
        isinstance(other, str) and hmac.compare_digest(other, tag) for other in payload["u"]
    ):
        return None
    return str(payload["d"])
