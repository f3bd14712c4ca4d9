"""A marketplace key from the environment goes only to the host marketplaces.toml gives it.

Security review, fourth pass. An admin edit that moves a marketplace to another host drops the
stored key, so it is never sent there (commerce.marketplace_admin) — but for the keys a real
deployment uses, the ones in ONECART_MARKETPLACE_KEY_* variables named by marketplaces.toml, it
did not hold: the row kept `api_key_env`, so the order workers read the variable and sent the key
to the new host anyway, and the next pipeline sync copied the variable's value back into the row.
An admin account (or a stolen admin session) could point any configured marketplace, or a new
one naming its variable, at a host of its own and collect the marketplace's API key with the next
order or tracking poll. Now a variable that marketplaces.toml names is sent only to the origin of
the entry naming it: a move drops it with the stored key, the sync neither renames it nor refills
the key for a moved row, and the admin form refuses it for another host.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from adapters.registry import load_marketplaces
from commerce.catalog_sync import seed_marketplaces
from commerce.marketplace_access import configured_options, marketplace_api_key
from commerce.marketplace_admin import (
    MarketplaceEditError,
    MarketplaceInput,
    create_marketplace,
    update_marketplace,
)
from commerce.models import Marketplace
from onecart.settings import get_settings

VARIABLE = "ONECART_MARKETPLACE_KEY_REALSHOP"
SECRET = "shpat_real_0123456789abcdef"
CONFIGURED = "https://realshop.example.com/admin/api"
ELSEWHERE = "https://collector.example.net/admin/api"
MARKETPLACES = f"""
[[marketplace]]
slug = "realshop"
name = "Real Shop"
kind = "shopify"
base_url = "{CONFIGURED}"
api_key_env = "{VARIABLE}"
currency = "USD"
country = "US"
"""


@pytest.fixture
def realshop(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, db_session: Session
) -> Iterator[Marketplace]:
    """The marketplace as a real deployment has it: listed in marketplaces.toml with its key in
    the environment, seeded into the storefront DB by the sync."""
    path = tmp_path / "marketplaces.toml"
    path.write_text(MARKETPLACES)
    monkeypatch.setenv("ONECART_MARKETPLACES", str(path))
    monkeypatch.setenv(VARIABLE, SECRET)
    get_settings.cache_clear()
    # The options are cached per process: read this file's, and leave none of them behind (the
    # admin tests' declarative Bazaar needs the real file's options).
    configured_options.cache_clear()
    try:
        seed_marketplaces(db_session, load_marketplaces())
        db_session.commit()
        marketplace = db_session.query(Marketplace).filter_by(slug="realshop").one()
        assert marketplace_api_key(marketplace) == SECRET
        yield marketplace
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
        configured_options.cache_clear()


def _edit(marketplace: Marketplace, **changes: object) -> MarketplaceInput:
    values: dict[str, object] = {
        "name": marketplace.name,
        "kind": marketplace.kind,
        "api_base_url": marketplace.api_base_url,
        "currency": marketplace.currency,
        "country": marketplace.country or "US",
        "relation_identifier": marketplace.relation_identifier,
        "api_key_env": marketplace.api_key_env,
        "api_key": None,
    }
    values.update(changes)
    return MarketplaceInput(**values)  # type: ignore[arg-type]


def test_moving_a_configured_marketplace_sends_its_key_nowhere_new(
    db_session: Session, realshop: Marketplace
) -> None:
    # allow_private_hosts: the made-up hosts need no DNS here (the public-host rule has its tests).
    assert update_marketplace(
        db_session, realshop, _edit(realshop, api_base_url=ELSEWHERE), allow_private_hosts=True
    )
    db_session.commit()
    assert marketplace_api_key(realshop) is None

    # The pipeline's next sync does not bring the key back for the moved row.
    seed_marketplaces(db_session, load_marketplaces())
    db_session.commit()
    db_session.refresh(realshop)
    assert realshop.api_base_url == ELSEWHERE
    assert marketplace_api_key(realshop) is None


def test_naming_the_variable_again_for_the_other_host_is_refused(
    db_session: Session, realshop: Marketplace
) -> None:
    update_marketplace(
        db_session, realshop, _edit(realshop, api_base_url=ELSEWHERE), allow_private_hosts=True
    )
    db_session.commit()
    with pytest.raises(MarketplaceEditError) as refused:
        update_marketplace(
            db_session, realshop, _edit(realshop, api_key_env=VARIABLE), allow_private_hosts=True
        )
    assert "api_key_env" in refused.value.errors
    db_session.rollback()
    assert marketplace_api_key(realshop) is None


def test_a_new_marketplace_cannot_borrow_a_configured_marketplaces_key(
    db_session: Session, realshop: Marketplace
) -> None:
    with pytest.raises(MarketplaceEditError) as refused:
        create_marketplace(
            db_session,
            "lookalike",
            _edit(realshop, name="Lookalike", api_base_url=ELSEWHERE),
            allow_private_hosts=True,
        )
    assert "api_key_env" in refused.value.errors


def test_the_configured_host_keeps_its_key_and_a_key_typed_for_the_new_host_is_used(
    db_session: Session, realshop: Marketplace
) -> None:
    # Another path on the same host: the same origin, the key stays.
    update_marketplace(
        db_session,
        realshop,
        _edit(realshop, api_base_url=CONFIGURED + "/2025-10"),
        allow_private_hosts=True,
    )
    db_session.commit()
    assert marketplace_api_key(realshop) == SECRET

    # A key the admin types for the new host is theirs to send there.
    update_marketplace(
        db_session,
        realshop,
        _edit(realshop, api_base_url=ELSEWHERE, api_key="typed-for-the-new-host"),
        allow_private_hosts=True,
    )
    db_session.commit()
    assert marketplace_api_key(realshop) == "typed-for-the-new-host"
    seed_marketplaces(db_session, load_marketplaces())
    db_session.commit()
    assert marketplace_api_key(realshop) == "typed-for-the-new-host"

    # Moved back: the deployment's key goes to its own host again.
    update_marketplace(
        db_session,
        realshop,
        _edit(realshop, api_base_url=CONFIGURED, api_key_env=VARIABLE, clear_api_key=True),
        allow_private_hosts=True,
    )
    seed_marketplaces(db_session, load_marketplaces())
    db_session.commit()
    assert marketplace_api_key(realshop) == SECRET


UNNAMED = "ONECART_MARKETPLACE_KEY_ADDED_IN_ADMIN"
UNNAMED_SECRET = "added-shop-key-0123456789"
ADDED_HOST = "https://added.example.org/api"


def test_a_variable_no_entry_names_binds_to_no_host(
    monkeypatch: pytest.MonkeyPatch, db_session: Session, realshop: Marketplace
) -> None:
    """Security review, fifth pass: a key variable that no entry of marketplaces.toml names
    followed whatever base URL its row had. An admin (or a stolen admin session) could name the
    operator's variable on a marketplace of its own, or move the row that used it (the move
    dropped only a stored key), and collect the key with the next order or tracking poll; a
    move-then-rename got round any binding kept on the row. Now only marketplaces.toml gives a
    variable a host: the form refuses one it does not name (an admin-added marketplace keeps
    its key in the encrypted key field, which a move drops), and a row saved before this names
    one in vain: no key is sent."""
    monkeypatch.setenv(UNNAMED, UNNAMED_SECRET)
    edit = _edit(realshop, name="Added", api_base_url=ADDED_HOST, api_key_env=UNNAMED)
    with pytest.raises(MarketplaceEditError) as refused:
        create_marketplace(db_session, "added", edit, allow_private_hosts=True)
    assert "marketplaces.toml" in refused.value.errors["api_key_env"][0]
    db_session.rollback()
    with pytest.raises(MarketplaceEditError) as refused:
        update_marketplace(
            db_session,
            realshop,
            _edit(realshop, api_key_env=UNNAMED),
            allow_private_hosts=True,
        )
    assert "api_key_env" in refused.value.errors
    db_session.rollback()

    # A row an earlier version let name it sends nothing, wherever it points.
    legacy = Marketplace(
        slug="legacy",
        name="Legacy",
        kind="shopify",
        api_base_url=ADDED_HOST,
        currency="USD",
        country="US",
        relation_identifier="gtin",
        api_key_env=UNNAMED,
    )
    db_session.add(legacy)
    db_session.commit()
    assert marketplace_api_key(legacy) is None

    # The admin's way: the key typed into the form, stored encrypted, dropped by a move.
    added = create_marketplace(
        db_session,
        "added",
        _edit(realshop, name="Added", api_base_url=ADDED_HOST, api_key_env=None, api_key="typed"),
        allow_private_hosts=True,
    )
    db_session.commit()
    assert marketplace_api_key(added) == "typed"
    update_marketplace(
        db_session, added, _edit(added, api_base_url=ELSEWHERE), allow_private_hosts=True
    )
    db_session.commit()
    assert marketplace_api_key(added) is None
