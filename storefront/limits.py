"""Rate limits of the public forms (sign-up, support, password reset), of login, of the
profile's changes that check the current password (e-mail, password), and of the card payments
an account has Stripe prepare.

Every limit is an atomic Redis step (commerce.rate_limit.SlidingWindowLimiter.acquire): the
attempt is counted in the same step that checks it, so concurrent requests cannot slip past a
check made before any of them was recorded. Sizes come from the Flask config (`<NAME>_LIMIT` as
"count/seconds"), so tests and deployments can change them.
"""

from __future__ import annotations

import ipaddress
import logging
from functools import lru_cache

from flask import Flask, current_app, request
from werkzeug.exceptions import TooManyRequests

from commerce.rate_limit import (
    LOGIN_FAILURES_ACROSS_CLIENTS,
    LoginRateLimiter,
    RateLimit,
    SlidingWindowLimiter,
    redis_client_from_url,
)

logger = logging.getLogger(__name__)

# name -> default "count/seconds"; config key `<NAME>_LIMIT` (upper-case) overrides it.
FORM_LIMITS = {
    "signup": "10/3600",
    # Mails to one address from all clients that its owner did not ask for: sign-up's (a link,
    # or "you already have an account") and an e-mail change's link. Without it anyone with a
    # few addresses or accounts floods a stranger's inbox from the shop's server.
    "signup_address": "5/3600",
    "support": "5/600",
    "password_reset_ip": "10/900",
    # Reset mails to one address: 3 an hour from any one client, 10 an hour from all of them
    # (the owner's inbox is not flooded), and while those 10 are spent a browser that signed in
    # to the account before gets 3 of its own (strangers cannot lock the owner out).
    "password_reset_address_client": "3/3600",
    "password_reset_address": "10/3600",
    "password_reset_known_device": "3/3600",
    # Per account: e-mail and password changes, each of which checks the current password.
    "account_changes": "10/3600",
    # Per account: Stripe PaymentIntents prepared (checkout.js's intent, a card top-up). Form
    # tokens are the shopper's to invent, so without it a script gets a new intent per request:
    # card testing through the shop's Stripe account.
    "card_payments": "20/3600",
}


def init_limiters(app: Flask) -> None:
    """The Redis-backed limiters at app.extensions["login_limiter"] and ["form_limiter"]
    (they connect lazily)."""
    limiter = SlidingWindowLimiter(
        redis_client_from_url(app.config["REDIS_URL"]), prefix=app.config["RATE_LIMIT_PREFIX"]
    )
    window = int(app.config["LOGIN_LIMIT_WINDOW_SECONDS"])
    app.extensions["login_limiter"] = LoginRateLimiter(
        limiter,
        per_ip=RateLimit("login-ip", int(app.config["LOGIN_LIMIT_PER_IP"]), window),
        per_account=RateLimit("login-account", int(app.config["LOGIN_LIMIT_PER_ACCOUNT"]), window),
        across_clients=RateLimit(
            LOGIN_FAILURES_ACROSS_CLIENTS.name,
            int(app.config["LOGIN_LIMIT_ACROSS_CLIENTS"]),
            LOGIN_FAILURES_ACROSS_CLIENTS.window_seconds,
        ),
    )
    app.extensions["form_limiter"] = limiter


def form_rule(name: str) -> RateLimit:
    """The configured limit called `name` (see FORM_LIMITS)."""
    text = str(current_app.config.get(f"{name.upper()}_LIMIT") or FORM_LIMITS[name])
    count, _, seconds = text.partition("/")
    return RateLimit(name, int(count), int(seconds))


def client_address() -> str:
    """The client the per-client limits count: its address (the socket's, or the proxy's
    X-Forwarded-For under PROXY_FIX), an IPv6 one as its /64 (client_key)."""
    return client_key(request.remote_addr or "")


# An IPv6 host is routed a whole /64 (SLAAC, privacy addresses, any VPS) and can send each
# request from a new address in it: counted per address, one client would have 2^64 budgets.
IPV6_CLIENT_PREFIX = 64


@lru_cache(maxsize=4096)
def client_key(address: str) -> str:
    """What a client's requests are counted under: its IPv4 address, or its IPv6 /64 network
    ("2001:db8:1:2::/64"; an IPv4-mapped address is its IPv4 one). Text that is no address is
    kept as it is ("unknown" for none)."""
    if ":" not in address:
        return address or "unknown"
    try:
        ip = ipaddress.IPv6Address(address.split("%", 1)[0])
    except ValueError:
        return address
    if ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ipaddress.IPv6Network((ip, IPV6_CLIENT_PREFIX), strict=False))


def enforce_form_limit(name: str, key: str | None = None, *, message: str = "") -> None:
    """Count one submission of the form `name` for `key` (default: the client address); raise
    429 Too Many Requests when the limit is full."""
    limiter: SlidingWindowLimiter = current_app.extensions["form_limiter"]
    rule = form_rule(name)
    decision = limiter.acquire([(rule, key or client_address())])
    if not decision.allowed:
        logger.warning("%s rate-limited for %s", name, client_address())
        raise TooManyRequests(
            message
            or "You have sent this form many times in a short while. Please wait a few "
            "minutes and try again.",
            retry_after=decision.retry_after,
        )
