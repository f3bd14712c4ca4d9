"""Every adapter kind in the registry builds from marketplaces.toml and speaks the protocol."""

from __future__ import annotations

import pytest

from adapters.base import Capability, MarketplaceAdapter
from adapters.registry import ADAPTER_KINDS, build_adapter, parse_marketplaces
from tests.adapters.configs import marketplace_config, offline_transport
from tests.adapters.test_declarative import bazaar_options

OPTIONS = {
    "declarative": bazaar_options(),
    "google_feed": {"feed_path": "feed.xml"},
    "amazon": {"marketplace": "www.amazon.com", "partner_tag": "test-20", "keywords": ["mug"]},
    "csv_feed": {
        "feed_path": "feed.csv",
        "columns": {"external_id": "id", "title": "title", "price": "price"},
    },
}


@pytest.mark.parametrize("kind", sorted(ADAPTER_KINDS))
def test_every_kind_builds_and_satisfies_the_protocol(kind: str) -> None:
    config = marketplace_config(kind, api_key="key:secret", options=OPTIONS.get(kind, {}))
    adapter = build_adapter(config, transport=offline_transport())
    assert isinstance(adapter, MarketplaceAdapter)
    assert adapter.slug == config.slug
    assert Capability.CATALOG in adapter.capabilities
    # Tracking and cancelling need an order to track or cancel.
    if Capability.TRACK in adapter.capabilities or Capability.CANCEL in adapter.capabilities:
        assert Capability.ORDER in adapter.capabilities


def test_a_bad_declarative_option_fails_when_the_registry_builds_it() -> None:
    document = {
        "marketplace": [
            {
                "slug": "typo-mart",
                "name": "Typo Mart",
                "kind": "declarative",
                "base_url": "https://api.example.com",
                "currency": "EUR",
                "country": "FR",
                "options": {**bazaar_options(), "pagnation": "page"},
            }
        ]
    }
    [config] = parse_marketplaces(document, env={})
    with pytest.raises(ValueError, match=r"typo-mart: options\.pagnation"):
        build_adapter(config)
