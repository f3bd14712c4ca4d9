"""A marketplace failing half-way through a fetch of every page: the failed partition says how
far the fetch got (pipelines/assets/catalog.py). Before, an outage at page 19 of 75 read like one
at the first page ("catalog fetch failed: Transient: POST catalog/v1/searchItems -> 503"), so an
operator could not tell a marketplace that is down from one that breaks under a long fetch."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from adapters.base import CatalogPage, Transient
from pipelines.assets.catalog import PagesRead, describe_fetch_failure


def _pages_failing_at(page: int) -> Iterator[CatalogPage]:
    for number in range(1, page):
        yield CatalogPage(records=[{"id": number}], page=number)
    raise Transient("POST catalog/v1/searchItems -> 503: down")


def test_a_fetch_failing_half_way_says_after_how_many_pages() -> None:
    read = PagesRead()
    staged = []
    with pytest.raises(Transient) as failure:
        for page in read.count(_pages_failing_at(19)):
            staged.append(page.page)
    assert staged == list(range(1, 19))
    assert read.pages == 18
    assert describe_fetch_failure("amazon", failure.value, read.pages) == (
        "amazon: catalog fetch failed after 18 pages: Transient: "
        "POST catalog/v1/searchItems -> 503: down"
    )


def test_a_fetch_failing_at_its_first_page_says_only_why() -> None:
    read = PagesRead()
    with pytest.raises(Transient) as failure:
        list(read.count(_pages_failing_at(1)))
    assert describe_fetch_failure("kiondo", failure.value, read.pages) == (
        "kiondo: catalog fetch failed: Transient: POST catalog/v1/searchItems -> 503: down"
    )
