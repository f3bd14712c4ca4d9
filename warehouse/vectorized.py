"""Vectorized normalization: one DuckDB query per API format turns a marketplace's raw records
into offers, column by column, with the same result the adapter's `normalize_record` gives.

Every field is read with an expression and a *guard*: the guard holds only where the expression
provably gives what the adapter's Python gives (plain printable text, digit-only GTINs, decimal
prices with no more decimals than the currency has, HTML descriptions made of block tags only…).
A record whose guards do not all hold is not guessed at: it goes through the adapter's own
`normalize_record`, which also gives every rejection its reason. So the per-record path is kept
for what truly needs it (malformed records, entities, exotic characters), and the common record
never reaches Python.

The dispatch is explicit: :func:`vectorized_query` returns None for a format without a vectorized
path here (a new adapter, or a declarative configuration this module cannot express), and the
pipeline then normalizes every record of that marketplace per record, as before.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from adapters.base import MAX_DESCRIPTION_CHARS, MAX_TITLE_CHARS, MarketplaceConfig
from adapters.fields import AVAILABLE_WORDS, UNAVAILABLE_WORDS
from onecart.money import currency_exponent, is_iso_currency
from warehouse.offers import GTIN_KEYS

# Characters that are printable for Python (str.isprintable) and not whitespace, plus the space:
# text made only of these is left unchanged by clean_text apart from strip() and the length cut.
# tests/warehouse/test_vectorized.py checks every character of the class against Python.
PRINTABLE_CLASS = " -~¡-¬®-ɏ‐-‧‰-⁞€™"
TEXT_RE = f"[{PRINTABLE_CLASS}]*"
DESCRIPTION_RE = f"[\t\n{PRINTABLE_CLASS}]*"
# Ids the pipeline can take as they are: printable ASCII without spaces.
ID_RE = "[!-~]+"
# Ids that urllib.parse.quote(id, safe="") leaves unchanged.
URL_SAFE_ID_RE = "[A-Za-z0-9_.~-]+"
# html.unescape changes text only at an '&' followed by one of these.
ENTITY_RE = "&[#A-Za-z0-9]"
# adapters.fields._LOOKS_LIKE_HTML's entity half: plain text with one of these is parsed as HTML.
HTML_ENTITY_RE = "&(?:#[0-9]+|#x[0-9A-Fa-f]+|[A-Za-z]+);"
# Block tags without attributes: adapters.fields.html_to_text turns each into a line break.
BLOCK_TAG_RE = (
    "</?(?:address|article|aside|blockquote|br|dd|div|dl|dt|figcaption|footer|h[1-6]|header|hr"
    "|li|ol|p|pre|section|table|tr|ul)>|<(?:br|hr) ?/>"
)
HTML_REFERENCES = (
    ("&#x27;", "chr(39)"),
    ("&#39;", "chr(39)"),
    ("&quot;", "chr(34)"),
    ("&amp;", "chr(38)"),
)
INT_TYPES = "('BIGINT', 'UBIGINT')"
# A JSON key that warehouse.offers.claimed_gtin takes for a GTIN key ("ean", "g:gtin", "{ns}upc"):
# the name right after the key's opening quote, a ':' or a '}', and right before its closing quote
# and colon. (A value cannot be followed by a colon, and an escaped quote is never a key's end.)
GTIN_KEY_RE = '[":}](?:' + "|".join(sorted(GTIN_KEYS, key=len, reverse=True)) + ')"\\s*:'
NUMBER_TYPES = "('BIGINT', 'UBIGINT', 'DOUBLE')"
NULLISH = "IS NULL OR {t} = 'NULL'"

OFFER_COLUMNS = (
    "external_id",
    "title",
    "price_minor",
    "currency",
    "description",
    "image_url",
    "product_url",
    "category",
    "brand",
    "model",
    "gtin",
    "mpn",
    "sku",
    "rating",
    "rating_count",
    "available",
    "stock",
)


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _json_path(path: str) -> str:
    """A dotted record path (adapters.fields.dig) as a DuckDB JSON path: every segment a key."""
    return "$" + "".join('."' + segment.replace('"', '\\"') + '"' for segment in path.split("."))


@dataclass(slots=True)
class _Query:
    """The fields a format reads (name -> JSON path), and one expression and guard per column."""

    paths: dict[str, str]
    columns: dict[str, str]
    guards: list[str]
    claimed_gtin: str = "NULL"
    # The field claimed_gtin is read from, when its key is a GTIN key (warehouse.offers.GTIN_KEYS).
    claimed_field: str | None = None

    def read(self, name: str, path: str) -> tuple[str, str]:
        """Read `path` as field `name`; returns the SQL names of its JSON type and its text."""
        self.paths[name] = path
        return f"t_{name}", f"s_{name}"

    def sql(self, source: str) -> str:
        """The query over `source` (columns page, record_index, payload, fetched_at)."""
        names = list(self.paths)
        path_list = ", ".join(_quote(self.paths[name]) for name in names)
        typed = ",\n    ".join(
            f"f[{i}] AS j_{name}, json_type(f[{i}]) AS t_{name}, "
            f"json_extract_string(f[{i}], '$') AS s_{name}"
            for i, name in enumerate(names, start=1)
        )
        columns = ",\n    ".join(f"{expr} AS {name}" for name, expr in self.columns.items())
        # claimed_gtin walks the whole record for GTIN-like keys: a record with any other than
        # the one read here goes per record, so the claims counted here are the same.
        expected_keys = (
            f"CASE WHEN t_{self.claimed_field} IS NULL THEN 0 ELSE 1 END"
            if self.claimed_field
            else "0"
        )
        guards = [*self.guards, f"gtin_keys = {expected_keys}"]
        guard = " AND ".join(f"coalesce({g}, false)" for g in guards)
        return f"""
WITH src AS (
    SELECT page, record_index, fetched_at,
           CASE WHEN json_valid(payload) AND json_type(payload) = 'OBJECT'
                THEN json_extract(payload, [{path_list}]) END AS f,
           len(regexp_extract_all(lower(payload), {_quote(GTIN_KEY_RE)})) AS gtin_keys
    FROM {source}
),
fields AS (
    SELECT page, record_index, fetched_at, f IS NOT NULL AS is_object, gtin_keys,
    {typed}
    FROM src
)
SELECT page, record_index, fetched_at,
    is_object AND {guard} AS vectorized,
    {columns},
    {self.claimed_gtin} AS claimed_gtin
FROM fields
"""


# --- Field readers: (value expression, guard) ------------------------------------------------


def _text(
    t: str, s: str, *, limit: int = MAX_TITLE_CHARS, entities: bool = False
) -> tuple[str, str]:
    """adapters.fields.optional_text (and _entity_text when `entities`)."""
    entity_guard = f" AND NOT regexp_matches({s}, '{ENTITY_RE}')" if entities else ""
    guard = (
        f"({t} IS NULL OR {t} = 'NULL' OR ({t} = 'VARCHAR' AND regexp_full_match({s}, "
        f"{_quote(TEXT_RE)}) AND length(trim({s})) <= {limit}{entity_guard}))"
    )
    return f"CASE WHEN {t} = 'VARCHAR' THEN nullif(trim({s}), '') END", guard


def _title(t: str, s: str, *, entities: bool = False) -> tuple[str, str]:
    """adapters.fields.require_title, for titles that cannot be rejected."""
    entity_guard = f" AND NOT regexp_matches({s}, '{ENTITY_RE}')" if entities else ""
    guard = (
        f"({t} = 'VARCHAR' AND regexp_full_match({s}, {_quote(TEXT_RE)}) "
        f"AND length(trim({s})) BETWEEN 1 AND {MAX_TITLE_CHARS}{entity_guard})"
    )
    return f"trim({s})", guard


def _external_id(t: str, s: str, *, url_safe: bool = False) -> tuple[str, str]:
    """adapters.fields.require_external_id for integers and plain ids."""
    pattern = URL_SAFE_ID_RE if url_safe else ID_RE
    guard = f"({t} IN {INT_TYPES} OR ({t} = 'VARCHAR' AND regexp_full_match({s}, '{pattern}')))"
    return s, guard


def _url(t: str, s: str) -> tuple[str, str]:
    """adapters.fields.optional_url (a list value goes per record)."""
    value = (
        f"CASE WHEN {t} = 'VARCHAR' AND regexp_full_match(trim({s}), '(?i)https?://\\S+') "
        f"THEN trim({s}) END"
    )
    return value, _text(t, s, limit=2_000)[1]


def _category_leaf(t: str, s: str) -> tuple[str, str]:
    """adapters.fields.category_leaf for text ("A > B > C" -> "C")."""
    value = (
        f"CASE WHEN {t} = 'VARCHAR' THEN nullif(trim(regexp_extract(trim({s}), '[^>]*$')), '') END"
    )
    return value, _text(t, s)[1]


def _without_references(s: str) -> str:
    for entity, _ in HTML_REFERENCES:
        s = f"replace({s}, {_quote(entity)}, '')"
    return s


def _description(t: str, s: str) -> tuple[str, str]:
    """adapters.fields.description_text: plain text, or HTML made of block tags only."""
    is_html = f"regexp_matches({s}, '<[A-Za-z/!]')"
    tags = f"regexp_replace({s}, {_quote(BLOCK_TAG_RE)}, chr(10), 'g')"
    # The character references html.parser decodes in the sandbox's and WordPress's markup;
    # &amp; last, so "&amp;#39;" stays the text "&#39;".
    lines = tags
    for entity, char in HTML_REFERENCES:
        lines = f"replace({lines}, {_quote(entity)}, {char})"
    spaces = f"regexp_replace({lines}, '[ \\t]+', ' ', 'g')"
    joined = f"regexp_replace({spaces}, ' ?\\n ?', chr(10), 'g')"
    paragraphs = f"regexp_replace({joined}, '\\n{{3,}}', chr(10) || chr(10), 'g')"
    strip = "' ' || chr(9) || chr(10)"
    value = (
        f"CASE WHEN {t} = 'VARCHAR' THEN CASE WHEN {is_html} "
        f"THEN trim({paragraphs}, {strip}) ELSE trim({s}, {strip}) END ELSE '' END"
    )
    guard = (
        f"({t} IS NULL OR {t} = 'NULL' OR ({t} = 'VARCHAR' AND length({s}) <= "
        f"{MAX_DESCRIPTION_CHARS} AND regexp_full_match({s}, {_quote(DESCRIPTION_RE)}) "
        f"AND CASE WHEN {is_html} THEN NOT regexp_matches({tags}, '[<>]') AND position('&' IN "
        f"{_without_references(s)}) = 0 "
        f"ELSE NOT regexp_matches({s}, {_quote(HTML_ENTITY_RE)}) END))"
    )
    return value, guard


def _gtin(t: str, s: str) -> tuple[str, str]:
    """adapters.gtin.normalize_gtin for digit strings (anything else goes per record)."""
    padded = f"lpad({s}, 14, '0')"
    terms = " + ".join(
        f"(ascii(substr({padded}, {i}, 1)) - 48) * {3 if i % 2 else 1}" for i in range(1, 14)
    )
    valid = (
        f"length({s}) IN (8, 12, 13, 14) AND {padded} <> '00000000000000' "
        f"AND (10 - ({terms}) % 10) % 10 = ascii(substr({padded}, 14, 1)) - 48"
    )
    value = (
        f"CASE WHEN {t} = 'VARCHAR' AND {valid} THEN CASE WHEN starts_with({padded}, '0') "
        f"THEN substr({padded}, 2) ELSE {padded} END END"
    )
    guard = (
        f"({t} IS NULL OR {t} = 'NULL' OR ({t} = 'VARCHAR' AND regexp_full_match({s}, '[0-9]*')))"
    )
    return value, guard


def _claimed(t: str, s: str) -> str:
    """What warehouse.offers.claimed_gtin finds for a digit string (or nothing)."""
    return f"CASE WHEN {t} = 'VARCHAR' AND {s} <> '' THEN {s} END"


def _count(t: str, s: str, *, signed: bool = False) -> tuple[str, str]:
    """adapters.fields.optional_count (optional_int when `signed`) for JSON integers."""
    keep = "true" if signed else f"TRY_CAST({s} AS BIGINT) >= 0"
    value = f"CASE WHEN {t} IN {INT_TYPES} AND {keep} THEN TRY_CAST({s} AS INTEGER) END"
    guard = f"({t} IS NULL OR {t} = 'NULL' OR ({t} IN {INT_TYPES} AND length({s}) <= 9))"
    return value, guard


def _rating(t: str, s: str) -> tuple[str, str]:
    """adapters.base.parse_rating for numbers with at most two decimals."""
    value = (
        f"CASE WHEN {t} IN {NUMBER_TYPES} OR {t} = 'VARCHAR' THEN CASE WHEN "
        f"TRY_CAST({s} AS DECIMAL(9, 2)) <= 5 THEN TRY_CAST({s} AS DECIMAL(3, 2)) END END"
    )
    guard = (
        f"({t} IS NULL OR {t} = 'NULL' OR (({t} IN {NUMBER_TYPES} OR {t} = 'VARCHAR') "
        f"AND regexp_full_match({s}, '[0-9]{{1,3}}(\\.[0-9]{{1,2}})?')))"
    )
    return value, guard


def _minor_units(amount: str, exponent: int) -> str:
    """Integer minor units of a decimal text `amount` ("12.5") with `exponent` decimals."""
    whole = f"TRY_CAST(split_part({amount}, '.', 1) AS BIGINT) * {10**exponent}"
    if exponent == 0:
        return whole
    return f"({whole} + TRY_CAST(rpad(split_part({amount}, '.', 2), {exponent}, '0') AS BIGINT))"


def _decimal_price(t: str, s: str, exponent: int, *, types: str) -> tuple[str, str]:
    """adapters.fields.require_decimal_price for positive prices that fit the currency."""
    fraction = f"(\\.[0-9]{{1,{exponent}}})?" if exponent else ""
    minor = _minor_units(s, exponent)
    guard = (
        f"({t} IN {types} AND regexp_full_match({s}, '[0-9]{{1,12}}{fraction}') AND {minor} > 0)"
    )
    return f"CASE WHEN {guard} THEN {minor} END", guard


def _amount_currency_price(t: str, s: str) -> tuple[str, str, str]:
    """adapters.fields.require_amount_currency_price ("15.00 NGN"): (minor, currency, guard).

    The currency's exponent comes from the `currency_exponents` relation joined as `cx`.
    """
    amount = f"split_part({s}, ' ', 1)"
    fraction = "length(split_part(" + amount + ", '.', 2))"
    minor = (
        f"(TRY_CAST(split_part({amount}, '.', 1) AS BIGINT) * TRY_CAST(pow(10, cx.exponent) AS BIGINT) + "
        f"TRY_CAST(rpad(split_part({amount}, '.', 2), cx.exponent, '0') AS BIGINT))"
    )
    guard = (
        f"({t} = 'VARCHAR' AND regexp_full_match({s}, '[0-9]{{1,12}}(\\.[0-9]+)? [A-Z]{{3}}') "
        f"AND cx.exponent IS NOT NULL AND {fraction} <= cx.exponent AND {minor} > 0)"
    )
    return f"CASE WHEN {guard} THEN {minor} END", "cx.code", guard


def _word_availability(s: str) -> str:
    """adapters.fields.availability_from_word for ASCII text: true, false or NULL."""
    word = f"regexp_replace(lower(trim({s})), '[\\s\\-]+', '_', 'g')"
    available = ", ".join(_quote(w) for w in sorted(AVAILABLE_WORDS))
    unavailable = ", ".join(_quote(w) for w in sorted(UNAVAILABLE_WORDS))
    return (
        f"CASE WHEN {word} IN ({available}) THEN true WHEN {word} IN ({unavailable}) THEN false END"
    )


def _ascii_text_guard(t: str, s: str) -> str:
    return f"({t} = 'VARCHAR' AND regexp_full_match({s}, '[ -~]*'))"


def _base_url(config: MarketplaceConfig) -> str:
    return config.base_url.rstrip("/")


# --- Formats ---------------------------------------------------------------------------------


def _set(query: _Query, column: str, reader: tuple[str, str]) -> None:
    value, guard = reader
    query.columns[column] = value
    query.guards.append(guard)


def _common(query: _Query, id_path: str, title_path: str, *, url_safe_id: bool = False) -> None:
    _set(query, "external_id", _external_id(*query.read("id", id_path), url_safe=url_safe_id))
    _set(query, "title", _title(*query.read("title", title_path)))


def _fixed_currency(query: _Query, config: MarketplaceConfig, t: str, s: str, types: str) -> None:
    _set(
        query, "price_minor", _decimal_price(t, s, currency_exponent(config.currency), types=types)
    )
    query.columns["currency"] = _quote(config.currency)


def _fakestore(config: MarketplaceConfig) -> _Query:
    q = _Query({}, {}, [])
    _common(q, "$.id", "$.title", url_safe_id=True)
    _fixed_currency(q, config, *q.read("price", "$.price"), f"{NUMBER_TYPES[:-1]}, 'VARCHAR')")
    _set(q, "description", _description(*q.read("description", "$.description")))
    _set(q, "image_url", _url(*q.read("image", "$.image")))
    q.columns["product_url"] = f"{_quote(_base_url(config) + '/products/')} || s_id"
    _set(q, "category", _category_leaf(*q.read("category", "$.category")))
    count, count_guard = _count(*q.read("rating_count", "$.rating.count"))
    rating, rating_guard = _rating(*q.read("rating", "$.rating.rate"))
    q.columns["rating_count"] = count
    q.columns["rating"] = f"CASE WHEN ({count}) IS DISTINCT FROM 0 THEN {rating} END"
    q.guards += [count_guard, rating_guard]
    q.columns["available"] = "true"
    for column in ("brand", "model", "gtin", "mpn", "sku", "stock"):
        q.columns[column] = "NULL"
    return q


def _dummyjson(config: MarketplaceConfig) -> _Query:
    q = _Query({}, {}, [])
    _common(q, "$.id", "$.title", url_safe_id=True)
    _fixed_currency(q, config, *q.read("price", "$.price"), f"{NUMBER_TYPES[:-1]}, 'VARCHAR')")
    _set(q, "description", _description(*q.read("description", "$.description")))
    stock, stock_guard = _count(*q.read("stock", "$.stock"))
    q.columns["stock"] = stock
    q.guards.append(stock_guard)
    t, s = q.read("availability", "$.availabilityStatus")
    word = f"CASE WHEN {t} = 'BOOLEAN' THEN {s} = 'true' WHEN {t} = 'VARCHAR' THEN {_word_availability(s)} END"
    q.columns["available"] = f"coalesce({word}, ({stock}) IS NULL OR ({stock}) > 0)"
    q.guards.append(f"({t} IS NULL OR {t} IN ('NULL', 'BOOLEAN') OR {_ascii_text_guard(t, s)})")
    # The thumbnail, else the first image: only the common shapes here.
    thumb, thumb_guard = _url(*q.read("thumbnail", "$.thumbnail"))
    q.columns["image_url"] = thumb
    q.guards += [thumb_guard, f"(({thumb}) IS NOT NULL OR t_images IS NULL)"]
    q.read("images", "$.images")
    q.columns["product_url"] = f"{_quote(_base_url(config) + '/products/')} || s_id"
    _set(q, "category", _category_leaf(*q.read("category", "$.category")))
    _set(q, "brand", _text(*q.read("brand", "$.brand")))
    q.columns["model"] = "NULL"
    _set(q, "gtin", _gtin(*q.read("barcode", "$.meta.barcode")))
    q.claimed_gtin = _claimed("t_barcode", "s_barcode")
    q.claimed_field = "barcode"
    _set(q, "sku", _text(*q.read("sku", "$.sku")))
    _set(q, "rating", _rating(*q.read("rating", "$.rating")))
    q.columns["rating_count"] = "NULL"
    q.columns["mpn"] = "NULL"
    return q


def _shopify(config: MarketplaceConfig) -> _Query:
    q = _Query({}, {}, [])
    _common(q, "$.id", "$.title")
    # The offered variant: only single-variant products with a Storefront `available` flag here.
    t_variants, _ = q.read("variants", "$.variants")
    t_available, s_available = q.read("available", "$.variants[0].available")
    q.guards.append(
        f"({t_variants} = 'ARRAY' AND json_array_length(j_variants) = 1 "
        f"AND {t_available} = 'BOOLEAN')"
    )
    q.columns["available"] = f"{s_available} = 'true'"
    _fixed_currency(q, config, *q.read("price", "$.variants[0].price"), "('VARCHAR')")
    _set(q, "description", _description(*q.read("body", "$.body_html")))
    src, src_guard = _url(*q.read("image", "$.images[0].src"))
    t_images, _ = q.read("images", "$.images")
    t_image, _ = q.read("image_single", "$.image")
    q.columns["image_url"] = src
    q.guards += [src_guard, f"(({src}) IS NOT NULL OR ({t_images} IS NULL AND {t_image} IS NULL))"]
    t_handle, s_handle = q.read("handle", "$.handle")
    q.columns["product_url"] = (
        f"CASE WHEN {t_handle} = 'VARCHAR' THEN "
        f"{_quote(_base_url(config) + '/products/')} || {s_handle} END"
    )
    q.guards.append(
        f"({t_handle} IS NULL OR {t_handle} = 'NULL' OR ({t_handle} = 'VARCHAR' "
        f"AND regexp_full_match({s_handle}, '{URL_SAFE_ID_RE}')))"
    )
    _set(q, "category", _category_leaf(*q.read("product_type", "$.product_type")))
    _set(q, "brand", _text(*q.read("vendor", "$.vendor")))
    sku, sku_guard = _text(*q.read("sku", "$.variants[0].sku"))
    q.columns["sku"] = q.columns["model"] = sku
    q.guards.append(sku_guard)
    _set(q, "gtin", _gtin(*q.read("barcode", "$.variants[0].barcode")))
    q.claimed_gtin = _claimed("t_barcode", "s_barcode")
    q.claimed_field = "barcode"
    _set(q, "stock", _count(*q.read("quantity", "$.variants[0].inventory_quantity")))
    for column in ("mpn", "rating", "rating_count"):
        q.columns[column] = "NULL"
    return q


def _first_name(q: _Query, name: str, path: str) -> tuple[str, str]:
    """woocommerce._first_name for a list whose first item has a usable name (or no items)."""
    t_list, _ = q.read(f"{name}_list", path)
    value, guard = _text(*q.read(name, f"{path}[0].name"), entities=True)
    return value, (
        f"({t_list} IS NULL OR {t_list} = 'NULL' OR ({t_list} = 'ARRAY' AND "
        f"(json_array_length(j_{name}_list) = 0 OR (({value}) IS NOT NULL AND {guard}))))"
    )


def _woocommerce(config: MarketplaceConfig) -> _Query:
    q = _Query({}, {}, [])
    _set(q, "external_id", _external_id(*q.read("id", "$.id")))
    _set(q, "title", _title(*q.read("title", "$.name"), entities=True))
    t_cur, _ = q.read("currency", "$.prices.currency_code")
    t_price, s_price = q.read("price", "$.prices.price")
    t_scale, s_scale = q.read("scale", "$.prices.currency_minor_unit")
    scale = f"TRY_CAST({s_scale} AS INTEGER)"
    amount = f"TRY_CAST({s_price} AS BIGINT)"
    minor = (
        f"CASE WHEN {scale} <= cx.exponent THEN {amount} * TRY_CAST(pow(10, cx.exponent - {scale}) "
        f"AS BIGINT) WHEN {amount} % TRY_CAST(pow(10, {scale} - cx.exponent) AS BIGINT) = 0 "
        f"THEN {amount} // TRY_CAST(pow(10, {scale} - cx.exponent) AS BIGINT) END"
    )
    guard = (
        f"({t_cur} = 'VARCHAR' AND cx.exponent IS NOT NULL AND {t_price} = 'VARCHAR' "
        f"AND regexp_full_match({s_price}, '[0-9]{{1,15}}') AND {t_scale} IN {INT_TYPES} "
        f"AND {s_scale} IN ('0', '1', '2', '3', '4') AND ({minor}) > 0)"
    )
    q.columns["price_minor"] = f"CASE WHEN {guard} THEN {minor} END"
    q.columns["currency"] = "cx.code"
    q.guards.append(guard)
    t_desc, _ = q.read("description", "$.description")
    value, desc_guard = _description(t_desc, "s_description")
    q.columns["description"] = value
    q.guards += [desc_guard, "(t_description = 'VARCHAR' AND s_description <> '')"]
    src, src_guard = _url(*q.read("image", "$.images[0].src"))
    t_images, _ = q.read("images", "$.images")
    t_first, _ = q.read("first_image", "$.images[0]")
    q.columns["image_url"] = src
    q.guards += [
        src_guard,
        f"({t_images} IS NULL OR {t_images} <> 'ARRAY' OR json_array_length(j_images) = 0 "
        f"OR {t_first} = 'OBJECT')",
    ]
    _set(q, "product_url", _url(*q.read("permalink", "$.permalink")))
    _set(q, "category", _first_name(q, "category", "$.categories"))
    _set(q, "brand", _first_name(q, "brand", "$.brands"))
    sku, sku_guard = _text(*q.read("sku", "$.sku"))
    q.columns["sku"] = q.columns["model"] = sku
    q.guards.append(sku_guard)
    _set(q, "gtin", _gtin(*q.read("gtin", "$.global_unique_id")))
    # global_unique_id is no GTIN key for claimed_gtin: WooCommerce records claim none.
    count, count_guard = _count(*q.read("review_count", "$.review_count"))
    rating, rating_guard = _rating(*q.read("rating", "$.average_rating"))
    q.columns["rating_count"] = count
    q.columns["rating"] = f"CASE WHEN ({count}) IS DISTINCT FROM 0 THEN {rating} END"
    q.guards += [count_guard, rating_guard]
    t_stock_flag, s_stock_flag = q.read("in_stock", "$.is_in_stock")
    t_buy, s_buy = q.read("purchasable", "$.is_purchasable")
    q.columns["available"] = (
        f"NOT ({t_stock_flag} = 'BOOLEAN' AND {s_stock_flag} = 'false') "
        f"AND NOT ({t_buy} = 'BOOLEAN' AND {s_buy} = 'false')"
    )
    _set(q, "stock", _count(*q.read("stock", "$.stock_quantity")))
    q.columns["mpn"] = "NULL"
    return q


def _google_feed(config: MarketplaceConfig) -> _Query:
    q = _Query({}, {}, [])

    def field(name: str) -> tuple[str, str]:
        # _field: g:name, else the plain RSS element; here only feeds without the plain one.
        t_plain, _ = q.read(f"plain_{name}", f'$."{name}"')
        q.guards.append(f"{t_plain} IS NULL")
        t, s = q.read(f"g_{name}", f'$."g:{name}"')
        q.guards.append(f"({t} IS NULL OR {t} <> 'ARRAY')")
        return t, s

    _set(q, "external_id", _external_id(*field("id")))
    _set(q, "title", _title(*field("title")))
    # effective_price_text: a sale price without an effective-date window always applies (a
    # window depends on the clock: those records go per record).
    t_sale, s_sale = q.read("sale", '$."g:sale_price"')
    t_window, _ = q.read("sale_window", '$."g:sale_price_effective_date"')
    t_regular, s_regular = q.read("regular", '$."g:price"')
    q.guards.append(
        f"({t_window} IS NULL AND ({t_sale} IS NULL OR {t_sale} = 'NULL' OR ({t_sale} = 'VARCHAR' "
        f"AND regexp_full_match({s_sale}, '[ -~]*'))))"
    )
    q.guards.append(f"({t_regular} IS NULL OR {t_regular} <> 'ARRAY')")
    on_sale = f"({t_sale} = 'VARCHAR' AND trim({s_sale}) <> '')"
    t_price = f"CASE WHEN {on_sale} THEN {t_sale} ELSE {t_regular} END"
    s_price = f"CASE WHEN {on_sale} THEN {s_sale} ELSE {s_regular} END"
    minor, currency, guard = _amount_currency_price(t_price, s_price)
    q.columns["price_minor"] = minor
    q.columns["currency"] = currency
    q.guards.append(guard)
    t, s = q.read("availability", '$."g:availability"')
    q.columns["available"] = (
        f"CASE WHEN {t} IS NULL OR {t} = 'NULL' OR {s} = '' THEN true "
        f"ELSE coalesce({_word_availability(s)}, false) END"
    )
    q.guards.append(f"({t} IS NULL OR {t} = 'NULL' OR {_ascii_text_guard(t, s)})")
    mpn, mpn_guard = _text(*field("mpn"))
    q.columns["mpn"] = q.columns["model"] = mpn
    q.guards.append(mpn_guard)
    leaf, leaf_guard = _category_leaf(*field("product_type"))
    q.columns["category"] = leaf
    q.guards += [leaf_guard, f"({leaf}) IS NOT NULL"]
    _set(q, "description", _description(*field("description")))
    _set(q, "image_url", _url(*field("image_link")))
    _set(q, "product_url", _url(*field("link")))
    _set(q, "brand", _text(*field("brand")))
    _set(q, "gtin", _gtin(*field("gtin")))
    q.claimed_gtin = _claimed("t_g_gtin", "s_g_gtin")
    q.claimed_field = "g_gtin"
    for column in ("sku", "rating", "rating_count", "stock"):
        q.columns[column] = "NULL"
    return q


def _declarative(config: MarketplaceConfig) -> _Query | None:
    from adapters.declarative import parse_declarative_options

    options = parse_declarative_options(config.slug, config.options)
    paths = dict(options.fields)
    # A digit segment indexes a list in adapters.fields.dig; DuckDB would read it as a key.
    if any(segment.isdigit() for path in paths.values() for segment in path.split(".")):
        return None
    if options.currency_path or options.price_encoding == "minor_units":
        return None
    q = _Query({}, {}, [])

    def field(name: str) -> tuple[str, str]:
        path = paths.get(name)
        if path is None:
            return "NULL::VARCHAR", "NULL::VARCHAR"
        return q.read(name, _json_path(path))

    _set(q, "external_id", _external_id(*field("external_id")))
    _set(q, "title", _title(*field("title")))
    if options.price_encoding == "amount_currency_text":
        minor, currency, guard = _amount_currency_price(*field("price"))
        q.columns["price_minor"] = minor
        q.columns["currency"] = currency
        q.guards.append(guard)
    else:
        types = f"{NUMBER_TYPES}" if options.price_encoding == "float" else "('VARCHAR')"
        _fixed_currency(q, config, *field("price"), types)
    _set(q, "description", _description(*field("description")))
    _set(q, "image_url", _url(*field("image_url")))
    _set(q, "product_url", _url(*field("product_url")))
    _set(q, "category", _category_leaf(*field("category")))
    for column in ("brand", "model", "mpn", "sku"):
        _set(q, column, _text(*field(column)))
    _set(q, "gtin", _gtin(*field("gtin")))
    _set(q, "rating", _rating(*field("rating")))
    _set(q, "rating_count", _count(*field("rating_count")))
    stock, stock_guard = _count(*field("stock"), signed=True)
    q.columns["stock"] = f"CASE WHEN ({stock}) >= 0 THEN {stock} END"
    q.guards.append(stock_guard)
    t, s = field("available")
    q.columns["available"] = (
        f"CASE WHEN {t} IS NULL OR {t} = 'NULL' THEN coalesce(({stock}) > 0, true) "
        f"WHEN {t} = 'BOOLEAN' THEN {s} = 'true' "
        f"WHEN {t} IN {INT_TYPES} THEN TRY_CAST({s} AS BIGINT) > 0 "
        f"ELSE coalesce({_word_availability(s)}, false) END"
    )
    q.guards.append(
        f"({t} IS NULL OR {t} IN ('NULL', 'BOOLEAN', 'BIGINT', 'UBIGINT') "
        f"OR {_ascii_text_guard(t, s)})"
    )
    gtin_key = paths.get("gtin", "").rsplit(".", 1)[-1]
    if gtin_key.rsplit(":", 1)[-1].lower() in GTIN_KEYS and "." not in paths.get("gtin", ""):
        q.claimed_gtin = _claimed("t_gtin", "s_gtin")
        q.claimed_field = "gtin"
    return q


VECTORIZED_FORMATS: Mapping[str, Callable[[MarketplaceConfig], _Query | None]] = {
    "fakestore": _fakestore,
    "dummyjson": _dummyjson,
    "shopify": _shopify,
    "woocommerce": _woocommerce,
    "google_feed": _google_feed,
    "declarative": _declarative,
}


def vectorized_query(config: MarketplaceConfig, source: str) -> str | None:
    """The normalization query of `config`'s format over `source`, or None when the format has
    no vectorized path (its records then go through normalize_record one by one).

    The query returns page, record_index, fetched_at, `vectorized` (every guard held), the
    offer columns (meaningful where vectorized) and claimed_gtin. It joins the relation
    `currency_exponents(code, exponent)` (see :func:`currency_exponent_rows`) as `cx`.
    """
    build = VECTORIZED_FORMATS.get(config.kind)
    query = build(config) if build is not None else None
    if query is None:
        return None
    missing = [column for column in OFFER_COLUMNS if column not in query.columns]
    if missing:  # a programming error in this module, never a data problem
        raise AssertionError(f"{config.kind}: no expression for {missing}")
    body = query.sql(source)
    currency_column = _currency_source(query)
    return (
        body.replace(
            "FROM fields\n",
            f"FROM fields LEFT JOIN currency_exponents AS cx ON cx.code = {currency_column}\n",
        )
        if currency_column
        else body
    )


def _currency_source(query: _Query) -> str | None:
    if "cx." not in " ".join(query.columns.values()) + " ".join(query.guards):
        return None
    if "currency" in query.paths and query.paths["currency"] == "$.prices.currency_code":
        return "s_currency"
    # "15.00 NGN": the code is the last word of the price text (a sale price's, when on sale).
    if "sale" in query.paths:
        return (
            "split_part(CASE WHEN t_sale = 'VARCHAR' AND trim(s_sale) <> '' THEN s_sale "
            "ELSE s_regular END, ' ', 2)"
        )
    return "CASE WHEN t_price = 'VARCHAR' THEN split_part(s_price, ' ', 2) END"


def currency_exponent_rows() -> list[tuple[str, int]]:
    """(code, exponent) of every ISO-4217 currency OneCart knows (onecart.money)."""
    from onecart.money import _known_currencies

    return sorted(
        (code, currency_exponent(code)) for code in _known_currencies() if is_iso_currency(code)
    )
