"""The floor of a typed-read normalization, against DuckDB's read_json (issue 11).

    .venv/bin/python -m bench.typed_floor scale --raw RAW --slug kiondo --copies 5 --out BIG
    .venv/bin/python -m bench.typed_floor measure --raw BIG --slug kiondo [--rounds 2]

The design this measures: DuckDB reads each stored payload once into an explicitly typed STRUCT
(`json_transform(payload, <struct>)`: no schema inference, no re-parse per field) and one
INSERT ... SELECT per format writes products and product_sources. `measure` times, in one
process (CPU: time.process_time, DuckDB's threads included), on a copy of the warehouse:

- `read_json`: a fresh database file, ``CREATE TABLE … AS SELECT * FROM read_json(…)`` of the
  marketplace's payloads exported as bench.pipeline_bench exports them, then CHECKPOINT (the
  pipeline bench's baseline, one marketplace);
- the **floor**: the typed read and the offer's values with **no guard at all** (no
  printable-text, id, GTIN, HTML or price-shape check, no per-record path, no rejection rows, no
  canonical category, no previous offers), then the same writes the step makes on a first full
  run: drop records without a price or title and repeated ids (the first kept), insert the
  products with their SHA-256 content hash and primary key, insert product_sources, commit,
  checkpoint. Its values are close to, not equal to, what the adapters give: it is a lower
  bound on any exact design of this shape, not a normalization.

If the floor is already above 2x read_json, no set of guards can bring the design under it.
`scale` makes a million-offer-sized marketplace from a smaller raw warehouse (read_json's cost
per record falls as its files grow: it samples 20,480 records per file): `--copies` copies of
the marketplace's raw records, each copy's first key's value prefixed with the copy's number so
ids (and payload hashes) stay distinct.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

# What the sandbox's marketplaces read, as typed STRUCTs, and the offer columns from them (no
# guards: see the module's docstring). Keyed by the sandbox's slugs (bench.pipeline_bench).
_DECIMAL_MINOR = (
    "TRY_CAST(split_part({0}, '.', 1) AS BIGINT) * 100 "
    "+ TRY_CAST(rpad(split_part({0}, '.', 2), 2, '0') AS BIGINT)"
)
FLOOR_SPECS: dict[str, tuple[dict, str]] = {
    "kiondo": (
        {
            "id": "VARCHAR",
            "name": "VARCHAR",
            "permalink": "VARCHAR",
            "sku": "VARCHAR",
            "description": "VARCHAR",
            "prices": {
                "price": "VARCHAR",
                "currency_code": "VARCHAR",
                "currency_minor_unit": "INTEGER",
            },
            "average_rating": "VARCHAR",
            "review_count": "BIGINT",
            "images": [{"src": "VARCHAR"}],
            "categories": [{"name": "VARCHAR"}],
            "brands": [{"name": "VARCHAR"}],
            "is_purchasable": "BOOLEAN",
            "is_in_stock": "BOOLEAN",
            "stock_quantity": "BIGINT",
            "add_to_cart": {"maximum": "BIGINT"},
            "sold_individually": "BOOLEAN",
            "low_stock_remaining": "BIGINT",
            "global_unique_id": "VARCHAR",
        },
        "j.id AS external_id, trim(j.name) AS title, trim(j.description) AS description, "
        "TRY_CAST(j.prices.price AS BIGINT) AS price_minor, j.prices.currency_code AS currency, "
        "j.images[1].src AS image_url, j.permalink AS product_url, "
        "j.categories[1].name AS category, j.brands[1].name AS brand, "
        "nullif(trim(j.sku), '') AS model, j.global_unique_id AS gtin, NULL::VARCHAR AS mpn, "
        "nullif(trim(j.sku), '') AS sku, TRY_CAST(j.average_rating AS DECIMAL(3, 2)) AS rating, "
        "CAST(j.review_count AS INTEGER) AS rating_count, "
        "NOT coalesce(j.is_in_stock = false, false) "
        "AND NOT coalesce(j.is_purchasable = false, false) AS available, "
        "CAST(CASE WHEN j.stock_quantity IS NOT NULL THEN j.stock_quantity "
        "WHEN j.add_to_cart.maximum < 9999 AND NOT coalesce(j.sold_individually, false) "
        "THEN j.add_to_cart.maximum ELSE j.low_stock_remaining END AS INTEGER) AS stock",
    ),
    "shopwave": (
        {
            "id": "VARCHAR",
            "title": "VARCHAR",
            "handle": "VARCHAR",
            "body_html": "VARCHAR",
            "vendor": "VARCHAR",
            "product_type": "VARCHAR",
            "variants": [
                {
                    "sku": "VARCHAR",
                    "available": "BOOLEAN",
                    "price": "VARCHAR",
                    "barcode": "VARCHAR",
                    "inventory_quantity": "BIGINT",
                }
            ],
            "images": [{"src": "VARCHAR"}],
        },
        "j.id AS external_id, trim(j.title) AS title, trim(j.body_html) AS description, "
        f"{_DECIMAL_MINOR.format('j.variants[1].price')} AS price_minor, 'USD' AS currency, "
        "j.images[1].src AS image_url, '/products/' || j.handle AS product_url, "
        "j.product_type AS category, j.vendor AS brand, j.variants[1].sku AS model, "
        "j.variants[1].barcode AS gtin, NULL::VARCHAR AS mpn, j.variants[1].sku AS sku, "
        "NULL::DECIMAL(3, 2) AS rating, NULL::INTEGER AS rating_count, "
        "j.variants[1].available AS available, "
        "CAST(j.variants[1].inventory_quantity AS INTEGER) AS stock",
    ),
    "dummymart": (
        {
            "id": "VARCHAR",
            "title": "VARCHAR",
            "price": "VARCHAR",
            "description": "VARCHAR",
            "category": "VARCHAR",
            "thumbnail": "VARCHAR",
            "brand": "VARCHAR",
            "sku": "VARCHAR",
            "rating": "VARCHAR",
            "stock": "BIGINT",
            "availabilityStatus": "VARCHAR",
            "meta": {"barcode": "VARCHAR"},
        },
        "j.id AS external_id, trim(j.title) AS title, trim(j.description) AS description, "
        f"{_DECIMAL_MINOR.format('j.price')} AS price_minor, 'USD' AS currency, "
        "j.thumbnail AS image_url, '/products/' || j.id AS product_url, j.category AS category, "
        "j.brand AS brand, NULL::VARCHAR AS model, j.meta.barcode AS gtin, NULL::VARCHAR AS mpn, "
        "j.sku AS sku, TRY_CAST(j.rating AS DECIMAL(3, 2)) AS rating, "
        "NULL::INTEGER AS rating_count, lower(j.availabilityStatus) = 'in stock' AS available, "
        "CAST(j.stock AS INTEGER) AS stock",
    ),
    "fakestore": (
        {
            "id": "VARCHAR",
            "title": "VARCHAR",
            "price": "VARCHAR",
            "description": "VARCHAR",
            "category": "VARCHAR",
            "image": "VARCHAR",
            "rating": {"rate": "VARCHAR", "count": "BIGINT"},
        },
        "j.id AS external_id, trim(j.title) AS title, trim(j.description) AS description, "
        f"{_DECIMAL_MINOR.format('j.price')} AS price_minor, 'EUR' AS currency, "
        "j.image AS image_url, '/products/' || j.id AS product_url, j.category AS category, "
        "NULL::VARCHAR AS brand, NULL::VARCHAR AS model, NULL::VARCHAR AS gtin, "
        "NULL::VARCHAR AS mpn, NULL::VARCHAR AS sku, "
        "TRY_CAST(j.rating.rate AS DECIMAL(3, 2)) AS rating, "
        "CAST(j.rating.count AS INTEGER) AS rating_count, true AS available, "
        "NULL::INTEGER AS stock",
    ),
    "naijamall": (
        {
            f"g:{name}": "VARCHAR"
            for name in (
                "id",
                "title",
                "description",
                "link",
                "image_link",
                "availability",
                "price",
                "sale_price",
                "brand",
                "gtin",
                "mpn",
                "product_type",
            )
        },
        'j."g:id" AS external_id, trim(j."g:title") AS title, '
        'trim(j."g:description") AS description, '
        + _DECIMAL_MINOR.format("""split_part(coalesce(j."g:sale_price", j."g:price"), ' ', 1)""")
        + """ AS price_minor, split_part(j."g:price", ' ', 2) AS currency, """
        'j."g:image_link" AS image_url, j."g:link" AS product_url, '
        'j."g:product_type" AS category, j."g:brand" AS brand, j."g:mpn" AS model, '
        'j."g:gtin" AS gtin, j."g:mpn" AS mpn, NULL::VARCHAR AS sku, '
        "NULL::DECIMAL(3, 2) AS rating, NULL::INTEGER AS rating_count, "
        """j."g:availability" = 'in_stock' AS available, NULL::INTEGER AS stock""",
    ),
    "bazaar": (
        {
            "sku": "VARCHAR",
            "name": "VARCHAR",
            "summary": "VARCHAR",
            "pricing": {"display": "VARCHAR"},
            "media": {"thumb": "VARCHAR"},
            "url": "VARCHAR",
            "taxonomy": {"leaf": "VARCHAR"},
            "maker": {"name": "VARCHAR", "model": "VARCHAR"},
            "ean": "VARCHAR",
            "score": "VARCHAR",
            "votes": "BIGINT",
            "in_stock": "BOOLEAN",
            "stock_level": "BIGINT",
        },
        "j.sku AS external_id, trim(j.name) AS title, trim(j.summary) AS description, "
        + _DECIMAL_MINOR.format("split_part(j.pricing.display, ' ', 1)")
        + " AS price_minor, split_part(j.pricing.display, ' ', 2) AS currency, "
        "j.media.thumb AS image_url, j.url AS product_url, j.taxonomy.leaf AS category, "
        "j.maker.name AS brand, j.maker.model AS model, j.ean AS gtin, NULL::VARCHAR AS mpn, "
        "j.sku AS sku, TRY_CAST(j.score AS DECIMAL(3, 2)) AS rating, "
        "CAST(j.votes AS INTEGER) AS rating_count, j.in_stock AS available, "
        "CAST(j.stock_level AS INTEGER) AS stock",
    ),
}
# The content hash as warehouse.offers.content_hash builds its text (fields joined by U+001F;
# NULL marks aside: a floor, not the same digest).
_CONTENT_HASH = (
    "sha256(concat_ws(chr(31), title, description, price_minor, currency, image_url, "
    "product_url, category, brand, model, gtin, mpn, sku, rating, rating_count, available, stock))"
)
_KEEP = (
    "WHERE external_id IS NOT NULL AND title IS NOT NULL AND description IS NOT NULL "
    "AND price_minor > 0 AND currency IS NOT NULL "
    "QUALIFY row_number() OVER (PARTITION BY external_id ORDER BY page, record_index) = 1"
)
# The step's DuckDB memory limit (pipelines.assets.catalog.NORMALIZE_MEMORY_LIMIT).
MEMORY_LIMIT = "512MB"


def scale(raw: Path, slug: str, copies: int, out: Path) -> None:
    """`out`: a copy of `raw` whose raw_catalog holds `copies` copies of `slug`'s records only,
    each copy's pages after the previous copy's and its first key's value prefixed by its number
    (distinct ids and payload hashes)."""
    import duckdb

    shutil.copyfile(raw, out)
    conn = duckdb.connect(str(out))
    try:
        conn.execute(
            "CREATE TEMP TABLE one AS SELECT * FROM raw_catalog WHERE marketplace = ?", [slug]
        )
        conn.execute("DELETE FROM raw_catalog")
        (pages,) = conn.execute("SELECT max(page) + 1 FROM one").fetchone()
        for copy in range(copies):
            payload = (
                'regexp_replace(CAST(payload AS VARCHAR), \'^([{]"[^"]+": "?)\', '
                f"'\\1{copy + 1}')"
            )
            conn.execute(
                "INSERT INTO raw_catalog (marketplace, page, record_index, payload, fetched_at, "
                f"run_id, payload_hash) SELECT marketplace, page + {copy} * {pages}, "
                f"record_index, {payload}::JSON, fetched_at, run_id, sha256({payload}) FROM one"
            )
        conn.execute("CHECKPOINT")
        (rows, hashes) = conn.execute(
            "SELECT count(*), count(DISTINCT payload_hash) FROM raw_catalog"
        ).fetchone()
    finally:
        conn.close()
    print(f"{slug}: {rows} records ({hashes} distinct payloads) in {out}", flush=True)


def read_json_baseline(ndjson: Path, scratch: Path) -> float:
    """CPU seconds of bench.pipeline_bench's baseline for one NDJSON file."""
    import duckdb

    cpu = time.process_time()
    conn = duckdb.connect(str(scratch / "read_json.duckdb"))
    conn.execute(
        "CREATE TABLE raw AS SELECT * FROM read_json(?, format = 'newline_delimited')",
        [str(ndjson)],
    )
    conn.execute("CHECKPOINT")
    conn.close()
    return time.process_time() - cpu


def typed_floor(raw: Path, slug: str, scratch: Path) -> tuple[dict[str, float], int]:
    """CPU seconds of each phase of the floor on a copy of `raw`, and the products written."""
    import duckdb

    struct, values = FLOOR_SPECS[slug]
    db = scratch / "warehouse.duckdb"
    shutil.copyfile(raw, db)
    phases: dict[str, float] = {}
    mark = time.process_time()

    def lap(name: str) -> None:
        nonlocal mark
        now = time.process_time()
        phases[name] = now - mark
        mark = now

    conn = duckdb.connect(str(db))
    conn.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")
    lap("open")
    # One typed parse per payload; the values come out of the STRUCT. (A WHERE over the values
    # in the same statement would be pushed below the projection and parse every payload again.)
    conn.execute(
        f"CREATE TEMP TABLE offer_values AS SELECT page, record_index, fetched_at, payload_hash, "
        f"{values} FROM (SELECT page, record_index, fetched_at, payload_hash, "
        f"json_transform(payload, ?) AS j FROM raw_catalog WHERE marketplace = ?)",
        [json.dumps(struct), slug],
    )
    lap("typed read + values")
    conn.execute(f"CREATE TEMP TABLE kept AS SELECT * FROM offer_values {_KEEP}")
    lap("drop unpriced, first of each id")
    conn.execute("BEGIN")
    conn.execute(
        "INSERT INTO products (marketplace, external_id, title, description, price_minor, "
        "currency, image_url, product_url, category, brand, model, gtin, mpn, sku, rating, "
        "rating_count, available, stock, content_hash, first_seen_at, updated_at, fetched_at, "
        "category_raw) SELECT ?, external_id, title, description, price_minor, currency, "
        "image_url, product_url, category, brand, model, gtin, mpn, sku, rating, rating_count, "
        f"available, stock, {_CONTENT_HASH}, now(), now(), fetched_at, category FROM kept",
        [slug],
    )
    lap("products (hash, key)")
    conn.execute(
        "INSERT INTO product_sources (marketplace, external_id, page, record_index, "
        "payload_hash) SELECT ?, external_id, page, record_index, payload_hash FROM kept",
        [slug],
    )
    lap("product_sources")
    conn.execute("COMMIT")
    lap("commit")
    conn.execute("CHECKPOINT")
    conn.close()
    lap("checkpoint + close")
    check = duckdb.connect(str(db), read_only=True)
    try:
        (written,) = check.execute(
            "SELECT count(*) FROM products WHERE marketplace = ?", [slug]
        ).fetchone()
    finally:
        check.close()
    return phases, written


def measure(raw: Path, slug: str, rounds: int) -> None:
    """read_json and the floor, alternated `rounds` times; CPU µs per record."""
    from bench.pipeline_bench import export_raw_payloads

    with tempfile.TemporaryDirectory(prefix="typed-floor-") as scratch_dir:
        scratch = Path(scratch_dir)
        exported = export_raw_payloads(raw, scratch / "ndjson")
        records = exported[slug]["rows"]
        for _ in range(rounds):
            with tempfile.TemporaryDirectory(dir=scratch) as run:
                baseline = read_json_baseline(scratch / "ndjson" / f"{slug}.ndjson", Path(run))
            with tempfile.TemporaryDirectory(dir=scratch) as run:
                phases, written = typed_floor(raw, slug, Path(run))
            floor = sum(phases.values())
            parts = "  ".join(f"{name} {1e6 * cpu / records:.1f}" for name, cpu in phases.items())
            print(
                f"{slug} {records} records ({written} products): read_json "
                f"{1e6 * baseline / records:.1f} µs/record; floor {1e6 * floor / records:.1f} "
                f"µs/record ({parts}); floor ÷ read_json {floor / baseline:.2f}",
                flush=True,
            )


def _path_segments(path: str) -> list[str | int]:
    """A JSON path as warehouse.vectorized writes them ($.a, $."g:a", $.a[0].b) as segments."""
    segments: list[str | int] = []
    i = 1
    while i < len(path):
        if path.startswith('."', i):
            j, key = i + 2, ""
            while path[j] != '"':
                j += path[j] == "\\"
                key += path[j]
                j += 1
            segments.append(key)
            i = j + 1
        elif path[i] == ".":
            key = re.match(r"[^.\[]+", path[i + 1 :]).group(0)
            segments.append(key)
            i += 1 + len(key)
        else:
            j = path.index("]", i)
            segments.append(int(path[i + 1 : j]))
            i = j + 1
    return segments


def typed_token_query(query: object, source: str, join: str) -> str:
    """The format's query (warehouse.vectorized.FormatQuery) with its two parses of every payload
    (json_type and json_extract_string over the path list) replaced by one typed read: each
    top-level key the format reads as a JSON token (json_transform), a nested path from its
    key's small token, the JSON type from the token's first character. Guards and values are
    the query's own. (A JSON null reads as a missing key here: a prototype, not exact.)"""
    from warehouse.vectorized import sql_literal

    names = list(query.paths)
    tops: dict[str, str] = {}
    tokens = []
    for name in names:
        first, *rest = _path_segments(query.paths[name])
        tops[str(first)] = "JSON"
        token = f'j."{first}"'
        if rest:
            nested = "$" + "".join(
                f"[{s}]" if isinstance(s, int) else '."' + s.replace('"', '\\"') + '"' for s in rest
            )
            token = f"json_extract({token}, {sql_literal(nested)})"
        tokens.append(f"{token}::VARCHAR AS k_{name}")

    def json_type(k: str) -> str:
        number = f"CASE WHEN regexp_matches({k}, '[.eE]') THEN 'DOUBLE' ELSE"
        return (
            f"CASE WHEN {k} IS NULL THEN NULL ELSE CASE left({k}, 1) WHEN '\"' THEN 'VARCHAR' "
            f"WHEN '{{' THEN 'OBJECT' WHEN '[' THEN 'ARRAY' WHEN 't' THEN 'BOOLEAN' "
            f"WHEN 'f' THEN 'BOOLEAN' WHEN 'n' THEN 'NULL' WHEN '-' THEN {number} 'BIGINT' END "
            f"ELSE {number} 'UBIGINT' END END END"
        )

    def text(k: str) -> str:
        return (
            f"CASE WHEN left({k}, 1) = '\"' THEN CASE WHEN strpos({k}, '\\') = 0 "
            f"THEN {k}[2:-2] ELSE json_extract_string({k}, '$') END ELSE {k} END"
        )

    typed = ",\n    ".join(
        f"{json_type('k_' + n)} AS t_{n}, {text('k_' + n)} AS s_{n}, {text('k_' + n)} AS j_{n}"
        for n in names
    )
    original = query.sql(source, join)
    head, tail = original.split("\nparsed AS (", 1)
    tail = tail.split("\n)", 2)[2]  # past the parsed and fields CTEs
    return (
        f"{head}\nparsed AS (SELECT page, record_index, fetched_at, is_object, gtin_keys, "
        f"CASE WHEN is_object THEN json_transform(payload, {sql_literal(json.dumps(tops))}) END AS j "
        f"FROM src),\ntokens AS (SELECT page, record_index, fetched_at, is_object, gtin_keys, "
        + ", ".join(tokens)
        + f" FROM parsed),\nfields AS (SELECT page, record_index, fetched_at, is_object, "
        f"gtin_keys,\n    {typed}\n    FROM tokens\n){tail}"
    )


def compare_guarded(raw: Path, slug: str, rounds: int) -> None:
    """Today's vectorized query against typed_token_query, alternated in one process: CPU
    µs/record of each (the GTIN-key scan left out: both use it), and whether they agree."""
    import duckdb
    import polars as pl

    from bench.normalize_cpu import marketplace_configs
    from warehouse.normalize import RAW_SOURCE, gtin_key_counts
    from warehouse.vectorized import currency_exponent_rows, currency_source
    from warehouse.vectorized_formats import VECTORIZED_FORMATS

    config = marketplace_configs()[slug]
    query = VECTORIZED_FORMATS[config.kind](config)
    currency = currency_source(query)
    join = f" LEFT JOIN currency_exponents AS cx ON cx.code = {currency}" if currency else ""
    sqls = {
        "today": query.sql(RAW_SOURCE, join),
        "typed": typed_token_query(query, RAW_SOURCE, join),
    }
    conn = duckdb.connect(str(raw), read_only=True)
    try:
        conn.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")
        params = {"marketplace": slug, "all_records": True}
        conn.register(
            "records_to_read", pl.DataFrame(schema={"payload_hash": pl.String}).to_arrow()
        )
        conn.register(
            "currency_exponents",
            pl.DataFrame(
                currency_exponent_rows(),
                schema={"code": pl.String, "exponent": pl.Int32},
                orient="row",
            ).to_arrow(),
        )
        counts = gtin_key_counts(conn, params)
        conn.register("gtin_key_counts", counts.to_arrow())
        cpu: dict[str, list[float]] = {"today": [], "typed": []}
        frames: dict[str, pl.DataFrame] = {}
        for _ in range(rounds):
            for label, sql in sqls.items():
                started = time.process_time()
                frames[label] = conn.sql(sql, params=params).pl()
                cpu[label].append(1e6 * (time.process_time() - started) / counts.height)
    finally:
        conn.close()
    today, typed = (frames[k].sort("page", "record_index") for k in ("today", "typed"))
    both = today.get_column("vectorized") & typed.get_column("vectorized")
    same_rows = today.filter(both).equals(typed.filter(both))
    print(
        f"{slug}: query CPU today {' · '.join(f'{x:.1f}' for x in cpu['today'])}, typed read "
        f"{' · '.join(f'{x:.1f}' for x in cpu['typed'])} µs/record; vectorized "
        f"{today.get_column('vectorized').sum()} · {typed.get_column('vectorized').sum()} of "
        f"{counts.height}; rows both vectorized are equal: {same_rows}",
        flush=True,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.typed_floor")
    commands = parser.add_subparsers(dest="command", required=True)
    scale_cmd = commands.add_parser("scale")
    scale_cmd.add_argument("--raw", type=Path, required=True)
    scale_cmd.add_argument("--slug", required=True, choices=sorted(FLOOR_SPECS))
    scale_cmd.add_argument("--copies", type=int, default=5)
    scale_cmd.add_argument("--out", type=Path, required=True)
    measure_cmd = commands.add_parser("measure")
    measure_cmd.add_argument("--raw", type=Path, required=True)
    measure_cmd.add_argument("--slug", required=True, choices=sorted(FLOOR_SPECS))
    measure_cmd.add_argument("--rounds", type=int, default=2)
    guards_cmd = commands.add_parser("guards")
    guards_cmd.add_argument("--raw", type=Path, required=True)
    guards_cmd.add_argument("--slug", required=True, choices=sorted(FLOOR_SPECS))
    guards_cmd.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    if args.command == "scale":
        scale(args.raw, args.slug, args.copies, args.out)
    elif args.command == "guards":
        compare_guarded(args.raw, args.slug, args.rounds)
    else:
        measure(args.raw, args.slug, args.rounds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
