"""What each site worker does around its app (onecart/site_wsgi.py builds it; uWSGI runs it,
onecart/site_server.py).

`ONECART_SITE_CONFIG` (a JSON object, optional) overrides Flask config keys, as create_app's
`config` does; the search benchmark turns the result cache off with it
(`{"SEARCH_CACHE_SECONDS": 0}`).

Once the app is built, the objects the worker holds from then on (modules, the app, its
extensions: some 150,000 tracked by the garbage collector) are moved out of the collector's
reach with `gc.freeze()`. They live as long as the worker anyway, and without this every full
collection walks them all: measured in process on the listing page, about 0.5 ms of CPU per
request on average (one full collection of ~50 ms every hundred requests; bench/RESULTS.md,
issue 9, branch i9lean). The collector still frees everything a request leaves behind.

The worker then loads the assistant's embedding model in a background thread, so it serves
pages at once and the first assistant request does not wait for the model; what the model adds
is frozen the same way once it is loaded. `ONECART_ASSISTANT_WARM_UP=0` skips that load (the
search bench runs the site this way but has no use for the model).
"""

from __future__ import annotations

import gc
import json
import logging
import os
import threading
from collections.abc import Mapping
from typing import Any

logger = logging.getLogger("onecart.site")


def freeze_long_lived_objects() -> None:
    """Collect what is garbage now, then exempt every surviving object from later collections."""
    gc.collect()
    gc.freeze()


def config_from_environment(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Flask config overrides from ONECART_SITE_CONFIG (a JSON object), else none."""
    raw = (os.environ if environ is None else environ).get("ONECART_SITE_CONFIG", "").strip()
    if not raw:
        return {}
    config = json.loads(raw)
    if not isinstance(config, dict):
        raise ValueError("ONECART_SITE_CONFIG must be a JSON object")
    return config


def start_model_preload() -> threading.Thread | None:
    """Load the assistant's model in the background (unless ONECART_ASSISTANT_WARM_UP=0)."""
    if os.environ.get("ONECART_ASSISTANT_WARM_UP", "1") == "0":
        return None

    def load() -> None:
        try:
            from assistant.service import warm_up

            logger.info(warm_up())
        except Exception as exc:  # the assistant then loads it on first use and says why
            logger.warning(f"assistant model not preloaded: {exc.__class__.__name__}: {exc}")
        freeze_long_lived_objects()

    thread = threading.Thread(target=load, name="assistant-warm-up", daemon=True)
    thread.start()
    return thread


def worker_started() -> None:
    """What a worker does once its app is built: freeze, then preload the model."""
    freeze_long_lived_objects()
    start_model_preload()
