"""A full matching done in batches of whole components gives assign_groups' groups over every
offer at once, row for row, whatever the batch size.

Synthetic catalogs (tests/warehouse/test_matching.py) with extra offers that tie components
together across brands (an offer of one brand carrying another brand's product GTIN), offers
with a GTIN and no brand, and offers with neither, so components span several brands, and some
are single offers.
"""

from __future__ import annotations

import dataclasses
import random

import polars as pl
import pytest

from tests.warehouse.test_matching import BRANDS, MARKETPLACES, synthetic_catalog, valid_gtin
from warehouse.component_matching import (
    OFFER_COLUMNS,
    component_labels,
    keyed_offers,
    match_in_components,
)
from warehouse.matching import OfferForMatching, assign_groups


def _catalog(seed: int) -> list[OfferForMatching]:
    rng = random.Random(seed)
    offers = synthetic_catalog(seed, products=90)
    extra = []
    for index in range(25):
        base = rng.choice(offers)
        kind = index % 3
        if kind == 0:  # another brand's offer listing this product's GTIN: joins two brands
            extra.append(
                dataclasses.replace(
                    base,
                    marketplace=rng.choice(MARKETPLACES),
                    external_id=f"x{seed}-{index}",
                    brand=rng.choice(BRANDS),
                    gtin=valid_gtin(rng.randrange(90)),
                )
            )
        elif kind == 1:  # a GTIN and no brand (the title may still name one)
            extra.append(
                dataclasses.replace(
                    base,
                    external_id=f"x{seed}-{index}",
                    brand=None,
                    gtin=valid_gtin(rng.randrange(90)),
                )
            )
        else:  # neither a brand key nor a GTIN: a component of one
            extra.append(
                OfferForMatching(
                    rng.choice(MARKETPLACES), f"x{seed}-{index}", f"plain thing {index}"
                )
            )
    return offers + extra


def _frame(offers: list[OfferForMatching]) -> pl.DataFrame:
    return pl.DataFrame(
        [(o.marketplace, o.external_id, o.title, o.brand, o.model, o.gtin, o.mpn) for o in offers],
        schema=dict.fromkeys(OFFER_COLUMNS, pl.String),
        orient="row",
    ).sort("marketplace", "external_id")


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("batch_offers", [1, 7, 50, 100_000])
def test_batched_full_matching_equals_matching_everything_at_once(
    seed: int, batch_offers: int
) -> None:
    offers = _catalog(seed)
    expected = [
        (a.marketplace, a.external_id, a.group_id, a.method, a.confidence, a.matching_key)
        for a in assign_groups(offers)
    ]
    groups = match_in_components(keyed_offers(_frame(offers)), batch_offers)
    got = list(
        groups.select(
            "marketplace", "external_id", "group_id", "method", "confidence", "matching_key"
        ).iter_rows()
    )
    assert got == expected
    assert {a[3] for a in expected} >= {"gtin", "brand_model", "title", "single"}


def test_components_follow_shared_brand_and_gtin_keys() -> None:
    frame = pl.DataFrame(
        [
            ("m1", "a", "Sony headphones one", "Sony", None, valid_gtin(1), None),
            ("m2", "b", "Acme kettle two", "Acme", None, valid_gtin(1), None),  # Sony-Acme tie
            ("m3", "c", "Acme toaster three", "Acme", None, None, None),
            ("m1", "d", "Garmin watch four", "Garmin", None, None, None),
            ("m2", "e", "unbranded gadget five", None, None, valid_gtin(2), None),
            ("m3", "f", "unbranded gadget five", None, None, valid_gtin(2), None),
            ("m1", "g", "nothing to go by", None, None, None, None),
            ("m2", "h", "nothing to go by", None, None, None, None),
        ],
        schema=dict.fromkeys(OFFER_COLUMNS, pl.String),
        orient="row",
    )
    labels = component_labels(keyed_offers(frame)).tolist()
    a, b, c, d, e, f, g, h = labels
    assert a == b == c
    assert e == f
    assert len({a, d, e, g, h}) == 5


def test_a_catalog_without_brand_or_gtin_keys_is_all_single_offers() -> None:
    offers = [
        OfferForMatching("m1", "a", "plain thing one"),
        OfferForMatching("m2", "b", "plain thing one"),
    ]
    groups = match_in_components(keyed_offers(_frame(offers)))
    assert groups.get_column("method").to_list() == ["single", "single"]
    assert groups.get_column("group_id").to_list() == [a.group_id for a in assign_groups(offers)]
    assert match_in_components(keyed_offers(_frame([]))).is_empty()
