"""Redis-backed sliding-window rate limits (login attempts per IP and per account).

Each (rule, key) pair is a Redis sorted set of event timestamps; events older than the window
are trimmed on every touch and the set expires with the window, so Redis never accumulates keys.

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

    def _key(self, rule: RateLimit, key: str) -> str:
        return f"{self.prefix}{rule.name}:{key}"

    def check(self, checks: Sequence[tuple[RateLimit, str]]) -> RateLimitDecision:
        """Whether one more event is allowed under every (rule, key); records nothing."""
        now = self.clock()
        try:
            pipe = self.client.pipeline(transaction=True)
            for rule, key in checks:
                redis_key = self._key(rule, key)
                pipe.zremrangebyscore(redis_key, 0, now - rule.window_seconds)
                pipe.zcard(redis_key)
                pipe.zrange(redis_key, 0, 0, withscores=True)
            results = pipe.execute()
        except RedisError as exc:
            logger.warning("rate limiter unavailable, allowing the request: %s", exc)
            return RateLimitDecision(allowed=True, degraded=True)
        for index, (rule, _key) in enumerate(checks):
            count = results[index * 3 + 1]
            oldest = results[index * 3 + 2]
            if count >= rule.limit:
                oldest_at = oldest[0][1] if oldest else now
                retry_after = max(1, math.ceil(oldest_at + rule.window_seconds - now))
                return RateLimitDecision(
                    allowed=False, retry_after=retry_after, limited_by=rule.name
                )
        return RateLimitDecision(allowed=True)

    def hit(self, events: Sequence[tuple[RateLimit, str]]) -> bool:
        """Record one event under each (rule, key); False when Redis could not be reached."""
        now = self.clock()
        try:
            pipe = self.client.pipeline(transaction=True)
            for rule, key in events:
                redis_key = self._key(rule, key)
                pipe.zremrangebyscore(redis_key, 0, now - rule.window_seconds)
                pipe.zadd(redis_key, {f"{now:.6f}:{secrets.token_hex(4)}": now})
                pipe.expire(redis_key, rule.window_seconds + 1)
            pipe.execute()
        except RedisError as exc:
            logger.warning("rate limiter unavailable, event not counted: %s", exc)
            return False
        return True

    def reset(self, rule: RateLimit, key: str) -> None:
        """Forget every event of one (rule, key)."""
        try:
            self.client.delete(self._key(rule, key))
        except RedisError as exc:
            logger.warning("rate limiter unavailable, could not reset %s: %s", rule.name, exc)


# Defaults: a person mistyping gets several tries; a guesser is slowed to a crawl.
LOGIN_FAILURES_PER_IP = RateLimit("login-ip", limit=30, window_seconds=15 * 60)
LOGIN_FAILURES_PER_ACCOUNT = RateLimit("login-account", limit=5, window_seconds=15 * 60)


class LoginRateLimiter:
    """Failed logins counted per client IP and per account (see accounts.login_account_key).

    Only failures count; a successful login clears the account's counter (not the IP's, so one
    valid account can't be used to launder an IP's failed guesses at others).
    """

    def __init__(
        self,
        limiter: SlidingWindowLimiter,
        *,
        per_ip: RateLimit = LOGIN_FAILURES_PER_IP,
        per_account: RateLimit = LOGIN_FAILURES_PER_ACCOUNT,
    ) -> None:
        self.limiter = limiter
        self.per_ip = per_ip
        self.per_account = per_account

    def check(self, ip: str, account_key: str) -> RateLimitDecision:
        """May this IP try this account now?"""
        return self.limiter.check([(self.per_ip, ip), (self.per_account, account_key)])

    def record_failure(self, ip: str, account_key: str) -> None:
        """Count a failed attempt against both the IP and the account."""
        self.limiter.hit([(self.per_ip, ip), (self.per_account, account_key)])

    def record_success(self, account_key: str) -> None:
        """A correct password: the account's failures are forgiven."""
        self.limiter.reset(self.per_account, account_key)
