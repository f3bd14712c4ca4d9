"""Retrieval on the real Meilisearch: the small catalog with real all-MiniLM-L6-v2 vectors
(skipped, with the reason, when the model is not installed) and the same catalog without them."""

from __future__ import annotations

import meilisearch

from assistant.config import AssistantSettings
from assistant.constraints import unmet_constraints
from assistant.embeddings import Embedder
from assistant.index_profile import load_index_profile
from assistant.retrieval import MODE_HYBRID, MODE_KEYWORD
from assistant.service import answer_prompt
from search_index.settings import EMBEDDER_NAME
from tests.assistant.catalog import FX

SETTINGS = AssistantSettings()


def _ask(client: meilisearch.Client, uid: str, prompt: str, mode: str = MODE_HYBRID, **kw):  # type: ignore[no-untyped-def]
    return answer_prompt(
        prompt,
        client=client,
        index_uid=uid,
        fx=FX,
        settings=SETTINGS,
        mode=mode,
        use_llm=False,
        **kw,
    )


def test_the_vector_index_declares_the_user_provided_embedder(
    meili: meilisearch.Client, vector_index: str
) -> None:
    embedders = meili.http.get(f"indexes/{vector_index}/settings/embedders")
    assert embedders[EMBEDDER_NAME]["source"] == "userProvided"
    assert embedders[EMBEDDER_NAME]["dimensions"] == 384
    assert load_index_profile(meili, vector_index).has_vectors


def test_hybrid_search_finds_by_meaning_what_keywords_miss(
    meili: meilisearch.Client, vector_index: str, embedder: Embedder
) -> None:
    prompt = "something to keep my tea warm on my commute"
    hybrid = _ask(meili, vector_index, prompt)
    keyword = _ask(meili, vector_index, prompt, mode=MODE_KEYWORD)
    assert hybrid.path == "hybrid"
    assert hybrid.semantic_available
    top_groups = [s.group_id for s in hybrid.suggestions[:3]]
    assert {"g-thermos-mug", "g-contigo-flask"} & set(top_groups), top_groups
    assert keyword.path == "keyword"
    keyword_top = [s.group_id for s in keyword.suggestions[:3]]
    assert keyword_top != top_groups


def test_every_suggestion_meets_every_parsed_constraint(
    meili: meilisearch.Client, vector_index: str, embedder: Embedder
) -> None:
    answer = _ask(meili, vector_index, "a 65-inch TV under 700 dollars, not from ShopWave")
    assert answer.suggestions
    assert {s.group_id for s in answer.suggestions} == {"g-lg-65"}
    profile = load_index_profile(meili, vector_index)
    assert profile.vocabulary.category_values["televisions"]
    for suggestion in answer.suggestions:
        offer = meili.index(vector_index).get_document(suggestion.offer_id)
        document = dict(offer)
        assert unmet_constraints(answer.intent, document, document, FX) == []
        assert suggestion.marketplace != "shopwave"
    # The cheapest offer of the group that fits: Kiondo's 79,900 KES (≈ $617) beats €580 (≈ $630).
    assert answer.suggestions[0].marketplace == "kiondo"


def test_cheapest_first_orders_by_the_suggested_offer_price(
    meili: meilisearch.Client, vector_index: str, embedder: Embedder
) -> None:
    answer = _ask(meili, vector_index, "cheapest TV")
    prices = [s.display_price_minor for s in answer.suggestions]
    assert prices == sorted(prices)
    assert answer.suggestions[0].group_id == "g-samsung-55"


def test_out_of_stock_offers_are_not_suggested_unless_asked(
    meili: meilisearch.Client, vector_index: str, embedder: Embedder
) -> None:
    assert not _ask(meili, vector_index, "garmin gps running watch").suggestions
    wanted = _ask(meili, vector_index, "garmin gps running watch even if out of stock")
    assert [s.group_id for s in wanted.suggestions] == ["g-garmin-265"]


def test_nothing_fits_suggests_the_constraint_to_relax(
    meili: meilisearch.Client, vector_index: str, embedder: Embedder
) -> None:
    answer = _ask(meili, vector_index, "Sony headphones under 5 dollars")
    assert not answer.found
    assert answer.relaxations[0].kind == "budget"
    assert "$349.99" in answer.relaxations[0].hint
    assert "raise your budget" in answer.message


def test_an_index_without_vectors_answers_with_keywords_and_says_why(
    meili: meilisearch.Client, keyword_index: str, embedder: Embedder | None
) -> None:
    answer = _ask(meili, keyword_index, "thermos travel mug")
    assert answer.path == "keyword"
    assert [s.group_id for s in answer.suggestions][:1] == ["g-thermos-mug"]
    reason = "no embeddings yet" if embedder is not None else "not installed"
    assert any(reason in note for note in answer.notes), answer.notes


def test_a_missing_model_package_falls_back_to_keywords(
    meili: meilisearch.Client, keyword_index: str
) -> None:
    settings = AssistantSettings(ONECART_ASSISTANT_MODEL_PACKAGE="onecart_no_such_model_package")
    answer = answer_prompt(
        "thermos travel mug", client=meili, index_uid=keyword_index, fx=FX, settings=settings,
        use_llm=False,
    )  # fmt: skip
    assert answer.path == "keyword"
    assert not answer.semantic_available
    assert any("not installed" in note for note in answer.notes)
    assert answer.suggestions


def test_a_meaningless_request_finds_nothing_by_meaning_either(
    meili: meilisearch.Client, vector_index: str, embedder: Embedder
) -> None:
    # The nearest vectors of any text are "the closest products": without a floor, hybrid
    # search suggested a running shoe and a TV for "aaaaaaaa", where keywords found nothing.
    for prompt in ("aaaaaaaa", "asdfgh", "qwertyuiop asdf", "xqzv blorp", "lorem ipsum dolor"):
        hybrid = _ask(meili, vector_index, prompt)
        keyword = _ask(meili, vector_index, prompt, mode=MODE_KEYWORD)
        assert hybrid.path == "hybrid" and keyword.suggestions == []
        assert hybrid.suggestions == [], (prompt, [s.group_id for s in hybrid.suggestions])
    # Requests that mean something still find by meaning what no keyword matches.
    for prompt, wanted in (
        ("a big screen for the living room", {"g-samsung-55", "g-lg-65", "g-hisense-65"}),
        ("a gift for a coffee lover", {"g-thermos-mug", "g-contigo-flask", "g-delonghi-dedica"}),
        ("something to keep my tea warm on my commute", {"g-thermos-mug", "g-contigo-flask"}),
    ):
        found = _ask(meili, vector_index, prompt)
        assert wanted & {s.group_id for s in found.suggestions[:3]}, prompt


def test_a_product_the_catalog_lacks_is_not_answered_with_unrelated_ones(
    meili: meilisearch.Client, vector_index: str, embedder: Embedder
) -> None:
    # The catalog has no wallet, fridge, air conditioner or charger. One word of each matched
    # something ("black" TVs, "smart" TVs, "portable" speaker, "wireless" headphones), so
    # hybrid search filled the answer with the nearest vectors: ten products, a book among them.
    for prompt in (
        "a black leather wallet",
        "a smart fridge",
        "portable air conditioner",
        "wireless charger",
    ):
        answer = _ask(meili, vector_index, prompt)
        assert answer.path == "hybrid"
        assert answer.suggestions == [], (prompt, [s.group_id for s in answer.suggestions])
        assert answer.message.startswith("Nothing in the catalog fits"), answer.message
    # No kettle either: at most what is close in meaning (hot drinks), and the answer says the
    # words matched nothing.
    answer = _ask(meili, vector_index, "something to boil water for tea")
    found = {s.group_id for s in answer.suggestions}
    assert found <= {"g-thermos-mug", "g-contigo-flask", "g-delonghi-dedica"}, found
    if found:
        assert any("closest in meaning" in note for note in answer.notes), answer.notes
        # Nor does a suggestion claim to match words it was not found by.
        for suggestion in answer.suggestions:
            assert 'close in meaning to "boil water tea"' in suggestion.reasons
            assert not any(reason.startswith("matches") for reason in suggestion.reasons)
    # What the catalog has is still found by meaning, and nothing unrelated pads the answer.
    for prompt, wanted in (
        ("something to keep my tea warm on my commute", {"g-thermos-mug", "g-contigo-flask"}),
        ("a big screen for the living room", {"g-samsung-55", "g-lg-65", "g-hisense-65"}),
    ):
        answer = _ask(meili, vector_index, prompt)
        assert {s.group_id for s in answer.suggestions} == wanted, prompt


def test_a_use_is_answered_by_words_when_a_product_names_what_it_implies(
    meili: meilisearch.Client, vector_index: str, embedder: Embedder
) -> None:
    # "jog" implies running shoes (assistant.glossary): shoes named so match the request's
    # words, even if few of the shopper's own words are in them.
    answer = _ask(meili, vector_index, "go for a jog in the morning")
    assert {s.group_id for s in answer.suggestions} == {"g-nike-revolution", "g-asics-contend"}
    assert not any("closest in meaning" in note for note in answer.notes), answer.notes


def test_a_product_said_not_to_be_wanted_is_not_suggested(
    meili: meilisearch.Client, vector_index: str, embedder: Embedder
) -> None:
    # "not the revolution" was searched: the one Nike shoe, the Revolution, came first.
    answer = _ask(meili, vector_index, "nike running shoes but not the revolution")
    assert "g-nike-revolution" not in [s.group_id for s in answer.suggestions]
    assert not answer.found and answer.message.startswith("Nothing in the catalog fits")
    # What was excluded is what to allow: the one match is the Revolution.
    assert answer.relaxations[0].kind == "exclude_word", answer.relaxations
    assert "Without “not “revolution”” there is 1 match" in answer.message, answer.message
    answer = _ask(meili, vector_index, "running shoes, not the revolution")
    assert [s.group_id for s in answer.suggestions] == ["g-asics-contend"]


def test_excluded_words_and_names_leave_out_what_names_them(
    meili: meilisearch.Client, vector_index: str, embedder: Embedder
) -> None:
    # "without bluetooth" kept the JBL speaker, whose description says "bluetooth speaker".
    answer = _ask(meili, vector_index, "a portable speaker without bluetooth")
    assert "g-jbl-flip" not in [s.group_id for s in answer.suggestions]
    assert not answer.found and answer.relaxations[0].kind == "exclude_word", answer.relaxations
    # Names the index knows are filtered out; a word of the same list it does not know
    # ("philips") is no search word but a word no suggestion may name.
    for prompt in ("a tv, not Samsung or LG", "a tv, not Samsung, Philips or LG"):
        answer = _ask(meili, vector_index, prompt)
        assert {s.group_id for s in answer.suggestions} == {"g-hisense-65"}, prompt
    answer = _ask(meili, vector_index, "a tv, not Hisense or Philips")
    assert {s.group_id for s in answer.suggestions} == {"g-samsung-55", "g-lg-65"}
    assert answer.intent.keywords == ""
    # A phrase is excluded whole: "not the 4k qled" leaves the Hisense (its title says both).
    answer = _ask(meili, vector_index, "a 65 inch tv, not the 4k qled")
    assert [s.group_id for s in answer.suggestions] == ["g-lg-65"]
    # Keyword search too (the negative terms are the index's own).
    answer = _ask(meili, vector_index, "running shoes, not the revolution", mode=MODE_KEYWORD)
    assert [s.group_id for s in answer.suggestions] == ["g-asics-contend"]


def test_a_product_no_listing_names_is_said_to_be_missing_and_its_alternatives_labelled(
    meili: meilisearch.Client, vector_index: str, embedder: Embedder
) -> None:
    # The catalog has no coffee grinder, milk frother or soundbar: hybrid search answered with
    # the nearest products as if they were matches ("I found 3 products").
    for prompt, missing, nearest in (
        ("a coffee grinder", "grinder", "g-delonghi-dedica"),
        ("a milk frother", "frother", "g-delonghi-dedica"),
        ("a bluetooth soundbar", "soundbar", "g-jbl-flip"),
    ):
        answer = _ask(meili, vector_index, prompt)
        assert answer.missing_product == missing and not answer.found, prompt
        assert answer.message.startswith("Nothing in the catalog fits"), answer.message
        assert f"no product is called “{missing}”" in answer.message
        assert "nearest alternative" in answer.message and "by meaning" in answer.message
        assert answer.suggestions[0].group_id == nearest
        for suggestion in answer.suggestions:
            assert suggestion.reasons[0] == f"an alternative: no product is called “{missing}”"
            assert not any(reason.startswith("matches") for reason in suggestion.reasons)
    answer = _ask(meili, vector_index, "a black leather wallet")
    assert answer.suggestions == [] and "no product is called “wallet”" in answer.message
    # Keyword search says so too, and does not claim the alternatives are close in meaning.
    answer = _ask(meili, vector_index, "a coffee grinder", mode=MODE_KEYWORD)
    assert answer.missing_product == "grinder" and "by your other words" in answer.message
    # What the catalog has, or a request for a use or a gift, is not "missing".
    for prompt in (
        "a travel mug",
        "a portable speaker",
        "a gift for a coffee lover",
        "a big screen for the living room",
        "something to keep my tea warm on my commute",
        "go for a jog in the morning",
    ):
        answer = _ask(meili, vector_index, prompt)
        assert answer.missing_product is None and answer.found, prompt


def test_compare_prices_lists_every_marketplace_offer_of_the_product_despite_exclusions(
    meili: meilisearch.Client, keyword_index: str
) -> None:
    # "not Hisense" is a filter, "without qled" a negative term (-"qled") of the query: neither
    # may drop the LG TV's other marketplace from the comparison, nor "compare prices" be a
    # word excluded.
    for prompt in (
        "a 65 inch tv not Hisense, compare prices",
        "a 65 inch tv without qled, compare prices across marketplaces",
    ):
        answer = _ask(meili, keyword_index, prompt, mode=MODE_KEYWORD)
        assert answer.intent.compare
        assert "compare" not in " ".join(c.label for c in answer.intent.constraints())
        assert [s.group_id for s in answer.suggestions] == ["g-lg-65"], prompt
        compared = answer.suggestions[0].compared
        assert [o.marketplace for o in compared] == ["kiondo", "fakestore"], prompt
        assert compared[0].display_price_minor <= compared[1].display_price_minor
        assert "compared" in answer.message.lower()
        stored = answer.to_json()["suggestions"][0]["compared_offers"]
        assert [o["marketplace"] for o in stored] == ["kiondo", "fakestore"]


def test_without_asking_to_compare_a_suggestion_lists_no_comparison(
    meili: meilisearch.Client, keyword_index: str
) -> None:
    answer = _ask(meili, keyword_index, "a 65 inch tv not Hisense", mode=MODE_KEYWORD)
    assert [s.group_id for s in answer.suggestions] == ["g-lg-65"]
    assert answer.suggestions[0].compared == ()


def test_a_gift_for_a_runner_finds_running_products_by_the_catalogs_word(
    meili: meilisearch.Client, keyword_index: str
) -> None:
    # The product is no word of the request: "runner" is who it is for, and the catalog's
    # "Running Shoes" says what they use (keyword search found nothing for "gift runner").
    answer = _ask(meili, keyword_index, "a gift for a runner under $50", mode=MODE_KEYWORD)
    assert answer.found and answer.missing_product is None
    assert answer.suggestions[0].group_id in {"g-asics-contend", "g-nike-revolution"}
    assert {s.category for s in answer.suggestions} <= {"Running Shoes", "Smartwatches"}


def test_a_product_after_a_clause_about_whom_it_is_for_is_checked_for_missing(
    meili: meilisearch.Client, keyword_index: str
) -> None:
    answer = _ask(meili, keyword_index, "for my dad, a black leather wallet", mode=MODE_KEYWORD)
    assert answer.missing_product == "wallet" and not answer.found


def test_nonsense_is_said_not_to_be_understood_with_how_to_ask(
    meili: meilisearch.Client, vector_index: str, embedder: Embedder
) -> None:
    # "asdkjh qwe" was answered "no product is called “qwe”", as if "qwe" were a product.
    for mode in (MODE_HYBRID, MODE_KEYWORD):
        for prompt in ("asdkjh qwe", "xqzv blorp"):
            answer = _ask(meili, vector_index, prompt, mode=mode)
            assert answer.suggestions == [] and answer.missing_product is None, prompt
            assert answer.message.startswith("I did not understand"), answer.message
            assert "for example" in answer.message
    # A product the catalog lacks is still said to be missing, not misunderstood.
    answer = _ask(meili, vector_index, "a black leather wallet", mode=MODE_KEYWORD)
    assert answer.missing_product == "wallet"


def test_an_interest_the_catalog_has_nothing_for_is_said_not_padded(
    meili: meilisearch.Client, vector_index: str, embedder: Embedder
) -> None:
    # The catalog has nothing for yoga: the nearest by meaning were offered as "close in
    # meaning" (Yoga laptops on the full catalog).
    answer = _ask(meili, vector_index, "a gift for my sister who loves yoga")
    assert answer.suggestions == [], [s.group_id for s in answer.suggestions]
    assert "nothing for “yoga”" in answer.message, answer.message
    # What the catalog serves is still found.
    answer = _ask(meili, vector_index, "a gift for my dad who loves coffee")
    assert answer.suggestions and "nothing for" not in answer.message


def test_a_product_the_catalog_lacks_asked_with_an_article_is_said_missing_not_misunderstood(
    meili: meilisearch.Client, vector_index: str, embedder: Embedder
) -> None:
    # "a drone" was "I did not understand “a drone”" while "a drone under $100" was "no product
    # is called “drone”": the shopper was clear, the catalog lacks it.
    for mode in (MODE_HYBRID, MODE_KEYWORD):
        for prompt, head in (("a drone", "drone"), ("I need an umbrella", "umbrella")):
            answer = _ask(meili, vector_index, prompt, mode=mode)
            assert answer.suggestions == [] and answer.missing_product == head, (prompt, mode)
            assert f"no product is called “{head}”" in answer.message, answer.message
            assert "did not understand" not in answer.message
