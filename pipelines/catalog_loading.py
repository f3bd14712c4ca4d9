"""What a running catalog run is loading, in the status file `onecart status` reads.

Written by the catalog assets themselves, so a run the schedule, a sensor or the Dagster UI
started says it as `onecart ingest`'s own runs do (before, only the ingest wrote the file, and a
scheduled refresh showed "started" and nothing of its progress). One line per marketplace,
named with its run so the operator can open its log; gone when the step ends, and ignored by
status once the run's process is gone (onecart/progress.py)."""

from __future__ import annotations

from onecart import progress as progress_status
from onecart.settings import get_settings


class CatalogLoading:
    """The status line of one marketplace's catalog run."""

    def __init__(self, slug: str, run_id: str) -> None:
        self._step = f"catalog:{slug}"
        self._run = run_id[:8]
        # Read when a step runs, never at import (the run's process has the home's environment).
        self._settings = get_settings()

    def say(self, line: str) -> None:
        """`line`, with the run it belongs to, as what this marketplace is loading now."""
        progress_status.write_status(self._settings, self._step, 0, 0, f"{line} (run {self._run})")

    def done(self) -> None:
        """Nothing loading for this marketplace any more (the step ended, however)."""
        progress_status.clear_status(self._settings, self._step)
