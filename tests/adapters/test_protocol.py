"""Every adapter kind in the registry builds from marketplaces.toml and speaks the protocol."""

from __future__ import annotations

import importlib
from datetime import timedelta
from typing import Any

import pytest

from adapters.base import Capability, MarketplaceAdapter, ShippingTaxAllowance
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


@pytest.mark.parametrize("kind", sorted(ADAPTER_KINDS))
@pytest.mark.parametrize("retry_unknown_writes", [True, False])
def test_every_kind_states_whether_it_honours_idempotency_keys(
    kind: str, retry_unknown_writes: bool
) -> None:
    module_name, class_name = ADAPTER_KINDS[kind].split(":")
    adapter_class = getattr(importlib.import_module(module_name), class_name)
    # Stated by the format itself, not inherited from a shared base: a new format must decide.
    assert "honours_idempotency_keys" in vars(adapter_class)
    options = OPTIONS.get(kind, {})
    adapter = build_adapter(
        marketplace_config(kind, api_key="key:secret", options=options),
        transport=offline_transport(),
    )
    if Capability.ORDER not in adapter.capabilities and kind != "declarative":
        # Sends no writes (feeds refuse the option altogether): nothing a key makes safe.
        assert adapter.honours_idempotency_keys is False
        return
    # Formats that (can) place orders honour keys exactly as the marketplace is configured.
    assert adapter.honours_idempotency_keys is True  # the default, as the sandbox honours them
    configured = {**options, "retry_unknown_writes": retry_unknown_writes}
    adapter = build_adapter(
        marketplace_config(kind, api_key="key:secret", options=configured),
        transport=offline_transport(),
    )
    assert adapter.honours_idempotency_keys is retry_unknown_writes


class _SaysNothingAboutKeys:
    """A marketplace double that does not state whether it honours idempotency keys."""

    slug = "silent"
    capabilities = frozenset({Capability.CATALOG, Capability.ORDER})

    def __getattr__(self, name: str) -> Any:
        if name == "honours_idempotency_keys":
            raise AttributeError(name)
        return lambda *args, **kwargs: None


def test_an_adapter_that_does_not_state_it_honours_keys_is_not_a_marketplace_adapter() -> None:
    assert not isinstance(_SaysNothingAboutKeys(), MarketplaceAdapter)


@pytest.mark.parametrize("kind", ["shopify", "woocommerce", "dummyjson", "fakestore"])
def test_idempotency_key_retention_and_shipping_allowance_are_read_from_the_options(
    kind: str,
) -> None:
    default = build_adapter(
        marketplace_config(kind, api_key="key:secret"), transport=offline_transport()
    )
    assert default.idempotency_key_retention == timedelta(hours=24)
    assert default.shipping_tax_allowance == ShippingTaxAllowance()  # type: ignore[attr-defined]
    options = {
        "idempotency_key_retention_hours": 2,
        "shipping_tax_allowance_minor": 500,
        "shipping_tax_allowance_bps": 1600,
    }
    configured = build_adapter(
        marketplace_config(kind, api_key="key:secret", options=options),
        transport=offline_transport(),
    )
    assert configured.idempotency_key_retention == timedelta(hours=2)
    assert configured.shipping_tax_allowance == ShippingTaxAllowance(500, 1600)  # type: ignore[attr-defined]
    for bad in (
        {"idempotency_key_retention_hours": 0},
        {"shipping_tax_allowance_minor": -1},
        {"shipping_tax_allowance_bps": True},
    ):
        with pytest.raises(ValueError, match="options"):
            build_adapter(
                marketplace_config(kind, api_key="key:secret", options=bad),
                transport=offline_transport(),
            )
