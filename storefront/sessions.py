"""Flask's signed-cookie sessions, with the cookie's signing serializer built once per key.

Flask builds a new itsdangerous serializer for every request, even for a guest who sends no
cookie and gets none back (the listing page, storefront.form_protection); building it was about
a fortieth of a listing's CPU under uWSGI (bench/RESULTS.md, issue 9 "i9pass"). The serializer
holds no per-request state, so one per (secret key, fallback keys) serves every request; a
changed key (tests change SECRET_KEY on a live app) builds a new one.
"""

from __future__ import annotations

import threading

from flask import Flask
from flask.sessions import SecureCookieSessionInterface
from itsdangerous import URLSafeTimedSerializer


class CachedSerializerSessionInterface(SecureCookieSessionInterface):
    """SecureCookieSessionInterface whose signing serializer is reused while the keys stay."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: tuple[object, ...] | None = None
        self._serializer: URLSafeTimedSerializer | None = None

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        keys = (app.secret_key, *(app.config["SECRET_KEY_FALLBACKS"] or ()))
        with self._lock:
            if keys != self._keys:
                self._serializer = super().get_signing_serializer(app)
                self._keys = keys
            return self._serializer
