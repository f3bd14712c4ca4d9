"""The sliding-window limiter against the real Redis (settings.redis_url), and its fail-open mode."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from commerce.rate_limit import (
    LoginRateLimiter,
    RateLimit,
    SlidingWindowLimiter,
    redis_client_from_url,
)
from onecart import processes
from onecart.settings import Settings


class SteppingClock:
    """A clock the test moves by hand (no sleeping, no wall-clock assertions)."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> SteppingClock:
    return SteppingClock()


@pytest.fixture
def limiter(
    settings: Settings, rate_limit_prefix: str, clock: SteppingClock
) -> SlidingWindowLimiter:
    return SlidingWindowLimiter(
        redis_client_from_url(settings.redis_url), prefix=rate_limit_prefix, clock=clock
    )


def test_events_beyond_the_limit_are_refused_until_the_window_slides(
    limiter: SlidingWindowLimiter, clock: SteppingClock
) -> None:
    rule = RateLimit("test", limit=3, window_seconds=60)
    for _ in range(3):
        assert limiter.acquire([(rule, "k")]).allowed
        clock.now += 10

    refused = limiter.acquire([(rule, "k")])
    assert not refused.allowed and refused.limited_by == "test"
    assert refused.retry_after == 30  # the first event (t=0) leaves the window at t=60

    clock.now += 30
    assert limiter.acquire([(rule, "k")]).allowed
    assert limiter.acquire([(rule, "other-key")]).allowed


def test_keys_live_in_redis_under_the_prefix_and_expire(
    limiter: SlidingWindowLimiter, rate_limit_prefix: str
) -> None:
    rule = RateLimit("test", limit=3, window_seconds=60)
    taken = limiter.acquire([(rule, "k")])
    key = f"{rate_limit_prefix}test:k"
    assert limiter.client.zcard(key) == 1
    assert 0 < limiter.client.ttl(key) <= 61
    limiter.release([(rule, "k")], taken.token)
    assert limiter.client.zcard(key) == 0
    limiter.acquire([(rule, "k")])
    limiter.reset(rule, "k")
    assert limiter.client.exists(key) == 0


def test_a_refused_acquire_records_nothing_under_any_rule(
    limiter: SlidingWindowLimiter, rate_limit_prefix: str
) -> None:
    full = RateLimit("full", limit=1, window_seconds=60)
    other = RateLimit("other", limit=5, window_seconds=60)
    assert limiter.acquire([(full, "k")]).allowed
    assert limiter.acquire([(other, "k"), (full, "k")]).limited_by == "full"
    assert limiter.client.zcard(f"{rate_limit_prefix}other:k") == 0


def test_login_limiter_counts_attempts_per_ip_and_per_account_and_client(
    limiter: SlidingWindowLimiter,
) -> None:
    login_limiter = LoginRateLimiter(
        limiter,
        per_ip=RateLimit("ip", limit=5, window_seconds=600),
        per_account=RateLimit("account", limit=2, window_seconds=600),
    )
    assert login_limiter.begin_attempt("10.0.0.1", "user:1").allowed
    assert login_limiter.begin_attempt("10.0.0.1", "user:1").allowed
    assert login_limiter.begin_attempt("10.0.0.1", "user:1").limited_by == "account"
    # Another client is not locked out of the account, nor is the client out of other accounts.
    success = login_limiter.begin_attempt("10.0.0.3", "user:1")
    assert success.allowed
    assert login_limiter.begin_attempt("10.0.0.1", "user:2").allowed

    # A correct password gives the attempt back and forgives that client's failures.
    failed = login_limiter.begin_attempt("10.0.0.3", "user:1")
    assert failed.allowed
    login_limiter.record_success("10.0.0.3", "user:1", success)
    assert login_limiter.begin_attempt("10.0.0.3", "user:1").allowed
    assert login_limiter.begin_attempt("10.0.0.3", "user:1").allowed

    for account in ("user:3", "user:4", "user:5", "user:7", "user:8"):
        login_limiter.begin_attempt("10.0.0.9", account)
    assert login_limiter.begin_attempt("10.0.0.9", "user:6").limited_by == "ip"


def test_acquire_is_atomic_under_concurrency(limiter: SlidingWindowLimiter) -> None:
    """20 threads acquiring at once: exactly the limit get through (issue 12's race)."""
    rule = RateLimit("race", limit=5, window_seconds=60)
    barrier = threading.Barrier(20)

    def attempt() -> bool:
        barrier.wait()
        return limiter.acquire([(rule, "k")]).allowed

    with ThreadPoolExecutor(max_workers=20) as pool:
        outcomes = list(pool.map(lambda _i: attempt(), range(20)))
    assert outcomes.count(True) == 5


def test_redis_down_fails_open_with_a_warning(
    caplog: pytest.LogCaptureFixture, rate_limit_prefix: str
) -> None:
    dead = SlidingWindowLimiter(
        redis_client_from_url(f"redis://127.0.0.1:{processes.free_port()}/0"),
        prefix=rate_limit_prefix,
    )
    rule = RateLimit("test", limit=1, window_seconds=60)
    with caplog.at_level(logging.WARNING, logger="commerce.rate_limit"):
        decision = dead.acquire([(rule, "k")])
        dead.release([(rule, "k")], "token")
    assert decision.allowed and decision.degraded
    assert "rate limiter unavailable" in caplog.text
