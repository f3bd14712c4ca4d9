"""Re-matching only the changed offers' components gives the groups of a full matching.

Property over synthetic catalogs (tests/warehouse/test_matching.py) in a real DuckDB file: after
every batch of random changes (titles, brands, models, GTINs, removals, new offers, a brand that
appears or vanishes), product_groups equals assign_groups over every current offer.
"""

from __future__ import annotations

import dataclasses
import random
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
from duckdb import DuckDBPyConnection

import warehouse
from tests.warehouse.test_matching import BRANDS, synthetic_catalog, valid_gtin
from warehouse.incremental_matching import refresh_product_groups
from warehouse.matching import OfferForMatching, assign_groups

NOW = datetime(2026, 11, 30, tzinfo=UTC)


def _store(conn: object, offers: list[OfferForMatching]) -> None:
    frame = pl.DataFrame(
        [(o.marketplace, o.external_id, o.title, o.brand, o.model, o.gtin, o.mpn) for o in offers],
        schema=["marketplace", "external_id", "title", "brand", "model", "gtin", "mpn"],
        orient="row",
    )
    conn.register("listed", frame.to_arrow())  # type: ignore[attr-defined]
    conn.execute("DELETE FROM products")  # type: ignore[attr-defined]
    conn.execute(  # type: ignore[attr-defined]
        "INSERT INTO products (marketplace, external_id, title, description, price_minor, "
        "currency, brand, model, gtin, mpn, available, content_hash, first_seen_at, updated_at, "
        "fetched_at) SELECT marketplace, external_id, title, '', 100, 'EUR', brand, model, gtin, "
        "mpn, true, 'h', $now, $now, $now FROM listed",
        {"now": NOW},
    )
    conn.unregister("listed")  # type: ignore[attr-defined]


def _groups(conn: object) -> list[tuple[object, ...]]:
    return conn.execute(  # type: ignore[attr-defined]
        "SELECT marketplace, external_id, group_id, method, CAST(confidence AS VARCHAR), "
        "matching_key FROM product_groups ORDER BY marketplace, external_id"
    ).fetchall()


def _expected(offers: list[OfferForMatching]) -> list[tuple[object, ...]]:
    return [
        (a.marketplace, a.external_id, a.group_id, a.method, str(a.confidence), a.matching_key)
        for a in assign_groups(offers)
    ]


def _mutate(
    rng: random.Random, offers: list[OfferForMatching], round_: int
) -> list[OfferForMatching]:
    changed = list(offers)
    for _ in range(rng.randint(1, 8)):
        index = rng.randrange(len(changed))
        offer = changed[index]
        kind = rng.choice(["title", "brand", "model", "gtin", "remove", "new", "copy"])
        if kind == "title":
            words = offer.title.split()
            rng.shuffle(words)
            changed[index] = dataclasses.replace(offer, title=" ".join(words[:-1] or words))
        elif kind == "brand":
            changed[index] = dataclasses.replace(offer, brand=rng.choice([*BRANDS, None, "Zed"]))
        elif kind == "model":
            changed[index] = dataclasses.replace(offer, model=rng.choice([None, "AB-1001X"]))
        elif kind == "gtin":
            changed[index] = dataclasses.replace(
                offer, gtin=rng.choice([None, valid_gtin(rng.randrange(120)), "123"])
            )
        elif kind == "remove":
            del changed[index]
        elif kind == "new":
            changed.append(
                dataclasses.replace(offer, external_id=f"n{round_}-{index}", marketplace="zz")
            )
        else:  # the same listing on another marketplace: a new title-match candidate
            changed.append(
                dataclasses.replace(offer, external_id=f"c{round_}-{index}", marketplace="yy")
            )
    return changed


@pytest.mark.parametrize("seed", [1, 2])
def test_incremental_matching_equals_a_full_matching(seed: int, tmp_path: Path) -> None:
    rng = random.Random(seed)
    offers = synthetic_catalog(seed, products=60)
    path = tmp_path / "m.duckdb"

    def connect() -> AbstractContextManager[DuckDBPyConnection]:
        return warehouse.connect(path)

    with connect() as conn:
        _store(conn, offers)
    assert refresh_product_groups(connect).mode == "full"
    with connect() as conn:
        assert _groups(conn) == _expected(offers)
    assert refresh_product_groups(connect).mode == "unchanged"
    for round_ in range(8):
        offers = _mutate(rng, offers, round_)
        with connect() as conn:
            _store(conn, offers)
        assert refresh_product_groups(connect).mode == "incremental"
        with connect() as conn:
            assert _groups(conn) == _expected(offers), f"round {round_}"
