"""Admin edits of marketplaces: add, edit, enable/disable, set or clear the API key.

The API key is encrypted before it touches the session (commerce.secrets) and never returned.
Which fields the marketplaces.toml sync may refresh afterwards is documented in
commerce.catalog_sync: admins own name, description, api_base_url, logo, active and the key.

An admin account must not be a way to read the server's secrets or reach its private network:
`api_key_env` may only name variables with the ONECART_MARKETPLACE_KEY_ prefix (so no admin can
send, say, AWS_SECRET_ACCESS_KEY to a marketplace), `api_base_url` may not point at loopback,
private, link-local or other non-public addresses outside sandbox mode, and a stored key is
dropped when the base URL's host changes, until an admin enters the key again. A key variable
marketplaces.toml names goes only to the host of the entry naming it (the deployment's file
decides, commerce.marketplace_access.key_variable_problem): a move drops it too, and the form
refuses it for any other host. A variable no entry names goes nowhere: the form refuses it (an
admin-added marketplace's key is typed into the form and stored encrypted).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal, InvalidOperation
from urllib.parse import SplitResult, urlsplit

import sqlalchemy as sa
from sqlalchemy.orm import Session

from adapters.public_addresses import AddressProblem, address_problem
from adapters.registry import (
    ADAPTER_KINDS,
    MATCH_IDENTIFIERS,
    MarketplaceConfigError,
    build_adapter,
)
from commerce.accounts import AccountError
from commerce.catalog_sync import capabilities_for_config
from commerce.countries import is_shipping_country
from commerce.marketplace_access import (
    API_KEY_ENV_PREFIX,
    configured_options,
    key_variable_problem,
    marketplace_config,
    url_origin,
)
from commerce.models import Marketplace
from commerce.order_models import MarketplaceOrder
from commerce.secrets import encrypt_secret
from onecart.money import is_iso_currency

SLUG_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{1,40}$")
ENV_NAME_PATTERN = re.compile(r"^ONECART_MARKETPLACE_KEY_[A-Z0-9_]{1,56}$")


class MarketplaceEditError(AccountError):
    """Marketplace input that cannot be saved; `errors` maps form fields to messages."""


class MarketplaceChangedError(MarketplaceEditError):
    """The marketplace changed since the edit form was opened: nothing was saved."""


# What the edit form shows and saves: its fingerprint travels with the form, and a save is
# compare-and-set on it (another admin's disable, or a sync, is not overwritten unseen).
EDITED_FIELDS = (
    "name",
    "kind",
    "api_base_url",
    "currency",
    "country",
    "relation_identifier",
    "description",
    "logo",
    "rating",
    "active",
    "api_key_env",
    "api_key_encrypted",
)


def edit_fingerprint(marketplace: Marketplace) -> str:
    """A digest of the marketplace as the edit form shows it (the stored key only as part of a
    hash: the form never carries it)."""
    values = "\x1f".join(str(getattr(marketplace, name)) for name in EDITED_FIELDS)
    return hashlib.sha256(values.encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class MarketplaceInput:
    """What the admin form submits. `api_key` None keeps the stored key; `clear_api_key` drops it."""

    name: str
    kind: str
    api_base_url: str
    currency: str
    country: str
    relation_identifier: str
    description: str = ""
    logo: str | None = None
    rating: str | None = None
    active: bool = True
    api_key: str | None = None
    clear_api_key: bool = False
    api_key_env: str | None = None


def non_public_host_problem(url: SplitResult, *, private_allowed: bool = False) -> str | None:
    """Why `url`'s host is not a public internet address (None when it is): loopback, private,
    link-local (cloud metadata), shared, reserved or unresolvable addresses are refused (the
    same rule the marketplace clients apply to a redirect, adapters.public_addresses).
    `private_allowed` (sandbox mode): only link-local and metadata addresses are refused (a
    name that does not resolve yet is accepted, as before; the connection guard asks again)."""
    host = url.hostname or ""
    try:
        port = url.port or (443 if url.scheme == "https" else 80)
    except ValueError:
        return "This host could not be resolved to a public address."
    problem = address_problem(host, port, private_allowed=private_allowed)
    if problem is None:
        return None
    if private_allowed:
        if problem is not AddressProblem.METADATA:
            return None  # a name not resolving yet: the connection guard asks again
        return (
            "Use another address: link-local addresses (the cloud's metadata service) are "
            "refused, in sandbox mode too."
        )
    if problem is AddressProblem.UNRESOLVED:
        return "This host could not be resolved to a public address."
    if problem is AddressProblem.LOCAL_NAME:
        return "Use a public address: local hosts are refused outside sandbox mode."
    return (
        "Use a public address: loopback, private and link-local addresses are refused "
        "outside sandbox mode."
    )


def _validate(
    data: MarketplaceInput, *, allow_private_hosts: bool
) -> tuple[dict[str, list[str]], Decimal | None]:
    errors: dict[str, list[str]] = {}
    if not data.name.strip():
        errors["name"] = ["Enter the marketplace's name."]
    if data.kind not in ADAPTER_KINDS:
        errors["kind"] = ["Choose one of the supported API formats."]
    url = urlsplit(data.api_base_url.strip())
    if url.scheme not in ("http", "https") or not url.netloc:
        errors["api_base_url"] = ["Enter an http:// or https:// URL."]
    elif problem := non_public_host_problem(url, private_allowed=allow_private_hosts):
        errors["api_base_url"] = [problem]
    if not is_iso_currency(data.currency.strip().upper()):
        errors["currency"] = ["Enter a three-letter ISO currency code such as USD."]
    if not is_shipping_country(data.country.strip().upper()):
        # ISO 3166-1 only: "XX" or "EU" match two letters but name no country.
        errors["country"] = ["Enter a two-letter country code such as KE (ISO 3166-1)."]
    if data.relation_identifier not in MATCH_IDENTIFIERS:
        errors["relation_identifier"] = ["Choose one of the listed identifiers."]
    if data.logo:
        logo = urlsplit(data.logo.strip())
        if not (
            data.logo.startswith("/static/") or (logo.scheme in ("http", "https") and logo.netloc)
        ):
            errors["logo"] = ["Use a /static/… path or an http(s) URL."]
    if data.api_key_env and not ENV_NAME_PATTERN.match(data.api_key_env):
        errors["api_key_env"] = [
            f"Use an environment variable name starting with {API_KEY_ENV_PREFIX}, "
            f"such as {API_KEY_ENV_PREFIX}SHOP."
        ]
    elif problem := key_variable_problem(data.api_key_env, data.api_base_url):
        errors["api_key_env"] = [problem]
    rating: Decimal | None = None
    if data.rating not in (None, ""):
        try:
            rating = Decimal(str(data.rating).strip()).quantize(Decimal("0.01"))
        except InvalidOperation:
            rating = None
        # NaN parses but compares with nothing (the comparison itself raises): refuse it too.
        if rating is None or not rating.is_finite() or not Decimal(0) <= rating <= Decimal(5):
            rating = None
            errors["rating"] = ["Enter a rating between 0 and 5."]
    if data.api_key is not None and len(data.api_key) > 500:
        errors["api_key"] = ["That key is too long."]
    return errors, rating


def _apply_fields(marketplace: Marketplace, data: MarketplaceInput, rating: Decimal | None) -> None:
    """The form's fields other than the key (and its variable) onto `marketplace`."""
    marketplace.name = data.name.strip()
    marketplace.kind = data.kind
    marketplace.api_base_url = data.api_base_url.strip()
    marketplace.currency = data.currency.strip().upper()
    marketplace.country = data.country.strip().upper()
    marketplace.relation_identifier = data.relation_identifier
    marketplace.description = data.description.strip()
    marketplace.logo = (data.logo or "").strip() or None
    marketplace.rating = rating
    marketplace.active = data.active


def _apply(marketplace: Marketplace, data: MarketplaceInput, rating: Decimal | None) -> None:
    _apply_fields(marketplace, data, rating)
    marketplace.api_key_env = (data.api_key_env or "").strip() or None
    if data.clear_api_key:
        marketplace.api_key_encrypted = None
    elif data.api_key:
        marketplace.api_key_encrypted = encrypt_secret(data.api_key.strip())
    # What the adapter the marketplace will be read through can do: its format's, and for a
    # declarative one what marketplaces.toml configures for this slug (an order API orders),
    # as the adapter providers build it (commerce.marketplace_access).
    marketplace.capabilities = capabilities_for_config(
        marketplace_config(marketplace, configured_options().get(marketplace.slug, {}))
    )


def list_marketplaces(session: Session) -> list[Marketplace]:
    """Every marketplace, active first, then by name."""
    return list(
        session.scalars(
            sa.select(Marketplace).order_by(Marketplace.active.desc(), Marketplace.name)
        )
    )


@dataclass(frozen=True, slots=True)
class AbsorbedExtras:
    """What OneCart paid of the shipping and tax one marketplace added to its sub-orders
    (within its allowance; commerce.acceptance), in its currency's minor units."""

    sub_orders: int
    shipping_minor: int
    tax_minor: int


def absorbed_extras(session: Session, *, since: datetime) -> dict[int, AbsorbedExtras]:
    """Per marketplace id, the shipping and tax OneCart absorbed on sub-orders placed since
    `since` (only marketplaces that added any): what an operator weighs the allowance against."""
    rows = session.execute(
        sa.select(
            MarketplaceOrder.marketplace_id,
            sa.func.count(),
            sa.func.coalesce(sa.func.sum(MarketplaceOrder.absorbed_shipping_minor), 0),
            sa.func.coalesce(sa.func.sum(MarketplaceOrder.absorbed_tax_minor), 0),
        )
        .where(
            MarketplaceOrder.placed_at >= since,
            sa.or_(
                MarketplaceOrder.absorbed_shipping_minor > 0,
                MarketplaceOrder.absorbed_tax_minor > 0,
            ),
        )
        .group_by(MarketplaceOrder.marketplace_id)
    ).all()
    return {
        int(market): AbsorbedExtras(int(count), int(shipping), int(tax))
        for market, count, shipping, tax in rows
    }


def _format_problem(slug: str, data: MarketplaceInput) -> str | None:
    """Why a marketplace of this slug cannot be read in the chosen API format, or None. Some
    formats (declarative, CSV feed, Amazon) need options that only marketplaces.toml gives; one
    without them could never be read, and an order worker building its adapter would fail."""
    if data.kind not in ADAPTER_KINDS:
        return None  # refused by _validate already
    # The configuration the marketplace would be read with once saved (one builder,
    # commerce.marketplace_access.marketplace_config), from a row that is never added to the
    # session; without the key, which reading the format's options does not need.
    probe = Marketplace(slug=slug)
    _apply_fields(probe, data, rating=None)
    config = marketplace_config(probe, configured_options().get(slug, {}))
    try:
        adapter = build_adapter(config)
    except MarketplaceConfigError as exc:
        return (
            f"This API format needs options that only marketplaces.toml can give ({exc}): "
            "add the marketplace there, or choose another format."
        )
    close = getattr(adapter, "close", None)
    if callable(close):
        close()
    return None


def create_marketplace(
    session: Session, slug: str, data: MarketplaceInput, *, allow_private_hosts: bool = False
) -> Marketplace:
    """Add a marketplace; the slug is permanent (URLs, documents and the pipeline use it).

    `allow_private_hosts` (sandbox mode only) accepts loopback and private base URLs."""
    errors, rating = _validate(data, allow_private_hosts=allow_private_hosts)
    slug = slug.strip().lower()
    if not SLUG_PATTERN.match(slug):
        errors["slug"] = ["Use 2–41 lower-case letters, digits or '-'."]
    elif session.scalar(sa.select(Marketplace.id).where(Marketplace.slug == slug)) is not None:
        errors["slug"] = ["A marketplace with this slug already exists."]
    elif not errors and (problem := _format_problem(slug, data)):
        errors["kind"] = [problem]
    if errors:
        raise MarketplaceEditError(errors)
    marketplace = Marketplace(slug=slug)
    _apply(marketplace, data, rating)
    session.add(marketplace)
    session.flush()
    return marketplace


def update_marketplace(
    session: Session,
    marketplace: Marketplace,
    data: MarketplaceInput,
    *,
    allow_private_hosts: bool = False,
    seen: str | None = None,
) -> bool:
    """Save an admin's edits (a blank API key keeps the stored one, unless the base URL moved to
    another host: the stored key is then dropped until it is entered again, so it is never sent
    to the new host; so is a key variable marketplaces.toml gives to the old host). Returns True
    when the move left the marketplace without the key it had.

    `seen` is the edit_fingerprint the form was opened with: when the marketplace no longer
    matches it (another admin disabled it, a sync refreshed it), MarketplaceChangedError and
    nothing is saved."""
    if seen is not None:
        session.refresh(marketplace, with_for_update=True)
        if seen != edit_fingerprint(marketplace):
            status = "active" if marketplace.active else "disabled"
            raise MarketplaceChangedError(
                {
                    "": [
                        f"{marketplace.name} was changed since you opened this form (it is now "
                        f"{status}, at {marketplace.api_base_url}): nothing was saved. The form "
                        "still holds what you entered; check it against the change and save "
                        "again to apply it."
                    ]
                }
            )
    host_changed = url_origin(marketplace.api_base_url) != url_origin(data.api_base_url)
    # The variable marketplaces.toml names goes only to the host the file gives it, so a move
    # drops it like the stored key (the form still carries it) rather than refusing the edit.
    env_dropped = host_changed and bool(key_variable_problem(data.api_key_env, data.api_base_url))
    if env_dropped:
        data = replace(data, api_key_env=None)
    errors, rating = _validate(data, allow_private_hosts=allow_private_hosts)
    if not errors and (problem := _format_problem(marketplace.slug, data)):
        errors["kind"] = [problem]
    if errors:
        raise MarketplaceEditError(errors)
    key_dropped = bool(
        host_changed
        and marketplace.api_key_encrypted
        and not data.api_key
        and not data.clear_api_key
    )
    _apply(marketplace, data, rating)
    if key_dropped:
        marketplace.api_key_encrypted = None
    session.flush()
    return key_dropped or (env_dropped and not data.api_key)


def set_marketplace_active(session: Session, marketplace: Marketplace, active: bool) -> None:
    """Enable or disable a marketplace (inactive marketplaces are hidden from shoppers)."""
    marketplace.active = active
    session.flush()
