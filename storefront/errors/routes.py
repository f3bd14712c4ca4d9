"""One handler for every HTTP error: HTML or JSON by what the client accepts; a 500 rolls the
request's database session back first so a failed write cannot leak into the error page."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from flask import Blueprint, Response, current_app, g, jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from markupsafe import escape
from werkzeug.exceptions import HTTPException, InternalServerError, SecurityError

from storefront.request_log import current_request_id

bp = Blueprint("errors", __name__)
logger = logging.getLogger(__name__)

View = TypeVar("View", bound=Callable[..., object])
_JSON_ENDPOINT_FLAG = "answers_json"

# What each page says; anything else falls back to the status's standard phrase.
ERROR_MESSAGES = {
    400: ("Bad request", "We couldn't understand that request. Please go back and try again."),
    401: ("Please sign in", "You need to be signed in to do that."),
    403: ("Not allowed", "You don't have permission to open this page."),
    404: ("Page not found", "We couldn't find that page. It may have moved, or never existed."),
    405: ("Not allowed", "That page can't be used this way."),
    413: ("Too large", "That request was too large."),
    422: ("Not accepted", "That could not be done as asked. Please check it and try again."),
    429: ("Too many attempts", "Too many attempts in a short time. Please wait and try again."),
    500: ("Something went wrong", "An unexpected error happened on our side. Please try again."),
    502: ("Bad gateway", "A service OneCart relies on did not answer. Please try again."),
    503: ("Temporarily unavailable", "This part of OneCart is unavailable right now."),
}
TEMPLATES = {400, 403, 404, 429, 500, 503}


def json_endpoint(view: View) -> View:
    """Mark a view that scripts call (not a page): every answer of it, errors included (a CSRF
    refusal, a lapsed sign-in), is JSON in the shape of :func:`error_response`."""
    setattr(view, _JSON_ENDPOINT_FLAG, True)
    return view


def _is_json_endpoint() -> bool:
    view = current_app.view_functions.get(request.endpoint or "")
    return bool(getattr(view, _JSON_ENDPOINT_FLAG, False))


def wants_json() -> bool:
    """True for API requests: /api/ paths and views marked with :func:`json_endpoint`, requests
    a script sends (a JSON body, `X-Requested-With`; fetch() accepts `*/*`, so its Accept header
    says nothing), and clients that prefer JSON over HTML in their Accept header."""
    if request.path.startswith("/api/") or _is_json_endpoint():
        return True
    if request.is_json or request.headers.get("X-Requested-With"):
        return True
    accept = request.accept_mimetypes
    best = accept.best_match(["text/html", "application/json"])
    return best == "application/json" and accept[best] > accept["text/html"]


def error_response(
    status: int, description: str | None = None, headers: dict[str, str] | None = None
) -> Response:
    """The error page (or JSON body) for `status`; other blueprints may call it for their errors."""
    title, default_message = ERROR_MESSAGES.get(status, (f"Error {status}", ""))
    message = description or default_message
    if wants_json():
        response = jsonify(
            {
                "error": {"status": status, "title": title, "message": message},
                "request_id": current_request_id(),
            }
        )
    else:
        template = f"errors/{status}.html" if status in TEMPLATES else "errors/error.html"
        try:
            page = render_template(
                template,
                status=status,
                title=title,
                message=message,
                request_id=current_request_id(),
            )
        except Exception:  # the layout needs the DB (current user); a broken DB must still answer
            logger.exception("error page %s could not be rendered; sending plain HTML", status)
            page = (
                f"<!doctype html><title>{escape(title)}</title><h1>{escape(title)}</h1>"
                f"<p>{escape(message)}</p>"
            )
        response = Response(page)
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _rollback() -> None:
    session = g.get("db_session")
    if session is not None:
        session.rollback()


@bp.app_errorhandler(CSRFError)
def handle_csrf_error(error: CSRFError) -> Response:
    """A form without a valid CSRF token: 400, and the form must be reloaded."""
    return error_response(
        400, "This form has expired or was not sent by OneCart. Reload the page and try again."
    )


UNTRUSTED_HOST_MESSAGE = (
    "OneCart does not answer at this address. Please use the shop's own address."
)


@bp.app_errorhandler(SecurityError)
def handle_untrusted_host(error: SecurityError) -> Response:
    """A Host header outside TRUSTED_HOSTS (ONECART_TRUSTED_HOSTS): 400 with a page of its own,
    since the layout's links cannot be built without a host (nothing is built from the forged
    one); logged for the operator, who may have left a name out of the setting."""
    logger.warning(
        "request for a host outside ONECART_TRUSTED_HOSTS refused: %s",
        request.headers.get("Host", "")[:200],
    )
    title = ERROR_MESSAGES[400][0]
    if wants_json():
        return error_response(400, UNTRUSTED_HOST_MESSAGE)
    page = (
        f"<!doctype html><title>{escape(title)}</title><h1>{escape(title)}</h1>"
        f"<p>{escape(UNTRUSTED_HOST_MESSAGE)}</p>"
    )
    return Response(page, status=400, mimetype="text/html")


@bp.app_errorhandler(HTTPException)
def handle_http_error(error: HTTPException) -> Response:
    """Every abort()/HTTP error, keeping headers such as Retry-After and Allow."""
    status = error.code or 500
    if status >= 500:
        _rollback()
    headers = {
        name: value
        for name, value in error.get_headers()
        if name in ("Retry-After", "Allow", "WWW-Authenticate")
    }
    # Only the standard texts are shown for 5xx; 4xx descriptions are ours (set by abort()).
    standard = error.description == type(error).description
    description = None if status == 500 or standard else error.description
    return error_response(status, description, headers)


@bp.app_errorhandler(Exception)
def handle_unexpected_error(error: Exception) -> Response:
    """An unhandled exception: roll back, log with the request id, answer a plain 500."""
    if isinstance(error, HTTPException):  # pragma: no cover - routed to handle_http_error
        return handle_http_error(error)
    _rollback()
    logger.exception("unhandled error (request %s)", current_request_id())
    return error_response(InternalServerError.code)
