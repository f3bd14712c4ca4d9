"""Product matching: which offers are the same product, and how sure we are."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from decimal import Decimal

import pytest

from adapters.gtin import gtin_check_digit
from onecart.settings import REPO_ROOT
from warehouse.matching import (
    CONFIDENCE_TITLE_MAX,
    ConflictingOffersError,
    GroupAssignment,
    OfferForMatching,
    assign_groups,
    group_id_for,
    infer_brand,
    model_candidates_in_title,
    normalize_brand,
    normalize_gtin_key,
    normalize_model,
    title_similarity,
    title_tokens,
)

SONY_GTIN = "4548736132610"  # valid EAN-13
OTHER_GTIN = "5901234123457"  # valid EAN-13 (GS1's own example)


def offer(
    marketplace: str,
    external_id: str,
    title: str,
    brand: str | None = None,
    model: str | None = None,
    gtin: str | None = None,
) -> OfferForMatching:
    return OfferForMatching(marketplace, external_id, title, brand=brand, model=model, gtin=gtin)


def by_key(offers: list[OfferForMatching]) -> dict[tuple[str, str], object]:
    return {(a.marketplace, a.external_id): a for a in assign_groups(offers)}


# --- Normalization --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("4548736132610", "4548736132610"),
        ("4 548736 132610", "4548736132610"),
        ("045487361326", None),  # a UPC-A that fails its check digit
        ("012345678905", "0012345678905"),  # valid UPC-A becomes 13 digits
        ("4548736132611", None),  # wrong check digit
        ("0000000000000", None),
        ("96385074", "0000096385074"),  # valid GTIN-8
        ("abc", None),
        (None, None),
    ],
)
def test_gtin_keys_are_canonical_and_checksum_verified(
    raw: str | None, expected: str | None
) -> None:
    assert normalize_gtin_key(raw) == expected


def test_the_same_gtin_written_differently_gives_one_key() -> None:
    assert normalize_gtin_key("0012345678905") == normalize_gtin_key("012345678905")
    assert normalize_gtin_key("00012345678905") == normalize_gtin_key("12345678905".zfill(12))


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("WH-1000XM5", "WH1000XM5"),
        ("wh-1000xm5", "WH 1000 XM5"),
        ("SM-S928B/DS", "sm s928b ds"),
        ("RM-400417R", "RM400417R"),
    ],
)
def test_model_numbers_ignore_case_and_separators(a: str, b: str) -> None:
    assert normalize_model(a) is not None
    assert normalize_model(a) == normalize_model(b)


@pytest.mark.parametrize("word", ["Pro", "Black", "X", "", "65-inch", "128GB", "4K", None])
def test_words_and_sizes_are_not_model_numbers(word: str | None) -> None:
    assert normalize_model(word) is None


@pytest.mark.parametrize(
    ("a", "b"),
    [("De'Longhi", "DELONGHI"), ("Déjà Brew", "deja brew"), ("Hewlett-Packard", "HP")],
)
def test_brands_ignore_case_accents_punctuation_and_aliases(a: str, b: str) -> None:
    assert normalize_brand(a) == normalize_brand(b)


def test_model_candidates_come_from_tokens_and_adjacent_pairs() -> None:
    assert "WH1000XM5" in model_candidates_in_title("Sony WH-1000XM5 Headphones - Black")
    assert "WH1000XM5" in model_candidates_in_title("SONY WH 1000XM5 headphones")
    assert "65INCH" not in model_candidates_in_title("Hisense 65-inch 4K TV")


def test_brand_is_inferred_only_from_the_start_of_a_title() -> None:
    known = {"sony", "apple", "delonghi"}
    assert infer_brand("SONY WH1000XM5 Headphones", known) == "sony"
    assert infer_brand("De'Longhi Dedica EC685", known) == "delonghi"
    assert infer_brand("Case for Apple iPhone 15", known) is None
    assert infer_brand("Unknown Brand Kettle", known) is None


def test_title_similarity_requires_identical_numbers() -> None:
    a = title_tokens("Samsung 65-inch Crystal UHD Smart TV", brand="Samsung")
    b = title_tokens("Samsung Crystal UHD Smart TV 65-inch", brand="Samsung")
    c = title_tokens("Samsung Crystal UHD Smart TV 55-inch", brand="Samsung")
    assert title_similarity(a, b) == 1.0
    assert title_similarity(a, c) == 0.0


# --- Grouping -------------------------------------------------------------------------------


def test_offers_with_the_same_valid_gtin_form_one_group() -> None:
    groups = by_key(
        [
            offer("shopwave", "1", "Sony WH-1000XM5 Headphones", "Sony", "WH-1000XM5", SONY_GTIN),
            offer("bazaar", "B1", "Casque Sony WH1000XM5", "Sony", None, SONY_GTIN),
        ]
    )
    first, second = groups[("shopwave", "1")], groups[("bazaar", "B1")]
    assert first.group_id == second.group_id == group_id_for(f"gtin:{SONY_GTIN}")
    assert (first.method, first.confidence) == ("gtin", Decimal("1.00"))


def test_an_invalid_gtin_never_groups_offers() -> None:
    bad = "4548736132611"
    groups = by_key(
        [
            offer("dummymart", "1", "Blender 500W", gtin=bad),
            offer("bazaar", "2", "Yoga mat", gtin=bad),
        ]
    )
    assert groups[("dummymart", "1")].group_id != groups[("bazaar", "2")].group_id
    assert {g.method for g in groups.values()} == {"single"}


def test_brand_and_model_join_the_gtin_group_of_the_same_product() -> None:
    groups = by_key(
        [
            offer("shopwave", "1", "Sony WH-1000XM5 Headphones", "Sony", "WH-1000XM5", SONY_GTIN),
            offer("naijamall", "N1", "Sony WH-1000XM5", "SONY", "WH-1000XM5", SONY_GTIN),
            offer("kiondo", "K1", "SONY WH1000XM5 Headphones Black", "Sony", "WH1000XM5"),
        ]
    )
    kiondo = groups[("kiondo", "K1")]
    assert kiondo.group_id == groups[("shopwave", "1")].group_id
    assert (kiondo.method, kiondo.confidence) == ("brand_model", Decimal("0.90"))


def test_a_model_number_in_a_title_joins_with_lower_confidence() -> None:
    groups = by_key(
        [
            offer("shopwave", "1", "Sony WH-1000XM5 Headphones", "Sony", "WH-1000XM5", SONY_GTIN),
            offer("fakestore", "7", "SONY WH1000XM5 Wireless Headphones Black"),
        ]
    )
    fakestore = groups[("fakestore", "7")]
    assert fakestore.group_id == groups[("shopwave", "1")].group_id
    assert fakestore.method == "brand_model"
    assert fakestore.confidence == Decimal("0.85")


def test_a_model_shared_by_two_gtins_does_not_guess_between_them() -> None:
    groups = by_key(
        [
            offer("shopwave", "1", "Sony WH-1000XM5 Black", "Sony", "WH-1000XM5", SONY_GTIN),
            offer("bazaar", "2", "Sony WH-1000XM5 Silver", "Sony", "WH-1000XM5", OTHER_GTIN),
            offer("kiondo", "3", "Sony WH1000XM5", "Sony", "WH1000XM5"),
        ]
    )
    kiondo = groups[("kiondo", "3")].group_id
    assert kiondo not in {groups[("shopwave", "1")].group_id, groups[("bazaar", "2")].group_id}


def test_brand_model_groups_form_without_any_gtin() -> None:
    groups = by_key(
        [
            offer("kiondo", "1", "Ramtons Air Fryer 4.1L", "Ramtons", "RM-400417R"),
            offer("bazaar", "2", "Friteuse Ramtons RM400417R", "RAMTONS", "RM400417R"),
        ]
    )
    assert groups[("kiondo", "1")].group_id == groups[("bazaar", "2")].group_id
    assert groups[("kiondo", "1")].matching_key == "bm:ramtons|RM400417R"


def test_nearly_identical_titles_of_one_brand_match_conservatively() -> None:
    groups = by_key(
        [
            offer("fakestore", "1", "Samsung 65-inch Crystal UHD Smart TV", "Samsung"),
            offer("bazaar", "2", "Samsung Crystal UHD Smart TV 65-inch", "Samsung"),
        ]
    )
    first, second = groups[("fakestore", "1")], groups[("bazaar", "2")]
    assert first.group_id == second.group_id
    assert first.method == second.method == "title"
    assert first.confidence <= CONFIDENCE_TITLE_MAX


@pytest.mark.parametrize(
    ("title_a", "brand_a", "title_b", "brand_b"),
    [
        # Different screen size: a different product.
        (
            "Samsung 65-inch Crystal UHD Smart TV",
            "Samsung",
            "Samsung 55-inch Crystal UHD Smart TV",
            "Samsung",
        ),
        # Different generation.
        ("Apple iPhone 15 128GB Black", "Apple", "Apple iPhone 14 128GB Black", "Apple"),
        # Same words, different brands.
        (
            "Wireless Noise Cancelling Headphones",
            "Sony",
            "Wireless Noise Cancelling Headphones",
            "Bose",
        ),
        # Too little in common.
        ("Philips Steam Iron Azur", "Philips", "Philips Air Fryer Essential XL", "Philips"),
        # Too few words to tell anything.
        ("Nike Shoes", "Nike", "Nike Shoes", "Nike"),
        # One names the format, the other does not: maybe the other edition.
        (
            "The Garden Keeper by Margaret Ogola (Paperback)",
            "Margaret Ogola",
            "The Garden Keeper by Margaret Ogola",
            "Margaret Ogola",
        ),
        # Another colour is another product.
        ("JBL Flip Portable Speaker Black", "JBL", "JBL Flip Portable Speaker Blue", "JBL"),
    ],
)
def test_title_matching_refuses_doubtful_pairs(
    title_a: str, brand_a: str, title_b: str, brand_b: str
) -> None:
    groups = by_key(
        [offer("fakestore", "a", title_a, brand_a), offer("bazaar", "b", title_b, brand_b)]
    )
    assert groups[("fakestore", "a")].group_id != groups[("bazaar", "b")].group_id
    assert {g.method for g in groups.values()} == {"single"}


def test_a_title_match_never_joins_a_group_that_already_has_that_marketplace() -> None:
    groups = by_key(
        [
            offer(
                "shopwave", "1", "Garmin Venu Smartwatch AMOLED Graphite", "Garmin", gtin=SONY_GTIN
            ),
            offer(
                "dummymart", "2", "Garmin Venu Smartwatch AMOLED Graphite", "Garmin", gtin=SONY_GTIN
            ),
            offer("dummymart", "3", "Garmin Venu Smartwatch AMOLED Graphite Edition", "Garmin"),
        ]
    )
    assert groups[("dummymart", "3")].group_id != groups[("shopwave", "1")].group_id


def test_long_part_numbers_in_titles_count_as_model_numbers() -> None:
    groups = by_key(
        [
            offer("kiondo", "1", "Garmin Venu 3 Smartwatch", "Garmin", "010-85732-99"),
            offer("fakestore", "2", "GARMIN 0108573299 Smartwatch Graphite"),
            offer("fakestore", "3", "GARMIN 2024 Calendar"),
        ]
    )
    assert groups[("fakestore", "2")].group_id == groups[("kiondo", "1")].group_id
    assert groups[("fakestore", "2")].confidence == Decimal("0.85")
    assert "2024" not in model_candidates_in_title("GARMIN 2024 Calendar")


def test_titles_on_the_same_marketplace_are_not_matched() -> None:
    groups = by_key(
        [
            offer("bazaar", "1", "Samsung 65-inch Crystal UHD Smart TV", "Samsung"),
            offer("bazaar", "2", "Samsung Crystal UHD Smart TV 65-inch", "Samsung"),
        ]
    )
    assert groups[("bazaar", "1")].group_id != groups[("bazaar", "2")].group_id


def test_a_lone_offer_is_a_single_group_that_keeps_its_key_for_later_matches() -> None:
    (alone,) = assign_groups(
        [offer("shopwave", "1", "Sony WH-1000XM5", "Sony", "WH-1000XM5", SONY_GTIN)]
    )
    assert (alone.method, alone.confidence) == ("single", Decimal("1.00"))
    assert alone.group_id == group_id_for(f"gtin:{SONY_GTIN}")


def test_group_ids_are_stable_whatever_the_input_order() -> None:
    offers = [
        offer("shopwave", "1", "Sony WH-1000XM5 Headphones", "Sony", "WH-1000XM5", SONY_GTIN),
        offer("kiondo", "K1", "SONY WH1000XM5 Headphones Black", "Sony", "WH1000XM5"),
        offer("fakestore", "7", "SONY WH1000XM5 Wireless Headphones Black"),
        offer("fakestore", "8", "Samsung 65-inch Crystal UHD Smart TV", "Samsung"),
        offer("bazaar", "2", "Samsung Crystal UHD Smart TV 65-inch", "Samsung"),
        offer("bazaar", "3", "Plain ceramic mug"),
    ]
    expected = assign_groups(offers)
    shuffled = offers[:]
    random.Random(7).shuffle(shuffled)
    assert assign_groups(shuffled) == expected
    assert assign_groups(offers + offers[:2]) == expected  # repeats are ignored
    assert all(a.group_id.startswith("g-") and len(a.group_id) == 18 for a in expected)


def test_a_repeated_offer_with_different_fields_is_refused_whichever_comes_first() -> None:
    first = offer("shopwave", "1", "Sony WH-1000XM5 Headphones", "Sony", "WH-1000XM5", SONY_GTIN)
    second = offer("shopwave", "1", "Sony WH-1000XM5 Headphones", "Sony", "WH-1000XM5")
    for offers in ([first, second], [second, first]):
        with pytest.raises(ConflictingOffersError, match="shopwave"):
            assign_groups(offers)


# --- Stability: the same offers give the same groups and ids ---------------------------------

MARKETPLACES = ("shopwave", "kiondo", "dummymart", "fakestore", "naijamall", "bazaar")
BRANDS = ("Sony", "Samsung", "Garmin", "Ramtons", "Acme", "Philips")
WORDS = (
    "wireless", "headphones", "noise", "cancelling", "smart", "tv", "crystal", "uhd", "watch",
    "amoled", "trail", "runner", "shoe", "mesh", "knit", "kettle", "steel", "cordless", "fryer",
    "digital", "portable", "speaker", "waterproof", "compact", "travel", "ceramic", "deluxe",
    "womens", "mens", "kids", "black", "blue", "paperback", "55-inch", "65-inch", "2l", "1.7l",
)  # fmt: skip


def valid_gtin(serial: int) -> str:
    body = f"{400000000000 + serial:012d}"
    return body + str(gtin_check_digit(body))


def synthetic_catalog(seed: int, products: int = 120) -> list[OfferForMatching]:
    """Offers of `products` products listed on 1-4 marketplaces each, written the way different
    stores write them: GTIN or not, brand and model in fields or only in the title, words in
    another order, an extra word here and there. Families of products of one brand share most
    title words, so title matches compete for the same offers. Keys are unique."""
    rng = random.Random(seed)
    offers: list[OfferForMatching] = []
    for serial in range(products):
        brand = BRANDS[serial % len(BRANDS)]
        family = serial // 3  # three close relatives per family: five title words in common
        words = [*random.Random(seed * 1000 + family).sample(WORDS, 5), rng.choice(WORDS)]
        model = f"{brand[:2].upper()}-{1000 + serial}X" if rng.random() < 0.5 else None
        for marketplace in rng.sample(MARKETPLACES, rng.randint(1, 4)):
            listing = words[:]
            rng.shuffle(listing)
            if rng.random() < 0.3:
                listing.append(rng.choice(WORDS))
            shows_model = model is not None and rng.random() < 0.5
            if model is not None and not shows_model and rng.random() < 0.5:
                listing.insert(0, model.replace("-", ""))
            brand_in_field = rng.random() < 0.7
            title = " ".join(([] if brand_in_field and rng.random() < 0.5 else [brand]) + listing)
            offers.append(
                OfferForMatching(
                    marketplace,
                    f"{marketplace[:2]}{rng.getrandbits(40):x}",
                    title,
                    brand=brand if brand_in_field else None,
                    model=model if shows_model else None,
                    gtin=valid_gtin(serial) if rng.random() < 0.4 else None,
                )
            )
    return offers


def assignment_rows(assignments: list[GroupAssignment]) -> list[list[str]]:
    return [
        [a.marketplace, a.external_id, a.group_id, a.method, str(a.confidence), a.matching_key]
        for a in assignments
    ]


def test_the_synthetic_catalog_exercises_every_matching_rule() -> None:
    methods = {a.method for a in assign_groups(synthetic_catalog(1))}
    assert methods == {"gtin", "brand_model", "title", "single"}


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_shuffled_offers_get_the_same_groups_and_ids(seed: int) -> None:
    offers = synthetic_catalog(seed)
    expected = assign_groups(offers)
    for shuffle_seed in range(5):
        shuffled = offers[:]
        random.Random(shuffle_seed).shuffle(shuffled)
        assert assign_groups(shuffled) == expected
    assert assign_groups(reversed(offers)) == expected
    assert assign_groups(offers + offers[::3]) == expected  # exact repeats are ignored


HASH_SEED_SCRIPT = """
import json, sys
from warehouse.matching import OfferForMatching, assign_groups
offers = [OfferForMatching(*fields) for fields in json.load(sys.stdin)]
rows = [[a.marketplace, a.external_id, a.group_id, a.method, str(a.confidence), a.matching_key]
        for a in assign_groups(offers)]
json.dump(rows, sys.stdout)
"""


def test_groups_and_ids_do_not_depend_on_the_hash_seed() -> None:
    """Sets of title words and model numbers iterate in a per-process order (PYTHONHASHSEED);
    nothing that decides a group may follow it. Separate processes, like separate pipeline runs."""
    offers = synthetic_catalog(7, products=300)
    payload = json.dumps(
        [[o.marketplace, o.external_id, o.title, o.brand, o.model, o.gtin, o.mpn] for o in offers]
    )
    results = []
    for hash_seed in ("0", "1", "4242"):
        completed = subprocess.run(
            [sys.executable, "-c", HASH_SEED_SCRIPT],
            input=payload,
            capture_output=True,
            text=True,
            cwd=REPO_ROOT,
            env={**os.environ, "PYTHONHASHSEED": hash_seed},
            timeout=60,
            check=True,
        )
        results.append(json.loads(completed.stdout))
    expected = assignment_rows(assign_groups(offers))
    assert any(row[3] == "title" for row in expected)
    assert results == [expected] * 3


@pytest.mark.parametrize(("weak_id", "strong_id"), [("1", "2"), ("2", "1")])
def test_the_most_similar_title_wins_whichever_offer_sorts_first(
    weak_id: str, strong_id: str
) -> None:
    """Two listings of one store compete for the same offer elsewhere; only one may join it. The
    identical title must win over the one that is merely close (7 of 8 words), whatever the ids:
    before, the offer whose id sorted first took the place."""
    groups = by_key(
        [
            offer("bazaar", weak_id, "Acme Trail Runner Shoe Mesh Lite Breathable Knit", "Acme"),
            offer(
                "bazaar",
                strong_id,
                "Acme Trail Runner Shoe Mesh Lite Breathable Knit Womens",
                "Acme",
            ),
            offer(
                "shopwave", "hub", "Acme Womens Trail Runner Shoe Mesh Lite Breathable Knit", "Acme"
            ),
        ]
    )
    hub, strong, weak = (
        groups[k] for k in (("shopwave", "hub"), ("bazaar", strong_id), ("bazaar", weak_id))
    )
    assert strong.group_id == hub.group_id
    assert (strong.method, hub.method) == ("title", "title")
    assert weak.group_id != hub.group_id and weak.method == "single"
