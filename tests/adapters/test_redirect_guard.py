"""A marketplace cannot redirect OneCart's requests into the private network (second review).

Every adapter's client follows redirects. The admin form refuses a non-public base URL outside
sandbox mode, but a marketplace at a public address (or one taken over) could answer with a
redirect to http://169.254.169.254/ (cloud metadata), Meilisearch, the Dagster UI or Redis on
the private network, and the client followed it (a 307 even re-sends a POST's body there),
handing the answer to the pipeline. A redirect to another host is now followed only to public
addresses; one into a loopback, private or link-local address is refused before it is sent:
a read fails (Transient), a write's outcome is unknown (the first hop reached the marketplace).
Servers here are real HTTP servers on loopback; "localhost" and "127.0.0.1" are two hosts.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from adapters.base import OutcomeUnknown, Transient
from adapters.marketplace_http import MarketplaceHttp
from adapters.public_addresses import non_public_address


@dataclass
class Server:
    port: int
    hits: list[str] = field(default_factory=list)
    redirect_to: str | None = None
    status: int = 302


def _serve(server: Server) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            server.hits.append(f"{self.command} {self.path}")
            if self.command == "POST":
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if server.redirect_to and not self.path.startswith("/moved"):
                self.send_response(server.status)
                self.send_header("Location", server.redirect_to)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = json.dumps({"secret": "instance-credentials"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer

        def log_message(self, *args: object) -> None:
            """Silent: the test reads the server's hits, not its stderr access log."""

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.port = httpd.server_address[1]
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


@pytest.fixture
def servers() -> Iterator[tuple[Server, Server]]:
    """(the marketplace, an internal service on another host of the same machine)."""
    marketplace, internal = Server(0), Server(0)
    started = [_serve(marketplace), _serve(internal)]
    try:
        yield marketplace, internal
    finally:
        for httpd in started:
            httpd.shutdown()
            httpd.server_close()


def _client(marketplace: Server) -> MarketplaceHttp:
    return MarketplaceHttp(
        "redirecting", f"http://localhost:{marketplace.port}", sleep=lambda _s: None
    )


def test_a_read_redirected_into_the_private_network_is_refused_before_it_is_sent(
    servers: tuple[Server, Server],
) -> None:
    marketplace, internal = servers
    marketplace.redirect_to = f"http://127.0.0.1:{internal.port}/latest/meta-data/"
    with pytest.raises(Transient, match="private network") as refused:
        _client(marketplace).get_json("products")
    assert not isinstance(refused.value, OutcomeUnknown)
    assert internal.hits == []
    assert marketplace.hits == ["GET /products"]  # asked once: retrying cannot help


def test_a_write_redirected_into_the_private_network_is_never_sent_there(
    servers: tuple[Server, Server],
) -> None:
    marketplace, internal = servers
    marketplace.redirect_to = f"http://127.0.0.1:{internal.port}/graphql"
    marketplace.status = 307  # would re-send the POST and its body
    with pytest.raises(OutcomeUnknown):
        _client(marketplace).request(
            "POST", "orders", json={"line_items": []}, idempotency_key="order-1"
        )
    assert internal.hits == []
    assert marketplace.hits == ["POST /orders"]


def test_a_redirect_on_the_marketplaces_own_host_is_followed(
    servers: tuple[Server, Server],
) -> None:
    marketplace, _ = servers
    marketplace.redirect_to = f"http://localhost:{marketplace.port}/moved/products"
    assert _client(marketplace).get_json("products") == {"secret": "instance-credentials"}
    assert marketplace.hits == ["GET /products", "GET /moved/products"]


@pytest.mark.parametrize(
    ("addresses", "refused"),
    [
        (["93.184.215.14"], False),
        (["2606:2800:21f:cb07:6820:80da:af6b:8b2c"], False),
        (["169.254.169.254"], True),
        (["10.0.0.7"], True),
        (["93.184.215.14", "192.168.1.1"], True),  # any private answer is refused
        (["::ffff:127.0.0.1"], True),
        (["100.64.0.1"], True),  # carrier-grade NAT (shared address space)
        ([], True),
        # IPv6 addresses that carry an IPv4 one (sixth security review): on an IPv6-only host
        # with DNS64/NAT64 the gateway connects to the embedded address, so a name answering
        # 64:ff9b::a9fe:a9fe reached 169.254.169.254 (the cloud's metadata), 64:ff9b::a00:7
        # the private 10.0.0.7. Python counts the NAT64 prefixes as global.
        (["64:ff9b::a9fe:a9fe"], True),  # NAT64 well-known prefix, RFC 6052
        (["64:ff9b::a00:7"], True),
        (["64:ff9b:1::a00:7"], True),  # NAT64 local-use prefix, RFC 8215
        (["2002:a9fe:a9fe::1"], True),  # 6to4
        (["::a00:7"], True),  # IPv4-compatible (deprecated)
        (["::ffff:0:a00:7"], True),  # IPv4-translated (SIIT), RFC 2765
        (["64:ff9b::5db8:d70e"], False),  # a public IPv4 address through NAT64 stays public
        (["2002:5db8:d70e::1"], False),
    ],
)
def test_which_addresses_count_as_private(addresses: list[str], refused: bool) -> None:
    assert (
        non_public_address("host.example", 443, resolve=lambda _h, _p: addresses) is not None
    ) is refused
