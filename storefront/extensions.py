"""Flask extensions, created unbound here and attached to the app in create_app()."""

from __future__ import annotations

from flask_login import LoginManager

from storefront.form_protection import SessionAwareCSRFProtect

# Tokens as Flask-WTF issues them; a guest without a session passes on the browser's word
# that the form is ours (storefront.form_protection).
csrf = SessionAwareCSRFProtect()
login_manager = LoginManager()
