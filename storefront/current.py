"""The objects behind Flask's context proxies, for code every request runs many times.

`current_app.config`, `request.script_root` or `g.get(...)` on werkzeug's LocalProxy first fails
the ordinary attribute lookup on the proxy object, which on Python 3.11 builds an AttributeError
(its message formatted) inside C before the proxy's `__getattr__` forwards the name: about a
microsecond each time. A listing page did ~120 of them. `_get_current_object()` is a slot of the
proxy (found at once) and returns the real object, whose attributes are ordinary look-ups.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, Request, current_app, g, request


def this_app() -> Flask:
    """The application handling the current request or app context."""
    return current_app._get_current_object()  # type: ignore[attr-defined,no-any-return]


def this_request() -> Request:
    """The request being handled."""
    return request._get_current_object()  # type: ignore[attr-defined,no-any-return]


def request_globals() -> Any:
    """Flask's `g` of the current app context (per request)."""
    return g._get_current_object()  # type: ignore[attr-defined]
