"""Progress of long steps: lines with count, total, rate and time left, and a small status file
(ONECART_HOME/run/loading.json) through which the site and `onecart status` say what is loading
("loading catalogs: 3 of 6 marketplaces", "embedding offers: 4,096 of 11,808, 90/s, 1 min left").
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from onecart.settings import Settings

STATUS_FILE: Final = "loading.json"
# A status whose writer stopped updating it this long ago is stale (a killed ingest).
STALE_AFTER_SECONDS: Final = 600


@dataclass
class Stopwatch:
    started: float = field(default_factory=time.monotonic)

    def elapsed(self) -> float:
        return time.monotonic() - self.started


def format_duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def counted_noun(count: int, noun: str) -> str:
    """`1 day`, `3 days`, `12,000 offers`: every count the commands print agrees with its noun
    (the nouns they count all take an `s`)."""
    return f"{count:,} {noun}" if count == 1 else f"{count:,} {noun}s"


def progress_line(what: str, done: int, total: int, unit: str, elapsed: float) -> str:
    """`what: done of total unit, rate/s, about T left` (rate and time left once measurable)."""
    line = f"{what}: {done:,} of {total:,} {unit}"
    if done > 0 and elapsed > 0:
        rate = done / elapsed
        if rate < 1:
            line += f", {rate * 60:.1f}/min"
        else:
            line += f", {rate:.1f}/s" if rate < 10 else f", {rate:.0f}/s"
        if done < total:
            line += f", about {format_duration((total - done) / rate)} left"
    return line


def _status_path(settings: Settings) -> Path:
    return settings.home_dir / "run" / STATUS_FILE


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Every rewrite is read-modify-write: catalog runs of several marketplaces (each its own
    process), an ingest and the embeddings write the one file, and without the lock one would
    drop a line another just wrote."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with (path.with_suffix(".lock")).open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _replace(path: Path, statuses: dict[str, dict]) -> None:
    # Atomically: the site reads the file on every request. Per thread too: an ingest's
    # partitions and its progress lines may write from threads of one process.
    temporary = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
    temporary.write_text(json.dumps(statuses))
    os.replace(temporary, path)


def write_status(settings: Settings, step: str, done: int, total: int, line: str) -> None:
    """Record what is loading right now."""
    path = _status_path(settings)
    with _locked(path):
        statuses = _read_all(path)
        statuses[step] = {
            "done": done,
            "total": total,
            "line": line,
            "pid": os.getpid(),
            "updated": time.time(),
        }
        _replace(path, statuses)


def clear_status(settings: Settings, step: str) -> None:
    path = _status_path(settings)
    if not path.exists():
        return
    with _locked(path):
        statuses = _read_all(path)
        if statuses.pop(step, None) is None:
            return
        _replace(path, statuses)


def _read_all(path: Path) -> dict[str, dict]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _live(entry: dict) -> bool:
    try:
        os.kill(int(entry.get("pid", 0)), 0)
    except (ProcessLookupError, ValueError):
        return False
    except PermissionError:
        pass
    return time.time() - float(entry.get("updated", 0)) < STALE_AFTER_SECONDS


def loading_steps(settings: Settings) -> dict[str, dict]:
    """The steps still loading (their writer alive and recent), by name."""
    return {
        step: entry for step, entry in _read_all(_status_path(settings)).items() if _live(entry)
    }


def describe_loading(settings: Settings) -> str | None:
    """One line per step still loading, or None when nothing is."""
    lines = [str(entry.get("line")) for entry in loading_steps(settings).values()]
    # One a line: a refresh loads several marketplaces at once, each with its own run.
    return "\n".join(lines) if lines else None


def catalog_loading_message(settings: Settings) -> str | None:
    """For the site while the index does not exist yet: "loading catalogs: 3 of 6 marketplaces"."""
    entry = loading_steps(settings).get("catalogs")
    if entry is None:
        return None
    return f"loading catalogs: {entry['done']} of {entry['total']} marketplaces"
