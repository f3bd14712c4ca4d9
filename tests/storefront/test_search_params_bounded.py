"""Every query parameter of the listing (/search) and the JSON API (/api/search) is bounded by
length and range before any arithmetic (issue 12: `/search?min_rating=1e500000` took 30 s).

Property tests over every parameter `SearchParams.from_query_args` reads: whatever text arrives,
the parsed result is refused (None / default, with a note) or clamped into its range, and holds
no number with more digits than a short parameter can carry. Assertions are on the parsed
result, never on time taken.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.datastructures import MultiDict

from onecart.params import ParameterError, bounded_decimal, bounded_int
from search_index.filters import PriceScale, build_filter_clauses
from search_index.params import (
    LIST_FACETS,
    MAX_FILTER_VALUE_CHARS,
    MAX_FILTER_VALUES,
    MAX_PRICE_FILTER,
    MAX_QUERY_CHARS,
    PER_PAGE_CHOICES,
    SORTS,
    SearchParams,
    max_page_for,
)

# Every parameter the listing and /api/search read (the spy test below keeps this list honest).
LISTING_PARAMETERS = (
    "q",
    *LIST_FACETS.values(),
    "available",
    "min_price",
    "max_price",
    "min_rating",
    "sort",
    "page",
    "per_page",
    "unrated",
)
MAX_DIGITS = 24

PROPERTY_SETTINGS = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# Hostile numbers: huge exponents, long digit runs, signs, specials, unicode digits, and noise.
hostile_numbers = st.one_of(
    st.integers(min_value=0, max_value=10**6).map(lambda n: f"1e{n}"),
    st.integers(min_value=0, max_value=10**6).map(lambda n: f"-9.5E+{n}"),
    st.integers(min_value=1, max_value=5000).map(lambda n: "9" * n),
    st.integers(min_value=1, max_value=5000).map(lambda n: "0." + "1" * n),
    st.sampled_from(["NaN", "-Infinity", "inf", "sNaN", "1_000", "٣", "１２", " 4 ", "+3", "-0"]),
    st.decimals(allow_nan=True, allow_infinity=True).map(str),
    st.integers().map(str),
    st.text(max_size=40),
)


def _assert_bounded_decimal(value: Decimal | None, *, low: Decimal, high: Decimal) -> None:
    if value is None:
        return
    assert value.is_finite()
    assert low <= value <= high
    digits = value.as_tuple()
    assert len(digits.digits) <= MAX_DIGITS
    assert isinstance(digits.exponent, int) and digits.exponent >= -MAX_DIGITS


def _assert_bounded(params: SearchParams) -> None:
    assert len(params.q) <= MAX_QUERY_CHARS
    for facet in LIST_FACETS:
        values = params.selected(facet)
        assert len(values) <= MAX_FILTER_VALUES
        assert all(len(value) <= MAX_FILTER_VALUE_CHARS for value in values)
    _assert_bounded_decimal(params.min_price, low=Decimal(0), high=MAX_PRICE_FILTER)
    _assert_bounded_decimal(params.max_price, low=Decimal(0), high=MAX_PRICE_FILTER)
    assert params.min_rating is None or 1 <= params.min_rating <= 5
    assert params.sort in SORTS
    assert params.per_page in PER_PAGE_CHOICES
    assert 1 <= params.page <= max_page_for(params.per_page)
    # The filter built from it is made of small numbers too (this is where the arithmetic is).
    clauses = build_filter_clauses(params, PriceScale("KES", Decimal("129.5")))
    assert all(len(clause) < 400 for clause in clauses.values() if "IN [" not in clause)


@pytest.mark.parametrize("name", LISTING_PARAMETERS)
@PROPERTY_SETTINGS
@given(value=hostile_numbers)
def test_every_parameter_is_refused_or_clamped(name: str, value: str) -> None:
    params = SearchParams.from_query_args(MultiDict([(name, value)]))
    _assert_bounded(params)


@PROPERTY_SETTINGS
@given(
    pairs=st.lists(
        st.tuples(st.sampled_from(LISTING_PARAMETERS), hostile_numbers), min_size=1, max_size=12
    )
)
def test_any_mix_of_parameters_is_bounded(pairs: list[tuple[str, str]]) -> None:
    _assert_bounded(SearchParams.from_query_args(MultiDict(pairs)))


def test_the_reported_huge_rating_is_refused_without_converting_it() -> None:
    params = SearchParams.from_query_args(MultiDict([("min_rating", "1e500000")]))
    assert params.min_rating is None
    assert "The minimum rating was not a number and is ignored." in params.corrections


@pytest.mark.parametrize(
    ("name", "value"),
    [("min_price", "1e400000"), ("max_price", "9" * 100), ("min_price", "1" + "0" * 13)],
)
def test_huge_prices_are_ignored_with_a_note(name: str, value: str) -> None:
    params = SearchParams.from_query_args(MultiDict([(name, value)]))
    assert params.min_price is None and params.max_price is None
    assert any("not a valid amount" in note for note in params.corrections)


def test_ordinary_values_still_work() -> None:
    params = SearchParams.from_query_args(
        MultiDict(
            [
                ("min_price", "1,250.50"),
                ("max_price", "2000"),
                ("min_rating", "3.5"),
                ("page", "3"),
                ("per_page", "48"),
            ]
        )
    )
    assert (params.min_price, params.max_price) == (Decimal("1250.50"), Decimal("2000"))
    assert (params.min_rating, params.page, params.per_page) == (3, 3, 48)


class RecordingArgs(MultiDict[str, str]):
    """request.args that remembers every name read from it."""

    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()

    def get(self, key: str, default: Any = None, type: Any = None) -> Any:
        self.names.add(key)
        return super().get(key, default, type)

    def getlist(self, key: str, type: Any = None) -> list[Any]:
        self.names.add(key)
        return super().getlist(key, type)

    def __contains__(self, key: object) -> bool:
        # The listing asks whether a name is there before reading its values.
        if isinstance(key, str):
            self.names.add(key)
        return super().__contains__(key)


def test_the_property_tests_cover_every_parameter_the_listing_reads() -> None:
    args = RecordingArgs()
    SearchParams.from_query_args(args)
    read = {name.removesuffix("[]") for name in args.names}
    assert read == set(LISTING_PARAMETERS)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("7", 7), ("+12", 12), ("0012", 12)],
)
def test_bounded_int_accepts_short_plain_numbers(text: str, expected: int) -> None:
    assert bounded_int(text, minimum=0, maximum=100) == expected


@pytest.mark.parametrize("text", ["1e3", "9" * 10, "-1", "1.0", "١٢", "", "101"])
def test_bounded_int_refuses_the_rest(text: str) -> None:
    with pytest.raises(ParameterError):
        bounded_int(text, minimum=0, maximum=100)


@pytest.mark.parametrize("text", ["1e3", "1" * 21, "NaN", "Infinity", "0x10", "1.00001", "-1"])
def test_bounded_decimal_refuses_exponents_long_text_and_out_of_range(text: str) -> None:
    with pytest.raises(ParameterError):
        bounded_decimal(text, minimum=Decimal(0), maximum=Decimal(10**12))
