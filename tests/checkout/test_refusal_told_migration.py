"""Migration 0028_refusal_told_by_name: a refused part counts as told by an order's refusal
notice only when that notice names its marketplace (the notice names the parts refused when it
was sent); a part refused after it, never told, is left for the abandoned-cancellation sweep to
tell. Parts told by a notice of their own or named by the order's stay told (never told twice).
A notice written before the job's message kept no part id (a cancelled part's id merged into
it) still tells the refused part it names: 0027 missed it, and the sweep would have told that
part again. Down restores 0027's reading for the parts it left untold; up again is the same. On SQLite, and on PostgreSQL when
DATABASE_URL points at one."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from alembic import command

from commerce.db import create_storefront_engine
from storefront.db_migrate import alembic_config
from tests.checkout.test_offer_stock_migration import _insert

BEFORE = "0026_ended_unresolved_since"
TOLD_BY_ORDER = "0027_cancel_refusal_told"
FIRST_NOTICE = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
PART_NOTICE = datetime(2026, 12, 6, 14, 0, tzinfo=UTC)
REFUSED = "cancellation_refused"


def _told(url: str) -> dict[str, bool]:
    """Each part ("<order number>/<marketplace slug>") → whether it counts as told."""
    engine = create_storefront_engine(url)
    try:
        with engine.connect() as connection:
            return {
                f"{number}/{slug}": told_at is not None
                for number, slug, told_at in connection.execute(
                    sa.text(
                        "SELECT o.number, m.slug, p.cancel_refusal_told_at "
                        "FROM marketplace_orders p "
                        "JOIN marketplaces m ON m.id = p.marketplace_id "
                        "JOIN orders o ON o.id = p.order_id"
                    )
                )
            }
    finally:
        engine.dispose()


def _seed(url: str) -> None:
    """Two orders cancelled by the shopper. The first: Kiondo Market refused at the job's run
    and was named by the order's notice; NaijaMall refused later (a later run or the sweep, whose
    order notice was already there) and was never told; ShopWave refused later and was told by
    the sweep's notice of its own. The second: Sokoni named at the end of a notice merged after a
    cancelled part's sentence. The third: the same merged notice, written with the cancelled
    part's id (as before the job's message kept none)."""
    command.upgrade(alembic_config(url), BEFORE)
    engine = create_storefront_engine(url)
    try:
        with engine.begin() as connection:
            user = _insert(connection, "users", username="u1", email="u1@example.com")
            markets = {
                slug: _insert(
                    connection,
                    "marketplaces",
                    slug=slug,
                    name=name,
                    kind="dummyjson",
                    currency="USD",
                    capabilities=["catalog", "order", "cancel"],
                    active=True,
                )
                for slug, name in (
                    ("kiondo", "Kiondo Market"),
                    ("naijamall", "NaijaMall"),
                    ("shopwave", "ShopWave"),
                    ("sokoni", "Sokoni"),
                )
            }

            def order_of(
                number: str, slugs: tuple[str, ...], cancelled: tuple[str, ...] = ()
            ) -> tuple[int, dict[str, int]]:
                order = _insert(
                    connection,
                    "orders",
                    number=number,
                    user_id=user,
                    status="processing",
                    payment_method="wallet",
                    total_minor=100 * len(slugs),
                    currency="USD",
                    cancel_requested_at=FIRST_NOTICE,
                )
                parts = {
                    slug: _insert(
                        connection,
                        "marketplace_orders",
                        order_id=order,
                        marketplace_id=markets[slug],
                        status="cancelled" if slug in cancelled else "placed",
                        marketplace_order_id=f"m-{slug}",
                        amount_minor=100,
                        currency="USD",
                        charge_minor=100,
                        charge_currency="USD",
                        cancel_outcome="cancelled" if slug in cancelled else "refused",
                    )
                    for slug in slugs
                }
                return order, parts

            def notice(order: int, message: str, at: datetime, part: int | None = None) -> None:
                _insert(
                    connection,
                    "notifications",
                    user_id=user,
                    order_id=order,
                    sub_order_id=part,
                    kind=REFUSED,
                    message=message,
                    created_at=at,
                    email_attempts=0,
                )

            first, parts = order_of("A1", ("kiondo", "naijamall", "shopwave"))
            notice(
                first,
                "These marketplaces could not cancel their part of your order, so it goes "
                "ahead: Kiondo Market.",
                FIRST_NOTICE,
            )
            notice(
                first,
                "ShopWave could not cancel its part of your order, so it goes ahead.",
                PART_NOTICE,
                parts["shopwave"],
            )
            merged = (
                "Your Kiondo Market items were cancelled; we refunded their $1.00 to your OneCart "
                "wallet. These marketplaces could not cancel their part of your order, so it goes "
                "ahead: Sokoni."
            )
            second, _ = order_of("A2", ("kiondo", "sokoni"), cancelled=("kiondo",))
            notice(second, merged, FIRST_NOTICE)
            third, third_parts = order_of("A3", ("kiondo", "sokoni"), cancelled=("kiondo",))
            notice(third, merged, FIRST_NOTICE, third_parts["kiondo"])
    finally:
        engine.dispose()


RIGHT = {
    "A1/kiondo": True,
    "A1/naijamall": False,
    "A1/shopwave": True,
    "A2/kiondo": False,
    "A2/sokoni": True,
    "A3/kiondo": False,
    "A3/sokoni": True,
}


def _check(url: str) -> None:
    _seed(url)
    command.upgrade(alembic_config(url), TOLD_BY_ORDER)
    # 0027 took the order's notice for NaijaMall's, which it does not name, and missed the
    # notice naming Sokoni that carries the cancelled part's id.
    assert _told(url) == RIGHT | {"A1/naijamall": True, "A3/sokoni": False}

    command.upgrade(alembic_config(url), "head")
    assert _told(url) == RIGHT

    command.downgrade(alembic_config(url), TOLD_BY_ORDER)
    assert _told(url) == RIGHT | {"A1/naijamall": True}
    command.upgrade(alembic_config(url), "head")
    assert _told(url) == RIGHT


def test_a_part_refused_after_the_orders_notice_is_left_to_be_told_on_sqlite(
    tmp_path: Path,
) -> None:
    _check(f"sqlite:///{tmp_path / 'told.db'}")


def test_a_part_refused_after_the_orders_notice_is_left_to_be_told_on_postgresql(
    postgres_url: str,
) -> None:
    _check(postgres_url)


# Names holding LIKE's wildcards: "_" stands for any one character and "%" for any run of them,
# so unescaped "Shop_Wave" matched a notice naming "ShopXWave", and "100% Deals" one naming
# "100 Great Deals": parts never told were taken for told, and the sweep never told them.
WILDCARD_NAMES = {
    "shopxwave": "ShopXWave",
    "shop-underscore": "Shop_Wave",
    "great-deals": "100 Great Deals",
    "percent-deals": "100% Deals",
}


def _seed_wildcard_names(url: str) -> None:
    """B1: the notice names ShopXWave, not Shop_Wave. B2: it names 100 Great Deals, not 100%
    Deals. B3: it names 100% Deals and Shop_Wave themselves."""
    command.upgrade(alembic_config(url), BEFORE)
    engine = create_storefront_engine(url)
    try:
        with engine.begin() as connection:
            user = _insert(connection, "users", username="u2", email="u2@example.com")
            markets = {
                slug: _insert(
                    connection,
                    "marketplaces",
                    slug=slug,
                    name=name,
                    kind="dummyjson",
                    currency="USD",
                    capabilities=["catalog", "order", "cancel"],
                    active=True,
                )
                for slug, name in WILDCARD_NAMES.items()
            }
            for number, slugs, named in (
                ("B1", ("shopxwave", "shop-underscore"), "ShopXWave"),
                ("B2", ("great-deals", "percent-deals"), "100 Great Deals"),
                ("B3", ("percent-deals", "shop-underscore"), "100% Deals, Shop_Wave"),
            ):
                order = _insert(
                    connection,
                    "orders",
                    number=number,
                    user_id=user,
                    status="processing",
                    payment_method="wallet",
                    total_minor=200,
                    currency="USD",
                    cancel_requested_at=FIRST_NOTICE,
                )
                for slug in slugs:
                    _insert(
                        connection,
                        "marketplace_orders",
                        order_id=order,
                        marketplace_id=markets[slug],
                        status="placed",
                        marketplace_order_id=f"m-{slug}",
                        amount_minor=100,
                        currency="USD",
                        charge_minor=100,
                        charge_currency="USD",
                        cancel_outcome="refused",
                    )
                _insert(
                    connection,
                    "notifications",
                    user_id=user,
                    order_id=order,
                    sub_order_id=None,
                    kind=REFUSED,
                    message="These marketplaces could not cancel their part of your order, so "
                    f"it goes ahead: {named}.",
                    created_at=FIRST_NOTICE,
                    email_attempts=0,
                )
    finally:
        engine.dispose()


def _check_wildcard_names(url: str) -> None:
    _seed_wildcard_names(url)
    command.upgrade(alembic_config(url), "head")
    assert _told(url) == {
        "B1/shopxwave": True,
        "B1/shop-underscore": False,
        "B2/great-deals": True,
        "B2/percent-deals": False,
        "B3/percent-deals": True,
        "B3/shop-underscore": True,
    }


def test_a_name_with_like_wildcards_matches_only_itself_on_sqlite(tmp_path: Path) -> None:
    _check_wildcard_names(f"sqlite:///{tmp_path / 'wildcards.db'}")


def test_a_name_with_like_wildcards_matches_only_itself_on_postgresql(postgres_url: str) -> None:
    _check_wildcard_names(postgres_url)
