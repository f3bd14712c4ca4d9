"""The health endpoint load balancers and `onecart status` poll.

Each dependency is checked independently with a short timeout and reported as ok/error with a
detail; the answer is 200 only when all are ok, else 503. Details never contain credentials,
and only clients on loopback or a private network get them (the site is public).
"""

from __future__ import annotations

import ipaddress
import re
import time
from collections.abc import Callable
from typing import Any

import httpx
import sqlalchemy as sa
from flask import Blueprint, Response, current_app, jsonify, request

from commerce.rate_limit import redis_client_from_url
from storefront.database import db_session

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


CHECKS: dict[str, Callable[[], str]] = {
    "db": check_database,
    "redis": check_redis,
    "meilisearch": check_meilisearch,
}


def _from_the_private_network() -> bool:
    """Whether the client is on loopback or a private network (the load balancer, `onecart
    status`, an operator): only they see the checks' details, whose error texts name internal
    hosts, ports and database users."""
    try:
        address = ipaddress.ip_address(request.remote_addr or "")
    except ValueError:
        return False
    return address.is_loopback or address.is_private


@bp.get("/healthz")
def healthz() -> tuple[Response, int]:
    """{"status": "ok"|"error", "checks": {name: {"status", "detail", "duration_ms"}}}; a
    client outside the private network gets each check's status only."""
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
    if not _from_the_private_network():
        results = {name: {"status": result["status"]} for name, result in results.items()}
    body = jsonify({"status": "ok" if healthy else "error", "checks": results})
    body.headers["Cache-Control"] = "no-store"
    return body, 200 if healthy else 503
