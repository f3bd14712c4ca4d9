"""The site's WSGI application, built by each uWSGI worker after the fork (`--lazy-apps`,
onecart/site_server.py); onecart/site_worker.py says what the worker does around it."""

from __future__ import annotations

from onecart.site_worker import config_from_environment, worker_started
from storefront import create_app

application = create_app(config_from_environment())
worker_started()
