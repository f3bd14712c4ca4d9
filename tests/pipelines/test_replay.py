"""`onecart ingest --history DAYS`: the sandbox's past days become price history, and what only
the sandbox could make true is refused elsewhere."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import meilisearch
import pytest

import warehouse
from onecart.settings import REPO_ROOT, Settings, get_settings
from pipelines.replay import EPOCHS_PER_DAY, HistoryReplayError, replay_sandbox_history
from tests.pipelines.conftest import clear_settings_caches, sandbox_credential_environment

# Two of the sandbox's marketplaces (a paged Shopify API and a paged WooCommerce one) keep the
# three pipeline runs of a two-day replay short.
HISTORY_MARKETPLACES = ("shopwave", "kiondo")
HISTORY_DAYS = 2

REAL_MARKETPLACE = """
[[marketplace]]
slug = "realshop"
name = "Real Shop"
kind = "dummyjson"
base_url = "https://shop.example.com"
currency = "USD"
country = "US"
"""


@pytest.fixture
def real_marketplaces(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    toml = tmp_path / "marketplaces.toml"
    toml.write_text(REAL_MARKETPLACE)
    monkeypatch.setenv("ONECART_MARKETPLACES", str(toml))
    monkeypatch.setenv("ONECART_HOME", str(tmp_path / "home"))
    clear_settings_caches()
    yield
    clear_settings_caches()


def test_history_is_refused_for_marketplaces_outside_the_sandbox(real_marketplaces: None) -> None:
    with pytest.raises(HistoryReplayError, match="only the sandbox"):
        replay_sandbox_history(3, progress=lambda line: None)
    assert not get_settings().pipeline_db_path.exists()


@pytest.mark.parametrize("days", [0, -1, 91])
def test_history_days_are_bounded(days: int) -> None:
    with pytest.raises(HistoryReplayError, match="1 to 90"):
        replay_sandbox_history(days, progress=lambda line: None)


def _sandbox_marketplaces_toml(slugs: tuple[str, ...]) -> str:
    """The entries of the repository's marketplaces.toml for `slugs`, verbatim."""
    text = (REPO_ROOT / "marketplaces.toml").read_text()
    entries = ["[[marketplace]]" + entry for entry in text.split("[[marketplace]]")[1:]]
    chosen = [e for e in entries if tomllib.loads(e)["marketplace"][0]["slug"] in slugs]
    assert len(chosen) == len(slugs)
    return "\n".join(chosen)


def test_ingest_history_records_a_price_history_row_set_for_every_day(
    settings: Settings, sandbox_server: str, meili_server: str, sandbox_control: httpx.Client
) -> None:
    """`onecart ingest --history 2`, run for real against the sandbox: every offer's first price
    is recorded two days ago, the offers the sandbox re-priced since show up on each later day
    with their new price, and the warehouse ends at today's catalog."""
    run = uuid.uuid4().hex[:8]
    home = settings.home_dir / f"history-{run}"
    home.mkdir(parents=True)
    toml = home / "marketplaces.toml"
    toml.write_text(_sandbox_marketplaces_toml(HISTORY_MARKETPLACES))
    index = f"history_{run}"
    env = {
        **os.environ,
        **sandbox_credential_environment(),
        "ONECART_HOME": str(home),
        "ONECART_MARKETPLACES": str(toml),
        "ONECART_SANDBOX_URL": sandbox_server,
        "MEILI_URL": meili_server,
        "MEILI_INDEX": index,
        "ONECART_ASSISTANT_EMBEDDINGS": "off",
        "ONECART_PIPELINE_WORKERS": "1",
    }
    env.pop("DAGSTER_HOME", None)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "onecart.cli", "ingest", "--history", str(HISTORY_DAYS)],
            env=env,
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
    finally:
        client = meilisearch.Client(meili_server, settings.meili_master_key)
        for uid in (index, f"{index}_next", f"{index}_groups", f"{index}_groups_next"):
            client.delete_index(uid)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    epochs = [day * EPOCHS_PER_DAY for day in range(HISTORY_DAYS + 1)]
    assert [line for line in done.stdout.splitlines() if "price epoch" in line] == [
        line for line in done.stdout.splitlines() if line.startswith("history: ")
    ]
    assert [f"(price epoch {epoch})" for epoch in epochs] == [
        line[line.index("(") :] for line in done.stdout.splitlines() if line.startswith("history: ")
    ]
    # The sandbox serves today's epoch afterwards.
    knobs = sandbox_control.get("/_sandbox/knobs").json()
    assert {knobs[slug]["price_epoch"] for slug in HISTORY_MARKETPLACES} == {epochs[-1]}

    with warehouse.connect(home / "pipeline.duckdb", read_only=True) as conn:
        days = conn.execute(
            "SELECT CAST(observed_at AS DATE) AS day, count(*), "
            "count(DISTINCT marketplace || '/' || external_id) "
            "FROM price_history GROUP BY day ORDER BY day"
        ).fetchall()
        (offers,) = conn.execute("SELECT count(*) FROM products").fetchone() or (0,)
        first_sightings = conn.execute(
            "SELECT CAST(min(observed_at) AS DATE), count(*) FROM ("
            "SELECT marketplace, external_id, min(observed_at) AS observed_at "
            "FROM price_history GROUP BY ALL)"
        ).fetchone()
        repeated_prices = conn.execute(
            "SELECT count(*) FROM (SELECT price_minor, currency, available, lag(price_minor) OVER w "
            "AS before_price, lag(currency) OVER w AS before_currency, lag(available) OVER w "
            "AS before_available FROM price_history WINDOW w AS (PARTITION BY marketplace, "
            "external_id ORDER BY observed_at)) WHERE before_price = price_minor "
            "AND before_currency = currency AND before_available = available"
        ).fetchone()
        stale = conn.execute(
            "SELECT count(*) FROM products AS p JOIN (SELECT * FROM price_history QUALIFY "
            "row_number() OVER (PARTITION BY marketplace, external_id ORDER BY observed_at DESC) "
            "= 1) AS h USING (marketplace, external_id) WHERE h.price_minor <> p.price_minor"
        ).fetchone()
        marketplaces = {
            m for (m,) in conn.execute("SELECT DISTINCT marketplace FROM products").fetchall()
        }
    assert marketplaces == set(HISTORY_MARKETPLACES)
    # One set of rows per day, on consecutive days: everything on the first, the sandbox's
    # re-pricings (~3% of offers a day) on the later ones.
    assert len(days) == HISTORY_DAYS + 1, days
    assert [day for day, _, _ in days] == [
        days[0][0] + timedelta(days=n) for n in range(HISTORY_DAYS + 1)
    ]
    assert days[0][1] == days[0][2] == offers > 100
    for _, rows, distinct in days[1:]:
        assert 0 < rows == distinct < offers * 0.2, days
    assert first_sightings == (days[0][0], offers)
    # A row is appended only when something changed, and the latest row is today's price.
    assert repeated_prices == (0,)
    assert stale == (0,)


def test_history_days_never_embed_in_the_foreground_and_today_embeds_in_the_background(
    settings: Settings,
    sandbox_server: str,
    sandbox_control: httpx.Client,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every replayed day runs without the offer embeddings (minutes of model work for a fresh
    demo catalog, before the first past day was done); the CLI starts them once, after today's
    run, as `onecart ingest` does."""
    from types import SimpleNamespace

    import onecart.ingest_command
    import pipelines.replay

    toml = tmp_path / "marketplaces.toml"
    toml.write_text(_sandbox_marketplaces_toml(HISTORY_MARKETPLACES))
    monkeypatch.setenv("ONECART_MARKETPLACES", str(toml))
    monkeypatch.setenv("ONECART_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ONECART_SANDBOX_URL", sandbox_server)
    clear_settings_caches()
    runs: list[dict[str, object]] = []
    events: list[str] = []

    def materialize_all(**options: object) -> SimpleNamespace:
        runs.append(options)
        events.append("run")
        return SimpleNamespace(success=True)

    def start_offer_embeddings(settings: Settings) -> int:
        events.append("embeddings")
        return 0

    monkeypatch.setattr(pipelines.replay, "materialize_all", materialize_all)
    monkeypatch.setattr(onecart.ingest_command, "start_offer_embeddings", start_offer_embeddings)
    try:
        assert onecart.ingest_command.run_history_replay(get_settings(), HISTORY_DAYS) == 0
    finally:
        clear_settings_caches()
    assert [run["embeddings"] for run in runs] == [False] * (HISTORY_DAYS + 1)
    assert events == ["run"] * (HISTORY_DAYS + 1) + ["embeddings"]
    knobs = sandbox_control.get("/_sandbox/knobs").json()
    assert {knobs[slug]["price_epoch"] for slug in HISTORY_MARKETPLACES} == {
        HISTORY_DAYS * EPOCHS_PER_DAY
    }


def test_a_replay_over_existing_history_is_refused_saying_how_to_start_a_demo_with_history(
    sandbox_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After `make run`'s plain ingest the warehouse's history has begun: the refusal names the
    commands that give a demo its past instead of only saying "a fresh install"."""
    toml = tmp_path / "marketplaces.toml"
    toml.write_text(_sandbox_marketplaces_toml(HISTORY_MARKETPLACES))
    home = tmp_path / "home"
    monkeypatch.setenv("ONECART_MARKETPLACES", str(toml))
    monkeypatch.setenv("ONECART_HOME", str(home))
    monkeypatch.setenv("ONECART_SANDBOX_URL", sandbox_server)
    clear_settings_caches()
    try:
        with warehouse.connect(get_settings().pipeline_db_path) as conn:
            conn.execute(
                "INSERT INTO price_history (marketplace, external_id, price_minor, currency, "
                "available, observed_at) VALUES ('shopwave', '1', 100, 'USD', true, now())"
            )
        with pytest.raises(HistoryReplayError) as refused:
            replay_sandbox_history(HISTORY_DAYS, progress=lambda line: None)
    finally:
        clear_settings_caches()
    message = str(refused.value)
    assert "already reaches" in message
    assert "`onecart up`" in message and "`onecart ingest --history DAYS`" in message
    assert "`onecart down`" in message and str(home) in message


def test_the_demo_replays_history_only_on_a_fresh_home_of_sandbox_marketplaces(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`onecart up --ingest` replays the past days only where a replay can run: history wanted,
    the pipeline never run in this home, every marketplace the sandbox's, the local profile."""
    from pipelines.replay import demo_history_wanted

    sandbox = tmp_path / "sandbox.toml"
    sandbox.write_text(_sandbox_marketplaces_toml(HISTORY_MARKETPLACES))
    mixed = tmp_path / "mixed.toml"
    mixed.write_text(sandbox.read_text() + REAL_MARKETPLACE)
    monkeypatch.setenv("ONECART_HOME", str(tmp_path / "home"))

    def wanted(**environment: str) -> bool:
        for name, value in {"ONECART_MARKETPLACES": str(sandbox), **environment}.items():
            monkeypatch.setenv(name, value)
        clear_settings_caches()
        try:
            return demo_history_wanted(get_settings())
        finally:
            for name in environment:
                monkeypatch.delenv(name)
            clear_settings_caches()

    assert wanted()
    assert not wanted(ONECART_DEMO_HISTORY_DAYS="0")
    assert not wanted(ONECART_MARKETPLACES=str(mixed))
    assert not wanted(ONECART_PROFILE="cluster")
    monkeypatch.setenv("ONECART_MARKETPLACES", str(sandbox))
    clear_settings_caches()
    get_settings().pipeline_db_path.parent.mkdir(parents=True)
    get_settings().pipeline_db_path.touch()
    assert not wanted()


def test_an_interrupted_demo_replay_is_resumed_by_the_next_up_without_a_wipe(
    sandbox_server: str,
    sandbox_control: httpx.Client,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Ctrl-C during `make run`'s replay leaves a warehouse (so the home is no longer fresh) and
    the sandbox at a past day's prices. The next `make run` finishes the replay where it stopped,
    on the same days, instead of a plain ingest of those past prices with days missing."""
    from types import SimpleNamespace

    import pipelines.replay
    from pipelines.replay import demo_history_wanted

    toml = tmp_path / "marketplaces.toml"
    toml.write_text(_sandbox_marketplaces_toml(HISTORY_MARKETPLACES))
    monkeypatch.setenv("ONECART_MARKETPLACES", str(toml))
    monkeypatch.setenv("ONECART_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ONECART_SANDBOX_URL", sandbox_server)
    clear_settings_caches()
    runs: list[object] = []
    interrupt_at = {"run": 2}

    def materialize_all(**options: object) -> SimpleNamespace:
        # What a run leaves behind that the replay reads: the day's price history rows.
        runs.append(options["as_of"])
        with warehouse.connect(get_settings().pipeline_db_path) as conn:
            conn.execute(
                "INSERT INTO price_history (marketplace, external_id, price_minor, currency, "
                "available, observed_at) VALUES ('shopwave', ?, 100, 'USD', true, "
                "coalesce(?, now()))",
                [str(len(runs)), options["as_of"]],
            )
        if len(runs) == interrupt_at["run"]:
            raise KeyboardInterrupt  # Ctrl-C inside the second day's run
        return SimpleNamespace(success=True)

    monkeypatch.setattr(pipelines.replay, "materialize_all", materialize_all)
    try:
        with pytest.raises(KeyboardInterrupt):
            replay_sandbox_history(HISTORY_DAYS, progress=lambda line: None)
        first_days = list(runs)
        assert demo_history_wanted(get_settings())  # the next `up --ingest` resumes it
        interrupt_at["run"] = 0
        lines: list[str] = []
        replay_sandbox_history(HISTORY_DAYS, progress=lines.append)
        assert not demo_history_wanted(get_settings())
    finally:
        clear_settings_caches()
    # The interrupted day again (its run did not finish), not the day before it, then today.
    assert HISTORY_DAYS == 2 and first_days[0] is not None
    assert runs[2:] == [first_days[1], None]
    assert any("resuming" in line for line in lines)
    knobs = sandbox_control.get("/_sandbox/knobs").json()
    assert {knobs[slug]["price_epoch"] for slug in HISTORY_MARKETPLACES} == {
        HISTORY_DAYS * EPOCHS_PER_DAY
    }
