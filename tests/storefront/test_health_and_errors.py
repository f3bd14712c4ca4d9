"""/healthz against the real Meilisearch and Redis (and with each of them down), and the error
pages in HTML and JSON."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask, abort
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from commerce.models import SupportTicket
from onecart import processes
from storefront import create_app
from storefront.database import db_session as request_session


def test_healthz_is_200_when_db_redis_and_meilisearch_answer(app: Flask, meili_server: str) -> None:
    app.config["MEILI_URL"] = meili_server
    response = app.test_client().get("/healthz")
    body = response.get_json()
    assert response.status_code == 200, body
    assert body["status"] == "ok"
    assert {name: check["status"] for name, check in body["checks"].items()} == {
        "db": "ok",
        "redis": "ok",
        "meilisearch": "ok",
    }
    assert response.headers["Cache-Control"] == "no-store"


def test_healthz_reports_meilisearch_down_and_answers_503(client: FlaskClient) -> None:
    # The `app` fixture points MEILI_URL at a loopback port where nothing listens.
    response = client.get("/healthz")
    body = response.get_json()
    assert response.status_code == 503
    assert body["status"] == "error"
    assert body["checks"]["meilisearch"]["status"] == "error"
    assert "ConnectError" in body["checks"]["meilisearch"]["detail"]
    assert body["checks"]["db"]["status"] == "ok"
    assert body["checks"]["redis"]["status"] == "ok"


def test_healthz_tells_the_internet_what_is_down_but_not_the_errors(
    client: FlaskClient, unreachable_url: str
) -> None:
    """The error texts name internal hosts, ports, database users: for the private network
    (load balancer, operators, `onecart status`) only. A public client sees each check's status."""
    public = client.get("/healthz", environ_base={"REMOTE_ADDR": "93.184.215.14"})
    assert public.status_code == 503
    checks = public.get_json()["checks"]
    assert {name: check["status"] for name, check in checks.items()} == {
        "db": "ok",
        "redis": "ok",
        "meilisearch": "error",
    }
    port = unreachable_url.rsplit(":", 1)[1]
    assert port not in public.get_data(as_text=True)
    assert "ConnectError" not in public.get_data(as_text=True)
    private = client.get("/healthz", environ_base={"REMOTE_ADDR": "10.0.0.2"})
    assert "ConnectError" in private.get_json()["checks"]["meilisearch"]["detail"]


def test_healthz_reports_redis_down(app: Flask, meili_server: str) -> None:
    app.config.update(
        MEILI_URL=meili_server, REDIS_URL=f"redis://127.0.0.1:{processes.free_port()}/0"
    )
    body = app.test_client().get("/healthz").get_json()
    assert body["checks"]["redis"]["status"] == "error"
    assert body["checks"]["meilisearch"]["status"] == "ok"


def test_healthz_reports_the_database_down_without_leaking_credentials(
    storefront_db_url: str, rate_limit_prefix: str
) -> None:
    port = processes.free_port()
    app = create_app(
        {
            "TESTING": True,
            "DATABASE_URL": f"postgresql://onecart:hunter2-secret@127.0.0.1:{port}/nowhere",
            "RATE_LIMIT_PREFIX": rate_limit_prefix,
            "MEILI_URL": f"http://127.0.0.1:{processes.free_port()}",
        }
    )
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    text = response.get_data(as_text=True)
    assert response.get_json()["checks"]["db"]["status"] == "error"
    assert "hunter2" not in text


@pytest.fixture
def failing_app(app: Flask) -> Iterator[Flask]:
    """The app with two extra routes: one that writes then crashes, one that aborts 503."""

    def crash_after_writing() -> str:
        request_session().add(
            SupportTicket(reference="SUP-CRASH001", name="x", email="x@example.com", message="m")
        )
        request_session().flush()
        raise RuntimeError("boom: secret-internal-detail")

    def unavailable() -> str:
        abort(503, description="Search is taking a break.")

    app.add_url_rule("/_test/crash", "crash", crash_after_writing)
    app.add_url_rule("/_test/unavailable", "unavailable", unavailable)
    yield app


def test_500_rolls_back_and_shows_a_friendly_page(failing_app: Flask, db_session: Session) -> None:
    response = failing_app.test_client().get("/_test/crash")
    html = response.get_data(as_text=True)
    assert response.status_code == 500
    assert "Something went wrong" in html
    assert "secret-internal-detail" not in html
    assert "Reference:" in html and response.headers["X-Request-ID"] in html
    assert db_session.scalar(sa.select(sa.func.count()).select_from(SupportTicket)) == 0


def test_500_as_json(failing_app: Flask) -> None:
    response = failing_app.test_client().get("/_test/crash", headers={"Accept": "application/json"})
    assert response.status_code == 500
    body = response.get_json()
    assert body["error"]["status"] == 500 and body["request_id"]
    assert "boom" not in response.get_data(as_text=True)


def test_503_page_says_the_rest_of_the_site_works(failing_app: Flask) -> None:
    response = failing_app.test_client().get("/_test/unavailable")
    html = response.get_data(as_text=True)
    assert response.status_code == 503
    assert "Search is taking a break." in html
    assert "The rest of OneCart keeps working" in html


@pytest.mark.parametrize(
    ("path", "method", "status", "text"),
    [
        ("/definitely-not-here", "GET", 404, "Page not found"),
        ("/logout", "GET", 405, "can&#39;t be used this way"),
    ],
)
def test_error_pages_in_html(
    client: FlaskClient, path: str, method: str, status: int, text: str
) -> None:
    response = client.open(path, method=method)
    assert response.status_code == status
    assert response.mimetype == "text/html"
    assert text in response.get_data(as_text=True)


@pytest.mark.parametrize(
    ("headers", "path", "expected"),
    [
        ({"Accept": "application/json"}, "/definitely-not-here", "application/json"),
        ({"Accept": "text/html,application/json;q=0.9"}, "/definitely-not-here", "text/html"),
        ({"Accept": "*/*"}, "/definitely-not-here", "text/html"),
        ({}, "/api/definitely-not-here", "application/json"),
    ],
)
def test_error_format_follows_accept(
    client: FlaskClient, headers: dict[str, str], path: str, expected: str
) -> None:
    response = client.get(path, headers=headers)
    assert response.status_code == 404
    assert response.mimetype == expected


def test_403_page(
    client: FlaskClient, make_user: Callable[..., Any], login: Callable[..., Any]
) -> None:
    login(client, make_user())
    response = client.get("/admin/marketplaces")
    assert response.status_code == 403
    assert "permission" in response.get_data(as_text=True)
