"""Catalog views: thin translations between HTTP and the services in search_index (listings,
merchandising) and commerce.catalog. The display-currency switcher is storefront.currency; the
listing's link helpers are catalog.search_urls.

Search-backed pages answer 503 with a friendly page when Meilisearch cannot; the landing, product
and stores pages read the storefront DB and keep working without it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from flask import (
    Blueprint,
    Response,
    abort,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.blueprints import BlueprintSetupState
from flask_login import current_user, login_required
from markupsafe import Markup
from werkzeug.datastructures import MultiDict

from commerce import catalog
from commerce.cart_pricing import charged_price_minor
from commerce.models import Product
from onecart.progress import catalog_loading_message
from onecart.settings import get_settings
from search_index.client import SearchUnavailable
from search_index.documents import OfferDocument, document_id
from search_index.filters import PriceScale
from search_index.groups import lead_offer
from search_index.listings import SearchPage, offers_in_group, offers_summary, search_products
from search_index.merchandising import home_showcase
from search_index.params import PER_PAGE_CHOICES, SORT_LABELS, SearchParams
from storefront.auth.routes import NEW_ACCOUNT_SESSION_KEY
from storefront.cart.forms import CART_FOCUS_SESSION_KEY, AddToCartForm
from storefront.catalog.cards import build_cards
from storefront.catalog.charts import price_history_svg, series_colour
from storefront.catalog.search_urls import TEMPLATE_HELPERS, clear_filters_url, search_url
from storefront.catalog.shopper import (
    disabled_marketplaces,
    display_charged_minor,
    display_currency,
    display_money_minor,
    format_price,
    fx_table,
    index_uid,
    marketplace_names,
    price_scale,
    product_index_uid,
    search_cache,
    search_client,
)
from storefront.current import this_app
from storefront.database import db_session
from storefront.form_protection import keep_guest_sessionless
from storefront.search_limit import enforce_search_limit

bp = Blueprint("catalog", __name__, template_folder="templates")

HOW_IT_WORKS = (
    ("Search once", "One search covers every marketplace we aggregate, with typo tolerance."),
    ("Compare offers", "See the same product side by side across stores, in your currency."),
    ("One cart", "Fill one cart from several marketplaces and check out in one go."),
)
FACET_TITLES = {
    "marketplace": "Marketplace",
    "category": "Category",
    "brand": "Brand",
    "available": "Availability",
    "rating": "Rating",
}
# How offers of one product were matched (warehouse.matching methods), in shoppers' words.
MATCH_LABELS = {
    "gtin": "same barcode",
    "brand_model": "same brand and model number",
    "title": "similar title",
}
# The same in the product page's sentence about all its offers, strongest first: each offer was
# matched one way, so they are alternatives ("by their barcode or by a similar title").
MATCH_PHRASES = {
    "gtin": "their barcode",
    "brand_model": "their brand and model number",
    "title": "a similar title",
}


for _helper in TEMPLATE_HELPERS:
    bp.add_app_template_global(_helper)


@bp.record_once
def register_price_helpers(state: BlueprintSetupState) -> None:
    """Template globals for prices in the shopper's currency, usable inside macros too."""
    state.app.jinja_env.globals.update(
        display_currency=display_currency,
        display_charged_minor=display_charged_minor,
        display_money_minor=display_money_minor,
        format_price=format_price,
        offers_summary=offers_summary,
    )


@bp.app_errorhandler(SearchUnavailable)
def search_unavailable(error: SearchUnavailable) -> tuple[Response | str, int]:
    """Search is down: a friendly 503 (JSON for the API), with a hint to retry shortly."""
    message = (
        index_missing_message()
        if error.reason == "index_missing"
        else "Search is temporarily unavailable. Your cart and the stores page still work."
    )
    headers = {"Retry-After": "30"}
    if request.path.startswith("/api/"):
        body = jsonify(
            {"error": {"status": 503, "title": "Search unavailable", "message": message}}
        )
        return body, 503, headers  # type: ignore[return-value]
    page = render_template(
        "catalog/search_unavailable.html", message=message, q=request.args.get("q", "")[:200]
    )
    return page, 503, headers  # type: ignore[return-value]


def index_missing_message() -> str:
    """While a first ingest loads the catalogs, say how far it is ("Loading catalogs: 3 of 6
    marketplaces") rather than that search is down."""
    loading = catalog_loading_message(get_settings())
    if loading:
        return f"{loading[:1].upper()}{loading[1:]}. Search opens as soon as they are indexed."
    return "The product index is being built. Please try again in a minute."


# --- Landing and home --------------------------------------------------------------------------


@bp.get("/")
def landing() -> Response | str:
    """What OneCart does, for visitors; signed-in shoppers go straight to their home page."""
    if current_user.is_authenticated:
        return redirect(url_for("catalog.home"))
    return render_template(
        "catalog/landing.html",
        marketplaces=catalog.active_marketplaces(db_session()),
        steps=HOW_IT_WORKS,
    )


@bp.get("/home")
@login_required
def home() -> str:
    """The signed-in home: search, categories, best deals, price drops, top rated.

    Featured products come from the index; when it is down the page still renders, with
    categories from the DB and a note instead of the featured rows.
    """
    try:
        showcase = home_showcase(
            search_client(),
            index_uid(),
            product_index_uid(),
            cache=search_cache(),
            withheld=disabled_marketplaces(),
        )
        categories = [(facet.value, facet.count) for facet in showcase.categories]
        search_down = False
        loading = None
    except SearchUnavailable as unavailable:
        showcase = None
        categories = catalog.category_counts(db_session())
        search_down = True
        loading = index_missing_message() if unavailable.reason == "index_missing" else None
    deal_cards = []
    deal_notes = []
    drop_cards = []
    drop_notes = []
    top_cards = []
    if showcase is not None:
        currency = display_currency()
        fx = fx_table()
        deal_cards = build_cards(deal.hit for deal in showcase.best_deals)
        # Rounded down to the card step as every shown price is (KWD 7.880, not 7.882).
        deal_notes = [
            f"Save up to "
            f"{format_price(charged_price_minor(fx, deal.saving_usd_minor, 'USD', currency), currency)}"
            f" ({deal.saving_percent}%) against the dearest offer"
            for deal in showcase.best_deals
        ]
        drop_cards = build_cards(showcase.price_drops)
        drop_notes = [
            f"Was {format_price(card.hit.offer.previous_price_minor, card.hit.offer.currency)}"
            for card in drop_cards
        ]
        top_cards = build_cards(showcase.top_rated)
    return render_template(
        "catalog/home.html",
        showcase=showcase,
        deal_cards=deal_cards,
        deal_notes=deal_notes,
        drop_cards=drop_cards,
        drop_notes=drop_notes,
        top_cards=top_cards,
        categories=categories,
        search_down=search_down,
        loading=loading,
        # Right after sign-up the shopper is new here, not back: the greeting says so once.
        just_signed_up=bool(session.pop(NEW_ACCOUNT_SESSION_KEY, False)),
    )


# --- Listings ----------------------------------------------------------------------------------


def _listing(args: MultiDict[str, str]) -> SearchPage:
    params = SearchParams.from_query_args(args)
    return _search(params)


def _search(params: SearchParams, while_waiting: Callable[[], object] | None = None) -> SearchPage:
    # The display currency (read from the shopper's account or session) converts a typed price
    # bound; without one the request goes to Meilisearch before the shopper is looked up, and the
    # page's frame (while_waiting) looks them up while Meilisearch works.
    typed_bounds = params.min_price is not None or params.max_price is not None
    return search_products(
        search_client(),
        product_index_uid(),
        params,
        scale=price_scale() if typed_bounds else PriceScale(),
        cache=search_cache(),
        marketplaces=tuple(marketplace_names()),
        while_waiting=while_waiting,
    )


def _price_range(page: SearchPage) -> tuple[int | None, int | None]:
    scale = price_scale()
    low = page.price_min_usd_minor
    high = page.price_max_usd_minor
    return (
        scale.usd_minor_to_display_minor(low) if low is not None else None,
        scale.usd_minor_to_display_minor(high) if high is not None else None,
    )


def _listing_context(page: SearchPage) -> dict[str, Any]:
    """What _results.html and _facets.html render (the page, and /api/search?html=1)."""
    low, high = _price_range(page)
    return {
        "page": page,
        "params": page.params,
        "facet_titles": FACET_TITLES,
        "sort_labels": SORT_LABELS,
        "per_page_choices": PER_PAGE_CHOICES,
        "price_low_minor": low,
        "price_high_minor": high,
        "marketplace_names": marketplace_names(),
        "cards": build_cards(page.hits, marketplaces=page.params.marketplaces),
        "rating_counts": {item.value: item.count for item in page.facets.get("rating", [])},
    }


def _render_partial(name: str, context: dict[str, Any]) -> str:
    """One of the listing's partials (_facets.html, _results.html), rendered by Jinja from
    `context` alone. They read only what _listing_context gives them and the app's template
    globals, so Flask's per-render work (every context processor: the CSRF token, the currency
    switcher, the cart count, ...) is not done for them again."""
    return this_app().jinja_env.get_template(name).render(context)


# Where the search page's frame takes the listing's facets and results (a "<" never comes out of
# escaped text, so no shopper's input can fake a slot).
FACETS_SLOT = Markup("<!--onecart:facets-->")
RESULTS_SLOT = Markup("<!--onecart:results-->")
# The sort and page-size controls' opening tag, hidden when nothing was found (nothing to sort).
TOOLBAR_CONTROLS_SLOT = Markup("<!--onecart:toolbar-controls-->")


def toolbar_controls_open(total_hits: int) -> Markup:
    hidden = "" if total_hits else " hidden"
    return Markup(f'<div class="toolbar-controls" id="toolbar-controls"{hidden}>')


@bp.get("/search")
def search() -> str:
    """Listings: one card per product with facets, price range, rating filter, sort and pages.

    Works without JavaScript; search.js enhances it with search-as-you-type through /api/search.
    The page's frame (layout, search form, sort) depends only on the query string, so it is
    rendered while Meilisearch works on the listing; the facets and results go into its slots.
    A guest gets it without a session being created (storefront.form_protection).
    """
    enforce_search_limit()
    keep_guest_sessionless()
    params = SearchParams.from_query_args(request.args)
    frame: list[str] = []

    def render_frame() -> None:
        frame.append(
            render_template(
                "catalog/search.html",
                params=params,
                sort_labels=SORT_LABELS,
                per_page_choices=PER_PAGE_CHOICES,
                facets_html=FACETS_SLOT,
                results_html=RESULTS_SLOT,
                toolbar_controls_open=TOOLBAR_CONTROLS_SLOT,
            )
        )

    page = _search(params, while_waiting=render_frame)
    context = _listing_context(page)
    return fill_slots(
        frame[0],
        (
            (TOOLBAR_CONTROLS_SLOT, toolbar_controls_open(page.total_hits)),
            (FACETS_SLOT, _render_partial("catalog/_facets.html", context)),
            (RESULTS_SLOT, _render_partial("catalog/_results.html", context)),
        ),
    )


def fill_slots(frame: str, fillings: tuple[tuple[str, str], ...]) -> str:
    """`frame` with the first occurrence of each slot, in the order given (the order they come
    in the frame), replaced by its filling: what one `str.replace(slot, filling, 1)` per slot
    gives, in one join instead of a copy of the whole page per slot. A slot missing from the
    frame (or out of order) is left to `str.replace`, as before."""
    pieces = []
    start = 0
    for slot, filling in fillings:
        at = frame.find(slot, start)
        if at < 0:
            break
        pieces += (frame[start:at], filling)
        start = at + len(slot)
    else:
        pieces.append(frame[start:])
        return "".join(pieces)
    page = frame
    for slot, filling in fillings:
        page = page.replace(slot, filling, 1)
    return page


@bp.get("/api/search")
def api_search() -> Response:
    """JSON listings (same parameters as /search): products, facets, price range, pages; every
    count is a count of products.

    With `html=1` the answer also carries the rendered results and facets, which search.js swaps
    into the page, so cards are rendered by one template whether JavaScript runs or not.
    """
    enforce_search_limit()
    page = _listing(request.args)
    low, high = _price_range(page)
    currency = display_currency()
    body: dict[str, Any] = {
        "query": page.params.q,
        "page": page.page,
        "per_page": page.params.per_page,
        "total_pages": page.total_pages,
        "total_hits": page.total_hits,
        "display_currency": currency,
        "price_range": {"min_minor": low, "max_minor": high},
        "facets": {
            name: [{"value": f.value, "count": f.count, "selected": f.selected} for f in values]
            for name, values in page.facets.items()
        },
        "corrections": list(page.corrections),
        "hits": [
            card.as_json(currency)
            for card in build_cards(page.hits, marketplaces=page.params.marketplaces)
        ],
        "url": search_url(page.params),
        # search.js keeps the page's heading and "Clear all filters" link with the results.
        "clear_filters_url": clear_filters_url(page.params),
    }
    if request.args.get("html") == "1":
        context = _listing_context(page)
        body["results_html"] = _render_partial("catalog/_results.html", context)
        body["facets_html"] = _render_partial("catalog/_facets.html", context)
    return jsonify(body)


@bp.get("/api/ping")
def api_ping() -> Response:
    """The framework floor for the benchmark: the cheapest JSON answer this app can give."""
    return jsonify({"ok": True})


# --- Product page ------------------------------------------------------------------------------


@bp.get("/product/<group_id>")
def product(group_id: str) -> str:
    """Every offer of one product across marketplaces, cheapest first, with price history.

    Read from the storefront DB (works when search is down); when the DB has no offers for the
    group yet, the index's documents are shown without add-to-cart.
    """
    return render_product_page(group_id, page_path=request.full_path)


def render_product_page(group_id: str, *, page_path: str) -> str:
    """The product page of `group_id`; its forms come back to `page_path` (the page's own
    address, also when another view re-renders it, e.g. a refused price alert at /watch)."""
    if len(group_id) > 200:
        abort(404)
    session_db = db_session()
    fx = fx_table()
    currency = display_currency()
    offers = catalog.group_offers(session_db, group_id, fx=fx, display_currency=currency)
    index_offers: list[OfferDocument] = []
    if not offers:
        offers = _offers_from_index_document(group_id)
    if not offers:
        try:
            index_offers = offers_in_group(
                search_client(), index_uid(), group_id, withheld=disabled_marketplaces()
            )
        except SearchUnavailable:
            index_offers = []
        if not index_offers:
            abort(404, "We couldn't find that product. It may have left every marketplace.")
    # The marketplaces the listing the shopper came from was filtered to, read from the page's
    # own address (also when /watch re-renders it): their offers come first and one of them is
    # the suggested offer.
    chosen_slugs = SearchParams.from_query_args(
        MultiDict(parse_qsl(urlsplit(page_path).query, keep_blank_values=True))
    ).marketplaces
    cheapest_anywhere = offers[0] if offers else None
    offers, chosen_count = catalog.chosen_first(offers, chosen_slugs)
    # The suggested offer: the picture is its own (it is the item the page offers first).
    lead = offers[0].product if offers else None
    # The product is named as its listing card named it, by the group's best title, not the
    # suggested offer's marketplace title (which its own row still shows).
    named_by = _group_lead(offers) if offers else None
    heading = named_by.title if named_by else str(lead_offer(index_offers).get("title") or "")
    picture = lead if lead is None or lead.image_url else named_by
    series = catalog.price_history(session_db, offers, fx=fx, display_currency=currency)
    chart = price_history_svg(
        series,
        format_amount=lambda minor: _format(minor, currency),
        now=datetime.now(UTC),
        title=f"Price history of {heading}",
    )
    forms = {
        offer.product.id: AddToCartForm(
            formdata=None, product_id=str(offer.product.id), quantity=1, next=page_path
        )
        for offer in offers
    }
    return render_template(
        "catalog/product.html",
        group_id=group_id,
        offers=offers,
        index_offers=index_offers,
        lead=named_by,
        heading=heading,
        picture=picture,
        lead_hit=index_offers[0] if index_offers else None,
        chart=chart,
        series=series,
        series_colour=series_colour,
        forms=forms,
        page_path=page_path,
        focus_product_id=session.pop(CART_FOCUS_SESSION_KEY, None),
        rates_as_of=fx.as_of,
        match_labels=MATCH_LABELS,
        matching=_matching_summary(offers),
        chosen_count=chosen_count if chosen_count < len(offers) else 0,
        chosen_names=list(dict.fromkeys(offer.marketplace.name for offer in offers[:chosen_count])),
        best_label=(
            "Best price"
            if not offers or offers[0] is cheapest_anywhere
            else "Best price on the marketplaces you chose"
        ),
        all_offers_url=url_for("catalog.product", group_id=group_id),
    )


def _group_lead(offers: list[catalog.GroupOffer]) -> Product:
    """The offer whose title names the product: the one search_index.groups.lead_offer picks
    for the group's listing card, by the same rule over the same offer fields."""
    by_document_id = {
        document_id(offer.marketplace.slug, offer.product.external_id): offer.product
        for offer in offers
    }
    chosen = lead_offer(
        [
            {
                "id": key,
                "available": product.available,
                "image_url": product.image_url,
                "brand": product.brand,
                "rating_count": product.rating_count,
                "title": product.title,
            }
            for key, product in by_document_id.items()
        ]
    )
    return by_document_id[str(chosen["id"])]


def _matching_summary(offers: list[catalog.GroupOffer]) -> str | None:
    """How this product's offers were put together, in one sentence (None for a single offer).

    Each offer carries the matching method and confidence of warehouse.matching; the weakest
    evidence is what the shopper should know about.
    """
    if len(offers) < 2:
        return None
    matched = [
        (offer.product.match_method, offer.product.match_confidence)
        for offer in offers
        if offer.product.match_method in MATCH_LABELS
    ]
    if not matched:
        return None
    used = {method for method, _ in matched}
    methods = [f"by {phrase}" for method, phrase in MATCH_PHRASES.items() if method in used]
    lowest = min((c for _, c in matched if c is not None), default=None)
    evidence = methods[0] if len(methods) == 1 else f"{', '.join(methods[:-1])} or {methods[-1]}"
    sentence = f"These offers were matched as one product {evidence}"
    if lowest is not None and lowest >= 1:
        sentence += " (confidence 100%)"  # every offer matched for certain: nothing "or more"
    elif lowest is not None:
        sentence += f" (confidence {int(lowest * 100)}% or more)"
    return sentence + "."


def _offers_from_index_document(document_id: str) -> list[catalog.GroupOffer]:
    """Offers of an ungrouped product: its search document id names marketplace + external id."""
    if "--" not in document_id:
        return []
    try:
        document = search_client().index(index_uid()).get_document(document_id)
    except Exception:  # missing document or search down: the caller falls back to a 404
        return []
    marketplace_slug = getattr(document, "marketplace", None)
    external_id = getattr(document, "external_id", None)
    if not marketplace_slug or not external_id:
        return []
    product = catalog.find_offer(db_session(), str(marketplace_slug), str(external_id))
    if product is None:
        return []
    fx = fx_table()
    currency = display_currency()
    if product.relation_token:
        offers = catalog.group_offers(
            db_session(), product.relation_token, fx=fx, display_currency=currency
        )
        if offers:
            return offers
    return catalog.sort_offers(
        [
            catalog.GroupOffer(
                product=product,
                marketplace=product.marketplace,
                display_price_minor=charged_price_minor(
                    fx, product.price_minor, product.currency, currency
                ),
                usd_price_minor=fx.convert_or_none(product.price_minor, product.currency, "USD"),
            )
        ]
    )


def _format(minor: int, currency: str) -> str:
    from storefront import format_money

    return format_money(minor, currency)


# --- Stores ------------------------------------------------------------------------------------


@bp.get("/stores")
def stores() -> str:
    """Every active marketplace: logo, rating, description, country, currency, offers,
    categories and what OneCart can do there."""
    return render_template("catalog/stores.html", stores=catalog.store_directory(db_session()))
