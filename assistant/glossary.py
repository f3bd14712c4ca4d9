"""Product words a request implies without naming them.

Two kinds of product knowledge, both plain tables:

- **Uses.** Shoppers often say what they want to do instead of what to buy: "boil water quickly
  for tea" wants a kettle, "make smoothies for breakfast" a blender, "block out engine noise on
  flights" noise cancelling headphones. Listings name the product, not the chore, so neither the
  keywords nor (for the less common chores) the sentence embedding find it. Each entry pairs the
  ways a use is said with the words listings use for the product that does it.
- **Other languages.** The embedding model reads English only, and listings are written in
  English, so product and function words of the other languages shoppers write in ("Kopfhörer
  mit Geräuschunterdrückung", "mochila para portátil") get their English words.

What is found here only adds words to rank by (the keyword query and the text that is embedded);
it never becomes a filter, so a use read wrongly can cost ranking but never hide what was asked.
Patterns and words are folded (lower-case, no accents) like every comparison in the assistant.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True, slots=True)
class ProductUse:
    """One use and the product words listings use for what serves it."""

    product: str
    pattern: re.Pattern[str]


def _use(product: str, *phrases: str) -> ProductUse:
    joined = "|".join(f"(?:{phrase})" for phrase in phrases)
    return ProductUse(product, re.compile(rf"(?<![a-z0-9])(?:{joined})(?![a-z0-9])"))


_DRINK = r"(?:coffee|tea|drinks?|cocoa|soup|water|beverages?)"
_KIDS = (
    r"(?:kids?|child|children|toddlers?|nephews?|nieces?"
    r"|grand(?:son|daughter|kids?|children)|boys?|girls?)"
)

# The product for a use. Listing words first ("kettle", not "a thing that boils water"); where a
# use fits several products of one kind, the kind ("speaker") rather than one model of it.
USES: Final[tuple[ProductUse, ...]] = (
    # Kitchen.
    _use(
        "electric kettle",
        r"boil(?:s|ing|ed)?(?: up)?(?: (?:some|the|my))? water",
        r"hot water (?:for|to make) (?:tea|coffee|noodles|instant)",
        r"(?:make|making|brew|brewing) (?:a )?(?:cup|pot|mug) of tea",
    ),
    _use(
        "blender",
        r"smoothies?",
        r"(?:milk|protein )?shakes",
        r"(?:make|making) (?:baby food|purees?|soups?|frozen drinks|cocktails)",
        r"blend(?:s|ing)? (?:fruit|vegetables|veggies|soups?|ice|nuts)",
        r"crush(?:ing)? ice",
    ),
    _use(
        "air fryer",
        r"(?:fries|chips|wings|chicken|food) without (?:oil|grease|deep[- ]frying)",
        r"crispy (?:fries|chips|wings|chicken|potatoes)",
        r"(?:fry|frying|cook|cooking) (?:with )?(?:less|little|no) oil",
        r"oil[- ]free (?:frying|fries|cooking)",
        r"healthier fried food",
    ),
    _use(
        "microwave",
        r"(?:heat|heating|warm|warming)(?: up)? (?:the |my |our )?"
        r"(?:leftovers|lunch|meals?|food|dinner)",
        r"reheat(?:s|ing)?",
        r"defrost(?:s|ing)?",
        r"popcorn",
        r"ready meals",
    ),
    _use("toaster", r"toast(?:ing)?(?: bread| bagels)?", r"bagels", r"crumpets"),
    _use(
        "rice cooker", r"(?:cook|cooking|steam|steaming|make|making) rice", r"jollof|pilau|biryani"
    ),
    _use(
        "espresso machine",
        r"(?:make|making|pull|pulling) (?:an? )?(?:espresso|shots? of espresso)",
        r"espresso at home",
        r"lattes?|cappuccinos?|flat whites?|macchiatos?",
        r"like a barista|barista[- ]style",
    ),
    _use(
        "coffee maker",
        r"(?:brew|brewing|make|making) (?:fresh |filter |drip |a pot of |my (?:morning )?)?coffee",
        r"pot of coffee",
        r"coffee (?:in|for) the (?:morning|office)",
    ),
    # Drinks on the go.
    _use(
        "insulated travel mug flask",
        rf"keeps? (?:my |the |your )?{_DRINK} (?:hot|warm)",
        rf"{_DRINK} (?:hot|warm) (?:all day|for hours|on the (?:way|go|commute))",
        r"coffee (?:on the go|for the (?:road|commute|car))",
    ),
    _use(
        "insulated water bottle",
        rf"keeps? (?:my |the |your )?{_DRINK} (?:cold|cool|ice[- ]cold|chilled)",
        r"(?:stay|staying|keep) hydrated",
        r"ice[- ]cold water",
    ),
    # Sound and screens.
    _use(
        "noise cancelling headphones",
        r"block(?:s|ing)? (?:out )?(?:the )?(?:\w+ )?noise",
        r"(?:cancel|cancels|cancelling|canceling|shut out|drown out) (?:the )?(?:\w+ )?noise",
        r"(?:peace and )?quiet on (?:flights|planes|the plane|the train|my commute)",
        r"noisy (?:office|flights?|commute|neighbours|neighbors)",
    ),
    _use(
        "headphones",
        r"listen(?:ing)? to (?:music|podcasts|audiobooks)(?: \w+){0,3} "
        r"(?:without disturbing|quietly|privately|in private|on the (?:bus|train|go|commute))",
        r"without disturbing (?:anyone|others|"
        r"my (?:roommates?|flatmates?|partner|family|neighbours|neighbors))",
        r"music (?:at|in) the gym|gym music",
    ),
    _use(
        "smart tv",
        r"watch(?:ing)? (?:netflix|movies|films|shows|series|football|sports|the match|youtube)"
        r"(?: \w+){0,3} (?:on a )?(?:big|bigger|large) screen",
        r"(?:big|bigger|large) screen (?:for|in) the (?:living room|lounge|bedroom)",
        r"home (?:cinema|theater|theatre)",
        r"movie nights?",
    ),
    _use(
        "speaker",
        r"loud music",
        r"music (?:for|at) (?:a |the )?(?:party|parties|barbecue|bbq|picnic|beach|pool)",
        r"(?:beach|pool|garden|house) part(?:y|ies)",
        r"play(?:ing)? music (?:out loud|for everyone|in the (?:room|garden|kitchen))",
        r"fill(?:s)? the room with (?:sound|music)",
    ),
    _use("waterproof speaker", r"music in the (?:shower|bath|pool)"),
    # Pictures and video.
    _use(
        "camera",
        r"take (?:sharp |sharper |better |good |great |nice |beautiful )?"
        r"(?:photos|pictures|pics|photographs|snaps)",
        r"(?:holiday|travel|wildlife|landscape|portrait) (?:photos|photography|pictures)",
        r"photography",
    ),
    _use(
        "vlogging camera",
        r"vlog(?:s|ging)?",
        r"youtube (?:channel|videos?)",
        r"(?:film|record|filming|recording) (?:myself|videos of myself|content)",
    ),
    _use(
        "action camera",
        r"film(?:ing)? (?:my )?(?:bike|cycling|surf|surfing|ski|skiing|dive|diving)",
        r"underwater (?:photos|videos|footage)",
    ),
    # Fitness.
    _use(
        "smartwatch fitness tracker",
        r"track(?:s|ing)? (?:my )?(?:heart ?rate|sleep|steps|runs|workouts|fitness|calories)",
        r"count(?:s|ing)? (?:my )?steps",
        r"monitor(?:s|ing)? (?:my )?(?:heart ?rate|heart|sleep)",
    ),
    _use(
        "running shoes",
        r"jog(?:s|ging)?",
        r"(?:a |my first )?(?:marathon|half[- ]marathon|5k|10k)",
        r"go(?:ing)? (?:for a )?run(?:ning|s)?",
    ),
    _use(
        "sportswear",
        r"wear (?:to|for|at) (?:the )?(?:gym|workouts?|training|exercise|yoga|the track)",
        r"(?:gym|workout|training|exercise) (?:clothes|clothing|outfit|wear|kit)",
    ),
    # Carrying things.
    _use(
        "hiking backpack daypack",
        r"(?:day )?hik(?:e|es|ing)",
        r"trek(?:s|king)?",
        r"(?:camping|mountain) trips?",
    ),
    _use(
        "laptop backpack",
        r"carry (?:my |a |the )?(?:laptop|computer|notebook|books|school things)",
    ),
    # Work and study.
    _use(
        "laptop",
        r"(?:computer|pc) for (?:university|uni|college|school|work|studying|study|homework"
        r"|assignments|coding|programming|gaming|the office)",
        r"(?:university|uni|college|school) (?:assignments|work|essays)",
        r"(?:do|doing|write|writing) (?:my )?(?:homework|assignments|essays)",
        r"work(?:ing)? from home",
        r"online (?:classes|lessons|lectures)",
    ),
    # Reading and play.
    _use(
        "book novel",
        r"(?:something|anything) (?:good )?to read",
        r"read(?:ing)? (?:on|during|for) (?:a |the |my )?(?:long )?"
        r"(?:flight|plane|train|beach|holiday|vacation|trip|commute)",
        r"page[- ]turner",
        r"bedtime (?:reading|stories)",
        r"book club",
    ),
    _use(
        "board game",
        r"(?:family|game|games) nights?",
        r"games? for (?:the )?(?:family|friends|everyone)",
        r"play together",
        r"party games?",
    ),
    _use(
        "building set",
        r"(?:loves?|likes?|enjoys?) (?:building|constructing)(?: things| stuff)?",
        r"build(?:ing)? (?:blocks|bricks|things|stuff)",
        r"construction (?:toys?|sets?)",
    ),
    _use("toy", rf"(?:present|gift|something) for (?:a |my |our )?(?:little )?{_KIDS}"),
    # Skin.
    _use(
        "moisturising cream lotion",
        r"(?:very |really |extra )?dry (?:skin|hands|face|elbows)",
        r"moisturi[sz]e (?:my )?(?:skin|face|hands)",
        r"hydrat(?:e|ing) (?:my )?(?:skin|face)",
        r"rough (?:skin|hands)",
    ),
    _use(
        "micellar cleansing water cleanser",
        r"(?:remove|removing|take off) (?:my )?(?:make[- ]?up|mascara)",
        r"make[- ]?up remover",
    ),
    _use("mascara", r"(?:longer|fuller|thicker) (?:lashes|eyelashes)"),
)

# English for the product and function words of the other languages shoppers write in (folded).
# Category names of those languages are in assistant.vocabulary's lexicon; this gives the English
# words the listings and the embedding model know.
TRANSLATIONS: Final[dict[str, str]] = {
    # Spanish
    "zapatillas": "shoes",
    "zapatos": "shoes",
    "correr": "running",
    "mochila": "backpack",
    "portatil": "laptop",
    "ordenador": "computer",
    "auriculares": "headphones",
    "inalambricos": "wireless",
    "inalambrico": "wireless",
    "cancelacion": "cancelling",
    "ruido": "noise",
    "cafetera": "coffee maker",
    "televisor": "tv",
    "altavoz": "speaker",
    "camara": "camera",
    "reloj": "watch",
    "inteligente": "smart",
    "telefono": "phone",
    "celular": "phone",
    "libro": "book",
    "libros": "books",
    "juguete": "toy",
    "juguetes": "toys",
    "termo": "flask",
    "impermeable": "waterproof",
    "barato": "cheap",
    "para": "for",
    "con": "with",
    "sin": "without",
    # German
    "kopfhorer": "headphones",
    "gerauschunterdruckung": "noise cancelling",
    "kabellos": "wireless",
    "kabellose": "wireless",
    "laufschuhe": "running shoes",
    "rucksack": "backpack",
    "fernseher": "tv",
    "lautsprecher": "speaker",
    "kamera": "camera",
    "kaffeemaschine": "coffee machine",
    "wasserkocher": "kettle",
    "thermosflasche": "flask",
    "wasserdicht": "waterproof",
    "spielzeug": "toy",
    "buch": "book",
    "mit": "with",
    "ohne": "without",
    "fur": "for",
    # French
    "ecouteurs": "earphones",
    "casque": "headphones",
    "ordinateur": "computer",
    "portable": "portable",
    "chaussures": "shoes",
    "course": "running",
    "televiseur": "tv",
    "enceinte": "speaker",
    "appareil photo": "camera",
    "bouilloire": "kettle",
    "livre": "book",
    "etanche": "waterproof",
    "sans fil": "wireless",
    "avec": "with",
    "sans": "without",
    "pour": "for",
}
_TRANSLATION_RE: Final = re.compile(
    r"(?<![a-z0-9])(?:"
    + "|".join(re.escape(word) for word in sorted(TRANSLATIONS, key=len, reverse=True))
    + r")(?![a-z0-9])"
)
# Words that are English words too ("portable", "fur", "course"): they count as another
# language's only beside a word that is not English.
_ALSO_ENGLISH: Final = frozenset(
    {"portable", "con", "course", "sans", "mit", "fur", "sin", "rucksack", "enceinte"}
)


def products_for_uses(text: str) -> tuple[str, ...]:
    """The product words for the uses a (folded) request describes, in table order."""
    return tuple(use.product for use in USES if use.pattern.search(text))


def use_spans(text: str) -> list[tuple[int, int]]:
    """Where the (folded) text describes a use of the table ("wings without oil"): its words
    say what the product does, not what the shopper excludes."""
    spans: list[tuple[int, int]] = []
    for use in USES:
        # Overlapping matches too: in "crispy fries without oil" both "crispy fries" and
        # "fries without oil" are the use.
        position = 0
        while (match := use.pattern.search(text, position)) is not None:
            spans.append(match.span())
            position = match.start() + 1
    return spans


def translate(text: str) -> str | None:
    """The (folded) text with the words of other languages put into English, or None when it
    has none. Words shared with English ("portable", "course") only count beside a foreign one."""
    found = [match.group(0) for match in _TRANSLATION_RE.finditer(text)]
    if not found or all(word in _ALSO_ENGLISH for word in found):
        return None
    return " ".join(_TRANSLATION_RE.sub(lambda m: TRANSLATIONS[m.group(0)], text).split())
