"""An order worker does its warm-up once, at start: adapters (an HTTP client each) for every
active marketplace, the Stripe client, the shared SSL context; and it never loads the assistant's
embedding model, which only the site's processes need (memory per worker stays small)."""

from __future__ import annotations

import json
import subprocess
import sys

import sqlalchemy as sa

from commerce.models import Marketplace
from onecart.settings import REPO_ROOT
from tests.checkout.shop import Shop

PROBE = """
import json, sys
from adapters.public_addresses import shared_ssl_context
from commerce import marketplace_access
from storefront.jobs import preload_order_code

preload_order_code()
adapters = list(marketplace_access._adapters.values())
print(json.dumps({
    "slugs": sorted(adapter.config.slug for adapter in adapters),
    "shared_ssl": all(
        adapter.http.client._transport._pool._ssl_context is shared_ssl_context()
        for adapter in adapters if getattr(adapter, "http", None) is not None
    ),
    "heavy": sorted(m for m in ("torch", "sentence_transformers", "transformers") if m in sys.modules),
}))
"""


def test_order_worker_preloads_adapters_and_not_the_embedding_model(shop: Shop) -> None:
    with shop.session() as session:
        active = sorted(
            session.scalars(sa.select(Marketplace.slug).where(Marketplace.active.is_(True)))
        )
    assert active
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        env={**shop.worker_env, "PATH": "/usr/bin:/bin"},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["slugs"] == active
    assert found["shared_ssl"] is True
    assert found["heavy"] == []
