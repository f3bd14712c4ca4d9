"""The real-looking assortment the sandbox world is drawn from: categories, brands, product lines,
model-number templates and the words stores put in titles.

Kept apart from the generator so the data can grow without touching the arithmetic in
:mod:`sandbox.world_products`. The categories' rows are kept by department in
sandbox.assortment_electronics and sandbox.assortment_home_and_leisure; their shape and the rule
model-number templates obey are in sandbox.assortment_schema.
"""

from __future__ import annotations

from sandbox.assortment_electronics import ELECTRONICS_CATEGORIES
from sandbox.assortment_home_and_leisure import HOME_AND_LEISURE_CATEGORIES
from sandbox.assortment_schema import Category

CATEGORIES: tuple[Category, ...] = ELECTRONICS_CATEGORIES + HOME_AND_LEISURE_CATEGORIES

CATEGORIES_BY_SLUG: dict[str, Category] = {category.slug: category for category in CATEGORIES}

BOOK_TITLE_PATTERNS = (
    "The {adjective} {noun}",
    "{noun} of the {adjective} City",
    "A {adjective} {noun}",
    "The {noun} Keeper",
)
BOOK_ADJECTIVES = (
    "Silent",
    "Golden",
    "Hidden",
    "Last",
    "Broken",
    "Distant",
    "Burning",
    "Quiet",
    "Wild",
    "Forgotten",
    "Small",
    "Brave",
    "Restless",
    "Yellow",
    "Bright",
)
BOOK_NOUNS = (
    "River",
    "Harvest",
    "Sun",
    "Letters",
    "Garden",
    "Road",
    "Promise",
    "Kingdom",
    "Habits",
    "Market",
    "Rain",
    "Lagos",
    "Nairobi",
    "Horizon",
    "Teacher",
)

# Where a brand sits in its categories' price ranges: 0 budget, 1 premium (0.5 when unlisted).
# Product lines in CATEGORIES are listed from cheaper to pricier within each brand.
BRAND_PRICE_TIERS: dict[str, float] = {
    "Apple": 0.9,
    "Sony": 0.75,
    "Bose": 0.8,
    "Sennheiser": 0.75,
    "Samsung": 0.6,
    "LG": 0.6,
    "Tecno": 0.2,
    "Infinix": 0.15,
    "Xiaomi": 0.25,
    "Nokia": 0.2,
    "Ramtons": 0.2,
    "Bruhm": 0.15,
    "Hisense": 0.3,
    "TCL": 0.3,
    "Anker": 0.3,
    "JBL": 0.45,
    "Marshall": 0.7,
    "Garmin": 0.75,
    "Casio": 0.3,
    "De'Longhi": 0.6,
    "Nespresso": 0.5,
    "Breville": 0.8,
    "Stanley": 0.6,
    "Yeti": 0.8,
    "Thermos": 0.4,
    "Contigo": 0.3,
    "Hydro Flask": 0.6,
    "Samsonite": 0.7,
    "The North Face": 0.6,
    "Herschel": 0.5,
    "Nike": 0.6,
    "Adidas": 0.55,
    "Asics": 0.55,
    "Puma": 0.35,
    "New Balance": 0.55,
    "Brooks": 0.7,
    "Under Armour": 0.5,
    "Canon": 0.6,
    "Nikon": 0.6,
    "Fujifilm": 0.7,
    "GoPro": 0.5,
    "Dell": 0.55,
    "Lenovo": 0.45,
    "HP": 0.45,
    "Asus": 0.4,
    "Philips": 0.5,
    "LEGO": 0.7,
    "Hasbro": 0.4,
    "Mattel": 0.3,
    "Play-Doh": 0.2,
    "Nivea": 0.3,
    "L'Oréal Paris": 0.5,
    "Maybelline": 0.4,
    "Dove": 0.3,
    "Garnier": 0.3,
}

REVIEWER_NAMES = (
    "Amina Odhiambo",
    "John Mwangi",
    "Chiamaka Okafor",
    "Sophie Martin",
    "Lukas Becker",
    "Emily Johnson",
    "Tunde Bakare",
    "Wanjiru Kamau",
    "Lucas Moreau",
    "Grace Achieng",
)

REVIEW_COMMENTS = (
    (5, "Excellent quality, exactly as described!"),
    (5, "Would buy again, arrived quickly."),
    (4, "Very good value for the price."),
    (4, "Works well, packaging could be better."),
    (3, "It's okay, does the job."),
    (2, "Not what I expected."),
    (1, "Stopped working after a week."),
)
