"""What every sandbox marketplace is built on: the shared context (world, knobs, orders, own URL),
the service base class, and HTTP plumbing (JSON with deliberate broken bytes, streamed bodies)."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from email.utils import formatdate, parsedate_to_datetime
from typing import Any, ClassVar

import orjson
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Request, Response

from sandbox.changes import CatalogState, ChangeLog
from sandbox.knobs import CancelPlan, KnobBoard, PlacementPlan
from sandbox.malformations import BROKEN_UTF8_BYTES, BROKEN_UTF8_SENTINEL
from sandbox.marketplaces import MARKETPLACES_BY_SLUG, MarketplaceProfile
from sandbox.orders import OrderBook, SandboxOrder
from sandbox.record_cache import CacheKey, RecordCache, Render, record_stamp
from sandbox.world import PRICE_EPOCH_PERIOD, ListedOffer, World

JSON_CONTENT_TYPE = "application/json; charset=utf-8"
_SENTINEL_BYTES = BROKEN_UTF8_SENTINEL.encode("utf-8")
# Streamed bodies are flushed in chunks of about this size (the dev server writes each chunk).
STREAM_CHUNK_BYTES = 64 * 1024
# The demo's prices move by one price epoch (~1% of offers) every 8 hours: ~3% a day.
DEFAULT_PRICE_EPOCH_SECONDS = 8 * 3600.0
MAX_PRICE_EPOCH_SECONDS = 365 * 86400.0
WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::", "[::]"})


def encode_json(value: Any) -> bytes:
    """Compact UTF-8 JSON, with every broken-title sentinel written as raw invalid bytes."""
    body = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    if _SENTINEL_BYTES in body:
        body = body.replace(_SENTINEL_BYTES, BROKEN_UTF8_BYTES)
    return body


def encode_record_json(value: Any) -> bytes:
    """`encode_json` of a catalog record, with orjson: the same bytes (compact, UTF-8 unescaped,
    floats in their shortest round-trip form) for what records hold (strings, whole numbers,
    floats from 1e-4 to 1e16, lists and string-keyed objects), in a quarter of the CPU. The two
    differ on floats below 1e-4 (0.00001 against 1e-05), NaN (null against NaN) and non-string
    keys, which no record holds; bench/sandbox_bytes.py compares whole catalogs."""
    body = orjson.dumps(value)
    if _SENTINEL_BYTES in body:
        body = body.replace(_SENTINEL_BYTES, BROKEN_UTF8_BYTES)
    return body


def encode_text(text: str) -> bytes:
    """UTF-8 text (XML, HTML) with the broken-title sentinel written as raw invalid bytes."""
    body = text.encode("utf-8")
    if _SENTINEL_BYTES in body:
        body = body.replace(_SENTINEL_BYTES, BROKEN_UTF8_BYTES)
    return body


def json_response(value: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON response whose body keeps any deliberately broken bytes."""
    return Response(
        encode_json(value), status=status, headers=headers, content_type=JSON_CONTENT_TYPE
    )


class JsonError(HTTPException):
    """An HTTP error whose body is the marketplace's own JSON error shape."""

    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__()
        self.code = status
        self._body = body
        self._headers = headers or {}

    def get_response(self, environ: Any = None, scope: Any = None) -> Response:  # type: ignore[override]
        """The error as a JSON response."""
        return json_response(self._body, self.code or 500, self._headers)


def chunked(pieces: Iterable[bytes]) -> Iterator[bytes]:
    """Group many small byte pieces into chunks of about STREAM_CHUNK_BYTES for streaming."""
    buffer: list[bytes] = []
    size = 0
    for piece in pieces:
        buffer.append(piece)
        size += len(piece)
        if size >= STREAM_CHUNK_BYTES:
            yield b"".join(buffer)
            buffer, size = [], 0
    if buffer:
        yield b"".join(buffer)


def join_stream(
    prefix: bytes, items: Iterable[bytes], separator: bytes, suffix: bytes
) -> Iterator[bytes]:
    """prefix + items joined by separator + suffix, produced lazily, in chunks."""

    def pieces() -> Iterator[bytes]:
        yield prefix
        first = True
        for item in items:
            if not first:
                yield separator
            first = False
            yield item
        yield suffix

    return chunked(pieces())


def query_int(
    request: Request,
    name: str,
    default: int,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
    clamp: bool = True,
    error: Any = None,
) -> int:
    """An integer query parameter; out-of-range values are clamped (as the real APIs do) or, with
    clamp=False, answered with 400 and `error` as the body."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise JsonError(400, error or {"message": f"'{name}' must be an integer"}) from None
    if minimum is not None and value < minimum:
        if not clamp:
            raise JsonError(400, error or {"message": f"'{name}' must be at least {minimum}"})
        value = minimum
    if maximum is not None and value > maximum:
        if not clamp:
            raise JsonError(400, error or {"message": f"'{name}' must be at most {maximum}"})
        value = maximum
    return value


def read_json_body(request: Request, error: Any) -> Any:
    """The request's JSON body, or 400 with the marketplace's error shape."""
    try:
        return json.loads(request.get_data(cache=True) or b"null")
    except ValueError:
        raise JsonError(400, error) from None


@dataclass
class SandboxContext:
    """What every marketplace handler shares: the world, the knobs, the orders, and the address
    the server advertises in absolute URLs (images, permalinks, Link headers)."""

    world: World
    knobs: KnobBoard
    orders: OrderBook
    public_url: str | None = None
    # Prices move with time: one more price epoch every this many seconds since the sandbox
    # started (0: never; the price_epoch knob still adds its own epochs).
    price_epoch_seconds: float = 0.0
    started_at: float = field(default_factory=time.time)
    # When each catalog version (by ETag) was first served: its Last-Modified.
    _first_served: dict[str, float] = field(default_factory=dict)
    _first_served_lock: threading.Lock = field(default_factory=threading.Lock)
    # When each record last changed (Shopify's updated_at, WooCommerce's date_modified).
    changes: ChangeLog = field(init=False)
    # Rendered catalog records, kept between reads (sandbox.record_cache).
    rendered: RecordCache = field(default_factory=RecordCache)

    def __post_init__(self) -> None:
        self.changes = ChangeLog(self.world)
        # A record whose stock an order moved was modified then (Shopify's updated_at,
        # WooCommerce's date_modified), so changed-since fetches bring it.
        self.orders.stock.listen(self.changes.touch)

    def observe_catalog(self, slug: str, unlisted: frozenset[int] = frozenset()) -> None:
        """Note the catalog state served now (`unlisted`: the indexes off the catalog): a new
        one is a change of the records it touches, made now (whole seconds, as the platforms
        store modification times)."""
        knobs = self.knobs.get(slug)
        state = CatalogState(self.price_epoch(slug), knobs.malformed_rate, unlisted)
        self.changes.observe(slug, state, datetime.now(UTC).replace(microsecond=0))

    def modified_at(self, slug: str, offer: ListedOffer) -> datetime:
        """When the catalog record of `offer` last changed."""
        return self.changes.last_change(slug, offer.index) or offer.updated_at

    def clock_epochs(self, at: float | None = None) -> int:
        """Price epochs the clock has added since the sandbox started."""
        if self.price_epoch_seconds <= 0:
            return 0
        elapsed = (time.time() if at is None else at) - self.started_at
        return max(0, int(elapsed // self.price_epoch_seconds))

    def price_epoch(self, slug: str) -> int:
        """The marketplace's current price epoch: its knob plus the clock's epochs."""
        return self.knobs.get(slug).price_epoch + self.clock_epochs()

    def catalog_validators(self, request: Request, slug: str) -> tuple[str, float]:
        """(ETag, Last-Modified as a Unix time) of the marketplace's catalog as served now.

        The catalog is a pure function of the world, the marketplace's price epoch and malformed
        rate, the request's query and the advertised URL, so their digest is a strong validator.
        Last-Modified is when this version was first served, as a file server's mtime would be.
        """
        knobs = self.knobs.get(slug)
        state = json.dumps(
            [self.world.seed, self.world.offer_count(slug), self.price_epoch(slug),
             knobs.malformed_rate, request.query_string.decode("latin-1"), self.site_url(request)]
        )  # fmt: skip
        etag = '"' + hashlib.sha256(state.encode()).hexdigest()[:32] + '"'
        with self._first_served_lock:
            modified = self._first_served.setdefault(etag, float(int(time.time())))
        return etag, modified

    def page_validator(self, request: Request, slug: str, indexes: range) -> str:
        """A weak ETag (as Express sends on every JSON reply) for a catalog page of the records
        `indexes`, answered by the page's request.

        A record is a pure function of the world, its price version (which epochs re-priced
        it), its malformation and the advertised URL; a page is those records, the catalog's
        size and the request's query. Their digest changes whenever the page's bytes can,
        without building the page: like a server's page cache, a 304 costs no rendering."""
        epoch = max(0, self.price_epoch(slug))
        phases = self.changes.price_phases(slug)
        malformed = self.world.malformations(slug, self.knobs.get(slug).malformed_rate)
        records = [((epoch + phases[i]) // PRICE_EPOCH_PERIOD, malformed.get(i)) for i in indexes]
        state = json.dumps(
            [self.world.seed, self.world.offer_count(slug), request.query_string.decode("latin-1"),
             self.site_url(request), indexes.start, indexes.stop, records]
        )  # fmt: skip
        return 'W/"' + hashlib.sha256(state.encode()).hexdigest()[:32] + '"'

    def catalog_records(
        self,
        request: Request,
        slug: str,
        rendering: str,
        indexes: Iterable[int],
        render: Render,
    ) -> Iterator[bytes]:
        """The bytes of catalog records `indexes` of `slug` as `render` renders them (index ->
        (stamp, bytes); `rendering` names it, e.g. "feed-item"), kept ones where still current
        (sandbox.record_cache): a record is a function of its price version and malformation
        besides the world and the advertised URL."""
        phases = self.changes.price_phases(slug)

        def stamps(group: Sequence[int]) -> list[int]:
            # Read at each block, as rendering reads the knobs at each record.
            epoch = max(0, self.price_epoch(slug))
            malformed = self.world.malformations(slug, self.knobs.get(slug).malformed_rate)
            return [
                record_stamp((epoch + phases[i]) // PRICE_EPOCH_PERIOD, malformed.get(i))
                for i in group
            ]

        key: CacheKey = (slug, rendering, self.site_url(request))
        return self.rendered.records(key, indexes, stamps, render)

    def site_url(self, request: Request) -> str:
        """The server's own base URL: the configured one, else the address the client used."""
        if self.public_url:
            return self.public_url
        return request.host_url.rstrip("/")

    def offer(self, slug: str, index: int, *, live: bool = False) -> ListedOffer:
        """Offer `index` at the current price epoch, with the stock its store has left after the
        sandbox's orders (sandbox.inventory); live lookups also apply price_drift."""
        knobs = self.knobs.get(slug)
        offer = self.world.offer(
            slug,
            index,
            price_epoch=knobs.price_epoch + self.clock_epochs(),
            price_drift=knobs.price_drift if live else 0.0,
        )
        if not offer.tracks_stock:
            return offer
        left = self.orders.stock.left(slug, index, offer.stock)
        if left == offer.stock:
            return offer
        return replace(offer, stock=left, drawn=offer.stock - left)

    def malformation(self, slug: str, index: int) -> str | None:
        """The malformation record `index` carries at the current malformed_rate, if any."""
        return self.world.malformations(slug, self.knobs.get(slug).malformed_rate).get(index)

    def finish_placement(
        self,
        slug: str,
        plan: PlacementPlan,
        order: SandboxOrder,
        reply: Response,
        failure: Response,
    ) -> Response:
        """Apply the order faults that come after the order exists: the marketplace cancels it
        (cancel_next_orders; the reply was rendered before, so it still shows it accepted), the
        reply is held back (order_reply_delay_ms), or replaced by `failure`, a 500 in the
        marketplace's own error shape (fail_after_next_orders)."""
        fail_after, cancel_after = self.knobs.take_after_placement(slug)
        if cancel_after:
            step = self.knobs.get(slug).order_step_seconds
            self.orders.cancel(order, step, reason="declined", by_marketplace=True)
        self.knobs.pause(plan.reply_delay_s)
        return failure if fail_after else reply

    def finish_cancel(self, plan: CancelPlan, reply: Response, failure: Response) -> Response:
        """The cancel already happened: hold the reply back, or answer `failure` (a 500)."""
        self.knobs.pause(plan.reply_delay_s)
        return failure if plan.fail_after else reply

    def image_url(self, request: Request, offer: ListedOffer) -> str:
        """Absolute URL of the product's generated image."""
        return f"{self.site_url(request)}/_sandbox/images/{offer.product.key}.svg"


def _etags(header: str) -> set[str]:
    """The entity tags of an If-None-Match header, weak ones compared by their opaque part."""
    return {tag.strip().removeprefix("W/") for tag in header.split(",") if tag.strip()}


def conditional_page(
    ctx: SandboxContext,
    request: Request,
    slug: str,
    indexes: range,
    build: Callable[[], Response],
) -> Response:
    """A catalog page answered the way Express answers every `res.send`: an ETag on the 200, and
    304 Not Modified without a body when the request's If-None-Match holds it (weak
    comparison; Express sends no Last-Modified for JSON)."""
    etag = ctx.page_validator(request, slug, indexes)
    headers = {"ETag": etag}
    if_none_match = request.headers.get("If-None-Match")
    if if_none_match is not None:
        tags = _etags(if_none_match)
        if "*" in tags or etag.removeprefix("W/") in tags:
            return Response(status=304, headers=headers)
    response = build()
    response.headers.update(headers)
    return response


def conditional_catalog(
    ctx: SandboxContext, request: Request, slug: str, build: Callable[[], Response]
) -> Response:
    """A whole-catalog GET answered the way web servers and CDNs answer for a file: ETag and
    Last-Modified on every 200, and 304 Not Modified without a body when the client's
    If-None-Match holds the current ETag, or (without If-None-Match) its If-Modified-Since is not
    older than Last-Modified (RFC 9110, 13.1)."""
    etag, modified = ctx.catalog_validators(request, slug)
    headers = {
        "ETag": etag,
        "Last-Modified": formatdate(modified, usegmt=True),
        "Cache-Control": "no-cache",
    }
    if_none_match = request.headers.get("If-None-Match")
    if if_none_match is not None:
        tags = _etags(if_none_match)
        if "*" in tags or etag in tags:
            return Response(status=304, headers=headers)
    elif request.headers.get("If-Modified-Since"):
        try:
            since = parsedate_to_datetime(request.headers["If-Modified-Since"]).timestamp()
        except (TypeError, ValueError):
            since = None
        if since is not None and modified <= since:
            return Response(status=304, headers=headers)
    response = build()
    response.headers.update(headers)
    return response


class MarketplaceService:
    """Base of the six sandbox marketplaces: each declares its routes, relative to /<slug>."""

    slug: ClassVar[str]
    # (path relative to /<slug>, handler method name, HTTP methods)
    routes: ClassVar[tuple[tuple[str, str, tuple[str, ...]], ...]]

    def __init__(self, ctx: SandboxContext) -> None:
        self.ctx = ctx
        self.profile: MarketplaceProfile = MARKETPLACES_BY_SLUG[self.slug]

    @property
    def count(self) -> int:
        """How many offers the marketplace lists."""
        return self.ctx.world.offer_count(self.slug)

    def base_url(self, request: Request) -> str:
        """The marketplace's base URL (what marketplaces.toml calls base_url)."""
        return f"{self.ctx.site_url(request)}/{self.slug}"


class JsonRecordCatalog(MarketplaceService, ABC):
    """A marketplace whose catalog records are JSON objects, each rendered from one offer and
    its malformation kind (DummyJSON, Fake Store, bazaar)."""

    @abstractmethod
    def render_record(
        self, request: Request, offer: ListedOffer, kind: str | None
    ) -> dict[str, Any]:
        """`offer` as one record of the format, malformed as `kind` says."""

    def product_record(self, request: Request, index: int, *, live: bool = False) -> dict[str, Any]:
        """Offer `index` as a record, malformed when its slot says so (`live`: price_drift
        applies)."""
        offer = self.ctx.offer(self.slug, index, live=live)
        return self.render_record(request, offer, self.ctx.malformation(self.slug, index))

    def rendered_record(self, request: Request, index: int) -> tuple[int, bytes]:
        """Catalog record `index` as sent, and the stamp it was rendered at."""
        offer = self.ctx.offer(self.slug, index)
        kind = self.ctx.malformation(self.slug, index)
        record = self.render_record(request, offer, kind)
        return record_stamp(offer.price_version, kind), encode_record_json(record)
