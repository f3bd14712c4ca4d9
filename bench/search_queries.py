"""The search benchmarks' workload: the listing queries shoppers send (bench/search_bench.py,
bench/listing_cpu.py, bench/site_cpu_ratio.py) and how the site reads one into SearchParams."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

# What shoppers type: plain words, typos, brand + noun, with the filters and sorts the site has.
LISTING_QUERIES: tuple[str, ...] = (
    "q=headphones",
    "q=hedphones",
    "q=samsung+tv",
    "q=televsion&sort=price_asc",
    "q=running+shoes&max_price=60",
    "q=runing+shoes&min_rating=4",
    "q=thermos",
    "q=flask&marketplace=kiondo&marketplace=bazaar",
    "q=laptop&sort=price_desc",
    "q=laptp&min_price=300&max_price=900",
    "q=smartwatch&available=1",
    "q=smartwach",
    "q=coffee+maker&sort=rating",
    "q=sony",
    "q=nike&category=Running+Shoes",
    "q=backpack&page=2",
    "q=camera&marketplace=shopwave",
    "q=phone&brand=Samsung&brand=Tecno",
    "q=speaker&available=1&sort=price_asc",
    "q=mug",
    "q=65+inch",
    "q=earbuds&max_price=100",
    "category=Smartphones&sort=price_asc",
    "sort=rating&min_rating=4",
)


def listing_params(query: str) -> Any:
    """The SearchParams the site reads from a listing's query string (repeated keys kept)."""
    from werkzeug.datastructures import MultiDict

    from search_index.params import SearchParams

    return SearchParams.from_query_args(MultiDict(parse_qsl(query)))
