"""Structured request logs: one JSON line per request with method, path, status, duration and a
request id (taken from a well-formed X-Request-ID header or generated, and echoed back).

Only the path is logged, never the query string, headers, cookies or form fields, so passwords,
API keys and tokens cannot reach the logs through this channel. Paths that carry a credential
(the order-status page's token, a password-reset, sign-up or e-mail change token) are logged
with it replaced by `[redacted]`: any URL variable named in REDACTED_URL_VARIABLES is.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from functools import partial
from typing import Any

from flask import Flask, Response, g, request

from storefront.current import request_globals

logger = logging.getLogger("onecart.requests")

REQUEST_ID_HEADER = "X-Request-ID"
REQUEST_ID_ENVIRON_KEY = "HTTP_X_REQUEST_ID"  # the header as WSGI passes it
# URL variables that are credentials (<token> in /order-status/<token>, /password/reset/<token>,
# the sign-up and e-mail change links); every such route's prefix is in CREDENTIAL_PATH_PREFIXES.
REDACTED_URL_VARIABLES = frozenset({"token"})
REDACTED = "[redacted]"
CREDENTIAL_PATH_PREFIXES = (
    "/order-status/",
    "/password/reset/",
    "/signup/confirm/",
    "/profile/email/confirm/",
)
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


class JsonLogFormatter(logging.Formatter):
    """Formats a record as one JSON object: its `fields` extra plus level, logger and message."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        payload.update(getattr(record, "fields", {}))
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


def current_request_id() -> str:
    """The id of the request being served (for error pages and job metadata)."""
    return g.get("request_id", "")


def loggable_path() -> str:
    """The request path with every credential URL variable replaced by `[redacted]`."""
    path = request.path
    view_args = request.view_args or {}
    for name in REDACTED_URL_VARIABLES & view_args.keys():
        value = str(view_args[name])
        if value:
            path = path.replace(value, REDACTED)
    if request.url_rule is None:
        # An unmatched URL has no view args: keep whatever follows a credential prefix out too.
        for prefix in CREDENTIAL_PATH_PREFIXES:
            if path.startswith(prefix):
                return prefix + REDACTED
    return path


def _start_timer() -> None:
    # From the WSGI environ itself: request.headers.get answers a missing header (most
    # requests) from a KeyError it raises and catches.
    incoming = request.environ.get(REQUEST_ID_ENVIRON_KEY, "")
    g.request_id = incoming if _VALID_REQUEST_ID.match(incoming) else uuid.uuid4().hex
    g.request_started = time.perf_counter()


def _log_response(response: Response) -> Response:
    """Give the answer its request id, and write its log line once the answer is sent.

    The line's fields are read here, while the request is at hand; formatting and writing it
    (~0.1 ms) wait for the server to close the answer (WSGI's `close()`, after its last byte is
    written), so no shopper waits for the log. A server always closes what it sent; a test
    client's answer must be closed (or read in a `with` block) before its line is there.
    """
    started = request_globals().get("request_started")
    duration_ms = round((time.perf_counter() - started) * 1000, 2) if started else None
    request_id = current_request_id()
    response.headers[REQUEST_ID_HEADER] = request_id
    user_id = None
    user = g.get("_login_user")
    if user is not None and getattr(user, "is_authenticated", False):
        user_id = getattr(user, "id", None)
    fields = {
        "event": "request",
        "method": request.method,
        "path": loggable_path(),
        "status": response.status_code,
        "duration_ms": duration_ms,
        "request_id": request_id,
        "user_id": user_id,
        "remote_addr": request.remote_addr,
    }
    response.call_on_close(partial(logger.info, "request", extra={"fields": fields}))
    return response


def init_request_logging(app: Flask) -> None:
    """Log every request on the `onecart.requests` logger, written as JSON with the site's other
    lines (storefront.site_logging)."""
    # First of all before-request hooks: one that refuses the request (the CSRF check) stops the
    # rest, and its error page, header and log line still need this request's id.
    app.before_request_funcs.setdefault(None, []).insert(0, _start_timer)
    app.after_request(_log_response)
