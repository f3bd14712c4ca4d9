"""The health endpoint load balancers and `onecart status` poll.

Each dependency is checked independently with a short timeout and reported as ok/error with a
detail; the answer is 200 only when all are ok, else 503. Details never contain credentials, yet
name internal hosts, ports and database users, so the site (public) shows them only to:
- a request carrying `Authorization: Bearer <ONECART_HEALTH_TOKEN>` (an operator, a monitor);
- outside production, a client on loopback or a private network (a laptop, `onecart status`).
In production an address proves nothing: behind a proxy with ONECART_TRUSTED_PROXIES left at 0
every visitor has the proxy's address. Everyone else gets each check's status.

A failing check's detail is written to the site's log (a warning), where an operator without the
token reads it: once when it starts failing or its detail changes, then a reminder every
FAILURE_REMINDER_SECONDS, and an info line when it answers again. A load balancer probing every
few seconds while Meilisearch is down wrote one warning per probe per worker, burying the rest of
the log.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import re
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import sqlalchemy as sa
from flask import Blueprint, Response, current_app, jsonify, request

from commerce.rate_limit import redis_client_from_url
from storefront.database import db_session

logger = logging.getLogger(__name__)

bp = Blueprint("health", __name__)

_CREDENTIALS_IN_URL = re.compile(r"(\w+://)[^/@\s]+@")


def _redact(text: str) -> str:
    """Drop user:password@ from any URL in an error message, and keep it short."""
    return _CREDENTIALS_IN_URL.sub(r"\1***@", text)[:300]


def check_database() -> str:
    """SELECT 1 through the request's session."""
    session = db_session()
    session.execute(sa.text("SELECT 1"))
    session.rollback()
    return "reachable"


def check_redis() -> str:
    """PING with the limiter's short timeouts."""
    client = redis_client_from_url(current_app.config["REDIS_URL"])
    try:
        client.ping()
    finally:
        client.close()
    return "reachable"


def check_meilisearch() -> str:
    """Meilisearch's own /health (no key needed)."""
    url = current_app.config["MEILI_URL"].rstrip("/") + "/health"
    response = httpx.get(url, timeout=current_app.config["HEALTH_TIMEOUT_SECONDS"])
    response.raise_for_status()
    status = response.json().get("status")
    if status != "available":
        raise RuntimeError(f"status {status!r}")
    return "available"


FAILURE_REMINDER_SECONDS = 300.0


class FailureReports:
    """Which failing checks this site process already reported, and when (see the module
    docstring). One per app, in app.extensions; a lock, since uWSGI threads share it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reported: dict[str, tuple[str, float]] = {}

    def report(self, name: str, status: str, detail: str, now: float) -> None:
        with self._lock:
            previous = self._reported.get(name)
            if status == "ok":
                if previous is not None:
                    del self._reported[name]
                    logger.info("healthz: %s: answers again", name)
                return
            if (
                previous is not None
                and previous[0] == detail
                and now - previous[1] < FAILURE_REMINDER_SECONDS
            ):
                return
            self._reported[name] = (detail, now)
        logger.warning("healthz: %s: %s", name, detail)


def _failure_reports() -> FailureReports:
    # setdefault under the GIL: two first probes racing make one FailureReports, not two.
    reports: FailureReports = current_app.extensions.setdefault(
        "onecart_health_failures", FailureReports()
    )
    return reports


CHECKS: dict[str, Callable[[], str]] = {
    "db": check_database,
    "redis": check_redis,
    "meilisearch": check_meilisearch,
}


def _from_the_private_network() -> bool:
    """Whether the client is on loopback or a private network (by the address the request came
    from, X-Forwarded-For applied per ONECART_TRUSTED_PROXIES)."""
    try:
        address = ipaddress.ip_address(request.remote_addr or "")
    except ValueError:
        return False
    return address.is_loopback or address.is_private


def _carries_the_health_token() -> bool:
    """Whether the request's `Authorization: Bearer …` is the configured token (compared in
    constant time; no token configured: never)."""
    token = str(current_app.config.get("HEALTH_TOKEN") or "")
    scheme, _, given = (request.headers.get("Authorization") or "").partition(" ")
    if not token or scheme.lower() != "bearer" or not given:
        return False
    return hmac.compare_digest(given.strip().encode(), token.encode())


def _may_see_details() -> bool:
    """The token's bearer; outside production also the private network (see the docstring)."""
    if _carries_the_health_token():
        return True
    return bool(current_app.config.get("HEALTH_DETAILS_TO_PRIVATE_NETWORK")) and (
        _from_the_private_network()
    )


@bp.get("/healthz")
def healthz() -> tuple[Response, int]:
    """{"status": "ok"|"error", "checks": {name: {"status", "detail", "duration_ms"}}}; a
    client not entitled to the details (see the module docstring) gets each check's status."""
    results: dict[str, dict[str, Any]] = {}
    for name, check in CHECKS.items():
        started = time.perf_counter()
        try:
            detail = check()
            status = "ok"
        except Exception as exc:  # every failure is a report, never a 500
            status, detail = "error", _redact(f"{type(exc).__name__}: {exc}")
        results[name] = {
            "status": status,
            "detail": detail,
            "duration_ms": round((time.perf_counter() - started) * 1000, 1),
        }
    healthy = all(result["status"] == "ok" for result in results.values())
    reports, now = _failure_reports(), time.monotonic()
    for name, result in results.items():
        reports.report(name, result["status"], result["detail"], now)
    if not _may_see_details():
        results = {name: {"status": result["status"]} for name, result in results.items()}
    body = jsonify({"status": "ok" if healthy else "error", "checks": results})
    body.headers["Cache-Control"] = "no-store"
    return body, 200 if healthy else 503
