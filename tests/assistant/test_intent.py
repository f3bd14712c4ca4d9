"""The intent parser, table-driven: each row is a request and what it must be read as."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from assistant.budget import Budget
from assistant.intent import MAX_PROMPT_CHARS, parse_intent
from assistant.specs import spec_pattern
from assistant.spelling import damerau_distance
from assistant.vocabulary import CatalogVocabulary, category_key_for_value

VOCABULARY = CatalogVocabulary.from_facets(
    brands=[
        "Sony", "Samsung", "Apple", "Nike", "Adidas", "Asics", "Thermos", "Contigo", "Stanley",
        "Hydro Flask", "De'Longhi", "L'Oréal Paris", "The North Face", "New Balance", "Hisense",
        "LG", "TCL", "Mattel", "Under Armour", "Garmin",
    ],
    categories=[
        "Televisions", "Running Shoes", "running-shoes", "Insulated Mugs & Flasks", "mugs-flasks",
        "Headphones", "Smartphones", "Backpacks", "Laptops", "Coffee Makers", "Smartwatches",
        "Beauty & Personal Care", "beauty", "Toys & Games", "Kitchen Appliances",
    ],
    marketplaces={
        "shopwave": "ShopWave", "kiondo": "Kiondo Market", "dummymart": "DummyMart",
        "fakestore": "Fake Store Berlin", "naijamall": "NaijaMall", "bazaar": "Euro Bazaar",
    },
)  # fmt: skip

BUDGETS: list[tuple[str, str, Budget | None]] = [
    ("running shoes under 40 dollars", "USD", Budget("USD", None, 4000)),
    # Digits before what they count are a count, not dollars ("at least $2.00" was read).
    ("a phone with at least 2 cameras", "USD", None),
    ("a board game for up to 4 players", "USD", None),
    ("a laptop with at least 3 ports", "USD", None),
    ("a charger with at least 2 usb ports", "USD", None),
    ("headphones under 50 thanks", "USD", Budget("USD", None, 5000, currency_assumed=True)),
    ("headphones under 50 wireless", "USD", Budget("USD", None, 5000, currency_assumed=True)),
    ("between 10k and 20k naira", "USD", Budget("NGN", 1_000_000, 2_000_000)),
    ("less than €50", "USD", Budget("EUR", None, 5000)),
    ("max 3000 KES thermos", "USD", Budget("KES", None, 300_000)),
    ("KSh 3,000 max", "USD", Budget("KES", None, 300_000)),
    ("a $25 gift", "EUR", Budget("USD", None, 2500)),
    ("mug for 15 euros", "USD", Budget("EUR", None, 1500)),
    ("over 100 dollars", "USD", Budget("USD", 10000, None)),
    ("from 50 to 80 pounds", "USD", Budget("GBP", 5000, 8000)),
    ("around 50 euros", "USD", Budget("EUR", 4000, 6000)),
    ("up to 19.99 usd", "USD", Budget("USD", None, 1999)),
    ("under 40", "KES", Budget("KES", None, 4000, currency_assumed=True)),
    ("10-20k naira", "USD", Budget("NGN", 1_000_000, 2_000_000)),
    ("at most 2 million naira", "USD", Budget("NGN", None, 200_000_000)),
    ("under 5000 bob", "USD", Budget("KES", None, 500_000)),
    ("65-inch tv", "USD", None),
    ("43-55 inch tv", "USD", None),
    ("phone with 256GB under 2 years old", "USD", None),
    ("4 stars or more", "USD", None),
    ("iphone 15", "USD", None),
    # Not an amount a shopper can pay: no budget rather than a part of the number read as one.
    ("tv under 1e308 dollars", "USD", None),
    ("tv under -5 dollars", "USD", None),
    ("mug under 0.001 dollars", "USD", None),
    ("mug under 1.999 dollars", "USD", None),
    # More than anyone pays (and past Decimal's 28 digits, which raised): no limit, no budget.
    ("tv under 1" + "0" * 60 + " dollars", "USD", None),
    ("tv between 1 and 1" + "0" * 100 + " euros", "USD", None),
    ("tv under 99999999999999999999999 dollars", "USD", None),
    # A decimal comma, as written across Europe: cents, not a thousands separator.
    ("tv under 40,50 euros", "USD", Budget("EUR", None, 4050)),
    ("Becher unter 12,99 €", "USD", Budget("EUR", None, 1299)),
    ("between 9,50 and 20 euros", "USD", Budget("EUR", 950, 2000)),
    # Both ends said apart: one range, in the currency either end names.
    ("tv over $400 and under $500", "USD", Budget("USD", 40000, 50000)),
    ("shoes under 60 euros but more than 30", "USD", Budget("EUR", 3000, 6000)),
    ("at least 2k and at most 5k KES", "USD", Budget("KES", 200_000, 500_000)),
    # Amounts in words, exactly, when a currency says they are money.
    ("running shoes under fifty dollars", "USD", Budget("USD", None, 5000)),
    ("around two hundred euros", "USD", Budget("EUR", 16000, 24000)),
    ("a hundred and twenty pounds", "USD", Budget("GBP", None, 12000)),
    ("headphones for twenty-five bucks", "USD", Budget("USD", None, 2500)),
    ("between twenty and forty-five euros", "USD", Budget("EUR", 2000, 4500)),
    ("twenty to thirty euros", "USD", Budget("EUR", 2000, 3000)),
    ("tv under fifteen hundred dollars", "USD", Budget("USD", None, 150_000)),
    ("under two thousand five hundred kes", "USD", Budget("KES", None, 250_000)),
    ("a phone under one million naira", "USD", Budget("NGN", None, 100_000_000)),
    ("a fifty dollar gift card", "USD", Budget("USD", None, 5000)),
    ("tv under ninety-nine thousand nine hundred and ninety-nine kes", "USD",
     Budget("KES", None, 9_999_900)),
    # Words that count things, or are no amount, are not a budget.
    ("one pair of shoes", "USD", None),
    ("a phone with at least two cameras", "USD", None),
    ("a gift for a man over fifty", "USD", None),
    ("five fifty dollars", "USD", None),
    ("under a thousand billion trillion dollars", "USD", None),
    ("under zero dollars", "USD", None),
    # A space between thousands ("5 000", also a thin or no-break space), lower-case codes.
    ("5 000 kes", "USD", Budget("KES", None, 500_000)),
    ("mug under 5 000 kes", "USD", Budget("KES", None, 500_000)),
    ("mug under 5\u202f000 KES", "USD", Budget("KES", None, 500_000)),
    ("tv under 45\u00a0000 ksh", "USD", Budget("KES", None, 4_500_000)),
    ("mug 5\u202f000 kes", "USD", Budget("KES", None, 500_000)),
    ("between 2 000 and 5 000 kes", "USD", Budget("KES", 200_000, 500_000)),
    ("tv under 1 234,50 eur", "USD", Budget("EUR", None, 123_450)),
    ("tv under 1 234,5 eur", "USD", Budget("EUR", None, 123_450)),
    ("tv under 1 234.5 eur", "USD", Budget("EUR", None, 123_450)),
    ("under 12 000", "KES", Budget("KES", None, 1_200_000, currency_assumed=True)),
    ("tv under 1 000 000 ngn", "USD", Budget("NGN", None, 100_000_000)),
    # A model number before an amount is not its thousands ("iPhone 15" for 200 dollars).
    ("iphone 15 200 dollars", "USD", Budget("USD", None, 20000)),
    ("pixel 8 500 dollars", "USD", Budget("USD", None, 50000)),
    # "no more than" is an upper limit only (it was also read as "more than": exactly $50);
    # "no less than" a lower one (it was read as "less than").
    ("headphones no more than 50 dollars", "USD", Budget("USD", None, 5000)),
    ("headphones not more than fifty quid", "USD", Budget("GBP", None, 5000)),
    ("tv no less than 300 dollars", "USD", Budget("USD", 30000, None)),
    ("tv not less than €300", "USD", Budget("EUR", 30000, None)),
    # A limit said after the amount.
    ("mug 15 dollars or less", "USD", Budget("USD", None, 1500)),
    ("mug £10 or under", "USD", Budget("GBP", None, 1000)),
    ("KSh 3,000 max", "USD", Budget("KES", None, 300_000)),
    ("tv 300 dollars or more", "USD", Budget("USD", 30000, None)),
    ("tv $300 and up", "USD", Budget("USD", 30000, None)),
    ("tv 300 euros minimum", "USD", Budget("EUR", 30000, None)),
    ("a mug for 20 dollars or so", "USD", Budget("USD", 1600, 2400)),
    # A currency the shop may have no rate for is still that currency, never the display one
    # ("5000 yen" was read as $5,000.00).
    ("tv under 5000 yen", "USD", Budget("JPY", None, 5000)),
    ("tv under 500 CHF", "EUR", Budget("CHF", None, 50000)),
    ("phone under 20,000 rupees", "USD", Budget("INR", None, 2_000_000)),
    ("tv under R5000", "USD", Budget("ZAR", None, 500_000)),
    ("mug under 30 canadian dollars", "USD", Budget("CAD", None, 3000)),
    ("mug under C$30", "USD", Budget("CAD", None, 3000)),
    ("radio under 50,000 ugandan shillings", "USD", Budget("UGX", None, 50_000)),
    ("phone under 2000 cedis", "USD", Budget("GHS", None, 200_000)),
    # "N5000" is naira after a cue; alone it is a model ("an N5000 processor").
    ("phone under N5000", "USD", Budget("NGN", None, 500_000)),
    ("a laptop with an N5000 processor", "USD", None),
    ("a 12 cup coffee maker", "USD", None),
    # "grand" is a thousand ("under 2 grand" was a budget of $2), and only ever money.
    ("tv under 2 grand", "USD", Budget("USD", None, 200_000, currency_assumed=True)),
    ("phone under a grand", "GBP", Budget("GBP", None, 100_000, currency_assumed=True)),
    # Halves in words: "one and a half grand" was no budget.
    ("laptop under one and a half grand", "USD",
     Budget("USD", None, 150_000, currency_assumed=True)),
    ("a tv for two and a half thousand euros", "USD", Budget("EUR", None, 250_000)),
    ("a laptop under a grand and a half", "GBP",
     Budget("GBP", None, 150_000, currency_assumed=True)),
    ("a bike under half a grand", "EUR", Budget("EUR", None, 50_000, currency_assumed=True)),
    ("one and a half dollars", "USD", Budget("USD", None, 150)),
    ("one and a half pairs of shoes", "USD", None),
    # European dot thousands: "€1.200" is twelve hundred euros (it was no budget).
    ("a laptop under €1.200", "USD", Budget("EUR", None, 120_000)),
    ("laptop under 1.200 euros", "USD", Budget("EUR", None, 120_000)),
    ("Fernseher bis 1.299,99 €", "USD", Budget("EUR", None, 129_999)),
    ("tv under 1.250.000 ngn", "USD", Budget("NGN", None, 125_000_000)),
    ("under 1.200", "EUR", Budget("EUR", None, 120_000, currency_assumed=True)),
    ("a 1.500 l water bottle", "USD", None),
    ("mug under 12.50 euros", "USD", Budget("EUR", None, 1250)),
    # Words after an upper limit are money in the display currency ("under fifty" was none);
    # an age or a count stays what it is.
    ("headphones under fifty", "EUR", Budget("EUR", None, 5000, currency_assumed=True)),
    ("a mug for less than twenty, for my dad", "KES",
     Budget("KES", None, 2000, currency_assumed=True)),
    ("toys for kids under ten", "USD", None),
    ("a gift for a boy under twelve", "USD", None),
    ("a phone with at most two cameras", "USD", None),
    ("a tent for up to four people", "USD", None),
    # "sub $50" is under $50 ("sub" was a search word); "1,5k" is fifteen hundred (no budget).
    ("headphones sub $50", "USD", Budget("USD", None, 5000)),
    ("headphones sub-$50", "USD", Budget("USD", None, 5000)),
    ("laptop under 1,5k euros", "USD", Budget("EUR", None, 150_000)),
    ("tv unter 2,5 tausend euro", "USD", None),
    # No one is two hundred years old: after a person, words past any age are money.
    ("a tent for four people under two hundred", "EUR",
     Budget("EUR", None, 20000, currency_assumed=True)),
    # "pound" after a number is a weight when a thing weighed follows ("20 pound dumbbell" was
    # £20.00); a gift or a voucher is still money.
    ("a 20 pound dumbbell", "USD", None),
    ("20 pound dumbbells", "USD", None),
    ("a 50-pound bag of rice", "USD", None),
    ("10 pounds of coffee beans", "USD", None),
    ("a 20 pound gift card", "USD", Budget("GBP", None, 2000)),
    ("a fifty pound voucher", "USD", Budget("GBP", None, 5000)),
    ("dumbbells under 20 pounds", "USD", Budget("GBP", None, 2000)),
    # "pound(s)" after an amount is sterling unless a thing sold by weight follows: nobody
    # weighs headphones in pounds, so both orders are a price of at most £20.
    ("20 pound headphones", "USD", Budget("GBP", None, 2000)),
    ("headphones under 20 pounds", "USD", Budget("GBP", None, 2000)),
    ("twenty pound headphones", "EUR", Budget("GBP", None, 2000)),
    ("headphones for 20 pounds or less", "USD", Budget("GBP", None, 2000)),
    # Words after a lower limit, around, or between two amounts are money in the display
    # currency too (they were search words); a person's age stays an age.
    ("headphones between twenty and forty", "USD",
     Budget("USD", 2000, 4000, currency_assumed=True)),
    ("headphones between twenty and forty dollars", "USD", Budget("USD", 2000, 4000)),
    ("a speaker from thirty to fifty", "EUR", Budget("EUR", 3000, 5000, currency_assumed=True)),
    ("headphones over fifty", "USD", Budget("USD", 5000, None, currency_assumed=True)),
    ("a tv over a thousand", "GBP", Budget("GBP", 100_000, None, currency_assumed=True)),
    ("headphones under a hundred", "USD", Budget("USD", None, 10000, currency_assumed=True)),
    ("a mug around thirty", "USD", Budget("USD", 2400, 3600, currency_assumed=True)),
    ("a mug for about twenty, please", "EUR", Budget("EUR", 1600, 2400, currency_assumed=True)),
    ("headphones around 30 quid", "USD", Budget("GBP", 2400, 3600)),
    ("around 30 quid", "USD", Budget("GBP", 2400, 3600)),
    ("a gift for my dad over fifty", "USD", None),
    ("a gift for grandma over seventy", "USD", None),
    ("something for my wife, who is around forty", "USD", None),
    ("toys for kids between five and ten", "USD", None),
    ("a tent for between two and four people", "USD", None),
    # Other languages' limits and currency words ("menos de 50 dólares" was four search words).
    ("auriculares por menos de 50 dólares", "EUR", Budget("USD", None, 5000)),
    ("un telefono de menos de 200 dolares", "USD", Budget("USD", None, 20000)),
    ("casque audio moins de 40 livres sterling", "USD", Budget("GBP", None, 4000)),
    ("écouteurs moins de 40 euros", "USD", Budget("EUR", None, 4000)),
    ("auriculares hasta 30 euros", "USD", Budget("EUR", None, 3000)),
    ("Fernseher bis 500 Euro", "USD", Budget("EUR", None, 50000)),
    ("Kopfhörer unter 30 Pfund", "USD", Budget("GBP", None, 3000)),
    ("un portatil de mas de 500 euros", "USD", Budget("EUR", 50000, None)),
    ("des livres pour enfants", "USD", None),
    # After kids, children, a child or a toddler, "under N" is an age unless a currency is said
    # ("toys for kids under 10" was a budget of $10); no child is fifty, so that is money.
    ("toys for kids under 10", "USD", None),
    ("a gift for a child under 5", "EUR", None),
    ("toys for children under 12", "USD", None),
    ("shoes for a toddler under 3", "USD", None),
    ("toys for kids between 5 and 10", "USD", None),
    ("toys for kids under 10 dollars", "USD", Budget("USD", None, 1000)),
    ("toys for kids under $10", "USD", Budget("USD", None, 1000)),
    ("toys for kids under 50", "USD", Budget("USD", None, 5000, currency_assumed=True)),
]  # fmt: skip


@pytest.mark.parametrize(("text", "display", "expected"), BUDGETS)
def test_budgets_are_read_exactly_in_their_currency(
    text: str, display: str, expected: Budget | None
) -> None:
    assert parse_intent(text, VOCABULARY, default_currency=display).budget == expected


CASES: list[tuple[str, dict[str, Any]]] = [
    ("something to keep my coffee hot", {"categories": (), "keywords": "keep coffee hot"}),
    ("a gift for a runner under 40 dollars", {"categories": (), "keywords": "gift runner"}),
    ("cheapest 65-inch TV with good reviews, not from ShopWave", {
        "categories": ("televisions",), "specs": ("65-inch",), "min_rating": Decimal("4.0"),
        "sort": "price_asc", "excluded_marketplaces": ("shopwave",), "keywords": ""}),
    ("laptop backpack by The North Face", {
        "categories": ("backpacks",), "brands": ("The North Face",), "keywords": "laptop"}),
    ("samsnug phone not from shopwave or naijamall", {
        "categories": ("smartphones",), "brands": ("Samsung",),
        "excluded_marketplaces": ("shopwave", "naijamall")}),
    ("best rated earbuds, no Apple", {
        "categories": ("headphones",), "excluded_brands": ("Apple",), "sort": "rating"}),
    ("two mugs from kiondo", {
        "categories": ("mugs-flasks",), "marketplaces": ("kiondo",), "quantity": 2}),
    ("3x Nike running shoes", {"brands": ("Nike",), "quantity": 3}),
    ("a pair of addidas sneakers", {
        "brands": ("Adidas",), "categories": ("running-shoes",), "quantity": 1}),
    ("a thermos for tea", {"brands": (), "categories": ("mugs-flasks",), "keywords": "tea"}),
    ("a Thermos flask", {"brands": ("Thermos",), "categories": ("mugs-flasks",)}),
    ("delonghi coffee machine", {"brands": ("De'Longhi",), "categories": ("coffee-makers",)}),
    ("loreal skincare", {"brands": ("L'Oréal Paris",), "categories": ("beauty",)}),
    ("hydroflask water bottle", {"brands": ("Hydro Flask",), "categories": ("mugs-flasks",)}),
    ("iphone 15 256gb", {
        "brands": ("Apple",), "categories": ("smartphones",), "specs": ("256GB",),
        "keywords": "iphone 15"}),
    ("a TV to watch movies", {"categories": ("televisions",), "keywords": "watch movies"}),
    ("headphnes for the gym", {"categories": ("headphones",), "keywords": "gym"}),
    ("televsion 55 inch", {"categories": ("televisions",), "specs": ("55-inch",)}),
    # "pouces" is French for inches: a size, not a search word.
    ("tv 50 pouces", {"categories": ("televisions",), "specs": ("50-inch",), "keywords": ""}),
    ("téléviseur 55 pouces", {"specs": ("55-inch",), "keywords": ""}),
    ("a tv, not 65 pouces", {"specs": (), "excluded_specs": ("65-inch",)}),
    ("headphones or speakers from Euro Bazaar only", {
        "categories": ("headphones", "speakers"), "marketplaces": ("bazaar",), "keywords": ""}),
    ("zapatillas de correr nike", {"categories": ("running-shoes",), "brands": ("Nike",)}),
    ("kopfhörer sony", {"categories": ("headphones",), "brands": ("Sony",)}),
    ("smartwatch rated 4.5 or more, in stock", {
        "categories": ("smartwatches",), "min_rating": Decimal("4.5"),
        "availability_stated": True, "available_only": True}),
    ("garmin watch even if out of stock", {"brands": ("Garmin",), "available_only": False}),
    ("most expensive laptop", {"categories": ("laptops",), "sort": "price_desc"}),
    ("I don't want Samsung, a 4K TV", {
        "excluded_brands": ("Samsung",), "categories": ("televisions",)}),
    ("matte black mug", {"brands": (), "keywords": "matte black"}),
    ("two travel mugs from Kiondo", {
        "categories": ("mugs-flasks",), "quantity": 2, "keywords": "travel mugs"}),
    ("electric kettle under 5000 bob", {
        "categories": ("kitchen-appliances",), "keywords": "electric kettle"}),
    ("mochila para portátil", {"categories": ("backpacks",), "keywords": "para portatil"}),
    ("a backpack for my laptop", {"categories": ("backpacks",), "keywords": "laptop"}),
    ("a smart TV, no Samsung and no LG", {
        "excluded_brands": ("Samsung", "LG"), "semantic_text": "a smart TV"}),
    # An amount in words or with spaced thousands is the budget, none of it search words.
    ("two mugs under twenty euros", {
        "categories": ("mugs-flasks",), "quantity": 2, "keywords": "",
        "budget": Budget("EUR", None, 2000)}),
    ("mug under 5 000 kes", {"categories": ("mugs-flasks",), "keywords": "", "quantity": 1}),
    ("a gift under a hundred and twenty pounds", {"keywords": "gift", "quantity": 1}),
    # The words of a limit said after the amount are not search words ("max" matched "Pro Max").
    ("mug 15 dollars or less", {"keywords": "", "categories": ("mugs-flasks",)}),
    ("phone, 900 dollars max", {"keywords": "", "categories": ("smartphones",)}),
    ("tv $300 and up", {"keywords": "", "categories": ("televisions",)}),
    ("tv no less than 300 dollars", {"keywords": "", "categories": ("televisions",)}),
    # A brand written with "-free" is excluded, not asked for.
    ("apple-free headphones", {
        "brands": (), "excluded_brands": ("Apple",), "categories": ("headphones",),
        "keywords": ""}),
    ("Apple–free earbuds, no Samsung", {"brands": (), "excluded_brands": ("Apple", "Samsung")}),
    ("earbuds free from Apple", {
        "brands": (), "excluded_brands": ("Apple",), "keywords": "earbuds"}),
    ("nothing from Apple, just earbuds", {"brands": (), "excluded_brands": ("Apple",)}),
    ("headphones without apple", {"brands": (), "excluded_brands": ("Apple",)}),
    ("a shopwave-free tv", {"marketplaces": (), "excluded_marketplaces": ("shopwave",)}),
    # "isn't" excludes too (it asked for the brand, and searched for "isn't").
    ("a speaker that isn't Sony", {"brands": (), "excluded_brands": ("Sony",), "keywords": ""}),
    ("headphones that are not Sony or LG", {
        "brands": (), "excluded_brands": ("Sony", "LG"), "keywords": ""}),
    ("a tv that's not from shopwave", {"excluded_marketplaces": ("shopwave",), "keywords": ""}),
    # A substance written so is excluded too, never a search word; a feature stays one.
    ("BPA-free water bottle", {"excluded_substances": ("bpa",), "semantic_text": "water bottle"}),
    ("shampoo without sulfates or parabens", {
        "excluded_substances": ("sulfate", "paraben"), "keywords": "shampoo"}),
    ("gluten free, no added sugar snacks", {
        "excluded_substances": ("gluten", "sugar"), "keywords": "snacks"}),
    ("hands-free headset", {"excluded_substances": (), "keywords": "hands-free"}),
    # A word said not to be wanted is excluded, never searched for ("not revolution" ranked the
    # Revolution first).
    ("a nike running shoe but not the revolution", {
        "brands": ("Nike",), "excluded_words": ("revolution",), "keywords": ""}),
    ("running shoes without laces", {"excluded_words": ("laces",), "keywords": ""}),
    ("a thermos flask, not the king or the sk1005", {
        "excluded_words": ("king", "sk1005"), "keywords": "thermos"}),
    # Two orders asked for: the last one said counts, neither is a search word.
    ("cheapest most expensive tv", {"sort": "price_desc", "keywords": ""}),
    ("best rated cheapest headphones", {"sort": "price_asc", "keywords": ""}),
    # "2-in-1" is a kind of laptop, not one laptop and the words "2-in".
    ("a 2-in-1 laptop", {"quantity": 1, "keywords": "2-in-1", "semantic_text": "a 2-in-1 laptop"}),
    # What the rules took leaves no dangling word in the text that is embedded ("a tv for",
    # "headphones that").
    ("a tv for one and a half thousand dollars", {"semantic_text": "a tv"}),
    ("headphones that aren't wireless", {"semantic_text": "headphones"}),
    ("headphones under 50 that are not beats", {"semantic_text": "headphones"}),
    ("headphones sub $50", {"keywords": "", "semantic_text": "headphones"}),
    ("headphones under fifty and in black", {"semantic_text": "headphones in black"}),
    # "each", "apiece": the budget is per item, which it already is; no search words.
    ("2 tvs under $400 each", {"quantity": 2, "keywords": ""}),
    # Counts in words read by the one number-words table (assistant.number_words): "twelve
    # mugs" was one mug and the word "twelve"; past MAX_QUANTITY it is no count.
    ("twelve travel mugs", {"quantity": 12, "keywords": "travel mugs"}),
    ("twenty-four mugs", {"quantity": 24, "keywords": ""}),
    ("a dozen mugs", {"quantity": 12, "keywords": ""}),
    ("a couple of headphones", {"quantity": 2, "keywords": ""}),
    ("a hundred mugs", {"quantity": 1}),
    ("mugs at 10 dollars apiece", {"keywords": ""}),
    ("a mug under twenty-five dollars per item", {"keywords": ""}),
    ("tv under 2 grand", {"keywords": ""}),
    ("headphones, not for kids", {"excluded_words": ("kids",), "keywords": ""}),
    ("a tablet not for gaming", {"excluded_words": ("gaming",), "keywords": "tablet"}),
    ("a tv, nothing curved", {"excluded_words": ("curved",), "keywords": ""}),
    # A product word said not to be wanted: "no iphone" asked for Apple, "not a laptop" for
    # laptops.
    ("a phone, no iphone", {
        "brands": (), "excluded_brands": ("Apple",), "categories": ("smartphones",),
        "keywords": ""}),
    ("not a laptop, a smartphone", {
        "categories": ("smartphones",), "excluded_categories": ("laptops",), "keywords": ""}),
    ("headphones but no earbuds", {
        "categories": ("headphones",), "excluded_words": ("earbuds",), "keywords": ""}),
    ("a tv, not 4k", {"excluded_words": ("4k",), "keywords": ""}),
    # A negated phrase is excluded whole ("not the pro max" excluded "pro" and searched
    # "max"), and a list goes on after a brand the index knows ("not Samsung or Apple"
    # searched "apple" where the index has no Apple).
    ("a phone, not the pro max", {"excluded_words": ("pro max",), "keywords": ""}),
    ("headphones without noise cancelling", {
        "excluded_words": ("noise cancelling",), "keywords": ""}),
    ("a tv without smart features", {"excluded_words": ("smart",), "keywords": ""}),
    ("a phone, not Samsung or Pixel", {
        "excluded_brands": ("Samsung",), "excluded_words": ("pixel",), "keywords": ""}),
    ("a tv, not from samsung, philips or lg", {
        "brands": (), "excluded_brands": ("Samsung", "LG"), "excluded_words": ("philips",),
        "keywords": ""}),
    ("a phone, not an iphone or a pixel", {"excluded_words": ("pixel",), "keywords": ""}),
    ("a water bottle, not plastic", {
        "excluded_substances": ("plastic",), "excluded_words": (), "keywords": "water bottle"}),
    ("a lunch box, nothing plastic", {"excluded_substances": ("plastic",), "excluded_words": ()}),
    # A size said not to be wanted was required too: "not 65 inch" asked for both sizes.
    ("a 55 inch tv, not 65 inch", {
        "specs": ("55-inch",), "excluded_specs": ("65-inch",), "keywords": ""}),
    ("a phone, no 128gb", {"specs": (), "excluded_specs": ("128GB",), "keywords": ""}),
    ("make crispy fries without oil", {"excluded_words": (), "implied_words": "air fryer"}),
    ("make a cup of tea without using the stove", {"excluded_words": ()}),
    ("headphones not from shopwave, not too expensive", {
        "excluded_words": (), "excluded_marketplaces": ("shopwave",), "keywords": ""}),
]  # fmt: skip


# Asking to compare prices is neither a search word nor, after an exclusion, one more thing
# excluded ("headphones not Sony, compare prices" excluded the words "compare prices").
COMPARISONS: list[tuple[str, dict[str, Any]]] = [
    ("headphones not Sony, compare prices", {
        "categories": ("headphones",), "excluded_brands": ("Sony",), "excluded_words": (),
        "keywords": "", "compare": True}),
    ("compare prices for a Thermos travel mug across marketplaces", {
        "categories": ("mugs-flasks",), "brands": ("Thermos",), "keywords": "travel mug",
        "semantic_text": "a Thermos travel mug", "compare": True}),
    ("sony headphones, which shop is cheapest?", {
        "brands": ("Sony",), "keywords": "", "compare": True}),
    ("a 65 inch tv without qled, compare the offers", {
        "specs": ("65-inch",), "excluded_words": ("qled",), "keywords": "", "compare": True}),
    ("price comparison: running shoes not nike", {
        "categories": ("running-shoes",), "excluded_brands": ("Nike",), "compare": True}),
    ("headphones not Sony", {"compare": False}),
    # Only prices, offers, shops or marketplaces are compared ("compare with my old one" was a
    # wish to compare prices).
    ("a mug that I can compare with my old one", {"compare": False}),
    ("headphones to compare with my airpods", {"compare": False}),
    ("compare them across marketplaces: sony headphones", {"compare": True}),
]  # fmt: skip


# Found by a demanding shopper: a word after a comma is no more of an excluded list unless a
# list goes on ("not Sony, black please" excluded black), "rated 4 stars" is all the rating,
# "with at least two cameras" is a phone's feature (it asked for two phones or cameras too),
# and "cheap" in other languages is a price wish (it was a search word).
SHOPPER_PASS: list[tuple[str, dict[str, Any]]] = [
    ("headphones not Sony, black please", {
        "excluded_brands": ("Sony",), "excluded_words": (), "keywords": "black"}),
    ("running shoes not Nike, Adidas or Asics", {
        "excluded_brands": ("Nike", "Adidas", "Asics")}),
    ("a smartwatch that isn't Apple or Samsung, rated 4 stars or more", {
        "excluded_brands": ("Apple", "Samsung"), "excluded_words": (),
        "min_rating": Decimal("4"), "keywords": ""}),
    ("a phone with at least two cameras", {
        "categories": ("smartphones",), "quantity": 1}),
    ("a phone with three cameras", {"categories": ("smartphones",), "quantity": 1}),
    ("auriculares baratos", {"categories": ("headphones",), "price_preference": True,
                             "keywords": ""}),
    ("téléphone pas cher", {"categories": ("smartphones",), "price_preference": True,
                            "keywords": ""}),
    ("günstige Kopfhörer", {"categories": ("headphones",), "price_preference": True,
                            "keywords": ""}),
    # "size does not matter" excluded the brand Mattel (a typo of it, after "not"); "Fake
    # Store" is Fake Store Berlin, and "do not show me anything from" excludes it.
    ("running shoes, size does not matter", {"excluded_brands": (), "brands": ()}),
    ("running shoes, but do not show me anything from Fake Store", {
        "excluded_marketplaces": ("fakestore",), "keywords": ""}),
    ("running shoes from fake store", {"marketplaces": ("fakestore",)}),
    ("mugs, don't suggest anything from ShopWave", {"excluded_marketplaces": ("shopwave",)}),
    # "cheapest first" was the order and the search word "first".
    ("a 65 inch samsung or lg tv, cheapest first", {"sort": "price_asc", "keywords": ""}),
    ("headphones, most expensive first", {"sort": "price_desc", "keywords": ""}),
    # Asking for help or everything names nothing ("help" was a product the catalog lacks).
    ("help", {"keywords": "", "asks_for_anything": False}),
    ("show me everything", {"keywords": "", "asks_for_anything": False}),
    ("hello, can you help me?", {"keywords": "", "asks_for_anything": False}),
]  # fmt: skip


@pytest.mark.parametrize(("text", "expected"), SHOPPER_PASS)
def test_what_a_demanding_shopper_said_is_read_as_meant(
    text: str, expected: dict[str, Any]
) -> None:
    intent = parse_intent(text, VOCABULARY)
    for name, value in expected.items():
        assert getattr(intent, name) == value, (name, intent)


@pytest.mark.parametrize(("text", "expected"), COMPARISONS)
def test_a_wish_to_compare_prices_is_read_not_searched_or_excluded(
    text: str, expected: dict[str, Any]
) -> None:
    intent = parse_intent(text, VOCABULARY)
    for name, value in expected.items():
        assert getattr(intent, name) == value, (name, intent)
    if intent.compare:
        assert "compare" not in intent.semantic_text


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_requests_are_read_into_constraints_and_free_text(
    text: str, expected: dict[str, Any]
) -> None:
    intent = parse_intent(text, VOCABULARY)
    for name, value in expected.items():
        assert getattr(intent, name) == value, (name, intent)


@pytest.mark.parametrize(
    ("text", "limit"),
    [
        ("under $40 under $30 mug", Budget("USD", None, 3000)),
        ("tv under 500 dollars, cheaper: under 450 dollars", Budget("USD", None, 45000)),
        ("mug under 30 dollars, actually under 25 euros", Budget("EUR", None, 2500)),
    ],
)
def test_a_limit_said_again_is_the_last_one_said(text: str, limit: Budget) -> None:
    """A follow-up typed after the request ("... under $30") narrows it: the last limit counts,
    the earlier one is neither search words nor a quantity ("$30 mug" was 30 mugs)."""
    intent = parse_intent(text, VOCABULARY)
    assert intent.budget == limit
    assert intent.quantity == 1
    assert "under" not in intent.keywords and "dollars" not in intent.keywords


def test_a_lower_bound_above_the_upper_one_is_said_and_only_the_limit_kept() -> None:
    intent = parse_intent("tv over 100 dollars under 50 dollars", VOCABULARY)
    assert intent.budget == Budget("USD", None, 5000)
    assert intent.keywords == ""
    assert any("at least $100.00" in note and "at most $50.00" in note for note in intent.notes)


def test_an_amount_without_currency_uses_the_display_currency_and_says_so() -> None:
    intent = parse_intent("shoes under 4000", VOCABULARY, default_currency="KES")
    assert intent.budget == Budget("KES", None, 400_000, currency_assumed=True)
    assert any("KES" in note for note in intent.notes)


def test_constraints_are_listed_in_words_a_shopper_reads() -> None:
    intent = parse_intent(
        "cheapest 65-inch TV under 700 dollars with good reviews, not from ShopWave", VOCABULARY
    )
    labels = [c.label for c in intent.constraints()]
    assert labels == [
        "Televisions",
        "65-inch",
        "at most $700.00",
        "rated 4.0★ or more",
        "not from ShopWave",
        "in stock",
    ]


def test_semantic_text_keeps_the_product_words_and_drops_the_rules() -> None:
    intent = parse_intent("a gift for a runner under 40 dollars, not from ShopWave", VOCABULARY)
    # What a runner does is embedded too (assistant.catalog_words).
    assert intent.semantic_text == "a gift for a runner, running"


def test_prompts_are_cleaned_and_cut_to_the_limit() -> None:
    intent = parse_intent("mug\x00\x07   " + "x" * 1000, VOCABULARY)
    assert "\x00" not in intent.text
    assert len(intent.text) == MAX_PROMPT_CHARS


def test_intent_serializes_to_json_safe_values() -> None:
    intent = parse_intent("2 Sony headphones between 10k and 20k naira", VOCABULARY)
    data = intent.to_json()
    assert data["budget"] == {
        "currency": "NGN",
        "min_minor": 1_000_000,
        "max_minor": 2_000_000,
        "currency_assumed": False,
    }
    assert data["brands"] == ["Sony"]
    assert data["quantity"] == 2


@pytest.mark.parametrize(
    ("spec", "text", "found"),
    [
        ("65-inch", "Hisense TV 65-inch Black", True),
        ("65-inch", 'Hisense 65" TV', True),
        ("65-inch", "Hisense 65 inch TV", True),
        ("65-inch", "Hisense 165-inch wall", False),
        ("65-inch", "Hisense 55-inch TV", False),
        ("256GB", "Galaxy S24 256gb Black", True),
        ("256GB", "Galaxy S24 128GB", False),
    ],
)
def test_sizes_are_found_in_product_text(spec: str, text: str, found: bool) -> None:
    assert bool(spec_pattern(spec).search(text.lower())) is found


@pytest.mark.parametrize(
    ("a", "b", "distance"),
    [("samsung", "samsnug", 1), ("adidas", "addidas", 1), ("sony", "sony", 0), ("nike", "puma", 3)],
)
def test_typo_distance_counts_swaps_as_one_edit(a: str, b: str, distance: int) -> None:
    assert damerau_distance(a, b) == distance


@pytest.mark.parametrize(
    ("value", "key"),
    [
        ("Insulated Mugs & Flasks", "mugs-flasks"),
        ("mugs-flasks", "mugs-flasks"),
        ("Toys & Games", "toys"),
        ("Beauty & Personal Care", "beauty"),
        ("running shoes", "running-shoes"),
        ("Garden Furniture", None),
    ],
)
def test_index_category_values_map_onto_the_lexicon(value: str, key: str | None) -> None:
    assert category_key_for_value(value) == key


# --- Misspelt words and price wishes (issue 14) ------------------------------------------------

MISSPELT: list[tuple[str, tuple[str, ...], bool, str]] = [
    # request, categories, price preference, words left for meaning (semantic text)
    (
        "wireles hedphones for the gym, not to expensive",
        ("headphones",),
        True,
        "wireless headphones for the gym",
    ),
    ("chep sneekers", ("running-shoes",), True, "sneakers"),
    ("afordable laptop for school", ("laptops",), True, "laptop for school"),
    ("portible speaker, nothing to pricey", (), True, "portable speaker"),
    ("televsion that isn't too expensive", ("televisions",), True, "television"),
    ("noise canceling hedphones", ("headphones",), False, "noise canceling headphones"),
]


@pytest.mark.parametrize(("text", "categories", "price_wish", "semantic"), MISSPELT)
def test_misspelt_product_and_constraint_words_are_read_as_meant(
    text: str, categories: tuple[str, ...], price_wish: bool, semantic: str
) -> None:
    intent = parse_intent(text, VOCABULARY)
    assert intent.categories == categories or not categories
    assert intent.price_preference is price_wish
    assert intent.semantic_text == semantic
    assert intent.text == text  # the request itself is kept as written
    if intent.corrections:
        assert any(note.startswith("Read “") for note in intent.notes)


@pytest.mark.parametrize(
    "text",
    [
        "cheap headphones",
        "budget laptop",
        "not too expensive espresso machine",
        "affordable tv",
        "kids toys on a budget",
        "inexpensive running shoes",
    ],
)
def test_price_words_without_an_amount_are_a_price_preference(text: str) -> None:
    intent = parse_intent(text, VOCABULARY)
    assert intent.price_preference and intent.sort == "price_asc" and intent.budget is None
    for word in ("cheap", "budget", "expensive", "affordable", "inexpensive"):
        assert word not in intent.keywords  # a wish, not words to match


@pytest.mark.parametrize(
    "text",
    [
        "a gift for a runner under 40 dollars",
        "something to keep my coffee hot",
        "samsnug televsion",
        "a thermos for tea",
        "Hisense 65 inch tv",
        "keep my tea warm on the way to work",
        "Nespresso coffee machine",  # a name built on a known word ("espresso")
        "something to wear for gym workouts",  # a plural of one
    ],
)
def test_correct_words_and_brands_are_never_rewritten(text: str) -> None:
    corrected = {c.written for c in parse_intent(text, VOCABULARY).corrections}
    assert corrected <= {"televsion"}  # the one misspelling; brands are left to brand matching


def test_a_budget_amount_is_still_a_budget_not_a_wish() -> None:
    intent = parse_intent("my budget is 40 dollars for a kettle", VOCABULARY)
    assert intent.budget == Budget("USD", None, 4000) and not intent.price_preference


@pytest.mark.parametrize(
    ("text", "categories", "keywords"),
    [
        # What is carried is not what is wanted: no category, the words go to meaning.
        ("carry my laptop to the office", (), "carry laptop office"),
        # "X with a great Y": X is the product, Y one of its features.
        ("a mobile with a great camera for selfies", ("smartphones",), "camera selfies"),
        ("a backpack for my laptop", ("backpacks",), "laptop"),
    ],
)
def test_the_product_is_told_from_what_it_carries_or_has(
    text: str, categories: tuple[str, ...], keywords: str
) -> None:
    intent = parse_intent(text, VOCABULARY)
    assert intent.categories == categories and intent.keywords == keywords


def test_what_is_carried_is_excluded_not_asked_for() -> None:
    intent = parse_intent("carry my laptop to the office", VOCABULARY)
    assert intent.excluded_categories == ("laptops",)
    assert "not laptops" in [c.label for c in intent.constraints()]
    # Named as the product's purpose after the product itself, it is only a description.
    assert parse_intent("a backpack to carry my laptop", VOCABULARY).excluded_categories == ()


# --- Uses and other languages: product words a request implies (assistant.glossary) ----------


@pytest.mark.parametrize(
    ("text", "implied"),
    [
        ("boil water quickly for tea", "electric kettle"),
        ("something to make smoothies for breakfast", "blender"),
        ("crispy chicken wings without oil", "air fryer"),
        ("reheat my lunch at work", "microwave"),
        ("block out engine noise on long flights", "noise cancelling headphones"),
        ("start a youtube vlog", "vlogging camera"),
        ("track my heart rate and sleep", "smartwatch fitness tracker"),
        ("a game for family night", "board game"),
        ("something for very dry skin", "moisturising cream lotion"),
    ],
)
def test_a_use_implies_the_product_that_serves_it_as_words_to_rank_by(
    text: str, implied: str
) -> None:
    intent = parse_intent(text, VOCABULARY)
    # The product's words join the words to rank by (those the shopper wrote are not repeated).
    assert intent.implied_words
    assert set(implied.split()) <= {*intent.keywords.split(), *intent.implied_words.split()}
    assert implied in intent.semantic_text  # the embedded text names the product too
    # Words to rank by, never a filter: nothing the shopper did not say is required.
    assert intent.categories == () and intent.brands == ()
    assert [c.kind for c in intent.constraints()] == ["available"]


@pytest.mark.parametrize(
    ("text", "implied"),
    [
        # A person named by what they do: the catalog's word for it ("Running Shoes") ranks.
        ("a gift for a runner under $50", "running"),
        ("a present for runners", "running"),
        ("gift ideas for a jogger", None),  # the index holds no "jogging"
        # A product the catalog names is not a person: no activity is implied for it.
        ("a speaker for my room", None),
    ],
)
def test_a_person_named_by_what_they_do_implies_the_catalogs_word_for_it(
    text: str, implied: str | None
) -> None:
    intent = parse_intent(text, VOCABULARY)
    if implied is None:
        assert intent.implied_products == ()
        return
    assert intent.implied_products == (implied,)
    assert implied in intent.implied_words.split()
    assert implied in intent.semantic_text
    assert intent.categories == ()  # ranked by, never a filter


def test_a_named_product_is_not_second_guessed_by_its_use() -> None:
    # "for selfies" describes the phone; it does not ask for a camera.
    intent = parse_intent("a mobile with a great camera, to take better photos", VOCABULARY)
    assert intent.categories == ("smartphones",)
    assert intent.implied_words == ""


@pytest.mark.parametrize(
    ("text", "implied", "semantic"),
    [
        ("mochila para portátil", "laptop", "backpack for laptop"),
        (
            "Kopfhörer mit Geräuschunterdrückung",
            "noise cancelling",
            "headphones with noise cancelling",
        ),
        ("cafetera espresso", "", "coffee maker espresso"),
    ],
)
def test_words_of_other_languages_are_ranked_and_embedded_in_english(
    text: str, implied: str, semantic: str
) -> None:
    intent = parse_intent(text, VOCABULARY)
    assert intent.implied_words == implied
    assert intent.semantic_text == semantic


@pytest.mark.parametrize(
    ("text", "semantic"),
    [
        ("portable speaker", "portable speaker"),
        ("a faux fur jacket", "a faux fur jacket"),
        ("a golf course rangefinder", "a golf course rangefinder"),
    ],
)
def test_english_words_shared_with_other_languages_are_left_alone(text: str, semantic: str) -> None:
    intent = parse_intent(text, VOCABULARY)
    assert intent.semantic_text == semantic
    assert intent.implied_words == ""


def test_an_excluded_substance_is_a_constraint_the_shopper_reads() -> None:
    intent = parse_intent("bpa-free sugar free water bottle", VOCABULARY)
    labels = [c.label for c in intent.constraints()]
    assert "BPA-free" in labels and "sugar-free" in labels
    assert intent.to_json()["excluded_substances"] == ["bpa", "sugar"]


def test_two_orders_asked_for_say_which_one_counts() -> None:
    intent = parse_intent("cheapest tv, actually the most expensive", VOCABULARY)
    assert intent.sort == "price_desc" and intent.keywords == "actually"
    assert any("“most expensive”" in note for note in intent.notes), intent.notes


def test_number_words_have_one_table() -> None:
    """The quantity words are the budget's number words: intent.py keeps no table of its own."""
    import assistant.intent as intent_module
    from assistant import number_words

    tables = [
        name
        for name, value in vars(intent_module).items()
        if isinstance(value, dict) and "two" in value
    ]
    assert tables == []
    assert number_words.quantity_words_value("a couple of") == 2
    assert number_words.quantity_words_value("ninety-nine") == 99


@pytest.mark.parametrize(
    "text",
    [
        "tv under 0 dollars",
        "tv under $0",
        "tv under -5 dollars",
        "a tv for less than -200 euros",
        "tv under 99999999999999999999 dollars",
        "headphones under 5,000,000,000,000 dollars",
        "tv under 0.001 dollars",
    ],
)
def test_an_amount_that_cannot_be_a_budget_is_said_not_searched(text: str) -> None:
    """ "tv under 0 dollars" was answered "I found 3 products matching “under 0 dollars”": the
    limit became search words, as if $429 TVs were under nothing."""
    intent = parse_intent(text, VOCABULARY)
    assert intent.budget is None
    assert not any(ch.isdigit() for ch in intent.keywords), intent.keywords
    assert "under" not in intent.keywords and "less" not in intent.keywords, intent.keywords
    assert any("as a price limit" in note for note in intent.notes), intent.notes
