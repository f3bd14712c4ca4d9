"""One marketplace whose adapter cannot be built must not stop the order workers.

An admin added a "declarative" marketplace through /admin/marketplaces (the form has no field for
the options that format needs): every worker of the pool then died at start in
preload_order_code ("options.list_path: is required"), supervisord gave up on the pool, and no
order of any marketplace was placed. On the test database."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from sqlalchemy.orm import Session, sessionmaker

from commerce.models import Marketplace
from storefront import jobs


def test_a_marketplace_whose_adapter_cannot_be_built_does_not_stop_the_worker(
    make_marketplace: Callable[..., Marketplace],
    db_session: Session,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    make_marketplace(slug="qa-mart", kind="declarative", api_base_url="http://127.0.0.1:9/qa")
    good = make_marketplace(slug="good-mart", kind="dummyjson")
    built: list[str] = []
    real = jobs.adapter_for_marketplace

    def counting(marketplace: Marketplace) -> object:
        adapter = real(marketplace)
        built.append(marketplace.slug)
        return adapter

    bind = db_session.get_bind()
    monkeypatch.setattr(jobs, "get_session_factory", lambda: sessionmaker(bind=bind))
    monkeypatch.setattr(jobs, "adapter_for_marketplace", counting)

    with caplog.at_level(logging.WARNING, logger="storefront.jobs"):
        jobs.preload_order_code()

    assert good.slug in built  # the others are still preloaded
    assert "qa-mart" in caplog.text and "list_path" in caplog.text
