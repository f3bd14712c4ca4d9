"""A catalog fetch says how far it got while it runs (ops10's pass as a data engineer): a
marketplace answering slowly (the sandbox's latency knob at 1.5 s a page) showed nothing in the
Dagster UI's run log for the whole fetch, only its end or its failure ("after 15 pages")."""

from __future__ import annotations

from adapters.base import CatalogPage
from pipelines.assets.catalog import FETCH_PROGRESS_EVERY_S, PagesRead


class Clock:
    """Seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def pages(clock: Clock, count: int, *, seconds_each: float) -> list[CatalogPage]:
    def produced() -> object:
        for number in range(count):
            clock.now += seconds_each  # the marketplace's answer takes this long
            yield CatalogPage(records=[{"id": f"{number}-{i}"} for i in range(100)], page=number)

    return produced()  # type: ignore[return-value]


def test_a_slow_fetch_reports_pages_and_records_read_so_far_every_few_seconds() -> None:
    clock, lines = Clock(), []
    read = PagesRead("dummymart", report=lines.append, clock=clock)
    list(read.count(pages(clock, 20, seconds_each=1.5)))

    assert read.pages == 20
    every = FETCH_PROGRESS_EVERY_S / 1.5
    assert len(lines) == int(20 // every) >= 2
    assert lines[0] == "dummymart: 7 pages (700 records) fetched so far, 10 s in"
    assert all(line.startswith("dummymart: ") for line in lines)


def test_a_fetch_faster_than_the_interval_reports_nothing() -> None:
    clock, lines = Clock(), []
    read = PagesRead("shopwave", report=lines.append, clock=clock)
    list(read.count(pages(clock, 8, seconds_each=0.2)))

    assert read.pages == 8
    assert lines == []


def test_a_held_page_counts_its_page_and_no_record() -> None:
    clock, lines = Clock(), []
    read = PagesRead("fakestore", report=lines.append, clock=clock)
    clock.now = FETCH_PROGRESS_EVERY_S
    list(read.count([CatalogPage(records=[], page=0, held=True)]))

    assert lines == ["fakestore: 1 page (0 records) fetched so far, 10 s in"]


def test_the_normalization_line_tells_the_records_read_from_the_catalog_s_rejections() -> None:
    """ "dummymart: 1,972 products; read 6 offers and 6 rejected records {"bad_price": 6,
    "broken_utf8": 6, …}" (a refresh that read 12 changed records) put the whole catalog's 28
    rejections by reason right after the 6 read now, as if those 6 had them."""
    from pipelines.assets.catalog import describe_normalization

    line = describe_normalization(
        "dummymart",
        products=1972,
        offers_read=6,
        rejected_read=6,
        rejected_by_reason={"bad_price": 6, "broken_utf8": 6, "missing_price": 16},
    )

    assert line == (
        "dummymart: 1,972 products; read 6 offers and 6 rejected records; the catalog's 28 "
        'rejected records by reason: {"bad_price": 6, "broken_utf8": 6, "missing_price": 16}'
    )
    assert describe_normalization(
        "sokoni", products=656, offers_read=656, rejected_read=0, rejected_by_reason={}
    ) == ("sokoni: 656 products; read 656 offers and 0 rejected records; none rejected")
