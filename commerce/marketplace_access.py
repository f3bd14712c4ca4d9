"""Building the adapter that talks to a marketplace stored in the storefront DB.

The DB row owns what admins edit (base URL, API key, active); marketplaces.toml owns the format's
options (a declarative API's field map, Shopify's API version). The API key is the row's
encrypted key, else the environment variable the row names, when marketplaces.toml names it: the
deployment's file alone says which host an operator's key variable is for
(`key_variable_problem`), so a variable it does not name is never read for any row. Checkout, placement, tracking and
cancellation all get their adapters from a provider (an `AdapterProvider`), so a test can hand its
own to any of them; the default providers here cache one adapter per configuration and process.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Callable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from adapters.base import Capability, MarketplaceAdapter, MarketplaceConfig
from adapters.registry import MarketplaceConfigError, build_adapter, load_marketplaces
from commerce.models import Marketplace
from commerce.secrets import decrypt_secret

# The prefix every marketplace key variable has (commerce.marketplace_admin validates it too).
API_KEY_ENV_PREFIX = "ONECART_MARKETPLACE_KEY_"

logger = logging.getLogger(__name__)

AdapterProvider = Callable[[Marketplace], MarketplaceAdapter]


@lru_cache(maxsize=1)
def configured_options() -> dict[str, Mapping[str, Any]]:
    """Each configured marketplace's `options` from marketplaces.toml ({} when unreadable).

    Read once per process: the file is deployment configuration (admins edit the DB rows)."""
    try:
        return {config.slug: config.options for config in load_marketplaces()}
    except (OSError, MarketplaceConfigError) as exc:
        logger.warning("marketplaces.toml unreadable, adapters get no options: %s", exc)
        return {}


Origin = tuple[str, str, int | None]


def url_origin(url: str) -> Origin:
    """(scheme, host, port) of `url`, lower-cased: what must stay the same for a key to follow."""
    parts = urlsplit(url.strip())
    try:
        port = parts.port
    except ValueError:
        port = None
    return parts.scheme.lower(), (parts.hostname or "").lower(), port


def key_variable_origins(variable: str) -> frozenset[Origin]:
    """The origins marketplaces.toml sends the key in `variable` to: the base URLs of the
    entries naming it (read now: admin edits are rare and the file may have changed). Empty when
    no entry names it (a variable an operator set for a marketplace an admin added) or the file
    cannot be read (production refuses to start then)."""
    try:
        configs = load_marketplaces()
    except (OSError, ValueError, MarketplaceConfigError):  # TOMLDecodeError is a ValueError
        return frozenset()
    return frozenset(
        url_origin(config.base_url) for config in configs if config.api_key_env == variable
    )


def key_variable_problem(variable: str | None, base_url: str) -> str | None:
    """Why `variable`'s key may not go to `base_url` (None when it may): marketplaces.toml names
    it for another host, or names it nowhere (then no host is its: a key the admin adds goes in
    the encrypted key field, which a move to another host drops). The deployment's file decides
    where its keys go, not an admin's edit."""
    if not variable:
        return None
    origins = key_variable_origins(variable)
    if not origins:
        return (
            f"No entry of marketplaces.toml names {variable}, so it is not sent to any host. "
            "Leave it empty and enter this marketplace's API key instead (stored encrypted), "
            "or add the marketplace to marketplaces.toml."
        )
    if url_origin(base_url) in origins:
        return None
    hosts = ", ".join(sorted(f"{scheme}://{host}" for scheme, host, _port in origins))
    return (
        f"{variable} holds the key marketplaces.toml gives to {hosts}; it is never sent to "
        "another host. Leave it empty and enter this host's API key instead."
    )


_named_variables_cache: dict[tuple[str, int], frozenset[str]] = {}


def named_key_variables() -> frozenset[str]:
    """The key variables marketplaces.toml names (none when it cannot be read), read again only
    when the file changes: every adapter lookup asks."""
    from onecart.settings import get_settings

    path = str(get_settings().marketplaces_file)
    try:
        stamp = (path, os.stat(path).st_mtime_ns)
    except OSError:
        return frozenset()
    names = _named_variables_cache.get(stamp)
    if names is None:
        try:
            configs = load_marketplaces(Path(path))
        except (OSError, ValueError, MarketplaceConfigError):
            return frozenset()
        names = frozenset(config.api_key_env for config in configs if config.api_key_env)
        _named_variables_cache.clear()
        _named_variables_cache[stamp] = names
    return names


def marketplace_api_key(marketplace: Marketplace) -> str | None:
    """The row's API key (decrypted), else the value of the environment variable it names when
    marketplaces.toml names that variable (a row an earlier version let name another gets none)."""
    if marketplace.api_key_encrypted:
        return decrypt_secret(marketplace.api_key_encrypted)
    if marketplace.api_key_env:
        if not marketplace.api_key_env.startswith(API_KEY_ENV_PREFIX):
            # Only marketplace key variables may leave the server (commerce.marketplace_admin).
            logger.warning(
                "%s: api_key_env %s lacks the %s prefix; no key is sent",
                marketplace.slug,
                marketplace.api_key_env,
                API_KEY_ENV_PREFIX,
            )
            return None
        if marketplace.api_key_env not in named_key_variables():
            logger.warning(
                "%s: api_key_env %s is named by no entry of marketplaces.toml; no key is sent",
                marketplace.slug,
                marketplace.api_key_env,
            )
            return None
        return os.environ.get(marketplace.api_key_env) or None
    return None


def marketplace_config(
    marketplace: Marketplace, options: Mapping[str, Any] | None = None
) -> MarketplaceConfig:
    """The adapter configuration for a stored marketplace."""
    return MarketplaceConfig(
        slug=marketplace.slug,
        name=marketplace.name,
        kind=marketplace.kind,
        base_url=marketplace.api_base_url,
        currency=marketplace.currency,
        country=marketplace.country or "",
        api_key=marketplace_api_key(marketplace),
        api_key_env=marketplace.api_key_env,
        logo=marketplace.logo,
        rating=marketplace.rating,
        description=marketplace.description,
        match_identifier=marketplace.relation_identifier,
        active=marketplace.active,
        options=dict(options or {}),
    )


# Checkout's live re-check must answer fast: one HTTP retry instead of the client's default.
LOOKUP_HTTP_RETRIES = 1

_adapters: dict[tuple[object, ...], MarketplaceAdapter] = {}
_adapters_lock = threading.Lock()


def _cached_adapter(marketplace: Marketplace, *, http_retries: int | None) -> MarketplaceAdapter:
    """One adapter per marketplace configuration and process, reused by every job and request.

    Building an adapter builds an HTTP client (an SSL context alone costs tens of milliseconds)
    and reusing it keeps connections alive. The key holds everything the adapter is built from,
    so an admin's change of URL or key gets a new adapter. Adapters are shared between threads
    (httpx clients are thread-safe) and live as long as the process.
    """
    api_key = marketplace_api_key(marketplace)
    key = (
        marketplace.slug,
        marketplace.kind,
        marketplace.api_base_url,
        marketplace.currency,
        hashlib.sha256((api_key or "").encode()).hexdigest(),
        http_retries,
    )
    with _adapters_lock:
        adapter = _adapters.get(key)
        if adapter is None:
            options = configured_options().get(marketplace.slug, {})
            adapter = build_adapter(marketplace_config(marketplace, options))
            http = getattr(adapter, "http", None)
            if http_retries is not None and http is not None:
                http.max_retries = http_retries
            _adapters[key] = adapter
        return adapter


def adapter_for_marketplace(marketplace: Marketplace) -> MarketplaceAdapter:
    """The adapter for a stored marketplace (placement, tracking, cancellation). The caller
    does not close it: it is cached for the process."""
    return _cached_adapter(marketplace, http_retries=None)


def lookup_adapter_for_marketplace(marketplace: Marketplace) -> MarketplaceAdapter:
    """The adapter checkout uses to re-check live prices: same as above, one HTTP retry."""
    return _cached_adapter(marketplace, http_retries=LOOKUP_HTTP_RETRIES)


def marketplace_can(marketplace: Marketplace, capability: Capability) -> bool:
    """True when the marketplace declares `capability` (synced from its adapter)."""
    return capability.value in (marketplace.capabilities or [])
