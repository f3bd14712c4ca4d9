"""The checkout benchmarks' running world: their own sandbox, localstripe, a migrated and seeded
storefront DB, the real site under uWSGI, `rq worker-pool` and `rq cron storefront.cron` on a
queue of their own; everything started here is stopped (by pid) when the block ends.

bench/checkout_bench.py measures it; bench/money_soak.py puts faults in it. `stripe_front` lets
a caller put something between the app and localstripe (the soak's fault proxy): it gets
localstripe's address and returns the address the site, the workers and the cron use.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.checkout_setup import CART_MARKETPLACES, CREDENTIALS, REPO_ROOT, seed_database
from onecart import processes
from onecart.settings import get_settings
from onecart.site_server import site_server_argv


@dataclass
class World:
    """Where everything runs, and the pids of what was started."""

    run_id: str
    home: Path
    db_url: str
    redis_url: str
    queue: str
    sandbox_url: str
    # localstripe itself (the checks read it here), and what the app talks to.
    stripe_url: str
    app_stripe_url: str
    site_url: str
    policy: dict[str, Any]
    products: dict[str, list[int]]
    env: dict[str, str]
    pids: dict[str, int] = field(default_factory=dict)

    def knobs(self, slug: str, **values: Any) -> None:
        """Set sandbox knobs of one marketplace (or "all")."""
        httpx.post(
            f"{self.sandbox_url}/_sandbox/knobs/{slug}", json=values, timeout=10
        ).raise_for_status()


@contextmanager
def checkout_world(
    *,
    run_id: str,
    database_url: str | None,
    workers: int,
    latency_ms: int,
    policy: Mapping[str, Any],
    worker_env: Mapping[str, str] | None = None,
    stripe_front: Callable[[str], str] | None = None,
    keep: bool = False,
    name: str = "bench-checkout",
) -> Iterator[World]:
    """Start the world (see the module docstring), yield it, stop it and clean its queue."""
    home = REPO_ROOT / "var" / f"{name}-{run_id}"
    home.mkdir(parents=True, exist_ok=True)
    saved_env = {key: os.environ.get(key) for key in ("ONECART_HOME", "STRIPE_API_BASE")}
    os.environ["ONECART_HOME"] = str(home)
    get_settings.cache_clear()
    settings = get_settings()
    db_url = database_url or f"sqlite:///{home / 'storefront.db'}"
    queue = f"{name}-{run_id}"
    started: list[int] = []
    try:
        sandbox_port = processes.free_port()
        sandbox = processes.start_process(
            settings,
            f"{name}-sandbox",
            processes.sandbox_argv("127.0.0.1", sandbox_port, offers=6000, seed=42),
        )
        started.append(sandbox.pid)
        sandbox_url = f"http://127.0.0.1:{sandbox_port}"
        stripe_port = processes.free_port()
        stripe_proc = processes.start_process(
            settings,
            f"{name}-localstripe",
            processes.localstripe_argv("127.0.0.1", stripe_port, from_scratch=True),
        )
        started.append(stripe_proc.pid)
        stripe_url = f"http://127.0.0.1:{stripe_port}"
        processes.wait_for_http(f"{sandbox_url}/_sandbox/health", timeout=120, process=sandbox)
        processes.wait_for_http(f"{stripe_url}/v1/customers", timeout=60, process=stripe_proc)
        app_stripe_url = stripe_front(stripe_url) if stripe_front else stripe_url
        os.environ["STRIPE_API_BASE"] = app_stripe_url
        get_settings.cache_clear()

        print("seeding the storefront DB", file=sys.stderr)
        products = seed_database(db_url, sandbox_url)
        env = {
            "DATABASE_URL": db_url,
            "REDIS_URL": settings.redis_url,
            "STRIPE_API_BASE": app_stripe_url,
            "ONECART_HOME": str(home),
            "ONECART_SANDBOX_URL": sandbox_url,
            **CREDENTIALS,
            **(worker_env or {}),
        }
        site_port = processes.free_port()
        app_config = {
            "ORDER_JOB_POLICY": dict(policy),
            "RATE_LIMIT_PREFIX": f"bench:{run_id}:",
            "LOGIN_LIMIT_PER_IP": 100000,
            "LOGIN_LIMIT_PER_ACCOUNT": 100000,
        }
        site = processes.start_process(
            settings,
            f"{name}-site",
            site_server_argv(f"127.0.0.1:{site_port}", 2, 4),
            # The checkout never reaches the assistant: no embedding model per worker.
            env={
                **env,
                "ONECART_SITE_CONFIG": json.dumps(app_config),
                "ONECART_ASSISTANT_WARM_UP": "0",
            },
        )
        started.append(site.pid)
        pool = processes.start_process(
            settings,
            f"{name}-worker-pool",
            [
                str(processes.VENV_BIN / "rq"),
                "worker-pool",
                "-n",
                str(workers),
                "-w",
                "storefront.jobs.OrderWorker",
                "--url",
                settings.redis_url,
                queue,
            ],
            env=env,
        )
        started.append(pool.pid)
        cron = processes.start_process(
            settings,
            f"{name}-cron",
            [
                str(processes.VENV_BIN / "rq"),
                "cron",
                "storefront.cron",
                "--connection-class",
                "storefront.redis_connection.PatientRedis",
                "--url",
                settings.redis_url,
            ],
            env={**env, "ONECART_ORDER_JOB_POLICY": json.dumps(dict(policy))},
        )
        started.append(cron.pid)
        site_url = f"http://127.0.0.1:{site_port}"
        # /healthz answers 503 here (no Meilisearch in this bench): the login page means "up".
        processes.wait_for_http(f"{site_url}/login", timeout=60, process=site)
        for slug in CART_MARKETPLACES:
            httpx.post(
                f"{sandbox_url}/_sandbox/knobs/{slug}",
                json={"latency_ms": latency_ms, "cancel_rate": 0},
                timeout=10,
            ).raise_for_status()
        yield World(
            run_id=run_id,
            home=home,
            db_url=db_url,
            redis_url=settings.redis_url,
            queue=queue,
            sandbox_url=sandbox_url,
            stripe_url=stripe_url,
            app_stripe_url=app_stripe_url,
            site_url=site_url,
            policy=dict(policy),
            products=products,
            env=env,
            pids={
                "site": site.pid,
                "workers": pool.pid,
                "cron": cron.pid,
                "sandbox": sandbox.pid,
                "localstripe": stripe_proc.pid,
            },
        )
    finally:
        # The site, the workers and cron side by side, then the sandbox and localstripe they
        # use (each takes a second or more to exit; one after the other, they added up).
        processes.stop_pids(started[2:][::-1])
        processes.stop_pids(started[:2][::-1])
        import redis

        connection = redis.Redis.from_url(settings.redis_url)
        try:
            for key in connection.scan_iter(match=f"*{queue}*"):
                connection.delete(key)
        finally:
            connection.close()
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        get_settings.cache_clear()
        if not keep:
            shutil.rmtree(home, ignore_errors=True)
