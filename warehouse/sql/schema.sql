-- OneCart warehouse schema (DuckDB). Applied idempotently by warehouse.connect() on every
-- read-write connection, so every statement must be safe to run again.
-- Money is always an integer in minor units (price_minor) next to its ISO-4217 currency.
-- Timestamps are TIMESTAMPTZ in UTC.

-- The marketplaces the pipeline read, as configured in marketplaces.toml at the time.
CREATE TABLE IF NOT EXISTS marketplaces (
    slug VARCHAR PRIMARY KEY,
    name VARCHAR NOT NULL,
    kind VARCHAR NOT NULL,
    currency VARCHAR NOT NULL,
    country VARCHAR NOT NULL,
    logo VARCHAR,
    rating DECIMAL(3, 2),
    match_identifier VARCHAR NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

-- One row per raw catalog record, exactly as the marketplace sent it; brought up to date per
-- marketplace on every successful fetch (a failed fetch leaves the last good rows in place):
-- new payloads inserted, vanished ones deleted, the others moved to their new page and position.
CREATE TABLE IF NOT EXISTS raw_catalog (
    marketplace VARCHAR NOT NULL,
    page INTEGER NOT NULL,
    record_index INTEGER NOT NULL,
    payload JSON NOT NULL,
    fetched_at TIMESTAMPTZ NOT NULL,
    run_id VARCHAR NOT NULL
);

-- Normalized offers: the current state of every marketplace's catalog.
CREATE TABLE IF NOT EXISTS products (
    marketplace VARCHAR NOT NULL,
    external_id VARCHAR NOT NULL,
    title VARCHAR NOT NULL,
    description VARCHAR NOT NULL,
    price_minor BIGINT NOT NULL,
    currency VARCHAR NOT NULL,
    image_url VARCHAR,
    product_url VARCHAR,
    category VARCHAR,
    brand VARCHAR,
    model VARCHAR,
    gtin VARCHAR,
    mpn VARCHAR,
    sku VARCHAR,
    rating DECIMAL(3, 2),
    rating_count INTEGER,
    available BOOLEAN NOT NULL,
    stock INTEGER,
    content_hash VARCHAR NOT NULL,
    first_seen_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    fetched_at TIMESTAMPTZ NOT NULL,
    -- The category as the marketplace wrote it; `category` is its canonical display name
    -- (warehouse/categories.toml).
    category_raw VARCHAR,
    PRIMARY KEY (marketplace, external_id)
);

-- Whether shoppers can buy the marketplace's offers, as search decides: `active` in
-- marketplaces.toml (an inactive one is no longer fetched and its offers leave the search index,
-- but they stay here) and `storefront_enabled` (not disabled by an admin at /admin/marketplaces:
-- listings leave its offers out). Both set by the analyst_warehouse asset at every publish.
ALTER TABLE marketplaces ADD COLUMN IF NOT EXISTS active BOOLEAN DEFAULT true;
ALTER TABLE marketplaces ADD COLUMN IF NOT EXISTS storefront_enabled BOOLEAN DEFAULT true;

-- Warehouses created before category_raw existed get it on their next read-write connection.
ALTER TABLE products ADD COLUMN IF NOT EXISTS category_raw VARCHAR;

-- Records that could not become offers, with the reason (a stable code) and the raw payload.
-- Replaced per marketplace with every normalization run, like products.
CREATE TABLE IF NOT EXISTS rejected_products (
    marketplace VARCHAR NOT NULL,
    external_id VARCHAR,
    reason VARCHAR NOT NULL,
    detail VARCHAR NOT NULL,
    payload JSON NOT NULL,
    rejected_at TIMESTAMPTZ NOT NULL,
    run_id VARCHAR NOT NULL
);

-- One row per normalization run of a marketplace: the history behind the drift, freshness and
-- GTIN checks.
CREATE TABLE IF NOT EXISTS catalog_loads (
    marketplace VARCHAR NOT NULL,
    run_id VARCHAR NOT NULL,
    loaded_at TIMESTAMPTZ NOT NULL,
    raw_records INTEGER NOT NULL,
    products INTEGER NOT NULL,
    rejected INTEGER NOT NULL,
    gtin_claimed INTEGER NOT NULL,
    gtin_invalid INTEGER NOT NULL,
    new_offers INTEGER NOT NULL,
    changed_offers INTEGER NOT NULL,
    removed_offers INTEGER NOT NULL,
    content_fingerprint VARCHAR NOT NULL
);

-- Exchange rates: units of `currency` per 1 `base` (always USD), one row per day they were
-- published for. minor_unit is the currency's ISO-4217 exponent, for the analyst views.
CREATE TABLE IF NOT EXISTS fx_rates (
    base VARCHAR NOT NULL,
    currency VARCHAR NOT NULL,
    rate DECIMAL(18, 8) NOT NULL,
    as_of DATE NOT NULL,
    source VARCHAR NOT NULL,
    minor_unit TINYINT NOT NULL,
    PRIMARY KEY (base, currency, as_of)
);

-- Every ISO-4217 currency OneCart accepts (onecart.money, CLDR's list) with its minor unit, the
-- decimal places of price_minor (JPY 0, USD 2, KWD 3): an offer's price in its own currency needs
-- only this, while fx_rates covers a few dozen currencies. Written by the fx_rates asset.
CREATE TABLE IF NOT EXISTS currencies (
    currency VARCHAR PRIMARY KEY,
    minor_unit TINYINT NOT NULL
);

-- Which product group (the "product relation token") every offer belongs to, and how sure the
-- match is. Rebuilt from products on every run; group_id is stable while the matching key is.
CREATE TABLE IF NOT EXISTS product_groups (
    group_id VARCHAR NOT NULL,
    marketplace VARCHAR NOT NULL,
    external_id VARCHAR NOT NULL,
    method VARCHAR NOT NULL,
    confidence DECIMAL(3, 2) NOT NULL,
    matching_key VARCHAR NOT NULL,
    PRIMARY KEY (marketplace, external_id)
);

-- Append-only: a row whenever an offer's price, currency or availability differs from its latest
-- row (the first sighting included).
CREATE TABLE IF NOT EXISTS price_history (
    marketplace VARCHAR NOT NULL,
    external_id VARCHAR NOT NULL,
    price_minor BIGINT NOT NULL,
    currency VARCHAR NOT NULL,
    available BOOLEAN NOT NULL,
    observed_at TIMESTAMPTZ NOT NULL
);

-- Where each record of a rejected_products row sat in the marketplace's catalog (page, position).
ALTER TABLE rejected_products ADD COLUMN IF NOT EXISTS page INTEGER;
ALTER TABLE rejected_products ADD COLUMN IF NOT EXISTS record_index INTEGER;

-- One row per catalog page the pipeline holds: the SHA-256 of its records' payload hashes in order
-- (content_hash; NULL once the page is gone from the catalog, until normalization drops it), the
-- hash the last normalization saw (normalized_hash: when the two differ somewhere, a record of the
-- marketplace is new, gone or moved),
-- its GTIN claims, and the validators of a conditional request (ETag, Last-Modified).
CREATE TABLE IF NOT EXISTS raw_pages (
    marketplace VARCHAR NOT NULL,
    page INTEGER NOT NULL,
    records INTEGER NOT NULL,
    content_hash VARCHAR,
    normalized_hash VARCHAR,
    gtin_claimed INTEGER NOT NULL DEFAULT 0,
    gtin_invalid INTEGER NOT NULL DEFAULT 0,
    fetched_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (marketplace, page)
);

-- Which raw record each current offer was read from (its position and payload hash): the
-- records an incremental normalization re-reads own exactly these offers.
CREATE TABLE IF NOT EXISTS product_sources (
    marketplace VARCHAR NOT NULL,
    external_id VARCHAR NOT NULL,
    page INTEGER NOT NULL,
    record_index INTEGER NOT NULL,
    PRIMARY KEY (marketplace, external_id)
);

-- The validators a marketplace sent with its catalog (ETag, Last-Modified), for the next
-- conditional request (If-None-Match, If-Modified-Since).
CREATE TABLE IF NOT EXISTS catalog_validators (
    marketplace VARCHAR PRIMARY KEY,
    etag VARCHAR,
    last_modified VARCHAR,
    checked_at TIMESTAMPTZ NOT NULL
);

-- What a record's source parsed into: a feed item's source digest (SHA-256 of the parser's
-- version, the document head and the item's text; adapters/google_feed.read_feed_items) and the
-- payload hash of its record. A refresh does not parse an item whose digest is here and whose
-- payload raw_catalog holds. Replaced with the marketplace's raw records (warehouse/records.py).
-- One row per (marketplace, source_digest), kept so by its only writer (no key to maintain).
CREATE TABLE IF NOT EXISTS raw_sources (
    marketplace VARCHAR NOT NULL,
    source_digest VARCHAR NOT NULL,
    payload_hash VARCHAR NOT NULL
);

-- The validators a marketplace sent with each catalog page (ETag, Last-Modified), for asking for
-- the page conditionally next time (warehouse/pages.py): the page's request, what its body said
-- about the pages after it (follow, JSON: a 304 has no body), and the page's content_hash in
-- raw_pages when they came (a validator is used only while the page still holds those records).
CREATE TABLE IF NOT EXISTS page_validators (
    marketplace VARCHAR NOT NULL,
    page INTEGER NOT NULL,
    request VARCHAR NOT NULL,
    etag VARCHAR,
    last_modified VARCHAR,
    follow VARCHAR NOT NULL,
    content_hash VARCHAR NOT NULL,
    PRIMARY KEY (marketplace, page)
);

-- Where a marketplace's next changed-since fetch starts (its clock when the last complete fetch
-- began; warehouse/changed_since.py). No row: the next fetch is a full one.
CREATE TABLE IF NOT EXISTS catalog_watermarks (
    marketplace VARCHAR PRIMARY KEY,
    fetch_started_at TIMESTAMPTZ NOT NULL,
    -- When the last full fetch began: changed-since fetches go on for FULL_FETCH_EVERY after.
    full_fetch_started_at TIMESTAMPTZ NOT NULL,
    stored_at TIMESTAMPTZ NOT NULL
);

-- The pages an incremental normalization read (NULL: every page): the pages its records sat on.
ALTER TABLE catalog_loads ADD COLUMN IF NOT EXISTS pages_read INTEGER[];
-- How many raw records an incremental normalization read (NULL: every record).
ALTER TABLE catalog_loads ADD COLUMN IF NOT EXISTS records_read INTEGER;

-- The SHA-256 of each raw record's payload (warehouse.offers.record_hash), and of the payload
-- each offer and each rejection was read from: a refresh stores and normalizes only payloads the
-- warehouse did not hold, wherever they sit (warehouse/records.py). Rows stored before these
-- columns existed have NULL there; the next run then stores and normalizes the marketplace in
-- full once (and says so in its log).
ALTER TABLE raw_catalog ADD COLUMN IF NOT EXISTS payload_hash VARCHAR;
ALTER TABLE product_sources ADD COLUMN IF NOT EXISTS payload_hash VARCHAR;
ALTER TABLE rejected_products ADD COLUMN IF NOT EXISTS payload_hash VARCHAR;

-- The GTIN claim of each payload normalization read (0: none, 1: a GTIN passing its checksum,
-- 2: one failing it), a function of the payload: catalog_loads counts a refresh's GTINs over the
-- whole catalog (raw_catalog joined here), not over the few new records it read
-- (warehouse/gtin_claims.py). One row per (marketplace, payload_hash), kept so by its only writer.
CREATE TABLE IF NOT EXISTS gtin_claims (
    marketplace VARCHAR NOT NULL,
    payload_hash VARCHAR NOT NULL,
    claim TINYINT NOT NULL
);

-- How far each incremental derived table has read products (by updated_at).
CREATE TABLE IF NOT EXISTS derived_watermarks (
    name VARCHAR PRIMARY KEY,
    updated_at TIMESTAMPTZ NOT NULL
);

-- The matching fields and keys (normalized brand, explicit or inferred; canonical GTIN) of every
-- offer as product_groups last matched it: a refresh re-matches only what differs.
CREATE TABLE IF NOT EXISTS matching_inputs (
    marketplace VARCHAR NOT NULL,
    external_id VARCHAR NOT NULL,
    title VARCHAR,
    brand VARCHAR,
    model VARCHAR,
    gtin VARCHAR,
    mpn VARCHAR,
    brand_key VARCHAR,
    brand_inferred BOOLEAN NOT NULL,
    gtin_key VARCHAR,
    PRIMARY KEY (marketplace, external_id)
);

-- What the search index holds, as search_products last sent it: per offer, a hash of every
-- input of its document (the offer's row, its group's prices, its price-change summary) and the
-- document's own doc_hash (NULL: the offer could not become a document). `context_hash` covers
-- what every document shares (FX rates, marketplace cards, the index declaration, the document
-- code). A refresh builds documents only for offers whose input hash moved.
CREATE TABLE IF NOT EXISTS search_document_state (
    index_uid VARCHAR NOT NULL,
    marketplace VARCHAR NOT NULL,
    external_id VARCHAR NOT NULL,
    input_hash VARCHAR NOT NULL,
    doc_hash VARCHAR,
    PRIMARY KEY (index_uid, marketplace, external_id)
);
-- The same for the product index (pipelines/group_search_state.py): per product group, a hash
-- of its offers' doc_hashes and matching, and the product document's doc_hash.
CREATE TABLE IF NOT EXISTS search_group_state (
    index_uid VARCHAR NOT NULL,
    group_id VARCHAR NOT NULL,
    input_hash VARCHAR NOT NULL,
    doc_hash VARCHAR,
    PRIMARY KEY (index_uid, group_id)
);
-- What the change markers of a refresh (pipelines/search_state.py) last saw of each offer: the
-- group it was in and `row_marker`, DuckDB's hash() of its products row but fetched_at and its
-- matching. A refresh hashes only the offers whose marker moved or that have new price-history
-- rows (search_history_read) and the offers of the groups they are or were in; NULL (a row
-- written before these columns existed) hashes the offer again.
ALTER TABLE search_document_state ADD COLUMN IF NOT EXISTS group_id VARCHAR;
ALTER TABLE search_document_state ADD COLUMN IF NOT EXISTS row_marker UBIGINT;
-- The same for the product index (pipelines/group_search_state.py): per offer of a product
-- document, its group and `member_marker`, DuckDB's hash() of its doc_hash and its matching.
CREATE TABLE IF NOT EXISTS search_group_members (
    index_uid VARCHAR NOT NULL,
    marketplace VARCHAR NOT NULL,
    external_id VARCHAR NOT NULL,
    group_id VARCHAR NOT NULL,
    member_marker UBIGINT NOT NULL,
    PRIMARY KEY (index_uid, marketplace, external_id)
);
CREATE TABLE IF NOT EXISTS search_index_context (
    index_uid VARCHAR PRIMARY KEY,
    context_hash VARCHAR NOT NULL,
    documents BIGINT NOT NULL,
    synced_at TIMESTAMPTZ NOT NULL
);
-- How much of price_history the offers index's last sync read (pipelines/search_state.py): its row
-- count and fingerprint (the sum of its rows' hash()). price_history only grows, so a refresh
-- takes the offers of the rows after those as changed; when the first rows no longer give the
-- fingerprint (rows lost or changed), every offer with a history row is.
CREATE TABLE IF NOT EXISTS search_history_read (
    index_uid VARCHAR PRIMARY KEY,
    history_rows BIGINT NOT NULL,
    history_fingerprint HUGEINT NOT NULL
);
