"""A `duplicate_external_id` rejection says where the first record naming the id is (ops5
leftover): the detail only said "already read earlier in this catalog", and a data engineer had
to search the raw catalog for the record kept. It now names the first record's page,
record_index and payload_hash (the columns of raw_catalog, product_sources and
rejected_products) and whether it was kept as the offer or quarantined, and why; the same text
whichever path read the records (warehouse.offers record by record, warehouse.normalize in
frames)."""

from __future__ import annotations

import copy
from typing import Any

import polars as pl
import pytest

from adapters.base import MarketplaceConfig
from adapters.registry import build_adapter
from tests.warehouse.test_offers import normalize
from tests.warehouse.test_vectorized import (
    _PRICE_PATHS,
    _assert_same,
    _both_ways,
    _drop,
    _offer_or_none,
    sandbox_catalogs,  # noqa: F401 (the fixture)
)
from warehouse.offers import payload_text, record_hash
from warehouse.vectorized_formats import VECTORIZED_FORMATS


def test_the_duplicate_s_detail_names_where_the_first_record_is_and_what_became_of_it() -> None:
    records: list[dict[str, Any]] = [
        {"id": 1, "title": "Mug", "price": 1000},
        {"id": 7, "title": "Speaker"},  # no price: quarantined
        {"id": 1, "title": "Mug again", "price": 900},
        {"id": 7, "title": "Coffee machine", "price": 894900},
    ]
    catalog = normalize(records)
    details = {
        row["record_index"]: row["detail"]
        for row in catalog.rejected.iter_rows(named=True)
        if row["reason"] == "duplicate_external_id"
    }
    assert details == {
        2: "external id '1' already read earlier in this catalog; the first record naming it "
        f"is at page 1, record_index 0 (payload_hash {record_hash(payload_text(records[0]))}): "
        "kept as the offer",
        3: "external id '7' already read earlier in this catalog; the first record naming it "
        f"is at page 1, record_index 1 (payload_hash {record_hash(payload_text(records[1]))}): "
        "quarantined as missing_price",
    }


@pytest.mark.parametrize("kind", sorted(VECTORIZED_FORMATS))
def test_both_paths_name_the_first_record_of_a_repeated_id(
    kind: str,
    sandbox_catalogs: dict[str, tuple[MarketplaceConfig, list[Any]]],  # noqa: F811
    tmp_path: Any,
) -> None:
    (config, records), *_ = [entry for entry in sandbox_catalogs.values() if entry[0].kind == kind]
    adapter = build_adapter(config)
    try:
        sample = next(r for r in records[5:] if isinstance(r, dict) and _offer_or_none(adapter, r))
        sample_id = adapter.normalize_record(sample).external_id
        first_id = adapter.normalize_record(records[0]).external_id
    finally:
        adapter.close()
    priceless = _drop(_PRICE_PATHS[kind])(copy.deepcopy(sample))
    # A quarantined first record (the priceless copy), and an offer kept first (records[0]).
    variants = [priceless, *records, copy.deepcopy(records[0])]
    expected, got = _both_ways(tmp_path, config, variants)
    _assert_same(expected, got)
    rejected = expected.rejected.sort("page", "record_index")
    details = dict(
        rejected.filter(pl.col("reason") == "duplicate_external_id")
        .select("external_id", "detail")
        .rows()
    )
    priceless_reason = rejected.row(0, named=True)["reason"]
    assert details[sample_id].endswith(
        f"is at page 0, record_index 0 (payload_hash {record_hash(payload_text(priceless))}): "
        f"quarantined as {priceless_reason}"
    )
    assert details[first_id].endswith(
        f"is at page 0, record_index 1 (payload_hash {record_hash(payload_text(records[0]))}): "
        "kept as the offer"
    )
