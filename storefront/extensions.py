"""Flask extensions, created unbound here and attached to the app in create_app()."""

from __future__ import annotations

from flask import session
from flask_login import LoginManager

from storefront.form_protection import SessionAwareCSRFProtect


class SiteLoginManager(LoginManager):
    """Flask-Login's LoginManager, which skips session protection for a request without a
    session (a guest browsing listings) before working out the client's identifier.

    Flask-Login hashes the client's address and User-Agent (SHA-512, reading three headers) on
    every request that asks for the user, then finds the session empty and checks nothing: an
    empty session holds no sign-in to protect. The answer is the same, without the hash.
    """

    def _session_protection_failed(self) -> bool:
        if not session:
            return False
        return bool(super()._session_protection_failed())  # type: ignore[no-untyped-call]


# Tokens as Flask-WTF issues them; a guest without a session passes on the browser's word
# that the form is ours (storefront.form_protection).
csrf = SessionAwareCSRFProtect()
login_manager = SiteLoginManager()
