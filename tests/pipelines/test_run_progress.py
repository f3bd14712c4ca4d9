"""The names `onecart ingest` and `onecart status` give the downstream run's steps."""

from __future__ import annotations

from pipelines.run_progress import step_label


def test_an_asset_step_is_named_by_its_asset_and_a_check_step_as_a_check() -> None:
    """A check's step key is its asset's name and its own joined: "downstream: now
    normalized_products_products_are_fresh" read as if the catalogs were normalized again."""
    assert step_label("search_products") == "search_products"
    assert step_label("normalized_products_products_are_fresh") == (
        "check products_are_fresh of normalized_products"
    )
