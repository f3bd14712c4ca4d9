"""gunicorn settings of the site (`gunicorn -c python:onecart.gunicorn_config`).

When a worker has loaded the app, the objects it holds from then on (modules, the app, its
extensions: some 150,000 tracked by the garbage collector) are moved out of the collector's
reach with `gc.freeze()`. They live as long as the worker anyway, and without this every full
collection walks them all: measured in process on the listing page, about 0.5 ms of CPU per
request on average (one full collection of ~50 ms every hundred requests; bench/RESULTS.md,
issue 9, branch i9lean). The collector still frees everything a request leaves behind.

Each worker then loads the assistant's embedding model in a background thread, so it serves
pages at once and the first assistant request does not wait for the model; what the model adds
is frozen the same way once it is loaded. `ONECART_ASSISTANT_WARM_UP=0` skips that load (the
search bench runs the site with this configuration but has no use for the model).
"""

from __future__ import annotations

import gc
import os
import threading
from typing import Any


def freeze_long_lived_objects() -> None:
    """Collect what is garbage now, then exempt every surviving object from later collections."""
    gc.collect()
    gc.freeze()


def post_worker_init(worker: Any) -> None:
    freeze_long_lived_objects()
    if os.environ.get("ONECART_ASSISTANT_WARM_UP", "1") == "0":
        return

    def load() -> None:
        try:
            from assistant.service import warm_up

            worker.log.info(warm_up())
        except Exception as exc:  # the assistant then loads it on first use and says why
            worker.log.warning(f"assistant model not preloaded: {exc.__class__.__name__}: {exc}")
        freeze_long_lived_objects()

    threading.Thread(target=load, name="assistant-warm-up", daemon=True).start()
