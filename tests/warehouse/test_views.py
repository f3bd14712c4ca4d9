"""The analyst views of warehouse/sql/views.sql answer what warehouse/README.md says they do, on
a small warehouse written here."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import duckdb

import warehouse
from search_index.documents import convert_to_usd_minor
from warehouse.catalog import mark_live_marketplaces
from warehouse.connection import refresh_views
from warehouse.derived import store_currencies

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
# (marketplace, external_id, price_minor, group_id, method, confidence)
OFFERS = [
    # A group formed by GTIN that a third offer joined by brand and model only.
    ("a", "1", 1000, "g-mixed", "gtin", 1.00),
    ("b", "1", 1100, "g-mixed", "gtin", 1.00),
    ("c", "1", 1200, "g-mixed", "brand_model", 0.90),
    # A group of GTIN and title matches: the title match is its weakest link.
    ("a", "2", 2000, "g-title", "gtin", 1.00),
    ("b", "2", 2100, "g-title", "gtin", 1.00),
    ("c", "2", 2200, "g-title", "title", 0.72),
    # A group of one.
    ("a", "3", 3000, "g-single", "single", 1.00),
]


def _fill(db: duckdb.DuckDBPyConnection) -> None:
    db.execute("INSERT INTO fx_rates VALUES ('USD', 'USD', 1, DATE '2026-12-01', 'test', 2)")
    for slug in ("a", "b", "c"):
        db.execute(
            "INSERT INTO marketplaces (slug, name, kind, currency, country, match_identifier, "
            "updated_at) VALUES (?, ?, 'shopify', 'USD', 'US', 'gtin', ?)",
            [slug, slug.upper(), NOW],
        )
    for marketplace, external_id, price, group_id, method, confidence in OFFERS:
        db.execute(
            "INSERT INTO products (marketplace, external_id, title, description, price_minor, "
            "currency, available, content_hash, first_seen_at, updated_at, fetched_at) "
            "VALUES (?, ?, ?, '', ?, 'USD', true, 'h', ?, ?, ?)",
            [marketplace, external_id, f"Offer {marketplace}{external_id}", price, NOW, NOW, NOW],
        )
        db.execute(
            "INSERT INTO product_groups VALUES (?, ?, ?, ?, ?, ?)",
            [group_id, marketplace, external_id, method, confidence, group_id],
        )
    refresh_views(db)


def test_a_group_summary_names_the_weakest_evidence_holding_it_and_single_for_one(
    tmp_path: Path,
) -> None:
    """`product_group_summary.method` is how the group was formed: `single` for a group of one
    (it was NULL), and for a group whose offers were matched in several ways the weakest of
    them, whatever its spelling (the alphabetical minimum called a GTIN + title group `gtin`
    and a GTIN + brand/model group `brand_model`)."""
    with warehouse.connect(tmp_path / "views.duckdb") as db:
        _fill(db)
        methods = dict(db.execute("SELECT group_id, method FROM product_group_summary").fetchall())
    assert methods == {"g-mixed": "brand_model", "g-title": "title", "g-single": "single"}


def test_coverage_lists_a_marketplace_whose_every_record_was_quarantined(tmp_path: Path) -> None:
    """A feed broken through and through (every record rejected, say a new currency code) is the
    one analysts most need to see in `marketplace_coverage`: it was left out, its `rejected`
    count with it, since the view started from the offers."""
    with warehouse.connect(tmp_path / "views.duckdb") as db:
        _fill(db)
        for index in range(3):
            db.execute(
                "INSERT INTO rejected_products (marketplace, external_id, reason, detail, payload, "
                "rejected_at, run_id) VALUES ('d', ?, 'unknown_currency', 'KSH', '{}', ?, 'r')",
                [str(index), NOW],
            )
        rows = db.execute(
            "SELECT marketplace, offers, available_offers, groups, rejected, last_fetched_at "
            "FROM marketplace_coverage ORDER BY marketplace"
        ).fetchall()
    assert [row[0] for row in rows] == ["a", "b", "c", "d"]
    assert rows[3] == ("d", 0, 0, 0, 3, None)
    assert rows[0][1:5] == (3, 3, 3, 0)


def test_cheapest_offer_compares_the_available_offers_as_its_documentation_says(
    tmp_path: Path,
) -> None:
    """`cheapest_offer_per_group` compares the offers a shopper can buy: its counts are of the
    group's available offers, and a group with one available offer has nothing to compare.
    README and the view's comment said "every group with 2+ offers" and `offers_in_group`,
    which reads as the group's size (product_group_summary.offers): an analyst joining the two
    saw 3 against 4, and groups of 2+ offers missing."""
    with warehouse.connect(tmp_path / "views.duckdb") as db:
        _fill(db)
        db.execute(
            "UPDATE products SET available = false WHERE external_id = '1' AND marketplace = 'c'"
        )
        db.execute(
            "UPDATE products SET available = false WHERE external_id = '2' AND marketplace <> 'a'"
        )
        rows = db.execute(
            "SELECT group_id, offers_in_group, marketplaces_in_group FROM cheapest_offer_per_group"
        ).fetchall()
        (comment,) = db.execute(
            "SELECT comment FROM duckdb_views() WHERE view_name = 'cheapest_offer_per_group'"
        ).fetchone()
    assert rows == [("g-mixed", 2, 2)]
    readme = (Path(warehouse.__file__).parent / "README.md").read_text(encoding="utf-8")
    (row,) = [
        line for line in readme.splitlines() if line.startswith("| `cheapest_offer_per_group`")
    ]
    for text in (row, comment):
        assert "2+ live, available offers" in text, text


def test_offers_of_an_inactive_or_disabled_marketplace_are_not_live_nor_the_cheapest(
    tmp_path: Path,
) -> None:
    """A marketplace set `active = false` in marketplaces.toml (or disabled by an admin) keeps
    its offers in the warehouse, but search leaves them out: shoppers cannot buy them. Its offer
    could still be `cheapest_offer_per_group`'s answer (data QA pass 4). `offers_usd.live` says
    which offers shoppers can buy, and the cheapest offer is of those."""
    with warehouse.connect(tmp_path / "views.duckdb") as db:
        _fill(db)
        # Marketplace a holds the cheapest offer of both groups of three.
        db.execute("UPDATE marketplaces SET active = false WHERE slug = 'a'")
        db.execute("UPDATE marketplaces SET storefront_enabled = false WHERE slug = 'b'")
        live = dict(
            db.execute("SELECT marketplace, bool_and(live) FROM offers_usd GROUP BY ALL").fetchall()
        )
        cheapest = db.execute(
            "SELECT group_id, marketplace, offers_in_group FROM cheapest_offer_per_group"
        ).fetchall()
        summary = db.execute(
            "SELECT group_id, offers, not_live_offers, min_price_usd "
            "FROM product_group_summary ORDER BY group_id"
        ).fetchall()
        db.execute("UPDATE marketplaces SET storefront_enabled = true WHERE slug = 'b'")
        cheapest_with_b = db.execute(
            "SELECT group_id, marketplace, offers_in_group FROM cheapest_offer_per_group "
            "ORDER BY group_id"
        ).fetchall()
    assert live == {"a": False, "b": False, "c": True}
    # Only c's offers are live: one per group, nothing to compare.
    assert cheapest == []
    # Of the live offers only (c's); g-single, of a's alone, has none a shopper can buy.
    assert summary == [
        ("g-mixed", 1, 2, Decimal("12.00")),
        ("g-title", 1, 2, Decimal("22.00")),
    ]
    assert cheapest_with_b == [("g-mixed", "b", 2), ("g-title", "b", 2)]


def test_an_offer_in_a_currency_without_a_rate_still_has_its_own_currency_price(
    tmp_path: Path,
) -> None:
    """`offers_usd.price` (in the offer's currency) needs only the currency's decimal places,
    but it came from the rate's row: NULL for a currency without a rate (data QA pass 4). The
    copy's `currencies` table has every ISO-4217 code's minor unit; the price is exact."""
    with warehouse.connect(tmp_path / "views.duckdb") as db:
        _fill(db)
        store_currencies(db)
        for external_id, price_minor, currency in (
            ("zmw", 1234567, "ZMW"),
            ("jpy", 1234567, "JPY"),
            ("kwd", 1234567, "KWD"),
            ("usd", 1234567, "USD"),
            # The largest price a DECIMAL(18, 4) holds, to the last minor unit.
            ("big", 99999999999999, "ZMW"),
        ):
            db.execute(
                "INSERT INTO products (marketplace, external_id, title, description, price_minor, "
                "currency, available, content_hash, first_seen_at, updated_at, fetched_at) "
                "VALUES ('c', ?, 't', '', ?, ?, true, 'h', ?, ?, ?)",
                [external_id, price_minor, currency, NOW, NOW, NOW],
            )
        prices = {
            external_id: (price, price_type, price_usd)
            for external_id, price, price_type, price_usd in db.execute(
                "SELECT external_id, price, typeof(price), price_usd FROM offers_usd "
                "WHERE marketplace = 'c' AND external_id NOT IN ('1', '2')"
            ).fetchall()
        }
        (minor_units,) = db.execute(
            "SELECT map(list(currency), list(minor_unit)) FROM currencies "
            "WHERE currency IN ('JPY', 'USD', 'KWD', 'ZMW', 'CLF')"
        ).fetchone()
    assert prices == {
        "zmw": (Decimal("12345.67"), "DECIMAL(18,4)", None),
        "jpy": (Decimal("1234567"), "DECIMAL(18,4)", None),
        "kwd": (Decimal("1234.567"), "DECIMAL(18,4)", None),
        "usd": (Decimal("12345.67"), "DECIMAL(18,4)", Decimal("12345.67")),
        "big": (Decimal("999999999999.99"), "DECIMAL(18,4)", None),
    }
    assert minor_units == {"JPY": 0, "USD": 2, "KWD": 3, "ZMW": 2, "CLF": 4}


def test_marking_live_marketplaces_follows_the_toml_and_the_admin_switch(tmp_path: Path) -> None:
    """What analyst_warehouse writes before each publish: a marketplace gone from the active
    list, or disabled by an admin, is not live; marking again with the same lists (in any
    order) changes nothing."""
    query = "SELECT slug, active, storefront_enabled FROM marketplaces ORDER BY slug"
    with warehouse.connect(tmp_path / "views.duckdb") as db:
        _fill(db)
        mark_live_marketplaces(db, active=["a", "b"], disabled={"b"})
        flags = db.execute(query).fetchall()
        mark_live_marketplaces(db, active=["b", "a"], disabled=["b"])
        again = db.execute(query).fetchall()
        live = dict(
            db.execute("SELECT marketplace, bool_or(live) FROM offers_usd GROUP BY ALL").fetchall()
        )
    assert flags == again == [("a", True, True), ("b", True, False), ("c", False, True)]
    assert live == {"a": True, "b": False, "c": False}


def test_price_usd_is_the_search_indexs_exact_cents_at_rounding_boundaries(
    tmp_path: Path,
) -> None:
    """`offers_usd.price_usd` divided through a DOUBLE and rounded half away from zero, so at an
    exact half cent it differed from the search index (search_index.documents
    .convert_to_usd_minor: the exact quotient, rounded half-even once): 3 JPY at 600 per USD
    is exactly 0.005 USD, 0.00 in search and 0.01 here; 9 JPY is 0.015, 0.02 in search and 0.01
    here (the DOUBLE is 0.01499…)."""
    rates = {
        "JPY": Decimal("600"),
        "EUR": Decimal("0.8"),
        "GBP": Decimal("0.79123457"),
        "KWD": Decimal("0.30712345"),
        "CLF": Decimal("0.02412345"),
    }
    cases = [
        ("jpy3", 3, "JPY"),
        ("jpy9", 9, "JPY"),
        ("jpy15", 15, "JPY"),
        ("jpybig", 123456789, "JPY"),
        ("eur", 2, "EUR"),  # 2.5 cents: half-even gives 2
        ("eur6", 6, "EUR"),  # 7.5 cents: 8
        ("gbp", 1234567, "GBP"),
        ("kwd", 1234567, "KWD"),
        ("clf", 1234567, "CLF"),
        ("usd", 5, "USD"),
    ]
    with warehouse.connect(tmp_path / "views.duckdb") as db:
        _fill(db)
        store_currencies(db)
        for currency, rate in rates.items():
            (minor_unit,) = db.execute(
                "SELECT minor_unit FROM currencies WHERE currency = ?", [currency]
            ).fetchone()
            db.execute(
                "INSERT INTO fx_rates VALUES ('USD', ?, ?, DATE '2026-12-01', 'test', ?)",
                [currency, rate, minor_unit],
            )
        for external_id, price_minor, currency in cases:
            db.execute(
                "INSERT INTO products (marketplace, external_id, title, description, price_minor, "
                "currency, available, content_hash, first_seen_at, updated_at, fetched_at) "
                "VALUES ('c', ?, 't', '', ?, ?, true, 'h', ?, ?, ?)",
                [external_id, price_minor, currency, NOW, NOW, NOW],
            )
        shown = dict(
            db.execute(
                "SELECT external_id, price_usd FROM offers_usd "
                "WHERE marketplace = 'c' AND external_id NOT IN ('1', '2')"
            ).fetchall()
        )
        (price_type,) = db.execute("SELECT typeof(price_usd) FROM offers_usd LIMIT 1").fetchone()
    rates["USD"] = Decimal(1)
    expected = {
        external_id: Decimal(convert_to_usd_minor(price_minor, currency, rates)) / 100
        for external_id, price_minor, currency in cases
    }
    assert shown == expected
    assert shown["jpy3"] == Decimal("0.00")
    assert shown["jpy9"] == Decimal("0.02")
    assert shown["eur"] == Decimal("0.02")
    assert price_type == "DECIMAL(18,2)"


def test_overlap_and_price_changes_count_only_live_offers(tmp_path: Path) -> None:
    """`marketplace_overlap` and `price_changes_7d` still counted what no shopper can buy (ops
    leftovers): the groups an inactive or disabled marketplace shares, and the price changes of
    its offers and of offers gone from the catalog. Like the other summary views they are now of
    live offers only: the overlap of two live marketplaces' live offers, the changes of offers
    that are live now."""
    with warehouse.connect(tmp_path / "views.duckdb") as db:
        _fill(db)
        store_currencies(db)
        before = db.execute(
            "SELECT marketplace_a, marketplace_b, shared_groups FROM marketplace_overlap "
            "ORDER BY ALL"
        ).fetchall()
        # Each of a's and c's first offers got cheaper, and so did an offer c no longer sells.
        for marketplace, external_id, old, new in (
            ("a", "1", 1200, 1000),
            ("c", "1", 1500, 1200),
            ("c", "gone", 900, 800),
        ):
            db.execute(
                "INSERT INTO price_history VALUES (?, ?, ?, 'USD', true, ?), "
                "(?, ?, ?, 'USD', true, ?)",
                [marketplace, external_id, old, NOW, marketplace, external_id, new, NOW],
            )
            db.execute(
                "UPDATE price_history SET observed_at = now() - INTERVAL 2 DAY "
                "WHERE marketplace = ? AND external_id = ? AND price_minor = ?",
                [marketplace, external_id, old],
            )
            db.execute(
                "UPDATE price_history SET observed_at = now() - INTERVAL 1 DAY "
                "WHERE marketplace = ? AND external_id = ? AND price_minor = ?",
                [marketplace, external_id, new],
            )
        every_change = db.execute(
            "SELECT marketplace, external_id FROM price_changes_7d ORDER BY ALL"
        ).fetchall()
        db.execute("UPDATE marketplaces SET active = false WHERE slug = 'a'")
        overlap = db.execute(
            "SELECT marketplace_a, marketplace_b, shared_groups FROM marketplace_overlap "
            "ORDER BY ALL"
        ).fetchall()
        changes = db.execute(
            "SELECT marketplace, external_id, title, change_pct FROM price_changes_7d"
        ).fetchall()
        db.execute("UPDATE marketplaces SET storefront_enabled = false WHERE slug = 'b'")
        overlap_without_b = db.execute("SELECT count(*) FROM marketplace_overlap").fetchone()
        comments = dict(
            db.execute(
                "SELECT view_name, comment FROM duckdb_views() WHERE view_name IN "
                "('marketplace_overlap', 'price_changes_7d')"
            ).fetchall()
        )
    assert before == [("a", "b", 2), ("a", "c", 2), ("b", "c", 2)]
    assert every_change == [("a", "1"), ("c", "1")]
    assert overlap == [("b", "c", 2)]
    assert changes == [("c", "1", "Offer c1", Decimal("-20.00"))]
    assert overlap_without_b == (0,)
    readme = (Path(warehouse.__file__).parent / "README.md").read_text(encoding="utf-8")
    for view in ("marketplace_overlap", "price_changes_7d"):
        (row,) = [line for line in readme.splitlines() if line.startswith(f"| `{view}`")]
        assert "live" in row, row
        assert "live" in comments[view], comments[view]
