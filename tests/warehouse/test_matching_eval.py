"""The matching evaluation (bench/matching_eval.py) on a small sandbox catalog: the real adapters
read an in-process sandbox, the real matching groups the offers, and the pair-level figures
against the sandbox's truth stay above a floor (the targets, 0.99 and 0.95, are measured at the
default size and recorded in bench/RESULTS.md)."""

from __future__ import annotations

from bench.matching_eval import (
    CatalogOffer,
    evaluate,
    evaluate_assignments,
    invalid_raw_barcode,
    report_lines,
)
from warehouse.matching import GroupAssignment, OfferForMatching

PRECISION_FLOOR = 0.98
RECALL_FLOOR = 0.90


def test_matching_on_a_small_sandbox_catalog_is_precise_and_finds_most_pairs() -> None:
    result = evaluate(offers=1200, seed=7)

    assert result.offers > 1000 and result.true_pairs > 100
    assert result.precision >= PRECISION_FLOOR, report_lines(result)
    assert result.recall >= RECALL_FLOOR, report_lines(result)
    # DummyMart serves wrong check digits for the products only it sells: never matched on.
    assert result.invalid_barcodes > 0 and result.invalid_barcodes_used == 0
    assert report_lines(result)[-1] == (
        f"precision={result.precision:.3f} recall={result.recall:.3f}"
    )


def test_pairs_are_counted_under_the_weaker_method_and_wrong_pairs_lower_precision() -> None:
    def item(market: str, external_id: str, product: str) -> CatalogOffer:
        return CatalogOffer(OfferForMatching(market, external_id, f"Title {external_id}"), product)

    catalog = [item("a", "1", "p"), item("b", "2", "p"), item("c", "3", "q"), item("d", "4", "p")]

    def assigned(market: str, external_id: str, group: str, method: str) -> GroupAssignment:
        return GroupAssignment(market, external_id, group, method, 1, f"{method}:{group}")  # type: ignore[arg-type]

    assignments = [
        assigned("a", "1", "g1", "gtin"),
        assigned("b", "2", "g1", "gtin"),
        assigned("c", "3", "g1", "title"),  # a wrong title match into the GTIN group
        assigned("d", "4", "g2", "single"),  # a missed offer of product p
    ]
    result = evaluate_assignments(catalog, assignments)

    assert (result.predicted_pairs, result.correct_pairs, result.true_pairs) == (3, 1, 3)
    assert result.by_method["gtin"].predicted == 1 and result.by_method["gtin"].correct == 1
    assert result.by_method["title"].predicted == 2 and result.by_method["title"].correct == 0
    assert round(result.precision, 3) == 0.333 and round(result.recall, 3) == 0.333


def test_an_invalid_raw_barcode_is_recognised_wherever_the_format_puts_it() -> None:
    assert invalid_raw_barcode({"meta": {"barcode": "4006381333932"}}) == "4006381333932"
    assert invalid_raw_barcode({"barcode": "4006381333931"}) is None  # a valid EAN-13
    assert invalid_raw_barcode({"title": "no barcode"}) is None
