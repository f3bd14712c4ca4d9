"""A marketplace's key and a shopper's order go only to the marketplace's own host: a redirect
to another host is not followed with them (httpx's response hook, installed by
adapters.marketplace_http on every marketplace client).

The key is bound to the host an admin or marketplaces.toml configured
(commerce.marketplace_access). httpx drops `Authorization` on a redirect to another origin,
but keeps every other header (Shopify's X-Shopify-Access-Token, a declarative format's
api_key_header) and re-sends a 307/308's body; a server that keeps the query string on its
redirect hands on a key sent as a query parameter. A read carrying none of them is followed
(into the public internet only: adapters.public_addresses' other hook).
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable, Iterable

import httpx


class RedirectRefused(httpx.RequestError):
    """A redirect not followed: into the private network (adapters.public_addresses), or to
    another host with what belongs only to the marketplace's own (below)."""


# Headers our requests carry that hold no secret. Any other one may carry a marketplace's key:
# Shopify's X-Shopify-Access-Token, a declarative format's api_key_header, Authorization.
HEADERS_WITHOUT_SECRETS = frozenset(
    {
        "host",
        "user-agent",
        "accept",
        "accept-encoding",
        "connection",
        "content-type",
        "content-length",
        "if-none-match",
        "if-modified-since",
    }
)
# A method whose redirect httpx follows without re-sending a body.
READ_METHODS = frozenset({"GET", "HEAD"})


def what_must_stay_on_its_host(
    request: httpx.Request, target: httpx.URL, secrets: Iterable[str]
) -> str | None:
    """What a redirect to another host would carry there that belongs only to the marketplace's
    own host (None when nothing does): a write (a 307/308 re-sends its body, the shopper's name
    and address), a header that may hold the key (httpx drops only `Authorization` on such a
    redirect), or the key in the new address (a server that keeps the query string on its
    redirect hands on an `api_key_param`). Names what, never the key itself."""
    if request.method not in READ_METHODS:
        return f"a {request.method} (an order's details)"
    headers = sorted(
        name for name in request.headers if name.lower() not in HEADERS_WITHOUT_SECRETS
    )
    if headers:
        return "the header " + ", ".join(headers)
    address = urllib.parse.unquote(str(target))
    if any(secret and secret in address for secret in secrets):
        return "the marketplace's API key in its address"
    return None


def keep_secrets_on_their_host(
    response: httpx.Response, *, secrets: Callable[[], Iterable[str]]
) -> None:
    """httpx's response hook: a redirect to another host is not followed with the marketplace's
    key or a write (:func:`what_must_stay_on_its_host`). The key was bound to the host an
    admin or marketplaces.toml configured (commerce.marketplace_access); a redirect is the
    answer's say, and the host it names may be anyone's. A read carrying neither is followed."""
    if not response.has_redirect_location:
        return
    try:
        target = response.request.url.join(response.headers["Location"])
    except httpx.InvalidURL:
        return
    if target.host == response.request.url.host:
        return
    why = what_must_stay_on_its_host(response.request, target, secrets())
    if why is not None:
        raise RedirectRefused(
            f"redirect to {target.scheme}://{target.host} refused: the request carries {why}, "
            "which goes only to the marketplace's own host (if the marketplace moved, set its "
            "API base URL to the new host)",
            request=response.request,
        )
