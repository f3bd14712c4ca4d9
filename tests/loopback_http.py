"""One HTTP client for the test process's calls to the services of the run on loopback (the
sandbox's knobs, resets and order records).

`httpx.post(...)` and `httpx.get(...)` make a client per call, and each client loads the CA
bundle into an SSL context of its own before its first request, plain HTTP included: ~55 ms of
CPU a call, paid by every checkout test's teardown (the sandbox's reset) and by each knob a test
turns. This client is made once and keeps its connections; its SSL context is the one the
marketplace clients of the process share (adapters.public_addresses.shared_ssl_context)."""

from __future__ import annotations

from functools import lru_cache

import httpx

from adapters.public_addresses import shared_ssl_context


@lru_cache(maxsize=1)
def loopback_http() -> httpx.Client:
    """The process's client for the run's own services (per-call timeouts as before: 10 s)."""
    return httpx.Client(timeout=10, verify=shared_ssl_context())
