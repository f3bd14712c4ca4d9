"""The storefront database's tables, as typed SQLAlchemy 2 models.

Money is always an integer `*_minor` column plus a three-letter `currency` on the same row.
Timestamps are timezone-aware UTC on both SQLite and PostgreSQL (see :class:`UTCDateTime`).
Alembic migrations under `commerce/migrations/` create these tables; nothing calls `create_all`
in the application.
"""

from __future__ import annotations

import enum
import secrets
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, validates
from sqlalchemy.types import TypeDecorator

# Stable constraint names, so migrations can alter and drop them on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utc_now() -> datetime:
    """The current time as an aware UTC datetime (the default of every timestamp column)."""
    return datetime.now(UTC)


def new_session_nonce() -> str:
    """A random token mixed into the login cookie's user id; rotating it signs out old sessions."""
    return secrets.token_hex(8)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out: SQLite has no time zones, so naive values read back are UTC."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: store aware UTC datetimes only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def stored_enum(kind: type[enum.StrEnum], name: str, length: int = 24) -> sa.Enum:
    """A column type for a StrEnum stored as its members' values in a string column with a CHECK
    constraint (no native database enum), validated when a value is assigned."""
    return sa.Enum(
        kind,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=length,
        values_callable=lambda members: [member.value for member in members],
        validate_strings=True,
    )


class Base(DeclarativeBase):
    """Declarative base of every storefront table."""

    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: sa.JSON()}


# --- Accounts and wallet ------------------------------------------------------------------------


class User(Base):
    """A shopper (or an admin). Flask-Login's user protocol is implemented here without Flask."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(sa.String(40), unique=True)
    email: Mapped[str] = mapped_column(sa.String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(sa.String(255))
    phone_number: Mapped[str | None] = mapped_column(sa.String(32))
    first_name: Mapped[str] = mapped_column(sa.String(80), default="")
    last_name: Mapped[str] = mapped_column(sa.String(80), default="")
    display_currency: Mapped[str] = mapped_column(sa.String(3), default="USD")
    wallet_currency: Mapped[str] = mapped_column(sa.String(3), default="USD")
    is_admin: Mapped[bool] = mapped_column(default=False)
    date_joined: Mapped[datetime] = mapped_column(default=utc_now)
    last_login: Mapped[datetime | None]
    # Rotated when the password changes: cookies carrying the old nonce stop working.
    session_nonce: Mapped[str] = mapped_column(sa.String(32), default=new_session_nonce)
    # A new address waiting for its owner to open the e-mailed link (commerce.email_change);
    # the nonce is in the link's signature, so a later change voids an earlier link.
    pending_email: Mapped[str | None] = mapped_column(sa.String(254))
    pending_email_nonce: Mapped[str | None] = mapped_column(sa.String(32))
    # When the change was asked for: past EMAIL_CHANGE_MAX_AGE_S it no longer waits (its link is
    # dead), so the profile stops showing it.
    pending_email_since: Mapped[datetime | None]
    ship_name: Mapped[str | None] = mapped_column(sa.String(160))
    ship_line1: Mapped[str | None] = mapped_column(sa.String(200))
    ship_line2: Mapped[str | None] = mapped_column(sa.String(200))
    ship_city: Mapped[str | None] = mapped_column(sa.String(120))
    ship_postal_code: Mapped[str | None] = mapped_column(sa.String(20))
    ship_country: Mapped[str | None] = mapped_column(sa.String(2))

    wallet_entries: Mapped[list[WalletEntry]] = relationship(
        back_populates="user", cascade="all, delete-orphan", passive_deletes=True
    )
    cart_items: Mapped[list[CartItem]] = relationship(
        back_populates="user", cascade="all, delete-orphan", passive_deletes=True
    )

    @validates("email")
    def _lower_email(self, _key: str, value: str) -> str:
        return value.strip().lower()

    # Flask-Login's protocol (duck-typed so this module never imports Flask).
    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def is_active(self) -> bool:
        return True

    @property
    def is_anonymous(self) -> bool:
        return False

    def get_id(self) -> str:
        """`<id>.<nonce>`: the session cookie stops matching once the password changes."""
        return f"{self.id}.{self.session_nonce}"

    @property
    def full_name(self) -> str:
        """First and last name, or "" when neither is set (pages fall back to the username)."""
        return f"{self.first_name} {self.last_name}".strip()

    def __repr__(self) -> str:
        return f"<User {self.id} {self.username!r}>"


class WalletEntryKind(enum.StrEnum):
    """Why the wallet balance moved."""

    TOPUP = "topup"
    PAYMENT = "payment"
    REFUND = "refund"
    ADJUSTMENT = "adjustment"


class WalletEntry(Base):
    """One append-only line of a user's wallet ledger; the balance is the sum of the lines.

    (kind, reference) is unique, so a retried top-up or payment with the same cause can't count twice.
    """

    __tablename__ = "wallet_entries"
    __table_args__ = (
        sa.UniqueConstraint("kind", "reference", name="uq_wallet_entries_kind_reference"),
        sa.Index("ix_wallet_entries_user_id_created_at", "user_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[WalletEntryKind] = mapped_column(
        sa.Enum(
            WalletEntryKind,
            name="wallet_entry_kind",
            native_enum=False,
            create_constraint=True,
            length=16,
            values_callable=lambda kinds: [kind.value for kind in kinds],
            validate_strings=True,
        )
    )
    amount_minor: Mapped[int] = mapped_column(sa.BigInteger)
    currency: Mapped[str] = mapped_column(sa.String(3))
    reference: Mapped[str] = mapped_column(sa.String(120))
    description: Mapped[str] = mapped_column(sa.String(200), default="")
    created_at: Mapped[datetime] = mapped_column(default=utc_now)

    user: Mapped[User] = relationship(back_populates="wallet_entries")


# --- Catalog ------------------------------------------------------------------------------------


class Marketplace(Base):
    """A marketplace OneCart aggregates; seeded from marketplaces.toml, editable by admins."""

    __tablename__ = "marketplaces"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(sa.String(42), unique=True)
    name: Mapped[str] = mapped_column(sa.String(120))
    kind: Mapped[str] = mapped_column(sa.String(32))
    api_base_url: Mapped[str] = mapped_column(sa.String(500))
    # Fernet token (commerce.secrets); the plain key is never stored or rendered.
    api_key_encrypted: Mapped[str | None] = mapped_column(sa.Text)
    api_key_env: Mapped[str | None] = mapped_column(sa.String(80))
    description: Mapped[str] = mapped_column(sa.Text, default="")
    logo: Mapped[str | None] = mapped_column(sa.String(500))
    rating: Mapped[Decimal | None] = mapped_column(sa.Numeric(3, 2))
    active: Mapped[bool] = mapped_column(default=True)
    country: Mapped[str] = mapped_column(sa.String(2), default="")
    currency: Mapped[str] = mapped_column(sa.String(3))
    capabilities: Mapped[list[str]] = mapped_column(sa.JSON, default=list)
    # The seed's productRelationToken: which identifier this marketplace exposes for matching.
    relation_identifier: Mapped[str] = mapped_column(sa.String(16), default="gtin")
    # Order tracking's record of its status API (commerce.tracking_health): status polls failed
    # in a row since its last answer, the first of them, the latest error, and when it may be
    # asked again (the backoff). Written by tracking, never by the admin form or the toml sync.
    tracking_failures: Mapped[int] = mapped_column(default=0, server_default="0")
    tracking_failing_since: Mapped[datetime | None]
    tracking_last_error: Mapped[str | None] = mapped_column(sa.String(300))
    tracking_retry_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(default=utc_now, onupdate=utc_now)

    products: Mapped[list[Product]] = relationship(back_populates="marketplace")

    @property
    def masked_api_key(self) -> str:
        """What pages may show of the API key: its last four characters at most."""
        from commerce.secrets import mask_encrypted_secret

        return mask_encrypted_secret(self.api_key_encrypted)

    @property
    def has_api_key(self) -> bool:
        """Whether a key is stored, without decrypting it."""
        return bool(self.api_key_encrypted)

    def __repr__(self) -> str:
        return f"<Marketplace {self.slug!r}>"


class Product(Base):
    """One marketplace's offer of one product (synced from the pipeline).

    `relation_token` is the product group id (the seed's Product Relation Token): offers of the
    same real product on different marketplaces share it. Offers are never deleted, because carts
    and orders point at them; `removed_at` marks an offer that left the catalog.
    """

    __tablename__ = "products"
    __table_args__ = (
        sa.UniqueConstraint(
            "marketplace_id", "external_id", name="uq_products_marketplace_external"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    marketplace_id: Mapped[int] = mapped_column(
        sa.ForeignKey("marketplaces.id", ondelete="RESTRICT")
    )
    external_id: Mapped[str] = mapped_column(sa.String(200))
    title: Mapped[str] = mapped_column(sa.String(300))
    description: Mapped[str] = mapped_column(sa.Text, default="")
    price_minor: Mapped[int] = mapped_column(sa.BigInteger)
    currency: Mapped[str] = mapped_column(sa.String(3))
    image_url: Mapped[str | None] = mapped_column(sa.String(1000))
    product_url: Mapped[str | None] = mapped_column(sa.String(1000))
    category: Mapped[str | None] = mapped_column(sa.String(200), index=True)
    brand: Mapped[str | None] = mapped_column(sa.String(120))
    model: Mapped[str | None] = mapped_column(sa.String(120))
    gtin: Mapped[str | None] = mapped_column(sa.String(14), index=True)
    mpn: Mapped[str | None] = mapped_column(sa.String(120))
    rating: Mapped[Decimal | None] = mapped_column(sa.Numeric(3, 2))
    rating_count: Mapped[int | None]
    available: Mapped[bool] = mapped_column(default=True)
    stock: Mapped[int | None]
    relation_token: Mapped[str | None] = mapped_column(sa.String(64), index=True)
    match_method: Mapped[str | None] = mapped_column(sa.String(16))
    match_confidence: Mapped[Decimal | None] = mapped_column(sa.Numeric(3, 2))
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(default=utc_now, onupdate=utc_now)
    removed_at: Mapped[datetime | None]

    marketplace: Mapped[Marketplace] = relationship(back_populates="products")
    price_points: Mapped[list[PricePoint]] = relationship(
        back_populates="product", order_by="PricePoint.observed_at"
    )
    # The units OneCart's own live orders hold of this offer, at a marketplace whose orders take
    # no stock (commerce.offer_stock); None until the first such order. Read-only here: only
    # commerce.offer_stock changes it, with compare-and-set updates.
    stock_hold: Mapped[OfferStockHold | None] = relationship(viewonly=True)

    @property
    def is_purchasable(self) -> bool:
        """In the catalog and in stock: what a cart line needs to be bought."""
        return self.removed_at is None and self.available

    def __repr__(self) -> str:
        return f"<Product {self.id} {self.external_id!r}>"


class OfferStockHold(Base):
    """The units of one offer that OneCart's live orders hold, where the marketplace's order API
    takes none (DummyJSON, Fake Store: commerce.offer_stock). Kept apart from `products.stock`,
    which is the marketplace's published figure and refreshed by every catalog ingest: what is
    left to sell is that figure less this one, and neither overwrites the other."""

    __tablename__ = "offer_stock_holds"
    __table_args__ = (sa.CheckConstraint("held_units >= 0", name="held_units_not_negative"),)

    product_id: Mapped[int] = mapped_column(
        sa.ForeignKey("products.id", ondelete="CASCADE"), primary_key=True
    )
    held_units: Mapped[int] = mapped_column(default=0, server_default="0")


class PricePoint(Base):
    """A price or availability change of one offer, for the product page's price-history chart."""

    __tablename__ = "price_points"
    __table_args__ = (
        sa.UniqueConstraint("product_id", "observed_at", name="uq_price_points_product_observed"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(sa.ForeignKey("products.id", ondelete="CASCADE"))
    price_minor: Mapped[int] = mapped_column(sa.BigInteger)
    currency: Mapped[str] = mapped_column(sa.String(3))
    available: Mapped[bool] = mapped_column(default=True)
    observed_at: Mapped[datetime]

    product: Mapped[Product] = relationship(back_populates="price_points")


class FxRate(Base):
    """Units of `currency` per 1 USD, as published by the pipeline's fx_rates asset."""

    __tablename__ = "fx_rates"

    currency: Mapped[str] = mapped_column(sa.String(3), primary_key=True)
    rate: Mapped[Decimal] = mapped_column(sa.Numeric(18, 8))
    as_of: Mapped[date] = mapped_column(sa.Date)
    source: Mapped[str] = mapped_column(sa.String(80), default="")


# --- Cart and support ---------------------------------------------------------------------------


class CartItem(Base):
    """A line of a signed-in shopper's cart (guest carts live in the Flask session)."""

    __tablename__ = "cart_items"
    __table_args__ = (
        sa.UniqueConstraint("user_id", "product_id", name="uq_cart_items_user_product"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    product_id: Mapped[int] = mapped_column(sa.ForeignKey("products.id", ondelete="RESTRICT"))
    relation_token: Mapped[str | None] = mapped_column(sa.String(64))
    quantity: Mapped[int] = mapped_column(default=1)
    price_seen_minor: Mapped[int] = mapped_column(sa.BigInteger)
    currency_seen: Mapped[str] = mapped_column(sa.String(3))
    added_at: Mapped[datetime] = mapped_column(default=utc_now)

    user: Mapped[User] = relationship(back_populates="cart_items")
    product: Mapped[Product] = relationship()


class SupportTicketStatus(enum.StrEnum):
    """Where a support request stands."""

    OPEN = "open"
    ANSWERED = "answered"
    CLOSED = "closed"


class SupportTicket(Base):
    """A support request; `reference` is the short code the shopper is given to quote."""

    __tablename__ = "support_tickets"

    id: Mapped[int] = mapped_column(primary_key=True)
    reference: Mapped[str] = mapped_column(sa.String(16), unique=True)
    user_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    name: Mapped[str] = mapped_column(sa.String(120))
    email: Mapped[str] = mapped_column(sa.String(254))
    order_number: Mapped[str | None] = mapped_column(sa.String(40))
    subject: Mapped[str] = mapped_column(sa.String(200), default="")
    message: Mapped[str] = mapped_column(sa.Text)
    status: Mapped[str] = mapped_column(sa.String(16), default=SupportTicketStatus.OPEN.value)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)

    user: Mapped[User | None] = relationship()


def import_all_models() -> None:
    """Import every commerce module that declares tables on :class:`Base` (this one and any
    `commerce/*_models.py`), so Base.metadata is complete for migrations and test cleanup."""
    import importlib
    import pkgutil

    import commerce

    for module in pkgutil.iter_modules(commerce.__path__):
        if module.name.endswith("_models"):
            importlib.import_module(f"commerce.{module.name}")
