"""Pure rules of retrieval and answers: budget bounds, constraint checks, the "nothing fits"
message, safe links, and the LLM prose guard (with an injected HTTP transport)."""

from __future__ import annotations

import json
from dataclasses import replace
from decimal import Decimal
from typing import Any

import httpx

from assistant.answer import RELAX_ADVICE, build_answer, safe_link
from assistant.budget import Budget
from assistant.config import AssistantSettings
from assistant.constraints import budget_usd_bounds, offer_meets_budget, unmet_constraints
from assistant.hybrid_evidence import Evidence, answering_hits, named_product, unserved_interest
from assistant.intent import parse_intent
from assistant.llm import ProseRejected, answer_facts, check_prose, write_prose
from assistant.retrieval import Candidate, Relaxation, Retrieval, keyword_query
from assistant.vocabulary import CatalogVocabulary
from commerce.fx import FxTable
from tests.assistant.catalog import FX

VOCABULARY = CatalogVocabulary.from_facets(
    brands=["Sony", "Hisense", "LG", "Thermos"],
    categories=["Televisions", "Headphones", "Insulated Mugs & Flasks"],
    marketplaces={"shopwave": "ShopWave", "kiondo": "Kiondo Market"},
)


def _offer(**fields: Any) -> dict[str, Any]:
    base = {
        "id": "kiondo--KD-TV65",
        "group_id": "g-lg-65",
        "marketplace": "kiondo",
        "marketplace_name": "Kiondo Market",
        "external_id": "KD-TV65",
        "title": "LG UHD UR80 Smart LED TV 65-inch",
        "description": "Variant: 65-inch Titan Black.",
        "brand": "LG",
        "category": "Televisions",
        "price_minor": 7_990_000,
        "currency": "KES",
        "price_usd_minor": 61699,
        "rating": 4.1,
        "available": True,
        "product_url": "https://kiondo.example/KD-TV65",
    }
    base.update(fields)
    return base


def test_budget_bounds_round_outwards_so_no_exact_match_is_lost() -> None:
    low, high = budget_usd_bounds(Budget("KES", 100_000, 200_000), FX)
    # 1,000.00 KES = 7.722007… USD -> 772 cents; 2,000.00 KES = 15.444… -> 1545 cents.
    assert (low, high) == (772, 1545)


def test_offer_budget_is_checked_exactly_in_the_budget_currency() -> None:
    offer = _offer(price_minor=4600, currency="EUR")  # 46.00 EUR = 50.00 USD exactly
    assert offer_meets_budget(offer, Budget("USD", None, 5000), FX)
    assert not offer_meets_budget(offer, Budget("USD", None, 4999), FX)
    assert not offer_meets_budget(_offer(currency="XXX"), Budget("USD", None, 5000), FX)


def test_a_suggestion_is_checked_against_every_constraint() -> None:
    intent = parse_intent(
        "65-inch LG TV under 700 dollars rated 4+ stars, not from ShopWave", VOCABULARY
    )
    product = _offer()
    assert unmet_constraints(intent, _offer(), product, FX) == []
    assert unmet_constraints(intent, _offer(marketplace="shopwave"), product, FX) == [
        "exclude_marketplace"
    ]
    assert unmet_constraints(intent, _offer(rating=None), product, FX) == ["rating"]
    assert unmet_constraints(intent, _offer(available=False), product, FX) == ["available"]
    assert unmet_constraints(intent, _offer(price_minor=9_990_000), product, FX) == ["budget"]
    wrong_size = _offer(title="LG TV 55-inch", description="Variant: 55-inch.")
    assert unmet_constraints(intent, wrong_size, wrong_size, FX) == ["spec"]
    other_brand = _offer(brand="Hisense")
    assert unmet_constraints(intent, other_brand, other_brand, FX) == ["brand"]


def test_brand_and_category_are_read_from_the_product_when_an_offer_lacks_them() -> None:
    intent = parse_intent("LG television", VOCABULARY)
    nameless = _offer(marketplace="fakestore", brand=None, category="televisions")
    assert unmet_constraints(intent, nameless, _offer(), FX) == []


def test_a_product_naming_an_excluded_substance_breaks_the_request() -> None:
    intent = parse_intent("a BPA-free travel mug without plastic", VOCABULARY)
    assert intent.excluded_substances == ("bpa", "plastic")
    assert "bpa" not in intent.keywords and "plastic" not in intent.keywords
    for title, description in (
        ("Steel travel mug", "18/8 stainless steel, BPA-free."),
        ("Steel travel mug", "No BPA, zero plastic, free of phthalates."),
        ("Steel travel mug (bpa free)", "Plastic-free packaging."),
        ("Steel travel mug", "Keeps coffee hot."),
    ):
        mug = _offer(title=title, description=description, category="Insulated Mugs & Flasks")
        assert unmet_constraints(intent, mug, mug, FX) == [], description
    for title, description in (
        ("Travel mug", "Contains BPA."),
        ("Travel mug with plastic lid", "Keeps coffee hot."),
        ("Travel mug", "BPA-free cup with a plastics straw."),
    ):
        mug = _offer(title=title, description=description, category="Insulated Mugs & Flasks")
        assert unmet_constraints(intent, mug, mug, FX) == ["exclude_substance"], description


def test_a_product_of_an_excluded_size_breaks_the_request() -> None:
    intent = parse_intent("an LG TV, not 65 inch", VOCABULARY)
    assert "not 65-inch" in [c.label for c in intent.constraints()]
    assert unmet_constraints(intent, _offer(), _offer(), FX) == ["exclude_spec"]
    small = _offer(title="LG 55-inch TV", description="Variant: 55-inch.")
    assert unmet_constraints(intent, small, small, FX) == []


def test_a_product_titled_with_an_excluded_word_breaks_the_request() -> None:
    intent = parse_intent("an LG TV but not the OLED", VOCABULARY)
    assert intent.excluded_words == ("oled",) and "oled" not in intent.keywords
    assert "not “oled”" in [c.label for c in intent.constraints()]
    oled = _offer(title="LG OLED65UR80 TV Black")
    assert unmet_constraints(intent, oled, oled, FX) == []  # a model code is not the word
    oled = _offer(title="LG 65-inch OLED TV", description="Self-lit pixels.")
    assert unmet_constraints(intent, oled, oled, FX) == ["exclude_word"]
    led = _offer(title="LG UHD UR80 Smart LED TV", description="Brighter than OLED.")
    assert unmet_constraints(intent, led, led, FX) == []  # what the description compares with


def test_an_excluded_word_in_the_description_breaks_the_request_unless_compared() -> None:
    # "without bluetooth" kept a speaker described as "portable bluetooth speaker": only titles
    # were read.
    intent = parse_intent("a speaker without bluetooth", VOCABULARY)
    speaker = _offer(
        title="JBL Flip 6",
        description="Waterproof portable Bluetooth speaker.",
        category="Speakers",
    )
    assert unmet_constraints(intent, speaker, speaker, FX) == ["exclude_word"]
    wired = _offer(
        title="Sony wired speaker",
        description="No Bluetooth needed: plug it in.",
        category="Speakers",
    )
    assert unmet_constraints(intent, wired, wired, FX) == []
    intent = parse_intent("headphones without noise cancelling", VOCABULARY)
    anc = _offer(
        title="Sony WH-1000XM5",
        description="Industry-leading noise-cancelling.",
        category="Headphones",
    )
    assert unmet_constraints(intent, anc, anc, FX) == ["exclude_word"]


def test_excluded_words_are_left_out_by_the_index_too() -> None:
    # Negative terms (Meilisearch's "-word"), so the products that name them do not take the
    # places of those that fit; substances are not (that would leave out "plastic-free").
    intent = parse_intent("a tv, not the pro max or oled", VOCABULARY)
    assert keyword_query(intent) == '-"pro max" -"oled"'
    intent = parse_intent("a water bottle, no plastic", VOCABULARY)
    assert "-" not in keyword_query(intent)


def test_a_free_of_word_no_rule_reads_is_searched_as_a_phrase_not_for_the_thing() -> None:
    # "apple-free" where the index knows no brand Apple searched for "apple" and "free".
    intent = parse_intent("apple-free hands-free headphones", VOCABULARY)
    assert keyword_query(intent) == '"apple free" "hands free"'


def test_hits_of_the_one_kind_meaning_finds_answer_just_under_the_floor() -> None:
    # "stay focused in a noisy open-plan office" on the demo catalog: its twenty nearest are
    # all noise-cancelling headphones, at 0.64-0.66, under the 0.68 floor; the held-out set lost
    # them (and "film my mountain bike rides" its action cameras). Near products of one kind
    # are an answer; near products of every kind (a small catalog without the product) not.
    near = [(f"g-h{i}", 0.66 - i * 0.002, "Headphones") for i in range(10)]
    hits = [{"group_id": g, "title": "Headphones", "category": c} for g, _, c in near]
    other = {"group_id": "g-far", "title": "Speaker", "category": "Speakers"}
    evidence = Evidence(
        keyword_matches=4,
        word_share={},
        similarity={**{g: sim for g, sim, _ in near}, "g-far": 0.58},
        categories={**{g: c for g, _, c in near}, "g-far": "Speakers"},
    )
    kept, by_words = answering_hits([*hits, other], evidence, 0.68)
    assert [h["group_id"] for h in kept] == [h["group_id"] for h in hits] and not by_words
    # "aaaa bbbb" has nearest of one kind too (headphones named "A30529A18A"), less near: 0.637.
    evidence = replace(evidence, similarity={g: sim - 0.023 for g, sim, _ in near})
    assert answering_hits(hits, evidence, 0.68) == ([], False)
    mixed = [("g-shoe", 0.644, "Running Shoes"), ("g-tv1", 0.604, "Televisions"),
             ("g-tv2", 0.604, "Televisions"), ("g-mug", 0.591, "Mugs"), ("g-tv3", 0.579,
             "Televisions"), ("g-book", 0.559, "Books")]  # fmt: skip
    evidence = Evidence(
        keyword_matches=5,
        word_share={"g-shoe": 1 / 3, "g-tv1": 1 / 3},
        similarity={g: sim for g, sim, _ in mixed},
        categories={g: c for g, _, c in mixed},
    )
    hits = [{"group_id": g, "title": g, "category": c} for g, _, c in mixed]
    assert answering_hits(hits, evidence, 0.68) == ([], False)


def test_a_hybrid_hit_answers_by_most_words_the_implied_product_or_similarity() -> None:
    # "make smoothies for breakfast": one word of four ("make smoothies breakfast blender") in
    # a blender, and the int8 offer vectors put some blenders under the floor (the evaluation
    # lost 7 of 10 blenders to the floor before the implied product counted).
    hits = [
        {"group_id": "g-blender", "title": "Ninja Professional Blender 1000W", "category": ""},
        {"group_id": "g-juicer", "title": "Slow Juicer", "description": "For smoothies."},
        {"group_id": "g-kettle", "title": "Electric Kettle 1.7L", "category": "Kitchen"},
        {"group_id": "g-tv", "title": "Samsung 55-inch TV", "category": "Televisions"},
    ]
    evidence = Evidence(
        keyword_matches=3,
        word_share={"g-blender": 0.25, "g-juicer": 0.75, "g-kettle": 0.25},
        similarity={"g-blender": 0.61, "g-juicer": 0.64, "g-kettle": 0.70, "g-tv": 0.52},
    )
    kept, by_words = answering_hits(hits, evidence, 0.68, ("blender",))
    assert [h["group_id"] for h in kept] == ["g-blender", "g-juicer", "g-kettle"] and by_words
    kept, by_words = answering_hits(hits, evidence, 0.68)
    assert [h["group_id"] for h in kept] == ["g-juicer", "g-kettle"] and by_words
    kept, by_words = answering_hits(hits[2:], evidence, 0.68)
    assert [h["group_id"] for h in kept] == ["g-kettle"] and not by_words


def test_sizes_become_exact_phrases_in_the_keyword_query() -> None:
    intent = parse_intent("quiet 65-inch TV", VOCABULARY)
    assert keyword_query(intent) == 'quiet "65 inch"'


def test_the_product_a_use_implies_ranks_after_the_shoppers_own_words() -> None:
    intent = parse_intent("boil water quickly for tea, under 30 dollars", VOCABULARY)
    assert keyword_query(intent) == "boil water quickly tea electric kettle"
    assert intent.budget is not None  # the budget still filters; the product only ranks
    assert [c.kind for c in intent.constraints()] == ["budget", "available"]


def _retrieval(
    candidates: list[Candidate], relaxations: list[Relaxation] | None = None
) -> Retrieval:
    return Retrieval(
        mode="keyword",
        candidates=candidates,
        total_matches=len(candidates),
        fallback_reason="the embedding model is not installed",
        relaxations=relaxations or [],
    )


def test_nothing_fits_names_the_constraint_to_relax_with_the_cheapest_price() -> None:
    intent = parse_intent("Sony headphones under 5 dollars", VOCABULARY)
    relax = [
        Relaxation("budget", "at most $5.00", 12, "the cheapest match costs $14.99"),
        Relaxation("brand", "Sony", 3),
    ]
    answer = build_answer(
        intent.text, intent, _retrieval([], relax), fx=FX, display_currency="USD",
        semantic_available=False,
    )  # fmt: skip
    assert not answer.found
    assert "Without “at most $5.00” there are 12 matches" in answer.message
    assert "raise your budget" in answer.message
    assert any("Keyword search only" in note for note in answer.notes)


def test_one_match_without_a_constraint_is_said_in_the_singular() -> None:
    intent = parse_intent("wireless headphones except Sony", VOCABULARY)
    relax = [Relaxation("exclude_brand", "not Sony", 1)]
    answer = build_answer(
        intent.text, intent, _retrieval([], relax), fx=FX, display_currency="USD",
        semantic_available=False,
    )  # fmt: skip
    assert "Without “not Sony” there is 1 match." in answer.message, answer.message


def test_every_piece_of_advice_reads_as_a_sentence() -> None:
    """ "Try to try another brand" was the brand's advice."""
    for kind, advice in RELAX_ADVICE.items():
        assert not advice.startswith(("try ", "to ")), (kind, advice)
    intent = parse_intent("a sony tv", VOCABULARY)
    answer = build_answer(
        intent.text, intent, _retrieval([], [Relaxation("brand", "Sony", 4)]), fx=FX,
        display_currency="USD", semantic_available=False,
    )  # fmt: skip
    assert "Try to try" not in answer.message
    assert answer.message.endswith("Try to ask for another brand."), answer.message


def test_answers_show_display_prices_reasons_and_store_ids_and_scores() -> None:
    intent = parse_intent("LG TV under 80k shillings", VOCABULARY, default_currency="USD")
    candidate = Candidate("g-lg-65", _offer(), _offer(), 0.87)
    answer = build_answer(
        intent.text, intent, _retrieval([candidate]), fx=FX, display_currency="USD",
        semantic_available=True,
    )  # fmt: skip
    suggestion = answer.suggestions[0]
    assert suggestion.display_price_minor == 61699  # 79,900.00 KES at 129.50 per USD
    assert suggestion.budget_price_minor == 7_990_000
    assert "at most KES80,000.00" in suggestion.reasons
    stored = answer.to_json()
    assert stored["product_ids"] == ["kiondo--KD-TV65"]
    assert stored["suggestions"][0]["score"] == 0.87
    assert stored["path"] == "keyword"
    assert stored["intent"]["budget"]["currency"] == "KES"
    json.dumps(stored)  # JSON-safe as stored in AIPrompt.response_json


def test_only_http_links_from_marketplaces_reach_a_page() -> None:
    assert safe_link("https://shop.example/p/1") == "https://shop.example/p/1"
    assert safe_link("javascript:alert(1)") is None
    assert safe_link("//evil.example/x") is None
    assert safe_link("/static/logos/a.svg", allow_relative=True) == "/static/logos/a.svg"
    assert safe_link("/static/logos/a.svg") is None


def _found_answer() -> Any:
    intent = parse_intent("LG TV", VOCABULARY)
    candidate = Candidate("g-lg-65", _offer(), _offer(), 0.9)
    return build_answer(
        intent.text, intent, _retrieval([candidate]), fx=FX, display_currency="USD",
        semantic_available=True,
    )  # fmt: skip


def test_prose_with_invented_numbers_links_or_brands_is_refused() -> None:
    facts = answer_facts(_found_answer())
    brands = ["LG", "Sony"]
    assert check_prose("The LG UR80 is a solid pick from Kiondo Market.", facts, brands)
    for bad in (
        "The LG TV costs only $99 today.",
        "See https://evil.example for more.",
        "Sony makes a better one.",
        "<b>Great</b> TV.",
    ):
        try:
            check_prose(bad, facts, brands)
        except ProseRejected:
            continue
        raise AssertionError(f"accepted: {bad}")


def _llm_settings() -> AssistantSettings:
    return AssistantSettings(
        ONECART_ASSISTANT_LLM_BASE_URL="http://127.0.0.1:9/v1",
        ONECART_ASSISTANT_LLM_MODEL="tiny",
        ONECART_ASSISTANT_LLM_API_KEY="secret",
    )


def test_llm_prose_is_used_when_grounded() -> None:
    seen: dict[str, Any] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen["url"] = str(request.url)
        seen["auth"] = request.headers.get("authorization")
        seen["body"] = json.loads(request.content)
        reply = {"choices": [{"message": {"content": "The LG UR80 from Kiondo Market fits."}}]}
        return httpx.Response(200, json=reply)

    client = httpx.Client(transport=httpx.MockTransport(handler))
    prose = write_prose(_found_answer(), _llm_settings(), known_brands=["LG"], client=client)
    assert prose == "The LG UR80 from Kiondo Market fits."
    assert seen["url"] == "http://127.0.0.1:9/v1/chat/completions"
    assert seen["auth"] == "Bearer secret"
    assert seen["body"]["model"] == "tiny"
    assert "LG UHD UR80" in seen["body"]["messages"][1]["content"]


def test_llm_failures_and_timeouts_fall_back_to_the_template() -> None:
    def failing(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    def broken(request: httpx.Request) -> httpx.Response:
        return httpx.Response(500, text="oops")

    def invented(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"choices": [{"message": {"content": "Only $1!"}}]})

    for handler in (failing, broken, invented):
        client = httpx.Client(transport=httpx.MockTransport(handler))
        assert write_prose(_found_answer(), _llm_settings(), client=client) is None
    assert write_prose(_found_answer(), AssistantSettings()) is None  # not configured


def test_ratings_in_answers_are_decimals_not_floats() -> None:
    answer = _found_answer()
    assert answer.suggestions[0].rating == Decimal("4.1")


def test_a_suggestion_in_a_three_decimal_currency_shows_the_price_the_cart_charges() -> None:
    """79,900.00 KES is KWD189.483 at these rates; a card can be charged only in steps of 10
    fils, so the cart (and the listing) says KWD189.480: the assistant must say the same."""
    fx = FxTable(per_usd={**FX.per_usd, "KWD": Decimal("0.30634")})
    intent = parse_intent("LG TV", VOCABULARY, default_currency="KWD")
    candidate = Candidate("g-lg-65", _offer(), _offer(), 0.87)

    [suggestion] = build_answer(
        intent.text, intent, _retrieval([candidate]), fx=fx, display_currency="KWD",
        semantic_available=True,
    ).suggestions  # fmt: skip

    exact = fx.convert_or_none(7_990_000, "KES", "KWD")
    assert exact is not None and exact % 10
    assert suggestion.display_price_minor == exact - exact % 10


def test_the_product_a_request_names_is_the_head_of_its_opening_phrase() -> None:
    for text, head in (
        ("a black leather wallet", "wallet"),
        ("I'm looking for a smart fridge for the kitchen", "fridge"),
        ("portable air conditioner, under $300", "conditioner"),
        ("a black leather wallet please", "wallet"),
        ("a gift for a coffee lover", None),
        ("something to boil water for tea", None),
        ("watch netflix on a big screen", None),
        ("start a youtube vlog", None),
        ("track my heart rate and sleep", None),
        ("go for a jog in the morning", None),
    ):
        assert named_product(text) == head, text


def test_the_product_a_request_names_is_found_wherever_it_is_said() -> None:
    # Not only where the rule expected it (the head of the opening phrase): after a clause about
    # who or what for, after "like" or a verb of wanting; never the person or purpose after
    # "for" ("a gift for a runner"), nor a word the catalog holds for a brand or category.
    vocabulary = CatalogVocabulary.from_facets(
        brands=["Sony", "Thermos"], categories=["Running Shoes", "Headphones"], marketplaces={}
    )
    for text, head in (
        ("for my commute, a leather wallet", "wallet"),
        ("for my dad I need a leather wallet", "wallet"),
        ("under $50, a coffee grinder please", "grinder"),
        ("something like a leather wallet", "wallet"),
        ("a gift for a runner under $50", None),
        ("something to keep coffee hot for a commute", None),
        ("for my sister, something nice", None),
        ("for my dad, a Thermos", None),
    ):
        assert named_product(text, vocabulary) == head, text


def test_an_interest_the_catalog_has_no_products_for_is_told_apart() -> None:
    # "a gift for my sister who loves yoga": the catalog has no yoga products, and its Yoga
    # laptops are only named so; an interest the catalog's categories hold is served.
    vocabulary = CatalogVocabulary.from_facets(
        brands=["Lenovo"], categories=["Laptops", "Running Shoes", "Coffee Makers", "Toys & Games"],
        marketplaces={},
    )  # fmt: skip
    for text, interest in (
        ("a gift for my sister who loves yoga", "yoga"),
        ("something for my dad, he is into fishing", "fishing"),
        ("a present for a friend who enjoys knitting", "knitting"),
        ("a gift for my brother who loves running", None),
        ("a gift for a coffee lover", None),
        ("a gift for my mum who loves coffee", None),
        ("a yoga mat", None),
        ("a gift for a teen into gaming", None),
    ):
        assert unserved_interest(text, vocabulary) == interest, text


def test_each_suggestion_names_only_the_alternative_it_is_and_the_message_says_or() -> None:
    """ "Sony or Hisense": the Sony headphones were said to be "Sony" and "Hisense", and the
    answer was "for Sony, Hisense" as if both at once; so with categories and marketplaces."""
    intent = parse_intent(
        "Sony or Hisense headphones or televisions from ShopWave or Kiondo", VOCABULARY
    )
    assert set(intent.brands) == {"Sony", "Hisense"}
    assert len(intent.categories) == 2
    assert set(intent.marketplaces) == {"shopwave", "kiondo"}
    sony = _offer(
        id="shopwave--hp-1", group_id="g-sony", marketplace="shopwave", marketplace_name="ShopWave",
        title="Sony WH-1000XM5 Headphones", brand="Sony", category="Headphones",
        price_minor=34999, currency="USD",
    )  # fmt: skip
    answer = build_answer(
        intent.text, intent, _retrieval([Candidate("g-sony", sony, sony, 1.0)]), fx=FX,
        display_currency="USD", semantic_available=False,
    )  # fmt: skip
    reasons = answer.suggestions[0].reasons
    assert "Sony" in reasons and "Hisense" not in reasons, reasons
    assert "Headphones" in reasons and "Televisions" not in reasons, reasons
    assert "sold on ShopWave" in reasons, reasons
    assert not any("Kiondo" in reason for reason in reasons), reasons
    assert "Sony or Hisense" in answer.message, answer.message
    assert "Headphones or Televisions" in answer.message, answer.message


def test_a_suggestion_is_said_to_match_only_the_words_it_mentions() -> None:
    """ "waterproof running shoes … size 42": shoes mentioning neither word were said to match
    "waterproof size 42", and the answer "I found 1 product matching “waterproof size 42”"."""
    intent = parse_intent("Sony headphones, noise cancelling and waterproof", VOCABULARY)
    assert set(intent.keywords.split()) >= {"noise", "cancelling", "waterproof"}, intent.keywords
    sony = _offer(
        id="shopwave--hp-1", group_id="g-sony", marketplace="shopwave", marketplace_name="ShopWave",
        title="Sony WH-1000XM5 Wireless Noise Cancelling Headphones", brand="Sony",
        category="Headphones", description="For flights.", price_minor=34999, currency="USD",
    )  # fmt: skip
    answer = build_answer(
        intent.text, intent, _retrieval([Candidate("g-sony", sony, sony, 1.0)]), fx=FX,
        display_currency="USD", semantic_available=False,
    )  # fmt: skip
    reasons = answer.suggestions[0].reasons
    assert 'matches "noise cancelling"' in reasons, reasons
    assert not any("waterproof" in reason for reason in reasons), reasons
    assert "waterproof" not in answer.message, answer.message
    assert any("mentions “waterproof”" in note for note in answer.notes), answer.notes
    nothing = parse_intent("Sony headphones, waterproof", VOCABULARY)
    answer = build_answer(
        nothing.text, nothing, _retrieval([Candidate("g-sony", sony, sony, 1.0)]), fx=FX,
        display_currency="USD", semantic_available=False,
    )  # fmt: skip
    assert not any("matches" in reason for reason in answer.suggestions[0].reasons)
    assert "matching" not in answer.message, answer.message
