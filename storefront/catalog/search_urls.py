"""The listing's links as template globals: a search's URL with changes, its pages, a facet
switched on or off, and "Clear all filters". The catalog blueprint registers them for every
template (catalog.routes); /api/search returns clear_filters_url for search.js too.

A listing builds some ten of these per page, so the /search path and a page link's query
string are worked out once per request (flask.g).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from flask import url_for

from search_index.params import SearchParams
from storefront.current import request_globals


def _query_suffix(pairs: list[tuple[str, str]]) -> str:
    return f"?{urlencode(pairs)}" if pairs else ""


def _search_path() -> str:
    """url_for("catalog.search"), worked out once per request (a listing links to it some ten
    times: pages, facets, clearing filters)."""
    per_request = request_globals()
    path = per_request.get("onecart_search_path")
    if path is None:
        path = per_request.onecart_search_path = url_for("catalog.search")
    return path


def search_url(params: SearchParams, **changes: Any) -> str:
    """The /search URL for `params` with `changes` (used by pagination and sort links)."""
    return _search_path() + _query_suffix(params.to_query_args(**changes))


def clear_filters_url(params: SearchParams) -> str | None:
    """The listing's "Clear all filters" link (the same search text, sort and page size), or
    None when nothing but the search text narrows it."""
    if not params.has_filters:
        return None
    return search_url(
        params,
        marketplaces=(),
        categories=(),
        brands=(),
        available=None,
        min_price=None,
        max_price=None,
        min_rating=None,
        unrated=False,
    )


def page_url(params: SearchParams, number: int) -> str:
    """search_url(params, page=number) for the pagination's links: the query string without
    the page is encoded once per listing rather than once per link (a page links to up to
    eight others)."""
    per_request = request_globals()
    cached = per_request.get("onecart_page_base")
    if cached is None or cached[0] is not params:
        rest = [pair for pair in params.to_query_args() if pair[0] != "page"]
        cached = per_request.onecart_page_base = (params, _search_path() + _query_suffix(rest))
    base = cached[1]
    if number == 1:
        return base
    return f"{base}{'&' if '?' in base else '?'}page={number}"


def facet_toggle_url(params: SearchParams, facet: str, value: str) -> str:
    """The /search URL with one facet value switched on or off."""
    if facet == "available":
        wanted = value == "true"
        new_value = None if params.available is wanted else wanted
        return search_url(params, available=new_value)
    return _search_path() + _query_suffix(params.toggled(facet, value))


# Registered as template globals by the catalog blueprint, usable inside macros too.
TEMPLATE_HELPERS = (search_url, clear_filters_url, page_url, facet_toggle_url)
