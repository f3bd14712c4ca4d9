"""Building the adapter that talks to a marketplace stored in the storefront DB.

The DB row owns what admins edit (base URL, API key, active); marketplaces.toml owns the format's
options (a declarative API's field map, Shopify's API version). The API key is the row's
encrypted key, else the environment variable the row names. Checkout, placement, tracking and
cancellation all get their adapters here, so a test can hand its own provider to any of them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from typing import Any

from adapters.base import Capability, MarketplaceAdapter, MarketplaceConfig
from adapters.registry import MarketplaceConfigError, build_adapter, load_marketplaces
from commerce.models import Marketplace
from commerce.secrets import decrypt_secret

logger = logging.getLogger(__name__)

AdapterProvider = Callable[[Marketplace], MarketplaceAdapter]


def configured_options() -> dict[str, Mapping[str, Any]]:
    """Each configured marketplace's `options` from marketplaces.toml ({} when unreadable)."""
    try:
        return {config.slug: config.options for config in load_marketplaces()}
    except (OSError, MarketplaceConfigError) as exc:
        logger.warning("marketplaces.toml unreadable, adapters get no options: %s", exc)
        return {}


def marketplace_api_key(marketplace: Marketplace) -> str | None:
    """The row's API key (decrypted), else the value of the environment variable it names."""
    if marketplace.api_key_encrypted:
        return decrypt_secret(marketplace.api_key_encrypted)
    if marketplace.api_key_env:
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


def adapter_for_marketplace(marketplace: Marketplace) -> MarketplaceAdapter:
    """A fresh adapter (with its own HTTP client) for a stored marketplace."""
    options = configured_options().get(marketplace.slug, {})
    return build_adapter(marketplace_config(marketplace, options))


def marketplace_can(marketplace: Marketplace, capability: Capability) -> bool:
    """True when the marketplace declares `capability` (synced from its adapter)."""
    return capability.value in (marketplace.capabilities or [])


def close_adapter(adapter: MarketplaceAdapter) -> None:
    """Release an adapter's HTTP connections when it has any."""
    close = getattr(adapter, "close", None)
    if callable(close):
        close()
