-- Analyst views over the warehouse tables. Recreated by the `analyst_warehouse` asset and
-- included in the published read-only copy (warehouse.duckdb). Each view carries a COMMENT
-- (see `SELECT view_name, comment FROM duckdb_views() WHERE NOT internal`).
-- In the published copy `products` is itself a view (warehouse/published_products.py): the
-- pipeline's rows, with fetched_at kept once per marketplace in marketplace_fetches.
-- USD amounts here are DECIMAL(18, 2): offers_usd.price_usd is computed exactly, rounded half to
-- even to the cent, so it is the search index's figure (search_index.documents.convert_to_usd_minor).

-- latest_fx_rates: the newest rate per currency.
--   currency, rate (units per 1 USD), as_of (publication date), minor_unit (ISO exponent), source.
CREATE OR REPLACE VIEW latest_fx_rates AS
SELECT currency, rate, as_of, minor_unit, source
FROM fx_rates
WHERE base = 'USD'
QUALIFY row_number() OVER (PARTITION BY currency ORDER BY as_of DESC) = 1;
COMMENT ON VIEW latest_fx_rates IS 'Newest USD-based rate per currency: currency, rate (units per 1 USD), as_of, minor_unit, source.';

-- offers_usd: every current offer with its prices, whether shoppers can buy it, and its group.
--   all columns of products, price (DECIMAL(18, 4), exact, in the offer currency: price_minor
--   over 10^minor_unit of `currencies`, so never NULL), price_usd (DECIMAL(18,2), NULL when no
--   rate is known), live (its marketplace is active in marketplaces.toml and not disabled in the
--   storefront, as search decides: a shopper can find and buy the offer; `available` is its own
--   stock), group_id, match_method, match_confidence.
CREATE OR REPLACE VIEW offers_usd AS
SELECT
    p.*,
    -- DECIMAL times DECIMAL is exact in DuckDB (a division would be a DOUBLE). ISO-4217 minor
    -- units run from 0 to 4 (CLF, UYW).
    CAST(
        CAST(p.price_minor AS DECIMAL(18, 0)) * CASE cur.minor_unit
            WHEN 0 THEN 1.0000 WHEN 1 THEN 0.1000 WHEN 2 THEN 0.0100 WHEN 3 THEN 0.0010
            WHEN 4 THEN 0.0001 END
        AS DECIMAL(18, 4)
    ) AS price,
    -- US cents exactly as the search index has them (search_index.documents
    -- .convert_to_usd_minor): the exact quotient, rounded half to even once. No DOUBLE and no
    -- round(), which rounds half away from zero: either could put it a cent off at a half cent.
    CAST(
        CAST(sign(p.price_minor) * (usd.whole + CASE
            WHEN 2 * usd.rest > usd.divisor THEN 1
            WHEN 2 * usd.rest = usd.divisor THEN usd.whole % 2
            ELSE 0 END) AS DECIMAL(18, 0)) * 0.01
        AS DECIMAL(18, 2)
    ) AS price_usd,
    coalesce(m.active AND m.storefront_enabled, false) AS live,
    g.group_id,
    g.method AS match_method,
    g.confidence AS match_confidence
FROM products AS p
LEFT JOIN currencies AS cur ON cur.currency = p.currency
LEFT JOIN latest_fx_rates AS fx ON fx.currency = p.currency
-- cents = |price_minor| * 10^2 / 10^minor_unit / rate, as the integers
-- |price_minor| * 10^10 over rate * 10^8 (fx_rates.rate is DECIMAL(18, 8)) * 10^minor_unit;
-- NULL without a rate.
LEFT JOIN LATERAL (
    SELECT n // d AS whole, n % d AS rest, d AS divisor
    FROM (
        SELECT
            CAST(abs(p.price_minor) AS HUGEINT) * 10000000000 AS n,
            CAST(CAST(fx.rate AS DECIMAL(38, 8)) * 100000000 AS HUGEINT) * CASE fx.minor_unit
                WHEN 0 THEN 1 WHEN 1 THEN 10 WHEN 2 THEN 100 WHEN 3 THEN 1000
                WHEN 4 THEN 10000 END AS d
    )
) AS usd ON true
LEFT JOIN marketplaces AS m ON m.slug = p.marketplace
LEFT JOIN product_groups AS g USING (marketplace, external_id);
COMMENT ON VIEW offers_usd IS 'Current offers with price (offer currency, never NULL), price_usd, live (shoppers can find and buy it, as in search), group_id, match_method and match_confidence.';

-- product_group_summary: one row per product group ("product relation token") that shoppers can
-- buy from: every column but not_live_offers is of its live offers (an inactive or disabled
-- marketplace's offers are not in search; a group of only such offers is left out).
--   group_id, method (how the group was formed: gtin, brand_model, title or single; the weakest
--   evidence that put one of its live offers in it, by confidence),
--   offers, marketplaces (distinct), min_price_usd, max_price_usd, title (of the cheapest offer),
--   not_live_offers (the group's offers at marketplaces that are not live, counted nowhere else).
CREATE OR REPLACE VIEW product_group_summary AS
SELECT
    group_id,
    -- By confidence, not spelling: the alphabetical minimum made a GTIN + title group 'gtin'.
    (min({'confidence': match_confidence, 'method': match_method}) FILTER (WHERE live)).method
        AS method,
    count(*) FILTER (WHERE live) AS offers,
    count(DISTINCT marketplace) FILTER (WHERE live) AS marketplaces,
    min(price_usd) FILTER (WHERE live) AS min_price_usd,
    max(price_usd) FILTER (WHERE live) AS max_price_usd,
    arg_min(title, price_usd) FILTER (WHERE live) AS title,
    count(*) FILTER (WHERE NOT live) AS not_live_offers
FROM offers_usd
WHERE group_id IS NOT NULL
GROUP BY group_id
HAVING bool_or(live);
COMMENT ON VIEW product_group_summary IS 'Per product group with a live offer, of its live offers: method, offers, marketplaces, min/max price_usd, title of the cheapest offer; not_live_offers counts the rest.';

-- cheapest_offer_per_group: the cheapest offer of every group with 2+ live, available offers
-- (with a USD price): what a shopper can buy (an inactive or disabled marketplace's offers are
-- not live: search leaves them out). offers_in_group, marketplaces_in_group and
-- most_expensive_usd are of those offers, not of the whole group (product_group_summary).
--   group_id, marketplace, external_id, title, price_minor, currency, price_usd,
--   offers_in_group, marketplaces_in_group, most_expensive_usd, savings_usd.
CREATE OR REPLACE VIEW cheapest_offer_per_group AS
WITH ranked AS (
    SELECT
        o.*,
        count(*) OVER (PARTITION BY group_id) AS offers_in_group,
        max(price_usd) OVER (PARTITION BY group_id) AS most_expensive_usd,
        row_number() OVER (PARTITION BY group_id ORDER BY price_usd, marketplace, external_id) AS rank
    FROM offers_usd AS o
    WHERE live AND available AND group_id IS NOT NULL AND price_usd IS NOT NULL
),
spread AS (
    SELECT group_id, count(DISTINCT marketplace) AS marketplaces_in_group
    FROM ranked
    GROUP BY group_id
)
SELECT
    r.group_id, r.marketplace, r.external_id, r.title, r.price_minor, r.currency, r.price_usd,
    r.offers_in_group, s.marketplaces_in_group, r.most_expensive_usd,
    -- DECIMAL(18, 2) like every USD amount of the views (a difference widens to 19 digits).
    CAST(r.most_expensive_usd - r.price_usd AS DECIMAL(18, 2)) AS savings_usd
FROM ranked AS r
JOIN spread AS s USING (group_id)
WHERE r.rank = 1 AND r.offers_in_group >= 2;
COMMENT ON VIEW cheapest_offer_per_group IS 'Cheapest offer per group with 2+ live, available offers (priced in USD), with their count, marketplaces and savings_usd against the most expensive of them.';

-- price_changes_7d: the price changes of the last 7 days of the offers shoppers can buy now
-- (live, as in offers_usd: an inactive or disabled marketplace's offers and offers gone from the
-- catalog are left out, as search leaves them out; price_history keeps every change).
--   marketplace, external_id, title, old_price_minor, new_price_minor, currency,
--   change_pct (DECIMAL(18, 2): signed, percent of the old price, exact quotient of the minor
--   units rounded half to even to 0.01; NULL from an old price of 0), observed_at.
CREATE OR REPLACE VIEW price_changes_7d AS
WITH sequenced AS (
    SELECT
        h.*,
        lag(price_minor) OVER w AS old_price_minor,
        lag(currency) OVER w AS old_currency
    FROM price_history AS h
    WINDOW w AS (PARTITION BY marketplace, external_id ORDER BY observed_at)
),
-- Hundredths of a percent = |new - old| * 10^4 over |old|, as integers: a division of numbers
-- is a DOUBLE in DuckDB, and round() of it rounds half away from zero.
changes AS (
    SELECT
        s.*,
        sign(s.price_minor - s.old_price_minor) * sign(s.old_price_minor) AS direction,
        CAST(abs(s.price_minor - s.old_price_minor) AS HUGEINT) * 10000
            // nullif(abs(s.old_price_minor), 0) AS whole,
        CAST(abs(s.price_minor - s.old_price_minor) AS HUGEINT) * 10000
            % nullif(abs(s.old_price_minor), 0) AS rest,
        abs(s.old_price_minor) AS divisor
    FROM sequenced AS s
    WHERE s.old_price_minor IS NOT NULL
      AND s.old_currency = s.currency
      AND s.old_price_minor <> s.price_minor
      AND s.observed_at >= now() - INTERVAL 7 DAY
)
SELECT
    c.marketplace, c.external_id, o.title, c.old_price_minor, c.price_minor AS new_price_minor,
    c.currency,
    CAST(
        CAST(c.direction * (c.whole + CASE
            WHEN 2 * c.rest > c.divisor THEN 1
            WHEN 2 * c.rest = c.divisor THEN c.whole % 2
            ELSE 0 END) AS DECIMAL(18, 0)) * 0.01
        AS DECIMAL(18, 2)
    ) AS change_pct,
    c.observed_at
FROM changes AS c
JOIN offers_usd AS o USING (marketplace, external_id)
WHERE o.live;
COMMENT ON VIEW price_changes_7d IS 'Price changes of the last 7 days of the live offers (what shoppers can buy now): old/new price_minor, currency, change_pct, observed_at.';

-- marketplace_coverage: what each marketplace contributes to what shoppers can buy.
--   marketplace, name, live (active and enabled in the storefront: its offers are in search),
--   offers, available_offers, categories, brands, with_gtin (share 0-1), groups, shared_groups
--   (groups also offered live elsewhere): all of its live offers, so 0 (with_gtin NULL) for a
--   marketplace that is not live; not_live_offers (its offers held while it is not live),
--   rejected, last_fetched_at (of its offers, live or not: NULL, as with_gtin, for a marketplace
--   whose every record was quarantined).
CREATE OR REPLACE VIEW marketplace_coverage AS
WITH group_spread AS (
    SELECT group_id, count(DISTINCT marketplace) AS marketplaces
    FROM offers_usd
    WHERE live AND group_id IS NOT NULL
    GROUP BY group_id
),
offer_stats AS (
    SELECT
        o.marketplace,
        count(*) FILTER (WHERE o.live) AS offers,
        count(*) FILTER (WHERE o.live AND o.available) AS available_offers,
        count(DISTINCT o.category) FILTER (WHERE o.live) AS categories,
        count(DISTINCT o.brand) FILTER (WHERE o.live) AS brands,
        round(avg(CASE WHEN o.gtin IS NOT NULL THEN 1.0 ELSE 0.0 END) FILTER (WHERE o.live), 3)
            AS with_gtin,
        count(DISTINCT o.group_id) FILTER (WHERE o.live) AS groups,
        count(DISTINCT o.group_id) FILTER (WHERE o.live AND s.marketplaces > 1) AS shared_groups,
        count(*) FILTER (WHERE NOT o.live) AS not_live_offers,
        max(o.fetched_at) AS last_fetched_at
    FROM offers_usd AS o
    LEFT JOIN group_spread AS s USING (group_id)
    GROUP BY o.marketplace
),
rejections AS (
    SELECT marketplace, count(*) AS rejected FROM rejected_products GROUP BY marketplace
)
-- Every marketplace with offers or quarantined records: one whose every record was rejected
-- (the most broken feed) has no offers, and starting from the offers left it out.
SELECT
    marketplace, m.name, coalesce(m.active AND m.storefront_enabled, false) AS live,
    coalesce(o.offers, 0) AS offers,
    coalesce(o.available_offers, 0) AS available_offers, coalesce(o.categories, 0) AS categories,
    coalesce(o.brands, 0) AS brands, o.with_gtin, coalesce(o.groups, 0) AS groups,
    coalesce(o.shared_groups, 0) AS shared_groups,
    coalesce(o.not_live_offers, 0) AS not_live_offers, coalesce(r.rejected, 0) AS rejected,
    o.last_fetched_at
FROM offer_stats AS o
FULL JOIN rejections AS r USING (marketplace)
LEFT JOIN marketplaces AS m ON m.slug = marketplace;
COMMENT ON VIEW marketplace_coverage IS 'Per marketplace: live, then of its live offers: offers, available_offers, categories, brands, with_gtin share, groups, shared_groups (also live elsewhere); not_live_offers, rejected, last_fetched_at.';

-- marketplace_overlap: how many product groups two live marketplaces both offer live (what a
-- shopper can compare; an inactive or disabled marketplace's offers are left out).
--   marketplace_a, marketplace_b (a < b), shared_groups.
CREATE OR REPLACE VIEW marketplace_overlap AS
WITH live_groups AS (
    SELECT DISTINCT marketplace, group_id FROM offers_usd WHERE live AND group_id IS NOT NULL
)
SELECT a.marketplace AS marketplace_a, b.marketplace AS marketplace_b,
       count(*) AS shared_groups
FROM live_groups AS a
JOIN live_groups AS b ON a.group_id = b.group_id AND a.marketplace < b.marketplace
GROUP BY a.marketplace, b.marketplace;
COMMENT ON VIEW marketplace_overlap IS 'Pairs of live marketplaces (a < b) and the number of product groups both offer live.';

-- category_price_stats: price distribution per category, in USD, of the live offers (what
-- shoppers can find and buy; an inactive or disabled marketplace's offers are left out).
--   category, offers, marketplaces, min_usd, median_usd, avg_usd, max_usd, avg_rating.
-- median_usd and avg_usd are DECIMAL(18, 2), exact and rounded half to even to the cent (of the
-- offers with a USD price), like price_usd: DuckDB's avg of a DECIMAL is a DOUBLE (a cast of it
-- put an average of x.xx5 a cent off either way), and its median of a DECIMAL truncates.
CREATE OR REPLACE VIEW category_price_stats AS
WITH stats AS (
    SELECT
        coalesce(category, '(none)') AS category,
        count(*) AS offers,
        count(DISTINCT marketplace) AS marketplaces,
        min(price_usd) AS min_usd,
        -- The median of whole cents is a whole or half cent, exact in a DOUBLE: twice it is whole.
        CAST(median(CAST(price_usd * 100 AS BIGINT)) * 2 AS HUGEINT) AS twice_median_cents,
        sum(CAST(price_usd * 100 AS HUGEINT)) AS total_cents,
        count(price_usd) AS priced,
        max(price_usd) AS max_usd,
        CAST(avg(rating) AS DECIMAL(3, 2)) AS avg_rating
    FROM offers_usd
    WHERE live
    GROUP BY ALL
),
halves AS (
    SELECT
        *,
        sign(twice_median_cents) AS median_sign,
        abs(twice_median_cents) // 2 AS median_whole,
        abs(twice_median_cents) % 2 AS median_half,
        sign(total_cents) AS total_sign,
        abs(total_cents) // nullif(priced, 0) AS avg_whole,
        abs(total_cents) % nullif(priced, 0) AS avg_rest
    FROM stats
)
SELECT
    category, offers, marketplaces, min_usd,
    CAST(
        CAST(median_sign * (median_whole + CASE WHEN median_half = 1 THEN median_whole % 2 ELSE 0 END)
            AS DECIMAL(18, 0)) * 0.01
        AS DECIMAL(18, 2)
    ) AS median_usd,
    CAST(
        CAST(total_sign * (avg_whole + CASE
            WHEN 2 * avg_rest > priced THEN 1
            WHEN 2 * avg_rest = priced THEN avg_whole % 2
            ELSE 0 END) AS DECIMAL(18, 0)) * 0.01
        AS DECIMAL(18, 2)
    ) AS avg_usd,
    max_usd, avg_rating
FROM halves;
COMMENT ON VIEW category_price_stats IS 'Per category, of the live offers: offers, marketplaces, min/median/avg/max price in USD, avg_rating.';

-- rejection_summary: why records were quarantined, per marketplace.
--   marketplace, reason, records, example_detail.
CREATE OR REPLACE VIEW rejection_summary AS
SELECT marketplace, reason, count(*) AS records, min(detail) AS example_detail
FROM rejected_products
GROUP BY marketplace, reason;
COMMENT ON VIEW rejection_summary IS 'Quarantined records per marketplace and reason, with an example detail.';
