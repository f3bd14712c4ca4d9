"""Redis-backed sliding-window rate limits (login, sign-up, support, password reset, assistant).

Each (rule, key) pair is a Redis sorted set of event timestamps; events older than the window
are trimmed on every touch and the set expires with the window, so Redis never accumulates keys.
Checking and recording are one atomic step (a Lua script: :meth:`SlidingWindowLimiter.acquire`),
so concurrent requests cannot all pass a check made before any of them was counted.

When Redis is unreachable the limiter *fails open*: login keeps working and a warning is logged.
Locking every shopper out because a cache is down would turn a Redis outage into a site outage;
argon2's cost still slows a guesser while the limiter is blind.
"""

from __future__ import annotations

import logging
import math
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import redis
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

REDIS_SOCKET_TIMEOUT_S = 0.5
DEFAULT_PREFIX = "onecart:rl:"


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most `limit` events per `window_seconds` for one key; `name` appears in Redis keys."""

    name: str
    limit: int
    window_seconds: int


@dataclass(frozen=True, slots=True)
class RateLimitDecision:
    """Whether the next event may happen; when not, which rule said no and for how long."""

    allowed: bool
    retry_after: int = 0
    limited_by: str | None = None
    degraded: bool = False
    # The recorded events of an allowed `acquire` (for `release`); empty otherwise.
    token: str = ""


# KEYS: one sorted set per rule; ARGV: now, member, then (limit, window) per key. Trims each set,
# and either records `member` in every set (returns {0, 0}) or nothing (returns the 1-based index
# of the first full set and the time of its oldest event).
_ACQUIRE_LUA = """
local now = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  local limit = tonumber(ARGV[1 + 2 * i])
  local window = tonumber(ARGV[2 + 2 * i])
  redis.call('ZREMRANGEBYSCORE', key, 0, now - window)
  if redis.call('ZCARD', key) >= limit then
    local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    return {i, oldest[2] or ARGV[1]}
  end
end
for i, key in ipairs(KEYS) do
  local window = tonumber(ARGV[2 + 2 * i])
  redis.call('ZADD', key, now, ARGV[2])
  redis.call('EXPIRE', key, math.ceil(window) + 1)
end
return {0, 0}
"""


def redis_client_from_url(url: str) -> redis.Redis:
    """A Redis client with short timeouts: a slow Redis must not stall a login for long."""
    return redis.Redis.from_url(
        url,
        socket_timeout=REDIS_SOCKET_TIMEOUT_S,
        socket_connect_timeout=REDIS_SOCKET_TIMEOUT_S,
    )


class SlidingWindowLimiter:
    """Counts events per (rule, key) in a sliding window kept in Redis sorted sets."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        prefix: str = DEFAULT_PREFIX,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.clock = clock
        self._script: Any = None

    def _key(self, rule: RateLimit, key: str) -> str:
        return f"{self.prefix}{rule.name}:{key}"

    def acquire(
        self, events: Sequence[tuple[RateLimit, str]], *, token: str = ""
    ) -> RateLimitDecision:
        """Check every (rule, key) and, when all allow it, record one event under each — in one
        atomic step (a Lua script), so concurrent requests can never all pass a check made
        before any of them was recorded. `decision.token` names the recorded events for
        :meth:`release` (`token`, when given: one attempt counted in several steps is released
        with one token)."""
        now = self.clock()
        token = token or f"{now:.6f}:{secrets.token_hex(8)}"
        keys = [self._key(rule, key) for rule, key in events]
        args: list[str | int | float] = [now, token]
        for rule, _key in events:
            args.extend((rule.limit, rule.window_seconds))
        try:
            refused = self._acquire_script()(keys=keys, args=args)
        except RedisError as exc:
            logger.warning("rate limiter unavailable, allowing the request: %s", exc)
            return RateLimitDecision(allowed=True, degraded=True)
        index, oldest_at = int(refused[0]), float(refused[1])
        if index == 0:
            return RateLimitDecision(allowed=True, token=token)
        rule = events[index - 1][0]
        retry_after = max(1, math.ceil(oldest_at + rule.window_seconds - now))
        return RateLimitDecision(allowed=False, retry_after=retry_after, limited_by=rule.name)

    def release(self, events: Sequence[tuple[RateLimit, str]], token: str) -> None:
        """Take back the events an :meth:`acquire` recorded (the attempt turned out not to count)."""
        if not token:
            return
        try:
            pipe = self.client.pipeline(transaction=True)
            for rule, key in events:
                pipe.zrem(self._key(rule, key), token)
            pipe.execute()
        except RedisError as exc:
            logger.warning("rate limiter unavailable, could not release: %s", exc)

    def _acquire_script(self) -> Any:
        if self._script is None:
            self._script = self.client.register_script(_ACQUIRE_LUA)
        return self._script

    def reset(self, rule: RateLimit, key: str) -> None:
        """Forget every event of one (rule, key)."""
        try:
            self.client.delete(self._key(rule, key))
        except RedisError as exc:
            logger.warning("rate limiter unavailable, could not reset %s: %s", rule.name, exc)


# Defaults: a person mistyping gets several tries; a guesser is slowed to a crawl.
LOGIN_FAILURES_PER_IP = RateLimit("login-ip", limit=30, window_seconds=15 * 60)
LOGIN_FAILURES_PER_ACCOUNT = RateLimit("login-account", limit=5, window_seconds=15 * 60)
# One account's attempts from all clients together: a guesser with many addresses (a botnet,
# a cloud's pool) otherwise gets LOGIN_FAILURES_PER_ACCOUNT per address without end.
LOGIN_FAILURES_ACROSS_CLIENTS = RateLimit("login-account-all", limit=50, window_seconds=60 * 60)


class LoginRateLimiter:
    """Login attempts counted per client IP, per (account, client IP) and per account.

    Each attempt takes its slot atomically *before* the password is checked
    (:meth:`begin_attempt`), so concurrent guesses cannot all pass one check; a correct password
    gives the slot back and forgives that client's failures on the account
    (:meth:`record_success`). The account limit is keyed with the client, so nobody can lock a
    shopper out by failing logins from elsewhere; the per-IP limit still caps what one client
    can try across accounts (a successful login never clears it, so one valid account can't
    launder an IP's failed guesses at others). The account's attempts from every client
    together are capped too (`across_clients`), against guessers with many addresses; while
    that cap is full, a device the account is known on (a browser it signed in on before,
    storefront.auth.known_devices) is counted under its own (account, device) limit instead,
    so strangers filling the cap do not lock the owner's own browser out.
    """

    def __init__(
        self,
        limiter: SlidingWindowLimiter,
        *,
        per_ip: RateLimit = LOGIN_FAILURES_PER_IP,
        per_account: RateLimit = LOGIN_FAILURES_PER_ACCOUNT,
        across_clients: RateLimit = LOGIN_FAILURES_ACROSS_CLIENTS,
    ) -> None:
        self.limiter = limiter
        self.per_ip = per_ip
        self.per_account = per_account
        self.across_clients = across_clients

    def _events(self, ip: str, account_key: str) -> list[tuple[RateLimit, str]]:
        return [(self.per_ip, ip), (self.per_account, f"{account_key}|{ip}")]

    def _all_events(
        self, ip: str, account_key: str, device: str | None
    ) -> list[tuple[RateLimit, str]]:
        events = [*self._events(ip, account_key), (self.across_clients, account_key)]
        if device:
            events.append((self.per_account, f"{account_key}|device:{device}"))
        return events

    def begin_attempt(
        self, ip: str, account_key: str, device: str | None = None
    ) -> RateLimitDecision:
        """Take one attempt's slot under the client's limits and the account's, or refuse when
        one is full (nothing is counted then). `device`: this browser's id when the account
        is known on it (used only while the account's cap across clients is full)."""
        own = self.limiter.acquire(self._events(ip, account_key))
        if not own.allowed or own.degraded:
            return own
        shared = self.limiter.acquire([(self.across_clients, account_key)], token=own.token)
        if shared.allowed:
            return own
        if device:
            known = self.limiter.acquire(
                [(self.per_account, f"{account_key}|device:{device}")], token=own.token
            )
            if known.allowed:
                return own
            shared = known
        self.limiter.release(self._events(ip, account_key), own.token)
        return shared

    def record_success(
        self, ip: str, account_key: str, attempt: RateLimitDecision, device: str | None = None
    ) -> None:
        """A correct password: this attempt does not count, and the client's failures on the
        account are forgiven (not the account's from other clients)."""
        self.limiter.release(self._all_events(ip, account_key, device), attempt.token)
        self.limiter.reset(self.per_account, f"{account_key}|{ip}")
