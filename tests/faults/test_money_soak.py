"""The money soak (bench/money_soak.py) on a small deterministic run, so that a regression on the
money path under faults fails CI: three orders through the real site, workers and cron, one of
each kind of fault (a marketplace reply lost after it created the order, a Stripe capture whose
answer is lost after localstripe did it, a worker SIGKILLed mid-placement), then every invariant
over every order against the marketplaces', Stripe's and the wallet's own records."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from bench.money_soak import parse_args, soak
from commerce.db import dispose_engines, normalize_database_url

pytestmark = pytest.mark.slow


@pytest.fixture
def soak_database_url() -> Iterator[str | None]:
    """On the PostgreSQL pass, a schema of the soak's own there (dropped afterwards); on the
    SQLite pass None: the soak migrates an SQLite file of its own."""
    base = os.environ.get("DATABASE_URL", "")
    if not base.startswith("postgres"):
        yield None
        return
    schema = f"soak_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(normalize_database_url(base))
    with admin.begin() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{normalize_database_url(base)}?options=-csearch_path%3D{schema}"
    finally:
        dispose_engines()
        with admin.begin() as connection:
            connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def test_a_small_soak_keeps_every_invariant(soak_database_url: str | None) -> None:
    argv = [
        "--orders", "3", "--seed", "11", "--no-append",
        "--faults", "fail_after_order,stripe_capture_unknown,kill_worker",
    ]  # fmt: skip
    if soak_database_url:
        argv += ["--database-url", soak_database_url]

    outcome = soak(parse_args(argv))

    assert outcome.report.violations == []
    assert outcome.log.faults == {
        "fail_after_order": 1,
        "stripe_capture_unknown": 1,
        "kill_worker": 1,
    }
    # Every fault happened: the capture's answer was lost, a worker died mid-placement.
    assert outcome.stripe_faults_fired == ["stripe_capture_unknown"]
    assert outcome.log.killed_workers == 1
    assert outcome.log.checkouts == 3 and outcome.report.orders == 3
    # Settled by the sweeper and tracker: nothing left for an operator in this run.
    assert outcome.report.settled == 3
    assert outcome.result.startswith("RESULT bench=money_soak orders=3 faults=3 ")
