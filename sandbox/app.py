"""The sandbox WSGI application: the marketplaces under /<slug>/ and the /_sandbox/ control API.

Every request to a marketplace first passes the knob gate (latency, down, 429 bursts, random
503s); the control endpoints and images never do, so tests can always reach the knobs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import Map, RequestRedirect, Rule
from werkzeug.wrappers import Request, Response

from sandbox.affiliate_feed import AffiliateFeedService
from sandbox.amazon import AmazonCreatorsService
from sandbox.bazaar import BazaarService
from sandbox.dummyjson import DummyJsonService
from sandbox.fakestore import FakeStoreService
from sandbox.google_feed import GoogleFeedService
from sandbox.images import render_product_svg
from sandbox.knobs import ALL_MARKETPLACES, KnobBoard, KnobError
from sandbox.marketplaces import SERVED_MARKETPLACES, SERVED_SLUGS
from sandbox.orders import OrderBook, SandboxOrder
from sandbox.refunds import RefundRefused, refunded_minor
from sandbox.service import (
    DEFAULT_PRICE_EPOCH_SECONDS,
    WILDCARD_HOSTS,
    MarketplaceService,
    SandboxContext,
    json_response,
    read_json_body,
)
from sandbox.shopify import ShopifyService
from sandbox.woocommerce import WooCommerceService
from sandbox.world import World

SERVICE_CLASSES: tuple[type[MarketplaceService], ...] = (
    ShopifyService,
    WooCommerceService,
    DummyJsonService,
    FakeStoreService,
    GoogleFeedService,
    BazaarService,
    # Added on top of the six (their catalogs are unchanged): hand-off only marketplaces.
    AmazonCreatorsService,
    AffiliateFeedService,
)
IMAGE_CACHE_SECONDS = 86_400


@dataclass(frozen=True)
class SandboxConfig:
    """How to run the sandbox: where it listens, how big and which world, starting knobs."""

    host: str = "127.0.0.1"
    port: int = 8800
    offers: int = 12_000
    seed: int = 42
    price_epoch: int = 0
    # One more price epoch every this many seconds (0: prices stay at price_epoch).
    price_epoch_seconds: float = DEFAULT_PRICE_EPOCH_SECONDS
    # {slug or "all": {knob: value}}: the server's defaults, restored by POST /_sandbox/reset.
    knobs: Mapping[str, Mapping[str, object]] = field(default_factory=dict)
    # The base URL put into absolute links; derived from host:port unless the host is a wildcard.
    public_url: str | None = None

    @property
    def advertised_url(self) -> str | None:
        """The URL catalogs use for images and links (None: use the address each client used)."""
        if self.public_url:
            return self.public_url.rstrip("/")
        if self.host in WILDCARD_HOSTS:
            return None
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


def _merge_knob_defaults(config: SandboxConfig) -> dict[str, dict[str, object]]:
    defaults: dict[str, dict[str, object]] = {}
    if config.price_epoch:
        defaults[ALL_MARKETPLACES] = {"price_epoch": config.price_epoch}
    # "all" first, then single marketplaces, so a specific --knob wins over a general one.
    for slug in sorted(config.knobs, key=lambda s: s != ALL_MARKETPLACES):
        defaults.setdefault(slug, {}).update(config.knobs[slug])
    return defaults


class SandboxApp:
    """The WSGI callable; one instance holds the world, the knobs and the orders."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        unknown = set(config.knobs) - {*SERVED_SLUGS, ALL_MARKETPLACES}
        if unknown:
            raise KnobError(f"unknown marketplace(s) in knobs: {', '.join(sorted(unknown))}")
        # The server keeps every product it has built, as a marketplace holds its catalog:
        # with a bounded cache every catalog read past it built each product again (a third
        # of a DummyJSON record's CPU at 200,000 offers; ~0.8 KB a product, ~0.55 GB at a
        # million offers once every catalog was read).
        self.world = World(config.seed, config.offers, product_cache=None)
        self.knobs = KnobBoard(
            SERVED_SLUGS, seed=config.seed, defaults=_merge_knob_defaults(config)
        )
        self.orders = OrderBook(config.seed)
        self.ctx = SandboxContext(
            self.world,
            self.knobs,
            self.orders,
            config.advertised_url,
            price_epoch_seconds=config.price_epoch_seconds,
        )
        self.services: dict[str, MarketplaceService] = {
            cls.slug: cls(self.ctx) for cls in SERVICE_CLASSES
        }
        rules = [
            Rule("/", endpoint=("control", "index"), methods=["GET"]),
            Rule("/_sandbox/health", endpoint=("control", "health"), methods=["GET"]),
            Rule("/_sandbox/knobs", endpoint=("control", "get_knobs"), methods=["GET"]),
            Rule("/_sandbox/knobs/<slug>", endpoint=("control", "set_knobs"), methods=["POST"]),
            Rule("/_sandbox/reset", endpoint=("control", "reset"), methods=["POST"]),
            Rule("/_sandbox/images/<name>.svg", endpoint=("control", "image"), methods=["GET"]),
            Rule("/_sandbox/orders/<slug>", endpoint=("control", "orders"), methods=["GET"]),
            Rule(
                "/_sandbox/orders/<slug>/<int:number>/cancel",
                endpoint=("control", "cancel_order"),
                methods=["POST"],
            ),
            Rule(
                "/_sandbox/orders/<slug>/<int:number>/advance",
                endpoint=("control", "advance_order"),
                methods=["POST"],
            ),
            Rule(
                "/_sandbox/orders/<slug>/<int:number>/refund",
                endpoint=("control", "refund_order"),
                methods=["POST"],
            ),
        ]
        for slug, service in self.services.items():
            for path, handler, methods in service.routes:
                rules.append(
                    Rule(f"/{slug}{path}", endpoint=(slug, handler), methods=list(methods))
                )
        self.url_map = Map(rules, merge_slashes=False)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        request = Request(environ)
        response = self.dispatch(request)
        return response(environ, start_response)

    def dispatch(self, request: Request) -> Response:
        """Route one request: knob gate for marketplaces, then the handler."""
        first_segment = request.path.lstrip("/").split("/", 1)[0]
        latency = 0
        if first_segment in self.services:
            latency = self.knobs.get(first_segment).latency_ms
            fault = self.knobs.gate(first_segment)
            if fault is not None:
                headers = {"X-Sandbox-Fault": fault.reason}
                if fault.retry_after is not None:
                    headers["Retry-After"] = str(fault.retry_after)
                message = "Too Many Requests" if fault.status == 429 else "Service Unavailable"
                return json_response(
                    {"errors": message, "reason": fault.reason}, fault.status, headers
                )
        adapter = self.url_map.bind_to_environ(request.environ)
        try:
            (owner, handler), values = adapter.match()
            if owner == "control":
                response = getattr(self, f"_control_{handler}")(request, **values)
            else:
                response = getattr(self.services[owner], handler)(request, **values)
        except RequestRedirect as redirect:
            return redirect.get_response(request.environ)
        except NotFound:
            return json_response({"errors": "Not Found", "path": request.path}, 404)
        except MethodNotAllowed as exc:
            allowed = ", ".join(exc.valid_methods or [])
            return json_response({"errors": "Method Not Allowed"}, 405, {"Allow": allowed})
        except HTTPException as exc:
            return exc.get_response(request.environ)
        if latency:
            response.headers["X-Sandbox-Latency-Ms"] = str(latency)
        return response

    # -- control API --

    def _control_index(self, request: Request) -> Response:
        base = self.ctx.site_url(request)
        return json_response(
            {
                "sandbox": "OneCart demo marketplaces",
                "marketplaces": [
                    {
                        "slug": m.slug,
                        "name": m.name,
                        "format": m.api_format,
                        "currency": m.currency,
                        "offers": self.world.offer_count(m.slug),
                        "base_url": f"{base}/{m.slug}",
                    }
                    for m in SERVED_MARKETPLACES
                ],
                "control": [
                    f"{base}/_sandbox/health",
                    f"{base}/_sandbox/knobs",
                    f"{base}/_sandbox/reset",
                    f"{base}/_sandbox/orders/<slug>",
                ],
            }
        )

    def _control_health(self, request: Request) -> Response:
        return json_response(
            {
                "status": "ok",
                "marketplaces": list(SERVED_SLUGS),
                "offers": self.world.total_offers,
                "seed": self.world.seed,
            }
        )

    def _control_get_knobs(self, request: Request) -> Response:
        return json_response(self.knobs.snapshot())

    def _control_set_knobs(self, request: Request, slug: str) -> Response:
        values = read_json_body(request, {"error": "the body must be a JSON object of knob values"})
        try:
            changed = self.knobs.update(slug, values if values is not None else {})
        except KeyError:
            return json_response({"error": f"unknown marketplace {slug!r}"}, 404)
        except KnobError as exc:
            return json_response({"error": str(exc)}, 400)
        # One marketplace: its knobs; "all": every marketplace's.
        return json_response(changed if slug == ALL_MARKETPLACES else changed[slug])

    def _control_reset(self, request: Request) -> Response:
        """Every knob back to the server's defaults, and every store's inventory back to the
        world's figures (sandbox.inventory.StockLedger.restock): the orders stay, holding no
        units any more, so each test starts from the same stock."""
        self.knobs.reset()
        self.orders.stock.restock()
        return json_response({"status": "reset", "knobs": self.knobs.snapshot()})

    def _control_orders(self, request: Request, slug: str) -> Response:
        """Every order a marketplace holds (`?reference=` narrows to one reference), in our
        terms: what the fault suite checks its invariants against, whatever the format."""
        if slug not in self.services:
            return json_response({"error": f"unknown marketplace {slug!r}"}, 404)
        reference = request.args.get("reference")
        orders = (
            self.orders.find_by_reference(slug, reference) if reference else self.orders.list(slug)
        )
        step = self.knobs.get(slug).order_step_seconds
        return json_response({"orders": [self._order_facts(o, step) for o in orders]})

    def _control_cancel_order(self, request: Request, slug: str, number: int) -> Response:
        """The marketplace cancels one of its orders itself (at any stage), as a store does
        when an item turns out to be out of stock; visible through its order status."""
        order = self.orders.get(slug, number) if slug in self.services else None
        if order is None:
            return json_response({"error": f"no order {number} on {slug!r}"}, 404)
        step = self.knobs.get(slug).order_step_seconds
        self.orders.cancel(order, step, reason="declined", by_marketplace=True)
        return json_response(self._order_facts(order, step))

    def _control_advance_order(self, request: Request, slug: str, number: int) -> Response:
        """Move one order on by `{"steps": n}` stages now (default 1), so a test can walk it
        through processing, shipped, in transit and delivered without waiting on the clock."""
        order = self.orders.get(slug, number) if slug in self.services else None
        if order is None:
            return json_response({"error": f"no order {number} on {slug!r}"}, 404)
        body = read_json_body(request, {"error": "the body must be a JSON object"}) or {}
        steps = body.get("steps", 1) if isinstance(body, dict) else None
        if not isinstance(steps, int) or isinstance(steps, bool):
            return json_response({"error": "steps must be a whole number"}, 400)
        try:
            self.orders.advance(order, steps, self.knobs.get(slug).order_step_seconds)
        except ValueError as exc:
            return json_response({"error": str(exc)}, 400)
        return json_response(self._order_facts(order, self.knobs.get(slug).order_step_seconds))

    def _control_refund_order(self, request: Request, slug: str, number: int) -> Response:
        """The store refunds part of one of its orders, as one does for an item it cannot ship:
        `{"lines": [{"external_id": "123", "quantity": 1}], "reason": "..."}` refunds those
        items (price and tax), `{"amount_minor": 500}` an amount. Seen in the format's own
        fields (WooCommerce `refunds`, Shopify `totalRefundedSet` / `refunds`)."""
        order = self.orders.get(slug, number) if slug in self.services else None
        if order is None:
            return json_response({"error": f"no order {number} on {slug!r}"}, 404)
        body = read_json_body(request, {"error": "the body must be a JSON object"}) or {}
        if not isinstance(body, dict):
            return json_response({"error": "the body must be a JSON object"}, 400)
        try:
            self.orders.refund(order, body, self.knobs.get(slug).order_step_seconds)
        except RefundRefused as exc:
            return json_response({"error": str(exc)}, 400)
        return json_response(self._order_facts(order, self.knobs.get(slug).order_step_seconds))

    def _order_facts(self, order: SandboxOrder, step: float) -> dict[str, Any]:
        progress = self.orders.progress(order, step)
        return {
            "number": order.number,
            "reference": order.reference,
            "idempotency_key": order.idempotency_key,
            "status": progress.status,
            "shipment": progress.shipment,
            "tracking_number": progress.tracking_number,
            "cancel_reason": order.cancel_reason if progress.cancelled_at else None,
            "currency": order.currency,
            "total_minor": order.total_minor,
            "refunded_minor": refunded_minor(order),
            "lines": [
                {
                    "external_id": line.external_id,
                    "quantity": line.quantity,
                    "unit_price_minor": line.unit_price_minor,
                    "total_minor": line.total_minor,
                }
                for line in order.lines
            ],
            "created_at": order.created_at.isoformat(),
        }

    def _control_image(self, request: Request, name: str) -> Response:
        product = self.world.product_for_image(name)
        if product is None:
            return json_response({"errors": "Not Found"}, 404)
        response = Response(
            render_product_svg(product), content_type="image/svg+xml; charset=utf-8"
        )
        response.headers["Cache-Control"] = f"public, max-age={IMAGE_CACHE_SECONDS}"
        return response


def create_app(config: SandboxConfig | None = None) -> SandboxApp:
    """The sandbox application for `config` (defaults: 12,000 offers, seed 42)."""
    return SandboxApp(config or SandboxConfig())
