"""A marketplace's host cannot be re-pointed into the private network after it was checked.

The admin form checks that a marketplace's host resolves to public addresses when it is saved,
and redirects are checked before they are followed (test_redirect_guard.py). But the name is
resolved again for every new connection: its owner (DNS rebinding) or whoever takes the domain
over can make it answer 127.0.0.1, 10.x or 169.254.169.254 later, and OneCart's requests (with
the marketplace's API key) went there. Outside sandbox mode every connection is now made only
to an address checked when the connection is opened, and a name that resolves to a private
address is refused before anything is sent. In sandbox mode the sandbox on loopback is reached
as before. Servers are real HTTP servers on loopback; the name's answers are the test's.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from adapters.base import OutcomeUnknown, Transient
from adapters.marketplace_http import MarketplaceHttp
from onecart.settings import get_settings
from tests.adapters.test_redirect_guard import Server, _serve

REBOUND_HOST = "shop.rebinding.example"


@pytest.fixture
def marketplace() -> Iterator[Server]:
    server = Server(0)
    httpd = _serve(server)
    try:
        yield server
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def rebound_to_loopback(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """REBOUND_HOST now answers 127.0.0.1 (other names resolve as usual); the names asked."""
    real_getaddrinfo: Callable[..., Any] = socket.getaddrinfo
    asked: list[str] = []

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host == REBOUND_HOST:
            asked.append(host)
            host = "127.0.0.1"
        return real_getaddrinfo(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return asked


def _mode(monkeypatch: pytest.MonkeyPatch, *, env: str, sandbox: bool | None = None) -> None:
    monkeypatch.setenv("ONECART_ENV", env)
    if sandbox is None:
        monkeypatch.delenv("ONECART_SANDBOX_MODE", raising=False)
    else:
        monkeypatch.setenv("ONECART_SANDBOX_MODE", "true" if sandbox else "false")
    get_settings.cache_clear()


@pytest.fixture(autouse=True)
def _fresh_settings() -> Iterator[None]:
    yield
    get_settings.cache_clear()


def _client(port: int, sleeps: list[float]) -> MarketplaceHttp:
    return MarketplaceHttp("rebinding", f"http://{REBOUND_HOST}:{port}", sleep=sleeps.append)


def test_in_production_a_read_from_a_host_rebound_to_loopback_is_never_sent(
    marketplace: Server, rebound_to_loopback: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _mode(monkeypatch, env="production")
    sleeps: list[float] = []
    with pytest.raises(Transient, match="private network") as refused:
        _client(marketplace.port, sleeps).get_json("products")
    assert not isinstance(refused.value, OutcomeUnknown)
    assert marketplace.hits == []
    assert rebound_to_loopback == [REBOUND_HOST]  # resolved once, not retried
    assert sleeps == []


def test_in_production_a_write_to_a_host_rebound_to_loopback_is_refused_unsent(
    marketplace: Server, rebound_to_loopback: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _mode(monkeypatch, env="production")
    with pytest.raises(Transient) as refused:
        _client(marketplace.port, []).request(
            "POST", "orders", json={"line_items": []}, idempotency_key="order-1"
        )
    # Nothing reached anyone: a refusal, not an outcome to ask the marketplace about.
    assert not isinstance(refused.value, OutcomeUnknown)
    assert marketplace.hits == []


@pytest.mark.parametrize(("env", "sandbox"), [("development", None), ("production", True)])
def test_in_sandbox_mode_the_sandbox_on_loopback_is_reached(
    marketplace: Server,
    rebound_to_loopback: list[str],
    monkeypatch: pytest.MonkeyPatch,
    env: str,
    sandbox: bool | None,
) -> None:
    _mode(monkeypatch, env=env, sandbox=sandbox)
    assert _client(marketplace.port, []).get_json("products") == {"secret": "instance-credentials"}
    assert marketplace.hits == ["GET /products"]


METADATA_HOST = "instance-data.example"


def test_in_sandbox_mode_a_host_answering_the_metadata_address_is_refused_unsent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Security review, sixth pass: sandbox mode opened connections anywhere, the cloud's
    metadata service (169.254.169.254, AWS's fd00:ec2::254) included, with a marketplace's
    requests. Only link-local and metadata addresses are refused there; loopback and the private
    network, where the sandbox runs, are reached as before (the test above)."""
    _mode(monkeypatch, env="development")
    real_getaddrinfo: Callable[..., Any] = socket.getaddrinfo
    asked: list[str] = []

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host == METADATA_HOST:
            asked.append(host)
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("169.254.169.254", port))]
        return real_getaddrinfo(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    sleeps: list[float] = []
    client = MarketplaceHttp("metadata", f"http://{METADATA_HOST}:80", sleep=sleeps.append)
    with pytest.raises(Transient, match="metadata") as refused:
        client.get_json("latest/meta-data/")
    assert not isinstance(refused.value, OutcomeUnknown)
    assert asked == [METADATA_HOST]  # resolved once, refused, not retried
    assert sleeps == []
