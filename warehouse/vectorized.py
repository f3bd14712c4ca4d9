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

from dataclasses import dataclass, field

from adapters.base import MAX_DESCRIPTION_CHARS, MAX_TITLE_CHARS, MarketplaceConfig
from adapters.fields import AVAILABLE_WORDS, UNAVAILABLE_WORDS
from onecart.money import currency_exponent, is_iso_currency, known_currencies
from warehouse.offers import GTIN_KEYS, LISTED_GTIN_KEYS

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
# Matched case-insensitively (no lower-cased copy of every payload): simple case folding (Rust's
# regex crate, which Polars uses, like RE2) can only find more keys than Python's str.lower does
# (U+017F folds to 's'), never fewer, and a record with more keys than the one read goes per
# record. Counted by Polars (warehouse.normalize.gtin_key_counts): the scan of every payload cost
# DuckDB's regexp_extract_all 5-8 µs a record, two to three times Polars' count_matches.
# Amazon-style lists (`"eans": {"displayValues": [...]}`) count too: such a record goes per record.
GTIN_KEY_RE = (
    '[":}](?:' + "|".join(sorted(GTIN_KEYS | LISTED_GTIN_KEYS, key=len, reverse=True)) + ')"\\s*:'
)
GTIN_KEY_PATTERN = "(?i)" + GTIN_KEY_RE
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


def sql_literal(text: str) -> str:
    """`text` as a SQL string literal (quotes doubled): for the patterns and constants the
    queries are built from, never for a record's values (those are read from the payload)."""
    return "'" + text.replace("'", "''") + "'"


def dotted_json_path(path: str) -> str:
    """A dotted record path (adapters.fields.dig) as a DuckDB JSON path: every segment a key."""
    return "$" + "".join('."' + segment.replace('"', '\\"') + '"' for segment in path.split("."))


@dataclass(slots=True)
class FormatQuery:
    """The fields a format reads (name -> JSON path), and one expression and guard per column."""

    paths: dict[str, str]
    columns: dict[str, str]
    guards: list[str]
    claimed_gtin: str = "NULL"
    # The field claimed_gtin is read from, when its key is a GTIN key (warehouse.offers.GTIN_KEYS).
    claimed_field: str | None = None
    # The expression of the currency code to join `currency_exponents` on, when the format's
    # currency varies per record in a way currency_source does not know.
    currency_source: str | None = None
    # Columns computed from the fields before the offer's columns, one projection per level:
    # an expression used several times (a description's rewrites) is then computed once per
    # record, not once per use (DuckDB does not share work between the branches of a CASE).
    stages: list[dict[str, str]] = field(default_factory=list)

    def derive(self, level: int, name: str, expression: str) -> str:
        """Compute `expression` as column `name` at projection `level` (0 reads the fields;
        level n may use the columns of the levels below it); returns `name`."""
        while len(self.stages) <= level:
            self.stages.append({})
        self.stages[level][name] = expression
        return name

    def read(self, name: str, path: str) -> tuple[str, str]:
        """Read `path` as field `name`; returns the SQL names of its JSON type and its text."""
        self.paths[name] = path
        return f"t_{name}", f"s_{name}"

    def sql(self, source: str, join: str = "") -> str:
        """The query over `source` (columns page, record_index, payload, fetched_at); `join`
        is joined to the last projection (the currency exponents)."""
        names = list(self.paths)
        path_list = ", ".join(sql_literal(self.paths[name]) for name in names)
        # Every field's JSON type and text from one parse each. json_extract_string gives a
        # list or an object as its JSON text: the few expressions that measure a list
        # (json_array_length of j_<name>) read that text, not the whole payload again.
        typed = ",\n    ".join(
            f"t[{i}] AS t_{name}, s[{i}] AS s_{name}, s[{i}] AS j_{name}"
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
        derived = "".join(
            f",\nstage_{level} AS (SELECT *, "
            + ", ".join(f"{expression} AS {name}" for name, expression in stage.items())
            + f" FROM {'fields' if level == 0 else f'stage_{level - 1}'})"
            for level, stage in enumerate(self.stages)
        )
        last = f"stage_{len(self.stages) - 1}" if self.stages else "fields"
        return f"""
WITH src AS (
    SELECT page, record_index, fetched_at, payload,
           -- raw_catalog.payload is JSON (DuckDB checks it on insert): text that opens with a
           -- brace is an object; any other (even an object after white space) goes per record.
           starts_with(payload, '{{') AS is_object, k.gtin_keys
    FROM {source} AS r
    LEFT JOIN gtin_key_counts AS k USING (page, record_index)
),
parsed AS (
    SELECT *,
           CASE WHEN is_object THEN json_type(payload, [{path_list}]) END AS t,
           CASE WHEN is_object THEN json_extract_string(payload, [{path_list}]) END AS s
    FROM src
),
fields AS (
    SELECT page, record_index, fetched_at, is_object, gtin_keys,
    {typed}
    FROM parsed
){derived}
SELECT page, record_index, fetched_at,
    is_object AND {guard} AS vectorized,
    {columns},
    {self.claimed_gtin} AS claimed_gtin
FROM {last}{join}
"""


# --- Field readers: (value expression, guard) ------------------------------------------------
# Each mirrors one adapters.fields function; warehouse.vectorized_formats builds every format's
# query from them.


def text_sql(
    t: str, s: str, *, limit: int = MAX_TITLE_CHARS, entities: bool = False
) -> tuple[str, str]:
    """adapters.fields.optional_text (and _entity_text when `entities`)."""
    entity_guard = f" AND NOT regexp_matches({s}, '{ENTITY_RE}')" if entities else ""
    guard = (
        f"({t} IS NULL OR {t} = 'NULL' OR ({t} = 'VARCHAR' AND regexp_full_match({s}, "
        f"{sql_literal(TEXT_RE)}) AND length(trim({s})) <= {limit}{entity_guard}))"
    )
    return f"CASE WHEN {t} = 'VARCHAR' THEN nullif(trim({s}), '') END", guard


def title_sql(t: str, s: str, *, entities: bool = False) -> tuple[str, str]:
    """adapters.fields.require_title, for titles that cannot be rejected."""
    entity_guard = f" AND NOT regexp_matches({s}, '{ENTITY_RE}')" if entities else ""
    guard = (
        f"({t} = 'VARCHAR' AND regexp_full_match({s}, {sql_literal(TEXT_RE)}) "
        f"AND length(trim({s})) BETWEEN 1 AND {MAX_TITLE_CHARS}{entity_guard})"
    )
    return f"trim({s})", guard


def external_id_sql(t: str, s: str, *, url_safe: bool = False) -> tuple[str, str]:
    """adapters.fields.require_external_id for integers and plain ids."""
    pattern = URL_SAFE_ID_RE if url_safe else ID_RE
    guard = f"({t} IN {INT_TYPES} OR ({t} = 'VARCHAR' AND regexp_full_match({s}, '{pattern}')))"
    return s, guard


def url_sql(t: str, s: str) -> tuple[str, str]:
    """adapters.fields.optional_url (a list value goes per record)."""
    value = (
        f"CASE WHEN {t} = 'VARCHAR' AND regexp_full_match(trim({s}), '(?i)https?://\\S+') "
        f"THEN trim({s}) END"
    )
    return value, text_sql(t, s, limit=2_000)[1]


def category_leaf_sql(t: str, s: str) -> tuple[str, str]:
    """adapters.fields.category_leaf for text ("A > B > C" -> "C")."""
    value = (
        f"CASE WHEN {t} = 'VARCHAR' THEN nullif(trim(regexp_extract(trim({s}), '[^>]*$')), '') END"
    )
    return value, text_sql(t, s)[1]


def _without_references(s: str) -> str:
    for entity, _ in HTML_REFERENCES:
        s = f"replace({s}, {sql_literal(entity)}, '')"
    return s


def description_sql(q: FormatQuery, t: str, s: str) -> tuple[str, str]:
    """adapters.fields.description_text: plain text, or HTML made of block tags only.

    Each rewrite of html_to_text runs only on the texts it changes (most have no tab, no double
    space, no space beside a line break): a regexp_replace costs per match, and the spaces of a
    500-character description were most of the query's time.
    """
    name = s if s.startswith("s_") else f"s_{len(q.stages)}_{len(q.guards)}"
    # Block tags become line breaks (NULL: no HTML).
    tags = q.derive(
        0,
        f"{name}_tags",
        f"CASE WHEN {t} = 'VARCHAR' AND regexp_matches({s}, '<[A-Za-z/!]') "
        f"THEN regexp_replace({s}, {sql_literal(BLOCK_TAG_RE)}, chr(10), 'g') END",
    )
    # The character references html.parser decodes in the sandbox's and WordPress's markup;
    # &amp; last, so "&amp;#39;" stays the text "&#39;".
    decoded = tags
    for entity, char in HTML_REFERENCES:
        decoded = f"replace({decoded}, {sql_literal(entity)}, {char})"
    lines = q.derive(
        1, f"{name}_lines", f"CASE WHEN strpos({tags}, '&') > 0 THEN {decoded} ELSE {tags} END"
    )
    spaces = q.derive(
        2,
        f"{name}_spaces",
        f"CASE WHEN strpos({lines}, '  ') > 0 OR strpos({lines}, chr(9)) > 0 "
        f"THEN regexp_replace({lines}, '[ \\t]+', ' ', 'g') ELSE {lines} END",
    )
    joined = q.derive(
        3,
        f"{name}_joined",
        f"CASE WHEN strpos({spaces}, ' ' || chr(10)) > 0 OR strpos({spaces}, chr(10) || ' ') > 0 "
        f"THEN regexp_replace({spaces}, ' ?\\n ?', chr(10), 'g') ELSE {spaces} END",
    )
    paragraphs = q.derive(
        4,
        f"{name}_paragraphs",
        f"CASE WHEN strpos({joined}, repeat(chr(10), 3)) > 0 "
        f"THEN regexp_replace({joined}, '\\n{{3,}}', chr(10) || chr(10), 'g') ELSE {joined} END",
    )
    strip = "' ' || chr(9) || chr(10)"
    value = (
        f"CASE WHEN {t} = 'VARCHAR' THEN CASE WHEN {tags} IS NOT NULL "
        f"THEN trim({paragraphs}, {strip}) ELSE trim({s}, {strip}) END ELSE '' END"
    )
    guard = (
        f"({t} IS NULL OR {t} = 'NULL' OR ({t} = 'VARCHAR' AND length({s}) <= "
        f"{MAX_DESCRIPTION_CHARS} AND regexp_full_match({s}, {sql_literal(DESCRIPTION_RE)}) "
        f"AND CASE WHEN {tags} IS NOT NULL THEN strpos({tags}, '<') = 0 "
        f"AND strpos({tags}, '>') = 0 AND (strpos({s}, '&') = 0 "
        f"OR position('&' IN {_without_references(s)}) = 0) "
        f"ELSE strpos({s}, '&') = 0 OR NOT regexp_matches({s}, {sql_literal(HTML_ENTITY_RE)}) END))"
    )
    return value, guard


def gtin_sql(t: str, s: str) -> tuple[str, str]:
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


def claimed_gtin_sql(t: str, s: str) -> str:
    """What warehouse.offers.claimed_gtin finds for a digit string (or nothing)."""
    return f"CASE WHEN {t} = 'VARCHAR' AND {s} <> '' THEN {s} END"


def count_sql(t: str, s: str, *, signed: bool = False) -> tuple[str, str]:
    """adapters.fields.optional_count (optional_int when `signed`) for JSON integers."""
    keep = "true" if signed else f"TRY_CAST({s} AS BIGINT) >= 0"
    value = f"CASE WHEN {t} IN {INT_TYPES} AND {keep} THEN TRY_CAST({s} AS INTEGER) END"
    guard = f"({t} IS NULL OR {t} = 'NULL' OR ({t} IN {INT_TYPES} AND length({s}) <= 9))"
    return value, guard


def rating_sql(t: str, s: str) -> tuple[str, str]:
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


def decimal_price_sql(t: str, s: str, exponent: int, *, types: str) -> tuple[str, str]:
    """adapters.fields.require_decimal_price for positive prices that fit the currency."""
    fraction = f"(\\.[0-9]{{1,{exponent}}})?" if exponent else ""
    minor = _minor_units(s, exponent)
    guard = (
        f"({t} IN {types} AND regexp_full_match({s}, '[0-9]{{1,12}}{fraction}') AND {minor} > 0)"
    )
    return f"CASE WHEN {guard} THEN {minor} END", guard


def amount_currency_price_sql(t: str, s: str) -> tuple[str, str, str]:
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


def word_availability_sql(s: str) -> str:
    """adapters.fields.availability_from_word for ASCII text: true, false or NULL."""
    word = f"regexp_replace(lower(trim({s})), '[\\s\\-]+', '_', 'g')"
    available = ", ".join(sql_literal(w) for w in sorted(AVAILABLE_WORDS))
    unavailable = ", ".join(sql_literal(w) for w in sorted(UNAVAILABLE_WORDS))
    return (
        f"CASE WHEN {word} IN ({available}) THEN true WHEN {word} IN ({unavailable}) THEN false END"
    )


def ascii_text_guard(t: str, s: str) -> str:
    """The guard of a text field made of printable ASCII only (where trim is str.strip)."""
    return f"({t} = 'VARCHAR' AND regexp_full_match({s}, '[ -~]*'))"


def vectorized_query(config: MarketplaceConfig, source: str) -> str | None:
    """The normalization query of `config`'s format over `source`, or None when the format has
    no vectorized path (its records then go through normalize_record one by one).

    The query returns page, record_index, fetched_at, `vectorized` (every guard held), the
    offer columns (meaningful where vectorized) and claimed_gtin. It joins the relations
    `currency_exponents(code, exponent)` (see :func:`currency_exponent_rows`) as `cx`, and
    `gtin_key_counts(page, record_index, gtin_keys)`: how many times each record's payload
    matches GTIN_KEY_PATTERN (a record without a count goes per record).
    """
    from warehouse.vectorized_formats import VECTORIZED_FORMATS

    build = VECTORIZED_FORMATS.get(config.kind)
    query = build(config) if build is not None else None
    if query is None:
        return None
    missing = [column for column in OFFER_COLUMNS if column not in query.columns]
    if missing:  # a programming error in this module, never a data problem
        raise AssertionError(f"{config.kind}: no expression for {missing}")
    currency_column = currency_source(query)
    join = (
        f" LEFT JOIN currency_exponents AS cx ON cx.code = {currency_column}"
        if currency_column
        else ""
    )
    return query.sql(source, join)


def currency_source(query: FormatQuery) -> str | None:
    """The expression of the currency code `query` joins `currency_exponents` on, or None when
    its columns and guards use no currency exponent (`cx`)."""
    if "cx." not in " ".join(query.columns.values()) + " ".join(query.guards):
        return None
    if query.currency_source:
        return query.currency_source
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
    return sorted(
        (code, currency_exponent(code)) for code in known_currencies() if is_iso_currency(code)
    )
