"""The listing's hot part under other engines: Jinja2 against MiniJinja, orjson against msgspec.

    python -m bench.render_engines --reuse HOME [--rounds 8] [--repeat 3]

A measurement for issue 9 (branch i9mini), not part of the site: MiniJinja (pypi `minijinja`,
Rust) and msgspec are not dependencies of OneCart. Install them beside the venv, not into it:

    .venv/bin/pip install --no-deps --target /tmp/render-engines minijinja==3.0.5 msgspec==0.22.0
    PYTHONPATH=.:/tmp/render-engines .venv/bin/python -m bench.render_engines --reuse HOME

On the index and DB a `bench.search_bench --keep` run left in HOME (its Meilisearch is started
here), for search_bench's 24 listing queries, each in its own request context (a new guest in
USD), with the listing fetched once:

1. The listing's partials (catalog/_facets.html, catalog/_results.html with the product_grid
   macro) rendered by the site's Jinja2 templates from `_listing_context`, against MiniJinja
   templates (bench/render_engines/) fed a plain view of the same context: dicts, lists, ints and
   strings escaped with markupsafe beforehand. MiniJinja's own HTML escaping writes `&quot;`,
   `&#x27;` and `&#x2f;` where markupsafe writes `&#34;`, `&#39;` and `/`, so to keep the page
   byte-identical the view escapes every string itself and MiniJinja sees them as safe; its
   autoescaping still catches any string the view left raw. The two outputs are compared first.
   Figures: thread CPU per listing of (a) Jinja's partials, (b) the view's conversion + MiniJinja,
   (c) both with the cards built (build_cards; for MiniJinja the card dicts are built straight
   from the hits), (d) as (c) but with MiniJinja's own escaping (not byte-identical).
2. Meilisearch's answer: orjson.loads against msgspec's JSON decoder, untyped and into typed
   Structs of the fields a listing reads; and the whole search_products (plan, parse, hits and
   facets) from the recorded answer bytes, without the network, for scale.
"""

from __future__ import annotations

import argparse
import gc
import io
import logging
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.search_bench import LISTING_QUERIES  # noqa: E402
from onecart import processes  # noqa: E402
from onecart.settings import get_settings  # noqa: E402

INDEX_UID = "bench_products"
TEMPLATES = Path(__file__).resolve().parent / "render_engines"
PLURALS = {"marketplace": "marketplaces", "category": "categories", "brand": "brands"}


# --- The plain view MiniJinja renders --------------------------------------------------------------


def card_dicts(hits: Sequence[Any], escape: Callable[[Any], Any]) -> list[dict[str, Any]]:
    """What storefront.catalog.cards.build_cards computes, as the template's dicts."""
    from flask import url_for

    from storefront.catalog.cards import GROUP_PLACEHOLDER, offers_summary
    from storefront.catalog.highlight import highlight_title
    from storefront.catalog.shopper import display_currency, format_price, fx_table

    currency = display_currency()
    fx = fx_table()
    url_template = url_for("catalog.product", group_id=GROUP_PLACEHOLDER)
    placeholder = url_for("static", filename="img/placeholder-product.svg")
    cards = []
    for hit in hits:
        offer = hit.offer
        shown = fx.convert_or_none(offer.price_minor, offer.currency, currency)
        if shown is None:
            price_text, original = format_price(offer.price_minor, offer.currency), None
        else:
            price_text = format_price(shown, currency)
            original = (
                format_price(offer.price_minor, offer.currency)
                if offer.currency != currency
                else None
            )
        rating_text = None
        if hit.rating is not None:
            rating_text = f"{hit.rating_count:,} review{'' if hit.rating_count == 1 else 's'}"
        cards.append(
            {
                "available": offer.available,
                "url": escape(
                    url_template.replace(GROUP_PLACEHOLDER, quote(hit.group_id, safe=""))
                ),
                "image_url": escape(hit.image_url or placeholder),
                "title_html": highlight_title(hit.title, hit.title_matches),
                "price_text": escape(price_text),
                "original_price_text": escape(original) if original else None,
                "rating": str(hit.rating) if hit.rating is not None else None,
                "rating_text": rating_text,
                "marketplace_logo": escape(offer.marketplace_logo)
                if offer.marketplace_logo
                else None,
                "has_other_offers": hit.has_other_offers,
                "marketplace_name": escape(offer.marketplace_name),
                "offers_text": offers_summary(hit.offer_count, hit.marketplace_count),
            }
        )
    return cards


def card_dicts_from(cards: Sequence[Any], escape: Callable[[Any], Any]) -> list[dict[str, Any]]:
    """The template's dicts from ProductCards already built (the context Jinja renders)."""
    return [
        {
            "available": card.hit.offer.available,
            "url": escape(card.url),
            "image_url": escape(card.image_url),
            "title_html": card.title_html,
            "price_text": escape(card.price_text),
            "original_price_text": escape(card.original_price_text)
            if card.original_price_text
            else None,
            "rating": str(card.hit.rating) if card.hit.rating is not None else None,
            "rating_text": escape(card.rating_text) if card.rating_text else None,
            "marketplace_logo": escape(card.hit.offer.marketplace_logo)
            if card.hit.offer.marketplace_logo
            else None,
            "has_other_offers": card.hit.has_other_offers,
            "marketplace_name": escape(card.hit.offer.marketplace_name),
            "offers_text": escape(card.offers_text),
        }
        for card in cards
    ]


def results_view(
    context: dict[str, Any], cards: list[dict[str, Any]], escape: Callable[[Any], Any]
) -> dict[str, Any]:
    from storefront.catalog.routes import search_url

    page = context["page"]
    params = context["params"]
    pages: list[tuple[int | None, Any]] = []
    previous = following = None
    if page.total_pages > 1:
        for number in page.page_numbers():
            same = number is None or number == page.page
            pages.append((number, None if same else escape(search_url(params, page=number))))
        if page.has_previous:
            previous = escape(search_url(params, page=page.page - 1))
        if page.has_next:
            following = escape(search_url(params, page=page.page + 1))
    clear = None
    if params.has_filters and not page.hits:
        clear = escape(
            search_url(
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
        )
    return {
        "total_hits": page.total_hits,
        "total_text": f"{page.total_hits:,}",
        "q": escape(params.q) if params.q else "",
        "corrections": [escape(note) for note in page.corrections],
        "cards": cards if page.hits else [],
        "clear_filters_url": clear,
        "pages": pages,
        "previous_url": previous,
        "next_url": following,
    }


def facets_view(context: dict[str, Any], escape: Callable[[Any], Any]) -> dict[str, Any]:
    from storefront.catalog.shopper import display_currency, format_price

    page = context["page"]
    params = context["params"]
    names = context["marketplace_names"]
    lists = []
    for facet in ("marketplace", "category", "brand"):
        items = [
            {
                "value": escape(value.value),
                "selected": value.selected,
                "count": value.count,
                "label": escape(names.get(value.value, value.value))
                if facet == "marketplace"
                else escape(value.value),
            }
            for value in page.facets.get(facet, [])[:40]
        ]
        more = items[8:]
        lists.append(
            {
                "name": facet,
                "title": context["facet_titles"][facet],
                "values": items[:8],
                "more": more,
                "more_open": any(item["selected"] for item in more),
                "plural": PLURALS[facet],
            }
        )
    availability = {value.value: value.count for value in page.facets.get("available", [])}
    currency = display_currency()
    low, high = context["price_low_minor"], context["price_high_minor"]
    ratings = context["rating_counts"]
    return {
        "currency": currency,
        "lists": lists,
        "available": params.available,
        "in_stock": availability.get("true", 0),
        "out_of_stock": availability.get("false", 0),
        "price_low_text": escape(format_price(low, currency)) if low is not None else None,
        "price_high_text": escape(format_price(high, currency)) if low is not None else None,
        "min_price": escape(params.min_price) if params.min_price is not None else "",
        "max_price": escape(params.max_price) if params.max_price is not None else "",
        "min_rating": params.min_rating,
        "unrated": params.unrated,
        "ratings": [(stars, ratings.get(str(stars), 0)) for stars in (4, 3, 2, 1)],
        "unrated_count": ratings.get("unrated", 0),
    }


def answer_type(msgspec: Any) -> Any:
    """A multi-search answer as msgspec Structs of the fields a listing reads (others skipped)."""
    optional_str = (str | None, None)
    offer = msgspec.defstruct(
        "Offer",
        [
            ("id", str, ""),
            ("marketplace", str, ""),
            ("marketplace_name", str, ""),
            ("marketplace_logo", *optional_str),
            ("price_minor", int, 0),
            ("currency", str, "USD"),
            ("price_usd_minor", int, 0),
            ("available", bool, True),
        ],
        frozen=True,
    )
    position = msgspec.defstruct("Position", [("start", int), ("length", int)], frozen=True)
    document = msgspec.defstruct(
        "Document",
        [
            ("id", str, ""),
            ("title", str, ""),
            ("brand", *optional_str),
            ("category", *optional_str),
            ("image_url", *optional_str),
            ("offer_count", int, 0),
            ("marketplace_count", int, 0),
            ("rating", float | None, None),
            ("rating_count", int, 0),
            ("offers", list[offer], []),
            ("_matchesPosition", dict[str, list[position]], {}),
        ],
        frozen=True,
    )
    result = msgspec.defstruct(
        "Result",
        [
            ("hits", list[document], []),
            ("totalHits", int, 0),
            ("totalPages", int, 0),
            ("processingTimeMs", int, 0),
            ("facetDistribution", dict[str, dict[str, int]], {}),
        ],
    )
    return msgspec.defstruct("Answer", [("results", list[result], [])])


# --- Measuring -------------------------------------------------------------------------------------


def thread_ms(samples: list[float], action: Callable[..., object], *arguments: Any) -> None:
    """Append the thread CPU (ms) of `action(*arguments)` to `samples`."""
    began = time.thread_time()
    action(*arguments)
    samples.append((time.thread_time() - began) * 1000)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reuse", metavar="HOME", required=True, help="a kept search_bench home")
    parser.add_argument("--rounds", type=int, default=8, help="passes over the 24 listings")
    parser.add_argument("--repeat", type=int, default=3, help="measured blocks per engine")
    args = parser.parse_args(argv)
    try:
        import minijinja
        import msgspec
    except ImportError as missing:
        parser.error(f"{missing.name} is not installed (see this module's docstring)")

    home = Path(args.reuse).resolve()
    os.environ["ONECART_HOME"] = str(home)
    get_settings.cache_clear()
    settings = get_settings()
    port = processes.free_port()
    meili_url = f"http://127.0.0.1:{port}"
    meili = processes.start_process(
        settings,
        "render-engines-meilisearch",
        processes.meilisearch_argv(settings, home / "meili" / "data.ms", f"127.0.0.1:{port}"),
    )
    try:
        processes.wait_for_http(f"{meili_url}/health", timeout=60, process=meili)
        from flask import request
        from markupsafe import escape

        from search_index import client as search_client_module
        from search_index.params import SearchParams
        from storefront import create_app
        from storefront.catalog import routes
        from storefront.catalog.cards import build_cards

        app = create_app(
            {
                "SEARCH_CACHE_SECONDS": 0,
                "DATABASE_URL": f"sqlite:///{home / 'storefront.db'}",
                "MEILI_URL": meili_url,
                "MEILI_INDEX": INDEX_UID,
            }
        )
        for handler in logging.getLogger("onecart.requests").handlers:
            if isinstance(handler, logging.StreamHandler):
                handler.setStream(io.StringIO())
        environment = minijinja.Environment(loader=minijinja.load_from_path(TEMPLATES))

        # One request context and one fetched listing per query; the answers' bytes recorded.
        answers: list[list[bytes]] = []
        exchange = search_client_module._exchange

        def recording(*a: Any, **k: Any) -> tuple[int, bytes]:
            status, data = exchange(*a, **k)
            answers[-1].append(data)
            return status, data

        search_client_module._exchange = recording
        listings = []
        try:
            for query in LISTING_QUERIES:
                answers.append([])
                request_context = app.test_request_context(f"/search?{query}")
                with request_context:
                    params = SearchParams.from_query_args(request.args)
                    context = routes._listing_context(routes._search(params))
                listings.append((request_context, params, context))
        finally:
            search_client_module._exchange = exchange

        def jinja(context: dict[str, Any]) -> tuple[str, str]:
            return (
                routes._render_partial("catalog/_facets.html", context),
                routes._render_partial("catalog/_results.html", context),
            )

        def mini(context: dict[str, Any], cards: list[dict[str, Any]], esc: Any) -> tuple[str, str]:
            return (
                environment.render_template("_facets.html", **facets_view(context, esc)),
                environment.render_template("_results.html", **results_view(context, cards, esc)),
            )

        engines: dict[str, Callable[[dict[str, Any]], object]] = {
            "jinja partials": jinja,
            "minijinja partials (view + render)": lambda c: mini(
                c, card_dicts_from(c["cards"], escape), escape
            ),
            "jinja partials + build_cards": lambda c: jinja(
                dict(c, cards=build_cards(c["page"].hits))
            ),
            "minijinja partials + card dicts": lambda c: mini(
                c, card_dicts(c["page"].hits, escape), escape
            ),
            "minijinja, its own escaping (not identical)": lambda c: mini(
                c, card_dicts(c["page"].hits, str), str
            ),
            "minijinja's view alone (no render)": lambda c: (
                facets_view(c, escape),
                results_view(c, card_dicts_from(c["cards"], escape), escape),
            ),
        }
        different = 0
        for request_context, _params, context in listings:
            with request_context:
                expected = jinja(context)
                for name in list(engines)[1:4:2]:
                    if engines[name](context) != expected:
                        different += 1
                        print(f"differs: {name} for {request_context.request.full_path}")
        print(
            f"minijinja partials byte-identical to Jinja's: {2 * len(listings) - different} "
            f"of {2 * len(listings)} renders (24 listings, two variants)"
        )

        def run(action: Callable[[dict[str, Any]], object]) -> list[float]:
            samples: list[float] = []
            for _ in range(args.rounds):
                for request_context, _params, context in listings:
                    with request_context:
                        thread_ms(samples, action, context)
            return samples

        for action in engines.values():
            run(action)  # warm-up
        gc.collect()
        gc.freeze()
        medians: dict[str, list[float]] = {name: [] for name in engines}
        for _ in range(args.repeat):
            for name, action in engines.items():
                medians[name].append(statistics.median(run(action)))
        load = os.getloadavg()
        print(f"\nthread CPU per listing, ms (median of each block; load {load[0]:.2f})")
        for name, values in medians.items():
            print(f"  {name:45s} " + " · ".join(f"{value:.3f}" for value in values))

        # --- Meilisearch's answer ---
        import orjson

        decoders: dict[str, Callable[[bytes], object]] = {
            "orjson.loads": orjson.loads,
            "msgspec, untyped": msgspec.json.Decoder().decode,
            "msgspec, typed Structs": msgspec.json.Decoder(answer_type(msgspec)).decode,
        }
        sizes = [len(data) for listing in answers for data in listing]
        print(
            f"\nMeilisearch's answers: {len(sizes)}, {statistics.fmean(sizes):,.0f} bytes on average"
        )
        pending: list[bytes] = []

        def canned(*_args: Any, **_kwargs: Any) -> tuple[int, bytes]:
            return 200, pending.pop(0)

        def decode_all(decode: Callable[[bytes], object], recorded: list[bytes]) -> None:
            for data in recorded:
                decode(data)

        def whole(params: SearchParams, recorded: list[bytes]) -> None:
            pending[:] = recorded
            routes._search(params)

        search_client_module._exchange = canned
        try:
            blocks: dict[str, list[float]] = {name: [] for name in [*decoders, "search_products"]}
            for _ in range(args.repeat):
                for name, decode in decoders.items():
                    samples: list[float] = []
                    for _ in range(args.rounds):
                        for recorded in answers:
                            thread_ms(samples, decode_all, decode, recorded)
                    blocks[name].append(statistics.median(samples))
                samples = []
                for _ in range(args.rounds):
                    for (request_context, params, _context), recorded in zip(
                        listings, answers, strict=True
                    ):
                        with request_context:
                            thread_ms(samples, whole, params, recorded)
                blocks["search_products"].append(statistics.median(samples))
        finally:
            search_client_module._exchange = exchange
        print(
            "thread CPU per listing, ms (search_products: plan, orjson, hits, facets; no network)"
        )
        for name, values in blocks.items():
            print(f"  {name:45s} " + " · ".join(f"{value:.3f}" for value in values))
        names = list(engines)
        print(
            "RESULT bench=render_engines "
            f"identical={different == 0} "
            f"jinja_partials_ms={min(medians[names[0]]):.3f} "
            f"minijinja_partials_ms={min(medians[names[1]]):.3f} "
            f"jinja_with_cards_ms={min(medians[names[2]]):.3f} "
            f"minijinja_with_cards_ms={min(medians[names[3]]):.3f} "
            f"minijinja_own_escaping_ms={min(medians[names[4]]):.3f} "
            f"orjson_ms={min(blocks['orjson.loads']):.3f} "
            f"msgspec_typed_ms={min(blocks['msgspec, typed Structs']):.3f} "
            f"search_products_ms={min(blocks['search_products']):.3f}"
        )
    finally:
        processes.stop_pid(meili.pid)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
