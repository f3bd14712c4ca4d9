"""The vectorized queries of each API format, built from warehouse.vectorized's field readers.

One builder per format, each mirroring its adapter's `normalize_record` field by field (see
adapters/<format>.py); a guard for everything the expression cannot reproduce exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from adapters.base import MarketplaceConfig
from adapters.woocommerce import STORE_API_CART_LIMIT
from onecart.money import currency_exponent
from warehouse.offers import GTIN_KEYS, is_gtin_key
from warehouse.vectorized import (
    INT_TYPES,
    NUMBER_TYPES,
    URL_SAFE_ID_RE,
    FormatQuery,
    amount_currency_price_sql,
    ascii_text_guard,
    category_leaf_sql,
    claimed_gtin_sql,
    count_sql,
    decimal_price_sql,
    description_sql,
    dotted_json_path,
    external_id_sql,
    gtin_sql,
    rating_sql,
    sql_literal,
    text_sql,
    title_sql,
    url_sql,
    word_availability_sql,
)


def _base_url(config: MarketplaceConfig) -> str:
    return config.base_url.rstrip("/")


def _set(query: FormatQuery, column: str, reader: tuple[str, str]) -> None:
    value, guard = reader
    query.columns[column] = value
    query.guards.append(guard)


def _common(
    query: FormatQuery, id_path: str, title_path: str, *, url_safe_id: bool = False
) -> None:
    _set(query, "external_id", external_id_sql(*query.read("id", id_path), url_safe=url_safe_id))
    _set(query, "title", title_sql(*query.read("title", title_path)))


def _fixed_currency(
    query: FormatQuery, config: MarketplaceConfig, t: str, s: str, types: str
) -> None:
    _set(
        query,
        "price_minor",
        decimal_price_sql(t, s, currency_exponent(config.currency), types=types),
    )
    query.columns["currency"] = sql_literal(config.currency)


def _fakestore(config: MarketplaceConfig) -> FormatQuery:
    q = FormatQuery({}, {}, [])
    _common(q, "$.id", "$.title", url_safe_id=True)
    _fixed_currency(q, config, *q.read("price", "$.price"), f"{NUMBER_TYPES[:-1]}, 'VARCHAR')")
    _set(q, "description", description_sql(q, *q.read("description", "$.description")))
    _set(q, "image_url", url_sql(*q.read("image", "$.image")))
    q.columns["product_url"] = f"{sql_literal(_base_url(config) + '/products/')} || s_id"
    _set(q, "category", category_leaf_sql(*q.read("category", "$.category")))
    count, count_guard = count_sql(*q.read("rating_count", "$.rating.count"))
    rating, rating_guard = rating_sql(*q.read("rating", "$.rating.rate"))
    q.columns["rating_count"] = count
    q.columns["rating"] = f"CASE WHEN ({count}) IS DISTINCT FROM 0 THEN {rating} END"
    q.guards += [count_guard, rating_guard]
    q.columns["available"] = "true"
    for column in ("brand", "model", "gtin", "mpn", "sku", "stock"):
        q.columns[column] = "NULL"
    return q


def _dummyjson(config: MarketplaceConfig) -> FormatQuery:
    q = FormatQuery({}, {}, [])
    _common(q, "$.id", "$.title", url_safe_id=True)
    _fixed_currency(q, config, *q.read("price", "$.price"), f"{NUMBER_TYPES[:-1]}, 'VARCHAR')")
    _set(q, "description", description_sql(q, *q.read("description", "$.description")))
    stock, stock_guard = count_sql(*q.read("stock", "$.stock"))
    q.columns["stock"] = stock
    q.guards.append(stock_guard)
    t, s = q.read("availability", "$.availabilityStatus")
    word = f"CASE WHEN {t} = 'BOOLEAN' THEN {s} = 'true' WHEN {t} = 'VARCHAR' THEN {word_availability_sql(s)} END"
    q.columns["available"] = f"coalesce({word}, ({stock}) IS NULL OR ({stock}) > 0)"
    q.guards.append(f"({t} IS NULL OR {t} IN ('NULL', 'BOOLEAN') OR {ascii_text_guard(t, s)})")
    # The thumbnail, else the first image: only the common shapes here.
    thumb, thumb_guard = url_sql(*q.read("thumbnail", "$.thumbnail"))
    q.columns["image_url"] = thumb
    q.guards += [thumb_guard, f"(({thumb}) IS NOT NULL OR t_images IS NULL)"]
    q.read("images", "$.images")
    q.columns["product_url"] = f"{sql_literal(_base_url(config) + '/products/')} || s_id"
    _set(q, "category", category_leaf_sql(*q.read("category", "$.category")))
    _set(q, "brand", text_sql(*q.read("brand", "$.brand")))
    q.columns["model"] = "NULL"
    _set(q, "gtin", gtin_sql(*q.read("barcode", "$.meta.barcode")))
    q.claimed_gtin = claimed_gtin_sql("t_barcode", "s_barcode")
    q.claimed_field = "barcode"
    _set(q, "sku", text_sql(*q.read("sku", "$.sku")))
    _set(q, "rating", rating_sql(*q.read("rating", "$.rating")))
    q.columns["rating_count"] = "NULL"
    q.columns["mpn"] = "NULL"
    return q


def _shopify(config: MarketplaceConfig) -> FormatQuery:
    q = FormatQuery({}, {}, [])
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
    _set(q, "description", description_sql(q, *q.read("body", "$.body_html")))
    src, src_guard = url_sql(*q.read("image", "$.images[0].src"))
    t_images, _ = q.read("images", "$.images")
    t_image, _ = q.read("image_single", "$.image")
    q.columns["image_url"] = src
    q.guards += [src_guard, f"(({src}) IS NOT NULL OR ({t_images} IS NULL AND {t_image} IS NULL))"]
    t_handle, s_handle = q.read("handle", "$.handle")
    q.columns["product_url"] = (
        f"CASE WHEN {t_handle} = 'VARCHAR' THEN "
        f"{sql_literal(_base_url(config) + '/products/')} || {s_handle} END"
    )
    q.guards.append(
        f"({t_handle} IS NULL OR {t_handle} = 'NULL' OR ({t_handle} = 'VARCHAR' "
        f"AND regexp_full_match({s_handle}, '{URL_SAFE_ID_RE}')))"
    )
    _set(q, "category", category_leaf_sql(*q.read("product_type", "$.product_type")))
    _set(q, "brand", text_sql(*q.read("vendor", "$.vendor")))
    sku, sku_guard = text_sql(*q.read("sku", "$.variants[0].sku"))
    q.columns["sku"] = q.columns["model"] = sku
    q.guards.append(sku_guard)
    _set(q, "gtin", gtin_sql(*q.read("barcode", "$.variants[0].barcode")))
    q.claimed_gtin = claimed_gtin_sql("t_barcode", "s_barcode")
    q.claimed_field = "barcode"
    # adapters.shopify._variant_stock: no stock limit for a variant whose inventory is not
    # tracked (inventory_management null or empty) or that may be oversold (policy "continue").
    quantity, quantity_guard = count_sql(*q.read("quantity", "$.variants[0].inventory_quantity"))
    t_tracking, s_tracking = q.read("tracking", "$.variants[0].inventory_management")
    t_policy, s_policy = q.read("policy", "$.variants[0].inventory_policy")
    untracked = (
        f"({t_tracking} = 'NULL' OR ({t_tracking} = 'VARCHAR' AND {s_tracking} = '') "
        f"OR ({t_policy} = 'VARCHAR' AND {s_policy} = 'continue'))"
    )
    q.columns["stock"] = f"CASE WHEN {untracked} THEN NULL ELSE {quantity} END"
    q.guards.append(quantity_guard)
    for column in ("mpn", "rating", "rating_count"):
        q.columns[column] = "NULL"
    return q


def _first_name(q: FormatQuery, name: str, path: str) -> tuple[str, str]:
    """woocommerce._first_name for a list whose first item has a usable name (or no items)."""
    t_list, _ = q.read(f"{name}_list", path)
    value, guard = text_sql(*q.read(name, f"{path}[0].name"), entities=True)
    return value, (
        f"({t_list} IS NULL OR {t_list} = 'NULL' OR ({t_list} = 'ARRAY' AND "
        f"(json_array_length(j_{name}_list) = 0 OR (({value}) IS NOT NULL AND {guard}))))"
    )


def _woocommerce(config: MarketplaceConfig) -> FormatQuery:
    q = FormatQuery({}, {}, [])
    _set(q, "external_id", external_id_sql(*q.read("id", "$.id")))
    _set(q, "title", title_sql(*q.read("title", "$.name"), entities=True))
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
    value, desc_guard = description_sql(q, t_desc, "s_description")
    q.columns["description"] = value
    q.guards += [desc_guard, "(t_description = 'VARCHAR' AND s_description <> '')"]
    src, src_guard = url_sql(*q.read("image", "$.images[0].src"))
    t_images, _ = q.read("images", "$.images")
    t_first, _ = q.read("first_image", "$.images[0]")
    q.columns["image_url"] = src
    q.guards += [
        src_guard,
        f"({t_images} IS NULL OR {t_images} <> 'ARRAY' OR json_array_length(j_images) = 0 "
        f"OR {t_first} = 'OBJECT')",
    ]
    _set(q, "product_url", url_sql(*q.read("permalink", "$.permalink")))
    _set(q, "category", _first_name(q, "category", "$.categories"))
    _set(q, "brand", _first_name(q, "brand", "$.brands"))
    sku, sku_guard = text_sql(*q.read("sku", "$.sku"))
    q.columns["sku"] = q.columns["model"] = sku
    q.guards.append(sku_guard)
    _set(q, "gtin", gtin_sql(*q.read("gtin", "$.global_unique_id")))
    # global_unique_id is no GTIN key for claimed_gtin: WooCommerce records claim none.
    count, count_guard = count_sql(*q.read("review_count", "$.review_count"))
    rating, rating_guard = rating_sql(*q.read("rating", "$.average_rating"))
    q.columns["rating_count"] = count
    q.columns["rating"] = f"CASE WHEN ({count}) IS DISTINCT FROM 0 THEN {rating} END"
    q.guards += [count_guard, rating_guard]
    t_stock_flag, s_stock_flag = q.read("in_stock", "$.is_in_stock")
    t_buy, s_buy = q.read("purchasable", "$.is_purchasable")
    q.columns["available"] = (
        f"NOT ({t_stock_flag} = 'BOOLEAN' AND {s_stock_flag} = 'false') "
        f"AND NOT ({t_buy} = 'BOOLEAN' AND {s_buy} = 'false')"
    )
    # adapters.woocommerce.store_stock: REST v3's stock_quantity, else the Store API's
    # add_to_cart.maximum below its 9999 cap (not for a product sold individually), else its
    # low_stock_remaining.
    quantity, quantity_guard = count_sql(*q.read("stock", "$.stock_quantity"))
    maximum, maximum_guard = count_sql(*q.read("cart_maximum", "$.add_to_cart.maximum"))
    t_single, s_single = q.read("sold_individually", "$.sold_individually")
    low, low_guard = count_sql(*q.read("low_stock", "$.low_stock_remaining"))
    limited = (
        f"({maximum}) < {STORE_API_CART_LIMIT} "
        f"AND NOT ({t_single} = 'BOOLEAN' AND {s_single} = 'true')"
    )
    q.columns["stock"] = (
        f"CASE WHEN t_stock IS NOT NULL AND t_stock <> 'NULL' THEN {quantity} "
        f"WHEN coalesce({limited}, false) THEN {maximum} ELSE {low} END"
    )
    q.guards += [quantity_guard, maximum_guard, low_guard]
    q.columns["mpn"] = "NULL"
    return q


def _google_feed(config: MarketplaceConfig) -> FormatQuery:
    q = FormatQuery({}, {}, [])

    def field(name: str) -> tuple[str, str]:
        # _field: g:name, else the plain RSS element; here only feeds without the plain one.
        t_plain, _ = q.read(f"plain_{name}", f'$."{name}"')
        q.guards.append(f"{t_plain} IS NULL")
        t, s = q.read(f"g_{name}", f'$."g:{name}"')
        q.guards.append(f"({t} IS NULL OR {t} <> 'ARRAY')")
        return t, s

    _set(q, "external_id", external_id_sql(*field("id")))
    _set(q, "title", title_sql(*field("title")))
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
    minor, currency, guard = amount_currency_price_sql(t_price, s_price)
    q.columns["price_minor"] = minor
    q.columns["currency"] = currency
    q.guards.append(guard)
    t, s = q.read("availability", '$."g:availability"')
    q.columns["available"] = (
        f"CASE WHEN {t} IS NULL OR {t} = 'NULL' OR {s} = '' THEN true "
        f"ELSE coalesce({word_availability_sql(s)}, false) END"
    )
    q.guards.append(f"({t} IS NULL OR {t} = 'NULL' OR {ascii_text_guard(t, s)})")
    mpn, mpn_guard = text_sql(*field("mpn"))
    q.columns["mpn"] = q.columns["model"] = mpn
    q.guards.append(mpn_guard)
    leaf, leaf_guard = category_leaf_sql(*field("product_type"))
    q.columns["category"] = leaf
    q.guards += [leaf_guard, f"({leaf}) IS NOT NULL"]
    _set(q, "description", description_sql(q, *field("description")))
    _set(q, "image_url", url_sql(*field("image_link")))
    _set(q, "product_url", url_sql(*field("link")))
    _set(q, "brand", text_sql(*field("brand")))
    _set(q, "gtin", gtin_sql(*field("gtin")))
    q.claimed_gtin = claimed_gtin_sql("t_g_gtin", "s_g_gtin")
    q.claimed_field = "g_gtin"
    for column in ("sku", "rating", "rating_count", "stock"):
        q.columns[column] = "NULL"
    return q


def _declarative(config: MarketplaceConfig) -> FormatQuery | None:
    from adapters.declarative import parse_declarative_options

    options = parse_declarative_options(config.slug, config.options)
    paths = dict(options.fields)
    # A digit segment indexes a list in adapters.fields.dig; DuckDB would read it as a key.
    if any(segment.isdigit() for path in paths.values() for segment in path.split(".")):
        return None
    if options.currency_path or options.price_encoding == "minor_units":
        return None
    q = FormatQuery({}, {}, [])

    def field(name: str) -> tuple[str, str]:
        path = paths.get(name)
        if path is None:
            return "NULL::VARCHAR", "NULL::VARCHAR"
        return q.read(name, dotted_json_path(path))

    _set(q, "external_id", external_id_sql(*field("external_id")))
    _set(q, "title", title_sql(*field("title")))
    if options.price_encoding == "amount_currency_text":
        minor, currency, guard = amount_currency_price_sql(*field("price"))
        q.columns["price_minor"] = minor
        q.columns["currency"] = currency
        q.guards.append(guard)
    else:
        types = f"{NUMBER_TYPES}" if options.price_encoding == "float" else "('VARCHAR')"
        _fixed_currency(q, config, *field("price"), types)
    _set(q, "description", description_sql(q, *field("description")))
    _set(q, "image_url", url_sql(*field("image_url")))
    _set(q, "product_url", url_sql(*field("product_url")))
    _set(q, "category", category_leaf_sql(*field("category")))
    for column in ("brand", "model", "mpn", "sku"):
        _set(q, column, text_sql(*field(column)))
    _set(q, "gtin", gtin_sql(*field("gtin")))
    _set(q, "rating", rating_sql(*field("rating")))
    _set(q, "rating_count", count_sql(*field("rating_count")))
    stock, stock_guard = count_sql(*field("stock"), signed=True)
    q.columns["stock"] = f"CASE WHEN ({stock}) >= 0 THEN {stock} END"
    q.guards.append(stock_guard)
    t, s = field("available")
    q.columns["available"] = (
        f"CASE WHEN {t} IS NULL OR {t} = 'NULL' THEN coalesce(({stock}) > 0, true) "
        f"WHEN {t} = 'BOOLEAN' THEN {s} = 'true' "
        f"WHEN {t} IN {INT_TYPES} THEN TRY_CAST({s} AS BIGINT) > 0 "
        f"ELSE coalesce({word_availability_sql(s)}, false) END"
    )
    q.guards.append(
        f"({t} IS NULL OR {t} IN ('NULL', 'BOOLEAN', 'BIGINT', 'UBIGINT') "
        f"OR {ascii_text_guard(t, s)})"
    )
    gtin_key = paths.get("gtin", "").rsplit(".", 1)[-1]
    if gtin_key.rsplit(":", 1)[-1].lower() in GTIN_KEYS and "." not in paths.get("gtin", ""):
        q.claimed_gtin = claimed_gtin_sql("t_gtin", "s_gtin")
        q.claimed_field = "gtin"
    return q


def _csv_feed(config: MarketplaceConfig) -> FormatQuery | None:
    """adapters.csv_feed.CsvFeedAdapter.normalize_record, for feeds with plain decimal prices.

    Every cell is text (`_cell`: stripped, empty is absent); the readers below take the raw
    cell and their guards hold only where stripping first changes nothing they give.
    """
    from adapters.csv_feed import PROBLEM_KEY, parse_csv_feed_options

    options = parse_csv_feed_options(config.slug, config.options)
    if (
        options.price_encoding != "decimal_string"
        or options.thousands_separator
        or options.decimal_comma
    ):
        return None
    columns = dict(options.columns)
    q = FormatQuery({}, {}, [])

    def cell(name: str) -> tuple[str, str]:
        column = columns.get(name)
        if column is None:
            return "NULL::VARCHAR", "NULL::VARCHAR"
        t, s = q.read(name, _json_path_key(column))
        # A cell that is not text is absent for _cell: only text (or no cell) here.
        q.guards.append(f"({t} IS NULL OR {t} = 'VARCHAR')")
        return t, s

    def plain(t: str, s: str) -> str:
        """The cell as _cell gives it, for printable ASCII (where str.strip is trim)."""
        q.guards.append(f"({t} IS NULL OR {ascii_text_guard(t, s)})")
        return f"CASE WHEN {t} = 'VARCHAR' THEN nullif(trim({s}), '') END"

    t_problem, _ = q.read("problem", _json_path_key(PROBLEM_KEY))
    q.guards.append(f"{t_problem} IS NULL")
    _set(q, "external_id", external_id_sql(*cell("external_id")))
    _set(q, "title", title_sql(*cell("title")))
    # The sale price when there is one, else the price; the currency cell, else the config's.
    sale = plain(*cell("sale_price"))
    regular = plain(*cell("price"))
    amount = f"coalesce({sale}, {regular})"
    currency = f"upper(coalesce({plain(*cell('currency'))}, {sql_literal(config.currency)}))"
    q.currency_source = currency
    minor = (
        f"(TRY_CAST(split_part({amount}, '.', 1) AS BIGINT) * "
        f"TRY_CAST(pow(10, cx.exponent) AS BIGINT) + "
        f"TRY_CAST(rpad(split_part({amount}, '.', 2), cx.exponent, '0') AS BIGINT))"
    )
    guard = (
        f"(regexp_full_match({amount}, '[0-9]{{1,12}}(\\.[0-9]+)?') AND cx.exponent IS NOT NULL "
        f"AND length(split_part({amount}, '.', 2)) <= cx.exponent AND {minor} > 0)"
    )
    q.columns["price_minor"] = f"CASE WHEN {guard} THEN {minor} END"
    q.columns["currency"] = "cx.code"
    q.guards.append(guard)
    # optional_int of the stock cell; the offer keeps it only when not negative, and without an
    # availability cell a stock says whether the offer can be bought.
    stock_text = plain(*cell("stock"))
    q.guards.append(f"coalesce(NOT regexp_matches({stock_text}, '[0-9]{{10}}'), true)")
    stock = (
        f"CASE WHEN regexp_full_match({stock_text}, '[+-]?[0-9]+') "
        f"THEN CAST({stock_text} AS INTEGER) END"
    )
    q.columns["stock"] = f"CASE WHEN ({stock}) >= 0 THEN {stock} END"
    availability = plain(*cell("availability"))
    q.columns["available"] = (
        f"CASE WHEN ({availability}) IS NULL THEN coalesce(({stock}) > 0, true) "
        f"ELSE coalesce({word_availability_sql(availability)}, false) END"
    )
    _set(q, "description", description_sql(q, *cell("description")))
    _set(q, "image_url", url_sql(*cell("image_url")))
    _set(q, "product_url", url_sql(*cell("product_url")))
    _set(q, "category", category_leaf_sql(*cell("category")))
    for column in ("brand", "model", "mpn", "sku"):
        _set(q, column, text_sql(*cell(column)))
    t_gtin, s_gtin = cell("gtin")
    _set(q, "gtin", gtin_sql(t_gtin, s_gtin))
    if "gtin" in columns and is_gtin_key(columns["gtin"]):
        q.claimed_gtin = claimed_gtin_sql(t_gtin, s_gtin)
        q.claimed_field = "gtin"
    for column in ("rating", "rating_count"):
        q.columns[column] = "NULL"
    return q


def _json_path_key(key: str) -> str:
    """A JSON path to one top-level key, whatever characters the key has."""
    return '$."' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'


VECTORIZED_FORMATS: Mapping[str, Callable[[MarketplaceConfig], FormatQuery | None]] = {
    "fakestore": _fakestore,
    "dummyjson": _dummyjson,
    "shopify": _shopify,
    "woocommerce": _woocommerce,
    "google_feed": _google_feed,
    "declarative": _declarative,
    "csv_feed": _csv_feed,
}
