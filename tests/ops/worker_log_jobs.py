"""Jobs for tests/ops/test_order_worker_logging.py, run by a real rq worker: each writes the
lines a placement would, under the loggers of the modules that write them."""

from __future__ import annotations

import logging


def log_as_a_placement_would(marker: str) -> None:
    """An INFO line of commerce and of adapters, and one of httpx (which must stay unwritten:
    its INFO lines carry request URLs, query strings included)."""
    logging.getLogger("commerce.placement").info("sub-order placed %s", marker)
    logging.getLogger("adapters.http_adapter").info("adapter line %s", marker)
    logging.getLogger("httpx").info("HTTP Request: GET https://example.com/?key=%s", marker)
