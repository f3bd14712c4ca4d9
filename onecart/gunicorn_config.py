"""gunicorn settings of the site (`gunicorn -c python:onecart.gunicorn_config`).

Each worker loads the assistant's embedding model as soon as it starts, in a background thread,
so it serves pages at once and the first assistant request does not wait for the model.
"""

from __future__ import annotations

import threading
from typing import Any


def post_worker_init(worker: Any) -> None:
    def load() -> None:
        try:
            from assistant.service import warm_up

            worker.log.info(warm_up())
        except Exception as exc:  # the assistant then loads it on first use and says why
            worker.log.warning(f"assistant model not preloaded: {exc.__class__.__name__}: {exc}")

    threading.Thread(target=load, name="assistant-warm-up", daemon=True).start()
