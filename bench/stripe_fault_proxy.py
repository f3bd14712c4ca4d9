"""A small fault proxy in front of localstripe, for the money soak (bench/money_soak.py).

It forwards every request, and keeps Stripe's idempotency promise that localstripe does not: a
POST carrying an `Idempotency-Key` it has answered before gets the stored answer again, marked
`Idempotent-Replayed: true`, without reaching localstripe (as Stripe replays a key for 24 h).

A held write ("hold") is forwarded, then its answer waits `HOLD_S` before it is sent: the
soak kills the worker waiting for it meanwhile (`holding` is set while it waits).

An armed fault makes one write's outcome unknown: the next POST whose path matches is forwarded
(localstripe does the work: the hold is made, the capture or refund happens), then OneCart is
answered a 500 or has its connection reset. The stripe library retries with the same key; those
retries are failed the same way (without forwarding) until `retries_failed` of them have, so
the gateway sees the call end unknown. A later call with the same key gets the stored answer.
"""

from __future__ import annotations

import contextlib
import re
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

# Headers never copied between the two connections (hop-by-hop, or recomputed here).
_SKIPPED = {"host", "content-length", "connection", "transfer-encoding", "content-encoding"}
STRIPE_RETRIES = 2
HOLD_S = 3.0


@dataclass(frozen=True)
class Reply:
    """A response as forwarded (kept per idempotency key for replays)."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


@dataclass
class ArmedFault:
    """The next POST whose path matches `path` is done upstream, then answered with `mode`
    ("500" or "reset"), or answered late ("hold")."""

    path: re.Pattern[str]
    mode: str
    label: str


@dataclass
class FaultLog:
    """What the proxy did: faults fired (label and path), replays served."""

    fired: list[tuple[str, str]] = field(default_factory=list)
    replays: int = 0


class StripeFaultProxy:
    """See the module docstring. `start(upstream)` returns the proxy's own address."""

    def __init__(self) -> None:
        self.upstream = ""
        self.log = FaultLog()
        self._lock = threading.Lock()
        self._armed: list[ArmedFault] = []
        self._replies: dict[str, Reply] = {}
        # Keys whose retries still fail: key -> (mode, retries left to fail).
        self._poisoned: dict[str, tuple[str, int]] = {}
        self._server: ThreadingHTTPServer | None = None
        self._client = httpx.Client(timeout=60)
        # Set while a held answer waits (the soak kills the worker waiting for it).
        self.holding = threading.Event()

    def start(self, upstream: str) -> str:
        """Serve on a free loopback port in a daemon thread; forward to `upstream`."""
        self.upstream = upstream.rstrip("/")
        proxy = self

        class Handler(_Handler):
            owner = proxy

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        self._client.close()

    def arm(self, path_pattern: str, mode: str, label: str) -> None:
        """Make the next POST matching `path_pattern` end unknown (see the module docstring)."""
        if mode not in ("500", "reset", "hold"):
            raise ValueError(f"unknown fault mode {mode!r}")
        with self._lock:
            self._armed.append(ArmedFault(re.compile(path_pattern), mode, label))

    @property
    def armed(self) -> int:
        """Faults armed that have not fired yet."""
        with self._lock:
            return len(self._armed)

    def disarm(self) -> int:
        """Drop the faults that did not fire; how many there were."""
        with self._lock:
            left = len(self._armed)
            self._armed.clear()
            return left

    # Called by the handler -------------------------------------------------------------------

    def decide(self, method: str, path: str, key: str | None) -> tuple[str, Reply | None]:
        """("forward", None), ("replay", reply), ("fault", mode) as (mode, None) with the
        request forwarded first ("fault-after:<mode>"), or a bare fault ("fault:<mode>")."""
        with self._lock:
            if method != "POST" or not key:
                return "forward", None
            poisoned = self._poisoned.get(key)
            if poisoned is not None:
                mode, left = poisoned
                if left <= 1:
                    del self._poisoned[key]
                else:
                    self._poisoned[key] = (mode, left - 1)
                return f"fault:{mode}", None
            if key in self._replies:
                self.log.replays += 1
                return "replay", self._replies[key]
            bare = path.split("?", 1)[0]
            for index, armed in enumerate(self._armed):
                if armed.path.search(bare):
                    del self._armed[index]
                    if armed.mode != "hold":
                        self._poisoned[key] = (armed.mode, STRIPE_RETRIES)
                    self.log.fired.append((armed.label, bare))
                    return f"fault-after:{armed.mode}", None
            return "forward", None

    def forward(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Reply:
        response = self._client.request(
            method, f"{self.upstream}{path}", headers=headers, content=body
        )
        kept = tuple(
            (name, value)
            for name, value in response.headers.items()
            if name.lower() not in _SKIPPED
        )
        return Reply(response.status_code, kept, response.content)

    def remember(self, key: str | None, reply: Reply) -> None:
        """Keep a write's answer for replays (Stripe keeps every answer but its own 5xx)."""
        if key and reply.status < 500:
            with self._lock:
                self._replies[key] = reply


class _Handler(BaseHTTPRequestHandler):
    owner: StripeFaultProxy
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the soak prints its own summary."""

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _SKIPPED}
        key = self.headers.get("Idempotency-Key")
        action, stored = self.owner.decide(self.command, self.path, key)
        if action == "replay" and stored is not None:
            self._send(stored, replayed=True)
            return
        if action.startswith("fault:"):
            self._fail(action.split(":", 1)[1])
            return
        reply = self.owner.forward(self.command, self.path, headers, body)
        self.owner.remember(key, reply)
        if action == "fault-after:hold":
            self.owner.holding.set()
            time.sleep(HOLD_S)
            self.owner.holding.clear()
            with contextlib.suppress(OSError):  # the worker waiting for it is gone
                self._send(reply, replayed=False)
            return
        if action.startswith("fault-after:"):
            self._fail(action.split(":", 1)[1])
            return
        self._send(reply, replayed=False)

    do_GET = do_POST = do_DELETE = _handle

    def _send(self, reply: Reply, *, replayed: bool) -> None:
        self.send_response(reply.status)
        for name, value in reply.headers:
            if name.lower() != "idempotent-replayed":
                self.send_header(name, value)
        if replayed:
            self.send_header("Idempotent-Replayed", "true")
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)

    def _fail(self, mode: str) -> None:
        if mode == "reset":
            # RST instead of FIN: the client reads "connection reset by peer".
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()
            return
        body = b'{"error": {"type": "api_error", "message": "soak: injected 500"}}'
        self.send_response(500)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
