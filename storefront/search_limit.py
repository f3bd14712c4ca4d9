"""How fast one client may ask for listings (GET /search and /api/search): a token bucket per
client address (an IPv6 client's /64, storefront.limits.client_key), kept in each site
process's memory.

Every listing makes Meilisearch work, so without a limit one client (a scraper, a loop) can keep
the search engine busy for every shopper. SEARCH_LIMIT is "count/seconds": a client may send a
burst of `count` listings, refilled at count/seconds per second (the default, 300/30, is 10 a
second sustained, far above what a person types or pages through). Over it the answer is 429
with Retry-After.

Not Redis like the form limits (storefront.limits): a listing must not pay a network round
trip to be counted (the budget is 0.05 ms of CPU per listing, bench.listing_cpu; this costs a
dictionary look-up under a lock). So the buckets are per site process: with N workers a client
gets up to N times the rate. That suffices for what the limit is for, keeping one client from
monopolising search, not an exact quota. Behind a proxy, ONECART_TRUSTED_PROXIES must be set
(PROXY_FIX_X_FOR), or every shopper is the proxy's one address and shares one bucket.

The benchmarks set SEARCH_LIMIT to a rate no run reaches (BENCH_SEARCH_LIMIT): they send
thousands of listings from one address, and the limit still runs, so its cost is in their
figures. "off" turns it off.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict

from flask import current_app, request
from werkzeug.exceptions import TooManyRequests

from storefront.limits import client_key

DEFAULT_SEARCH_LIMIT = "300/30"
# What bench/ sets: no benchmark run sends this many listings from one address.
BENCH_SEARCH_LIMIT = "1000000000/1"
# Addresses remembered per process; the least recently seen are forgotten first (a forgotten
# client starts again with a full bucket).
MAX_CLIENTS = 20_000

SEARCH_LIMITED_MESSAGE = (
    "You have asked for many listings in a short while. Please wait a few seconds and try again."
)


class ClientBuckets:
    """Token buckets by client: `capacity` requests at once, refilled at `rate` per second."""

    def __init__(self, capacity: int, rate: float, max_clients: int = MAX_CLIENTS) -> None:
        self.capacity = float(capacity)
        self.rate = rate
        self.max_clients = max_clients
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, client: str, now: float) -> float:
        """Spend one token of `client`'s bucket at time `now` (seconds, monotonic): 0.0 when
        allowed, else how many seconds until a token is there (nothing is spent)."""
        with self._lock:
            tokens, since = self._buckets.get(client, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - since) * self.rate)
            if tokens < 1.0:
                self._buckets[client] = (tokens, now)
                return (1.0 - tokens) / self.rate
            self._buckets[client] = (tokens - 1.0, now)
            self._buckets.move_to_end(client)
            if len(self._buckets) > self.max_clients:
                self._buckets.popitem(last=False)
            return 0.0


def parse_search_limit(text: str) -> ClientBuckets | None:
    """The buckets for a SEARCH_LIMIT text ("count/seconds"); None for "off"."""
    if text.strip().lower() == "off":
        return None
    count, _, seconds = text.partition("/")
    capacity, window = int(count), float(seconds)
    if capacity < 1 or window <= 0:
        raise ValueError(f"SEARCH_LIMIT must be count/seconds with both positive, not {text!r}")
    return ClientBuckets(capacity, capacity / window)


def enforce_search_limit() -> None:
    """Count one listing for this client; 429 Too Many Requests when its bucket is empty."""
    text = str(current_app.config.get("SEARCH_LIMIT") or DEFAULT_SEARCH_LIMIT)
    state = current_app.extensions.get("onecart_search_limit")
    if state is None or state[0] != text:  # the config changed (a test): new buckets
        state = (text, parse_search_limit(text))
        current_app.extensions["onecart_search_limit"] = state
    buckets = state[1]
    if buckets is None:
        return
    wait = buckets.take(client_key(request.remote_addr or ""), time.monotonic())
    if wait:
        raise TooManyRequests(SEARCH_LIMITED_MESSAGE, retry_after=max(1, math.ceil(wait)))
