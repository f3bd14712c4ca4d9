"""A marketplace's key, and a shopper's order, go only to the host the marketplace is configured
on, not to a host its answer redirects to (a security review for a real deployment).

The client follows a redirect to another public host. httpx drops `Authorization` on the way,
but not the header a Shopify store's key travels in (`X-Shopify-Access-Token`) nor a
declarative format's `api_key_header`, and a server that keeps the query string on a redirect
hands on a key sent as `api_key_param`; a 307 re-sends a write's body (the shopper's name and
address) to the new host. Those redirects are now refused before anything is sent there: a
read fails (Transient, with the host to configure), a write's outcome is unknown. A plain read
carrying no key is still followed.

Servers here are real HTTP servers on loopback ("localhost" and "127.0.0.1" are two hosts);
the second host is judged public by stubbing the address check, as a real one would be.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest

import adapters.public_addresses as public_addresses
from adapters.base import OutcomeUnknown, Transient
from adapters.declarative import DeclarativeJsonAdapter
from adapters.marketplace_http import MarketplaceHttp
from tests.adapters.configs import marketplace_config
from tests.adapters.test_declarative import bazaar_options

KEY = "shpat_0123456789abcdef0123456789abcdef"


@dataclass
class Server:
    port: int = 0
    # (method, path with query, headers) of every request received.
    seen: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    redirect_to: str | None = None
    status: int = 301
    keep_query: bool = False


def _serve(server: Server) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            server.seen.append((self.command, self.path, dict(self.headers.items())))
            if self.command == "POST":
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if server.redirect_to:
                query = urlsplit(self.path).query
                target = server.redirect_to + (f"?{query}" if server.keep_query and query else "")
                self.send_response(server.status)
                self.send_header("Location", target)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = json.dumps({"products": []}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer

        def log_message(self, *args: object) -> None:
            """Silent: the test reads what the server saw."""

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.port = httpd.server_address[1]
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


@pytest.fixture
def servers(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Server, Server]]:
    """(the marketplace on localhost, another host on 127.0.0.1 taken for a public one)."""
    monkeypatch.setattr(public_addresses, "non_public_address", lambda _host, _port: None)
    marketplace, other = Server(), Server()
    started = [_serve(marketplace), _serve(other)]
    marketplace.redirect_to = f"http://127.0.0.1:{other.port}/products.json"
    try:
        yield marketplace, other
    finally:
        for httpd in started:
            httpd.shutdown()
            httpd.server_close()


def _client(marketplace: Server) -> MarketplaceHttp:
    return MarketplaceHttp(
        "redirecting",
        f"http://localhost:{marketplace.port}",
        sleep=lambda _s: None,
        private_network_allowed=True,
    )


def test_a_key_header_is_not_sent_to_the_host_a_marketplace_redirects_to(
    servers: tuple[Server, Server],
) -> None:
    marketplace, other = servers
    with pytest.raises(Transient, match=r"127\.0\.0\.1") as refused:
        _client(marketplace).request(
            "GET", "products.json", headers={"X-Shopify-Access-Token": KEY}
        )
    assert not isinstance(refused.value, OutcomeUnknown)
    assert other.seen == []
    assert KEY not in str(refused.value)
    assert [(method, path) for method, path, _ in marketplace.seen] == [("GET", "/products.json")]


def test_a_write_is_not_resent_to_the_host_a_marketplace_redirects_to(
    servers: tuple[Server, Server],
) -> None:
    marketplace, other = servers
    marketplace.status = 307  # would re-send the POST and its body (the shopper's address)
    with pytest.raises(OutcomeUnknown):
        _client(marketplace).request(
            "POST", "orders.json", json={"shipping_address": {"name": "Ama"}}, idempotency_key="o-1"
        )
    assert other.seen == []


def test_a_key_in_the_query_string_is_not_carried_to_another_host(
    servers: tuple[Server, Server],
) -> None:
    """A declarative marketplace sending its key as `api_key_param`, behind a server that keeps
    the query string on its redirect (many do)."""
    marketplace, other = servers
    marketplace.keep_query = True
    options = {**bazaar_options(), "api_key_param": "key"}
    options.pop("api_key_header")
    adapter = DeclarativeJsonAdapter(
        marketplace_config(
            "declarative",
            slug="bazaar",
            currency="EUR",
            base_url=f"http://localhost:{marketplace.port}",
            api_key=KEY,
            options=options,
        ),
        sleep=lambda _s: None,
    )
    with pytest.raises(Transient):
        adapter.get_with_key("products.json", {"page": "2"})
    assert other.seen == []
    assert [path for _, path, _ in marketplace.seen] == [f"/products.json?page=2&key={KEY}"]


def test_a_plain_read_is_still_followed_to_another_public_host(
    servers: tuple[Server, Server],
) -> None:
    marketplace, other = servers
    marketplace.keep_query = True
    assert _client(marketplace).get_json("products.json", params={"page": "2"}) == {"products": []}
    assert [(method, path) for method, path, _ in other.seen] == [("GET", "/products.json?page=2")]
