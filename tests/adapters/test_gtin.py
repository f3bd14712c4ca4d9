"""GTIN checksums and the canonical form that lets offers match across marketplaces."""

from __future__ import annotations

import pytest

from adapters.gtin import gtin_check_digit, has_valid_gtin_checksum, normalize_gtin


@pytest.mark.parametrize(
    ("written", "canonical"),
    [
        ("4006381333931", "4006381333931"),  # EAN-13 stays 13 digits
        ("036000291452", "0036000291452"),  # UPC-A becomes its EAN-13
        ("96385074", "0000096385074"),  # GTIN-8 padded to 13
        ("10012345678902", "10012345678902"),  # GTIN-14 with an indicator digit stays 14
        ("00012345600012", "0012345600012"),  # GTIN-14 with indicator 0 is a GTIN-13
        ("4 006381 333931", "4006381333931"),  # spaces as printed under the bars
        ("0-36000-29145-2", "0036000291452"),  # hyphenated UPC
        (4006381333931, "4006381333931"),  # a JSON number
        (36000291452, "0036000291452"),  # a JSON number that lost its leading zero
    ],
)
def test_valid_gtins_are_kept_in_canonical_form(written: object, canonical: str) -> None:
    assert normalize_gtin(written) == canonical


def test_the_same_product_written_two_ways_matches() -> None:
    assert normalize_gtin("036000291452") == normalize_gtin("0036000291452")


@pytest.mark.parametrize(
    "written",
    [
        "9164035109868",  # a real DummyJSON barcode: 13 digits, wrong check digit
        "4006381333932",  # one digit off
        "036000291453",
        "12345",  # not a GTIN length
        "400638133393",  # 12 digits whose check digit fails as a UPC
        "40063813339311",  # 14 digits, wrong check digit
        "0000000000000",
        "",
        "ABC6381333931",
        "４００６３８１３３３９３１",  # full-width digits are not ASCII
        None,
        True,
        4.006381333931e12,
        -4006381333931,
        ["4006381333931"],
    ],
)
def test_invalid_gtins_become_none(written: object) -> None:
    assert normalize_gtin(written) is None


def test_check_digit_of_a_known_ean() -> None:
    assert gtin_check_digit("400638133393") == 1
    assert has_valid_gtin_checksum("4006381333931")
    assert not has_valid_gtin_checksum("4006381333930")
