"""Reading marketplaces.toml and building the adapter for each marketplace."""

from __future__ import annotations

import importlib
import os
import re
import tomllib
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from adapters.base import MarketplaceAdapter, MarketplaceConfig
from commerce.sweep_claim import read_timeout_problem, request_deadline_problem
from onecart.money import is_iso_currency

# kind -> "module:Class"; one module per marketplace API format.
ADAPTER_KINDS: Mapping[str, str] = {
    "shopify": "adapters.shopify:ShopifyAdapter",
    "woocommerce": "adapters.woocommerce:WooCommerceAdapter",
    "dummyjson": "adapters.dummyjson:DummyJsonAdapter",
    "fakestore": "adapters.fakestore:FakeStoreAdapter",
    "google_feed": "adapters.google_feed:GoogleFeedAdapter",
    "declarative": "adapters.declarative:DeclarativeJsonAdapter",
    "amazon": "adapters.amazon:AmazonCreatorsAdapter",
    "csv_feed": "adapters.csv_feed:CsvFeedAdapter",
}

MATCH_IDENTIFIERS = frozenset({"gtin", "ean", "upc", "mpn", "sku", "asin", "title"})

_ENV_REFERENCE = re.compile(r"\$\{([A-Z0-9_]+)\}")


class MarketplaceConfigError(ValueError):
    """marketplaces.toml says something we cannot use; the message names the entry and field."""


def _expand(text: str, env: Mapping[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in env:
            raise MarketplaceConfigError(f"${{{name}}} is not set")
        return env[name]

    return _ENV_REFERENCE.sub(replace, text)


def default_environment() -> dict[str, str]:
    """The process environment plus OneCart's own defaults (the sandbox's address)."""
    from onecart.settings import get_settings

    env = dict(os.environ)
    env.setdefault("ONECART_SANDBOX_URL", get_settings().sandbox_url)
    return env


def parse_marketplaces(
    document: Mapping[str, Any], env: Mapping[str, str]
) -> list[MarketplaceConfig]:
    """Validate the `[[marketplace]]` entries of a parsed marketplaces.toml."""
    entries = document.get("marketplace", [])
    configs: list[MarketplaceConfig] = []
    seen: set[str] = set()
    for position, entry in enumerate(entries, start=1):
        where = f"marketplace #{position} ({entry.get('slug', '?')})"
        for required in ("slug", "name", "kind", "base_url", "currency", "country"):
            if not entry.get(required):
                raise MarketplaceConfigError(f"{where}: '{required}' is required")
        slug = entry["slug"]
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]{1,40}", slug):
            raise MarketplaceConfigError(f"{where}: slug must be lower-case letters, digits, '-'")
        if slug in seen:
            raise MarketplaceConfigError(f"{where}: duplicate slug")
        seen.add(slug)
        if entry["kind"] not in ADAPTER_KINDS:
            raise MarketplaceConfigError(
                f"{where}: unknown kind {entry['kind']!r} (one of {', '.join(sorted(ADAPTER_KINDS))})"
            )
        if not is_iso_currency(entry["currency"]):
            raise MarketplaceConfigError(f"{where}: {entry['currency']!r} is not an ISO-4217 code")
        match_identifier = entry.get("match_identifier", "gtin")
        if match_identifier not in MATCH_IDENTIFIERS:
            raise MarketplaceConfigError(f"{where}: match_identifier {match_identifier!r} unknown")
        options = entry.get("options", {})
        if isinstance(options, Mapping) and "read_timeout_s" in options:
            # Checked when the file is read (at startup), not first when an order is placed.
            problem = read_timeout_problem(options["read_timeout_s"])
            if problem:
                raise MarketplaceConfigError(f"{where}: options.read_timeout_s {problem}")
        if isinstance(options, Mapping) and "deadline_s" in options:
            problem = request_deadline_problem(options["deadline_s"])
            if problem:
                raise MarketplaceConfigError(f"{where}: options.deadline_s {problem}")
        api_key_env = entry.get("api_key_env")
        try:
            base_url = _expand(entry["base_url"], env)
        except MarketplaceConfigError as exc:
            raise MarketplaceConfigError(f"{where}: base_url: {exc}") from exc
        configs.append(
            MarketplaceConfig(
                slug=slug,
                name=entry["name"],
                kind=entry["kind"],
                base_url=base_url,
                currency=entry["currency"],
                country=entry["country"],
                api_key=env.get(api_key_env) if api_key_env else None,
                api_key_env=api_key_env,
                logo=entry.get("logo"),
                rating=Decimal(str(entry["rating"])) if entry.get("rating") is not None else None,
                description=entry.get("description", ""),
                match_identifier=match_identifier,
                active=bool(entry.get("active", True)),
                page_size=int(entry.get("page_size", 100)),
                options=options,
            )
        )
    return configs


def load_marketplaces(
    path: Path | None = None, env: Mapping[str, str] | None = None
) -> list[MarketplaceConfig]:
    """Every marketplace in marketplaces.toml (default: the settings' file)."""
    if path is None:
        from onecart.settings import get_settings

        path = get_settings().marketplaces_file
    with open(path, "rb") as handle:
        document = tomllib.load(handle)
    return parse_marketplaces(document, env if env is not None else default_environment())


def build_adapter(
    config: MarketplaceConfig, *, transport: httpx.BaseTransport | None = None
) -> MarketplaceAdapter:
    """The adapter for one marketplace; `transport` lets unit tests swap the HTTP layer."""
    module_name, class_name = ADAPTER_KINDS[config.kind].split(":")
    adapter_class = getattr(importlib.import_module(module_name), class_name)
    return adapter_class(config, transport=transport)
