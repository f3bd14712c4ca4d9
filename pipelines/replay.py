"""`onecart ingest --history DAYS`: price history for a fresh demo, from the sandbox's past.

Real marketplaces only ever show today's prices, so a real deployment's price history starts with
its first refresh. The sandbox's prices are a pure function of its price epoch, which its clock
advances (sandbox.service.DEFAULT_PRICE_EPOCH_SECONDS: three epochs, ~3% of offers, a day), so
its catalog "as it was" on any past day can be served again. This module runs the real pipeline
(every partition, then price_history and product_groups) over the sandbox's catalog of each of
the last DAYS days, oldest first, recording each run at that day's date; the last run then
refreshes everything downstream at today's prices. Afterwards the sandbox serves the epoch of
today, so later refreshes carry on from there.

No run here embeds the offers for the assistant: the past days' runs only make history, and the
caller starts the embeddings once, after today's run, in the background as `onecart ingest`
does (embedding a fresh demo catalog in the foreground took minutes before the first past day
was even done).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import httpx

import warehouse
from onecart.settings import MAX_HISTORY_DAYS, Settings, get_settings
from pipelines.resources import MarketplacesResource
from pipelines.run import IngestReport, materialize_all

EPOCHS_PER_DAY = 3
REPLAY_DOWNSTREAM_ASSETS = ("fx_rates", "product_groups", "price_history")


# Written when a replay starts and removed when its last run returns: while it is there, a
# replay was interrupted (Ctrl-C, a crash) and the next `up --ingest` finishes it.
REPLAY_MARKER = "history-replay.json"


def _replay_marker(settings: Settings) -> Path:
    return settings.home_dir / "run" / REPLAY_MARKER


def interrupted_replay(settings: Settings) -> tuple[datetime, int] | None:
    """The day an unfinished replay counted back from and its number of days, or None."""
    marker = _replay_marker(settings)
    try:
        started = json.loads(marker.read_text())
        return datetime.fromisoformat(started["today"]), int(started["days"])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        return None  # unreadable: treated as no replay; `onecart ingest --history` says more


class HistoryReplayError(ValueError):
    """A replay that cannot run: not the sandbox, bad DAYS, or history already newer."""


def _outside_the_sandbox(settings: Settings) -> list[str]:
    """The configured marketplaces the sandbox does not serve (their past cannot be replayed)."""
    sandbox_url = settings.sandbox_url.rstrip("/")
    resource = MarketplacesResource(
        marketplaces_file=str(settings.marketplaces_file), sandbox_url=sandbox_url
    )
    return [c.slug for c in resource.configs() if not c.base_url.startswith(sandbox_url)]


def demo_history_wanted(settings: Settings) -> bool:
    """Whether `onecart up --ingest` replays the demo's past days first: history is wanted
    (ONECART_DEMO_HISTORY_DAYS), the pipeline has never run in this home (a replay can only come
    before the warehouse's own history) or a replay was interrupted there, sandbox mode is on
    (the sandbox is not started otherwise), and every marketplace is the sandbox's."""
    return (
        settings.sandbox_enabled
        and settings.demo_history_days > 0
        and settings.profile == "local"
        and (not settings.pipeline_db_path.exists() or interrupted_replay(settings) is not None)
        and not _outside_the_sandbox(settings)
    )


def _sandbox_only(settings: Settings) -> None:
    outside = _outside_the_sandbox(settings)
    if outside:
        raise HistoryReplayError(
            "only the sandbox can replay past catalogs (real marketplaces show today's prices "
            f"only); not sandbox marketplaces: {', '.join(outside)}"
        )


def replay_sandbox_history(
    days: int,
    *,
    instance: dg.DagsterInstance | None = None,
    progress: Callable[[str], None] = print,
    now: datetime | None = None,
) -> list[IngestReport]:
    """Ingest the sandbox's catalog as it was on each of the last `days` days, then today.

    An interrupted replay (its marker under run/) is resumed instead, over its own days: the
    day whose run did not finish is run again (the same day's catalog, so nothing is recorded
    twice) and the days before it are not."""
    if not 1 <= days <= MAX_HISTORY_DAYS:
        raise HistoryReplayError(f"--history takes 1 to {MAX_HISTORY_DAYS} days, not {days}")
    settings = get_settings()
    sandbox_url = settings.sandbox_url.rstrip("/")
    _sandbox_only(settings)
    resumed = interrupted_replay(settings)
    if resumed is not None:
        today, days = resumed
    else:
        today = (now or datetime.now(UTC)).replace(microsecond=0)
    first_day = today - timedelta(days=days)
    newest = None
    if settings.pipeline_db_path.exists():
        with warehouse.connect(settings.pipeline_db_path) as conn:
            (newest,) = conn.execute("SELECT max(observed_at) FROM price_history").fetchall()[0]
        if newest is not None and newest.tzinfo is None:
            newest = newest.replace(tzinfo=UTC)
        if resumed is None and newest is not None and newest >= first_day:
            raise HistoryReplayError(
                f"price history already reaches {newest:%Y-%m-%d}: a replay can only come before "
                "a warehouse's own history. On a fresh install run `onecart up` and then "
                "`onecart ingest --history DAYS` instead of a plain ingest; to start a demo over, "
                f"`onecart down` and remove {settings.home_dir} first"
            )
    marker = _replay_marker(settings)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps({"today": today.isoformat(), "days": days}))
    reports = []
    with httpx.Client(base_url=sandbox_url, timeout=30) as control:
        for day in range(days, -1, -1):
            moment = today - timedelta(days=day)
            if resumed is not None and day and newest is not None and moment < newest:
                continue  # recorded before the interruption
            epoch = (days - day) * EPOCHS_PER_DAY
            control.post("/_sandbox/knobs/all", json={"price_epoch": epoch}).raise_for_status()
            if resumed is not None:
                progress(
                    f"history: resuming the replay interrupted before it finished, from "
                    f"{moment:%Y-%m-%d}"
                )
                resumed = None
            progress(
                f"history: day {days - day + 1} of {days + 1}, the sandbox's catalog of "
                f"{moment:%Y-%m-%d} (price epoch {epoch})"
            )
            reports.append(
                materialize_all(
                    instance=instance,
                    progress=progress,
                    as_of=moment if day else None,
                    downstream_assets=REPLAY_DOWNSTREAM_ASSETS if day else None,
                    embeddings=False,
                )
            )
    marker.unlink(missing_ok=True)
    return reports
