"""The site's Python logging: every OneCart logger's INFO lines and worse, as one JSON line each
on stderr (storefront.request_log.JsonLogFormatter), configured once by the application factory.

uWSGI (onecart/site_server.py) configures no Python logging, and Python's last-resort handler
writes warnings and worse only: without this, the INFO lines of the site's modules (the Stripe
webhook's outcomes, checkout's dispatches, refunds, the request log, `onecart.operator`) were
dropped in production.

One handler is put on the top logger of each of OneCart's packages, never on the root logger:
- third-party loggers keep Python's defaults (warnings and worse). httpx writes every request's
  URL at INFO, query string included, and a marketplace's `api_key_param` travels there; the
  stripe library's INFO lines name its requests;
- a server or harness that configures the root logger (pytest's capture, `logging.basicConfig`)
  still receives every record by propagation, and no line is written twice by us: a logger
  below these (`onecart.requests`, `storefront.webhooks.routes`) has no handler of its own;
- a package logger an operator has already given a handler (a `dictConfig` of their own) is
  left as it is.
Building the app again (the tests build hundreds) adds nothing: the handler is made once.
"""

from __future__ import annotations

import logging
from functools import cache

from storefront.request_log import JsonLogFormatter

# The packages whose modules run in the site's processes and log under their own names.
SITE_LOGGERS = ("onecart", "storefront", "commerce", "adapters", "search_index", "assistant")


@cache
def site_log_handler() -> logging.Handler:
    """The site's one JSON handler (stderr: uWSGI writes its workers' stderr to the site's log)."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonLogFormatter())
    return handler


def configure_site_logging() -> None:
    """Give each of SITE_LOGGERS the JSON handler (unless it has a handler already) and the INFO
    level (unless it has a level already)."""
    handler = site_log_handler()
    for name in SITE_LOGGERS:
        target = logging.getLogger(name)
        if not target.handlers:
            target.addHandler(handler)
        if target.level == logging.NOTSET:
            target.setLevel(logging.INFO)
