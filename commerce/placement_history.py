"""How long each marketplace takes to place a sub-order, from the recent placements: checkout
enqueues the slowest sub-orders first (longest-processing-time-first), so with fewer workers than
sub-orders the slow marketplace is not left waiting behind fast ones.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from commerce.order_models import MarketplaceOrder

# How many recent placements per marketplace estimate its placement time.
PLACEMENT_HISTORY = 50


def expected_placement_seconds(session: Session, marketplace_ids: list[int]) -> dict[int, float]:
    """Each marketplace's average placement time over its recent placements (seconds; 0 when
    it has none yet).

    Checkout enqueues the slowest sub-orders first (longest-processing-time-first), so with
    fewer workers than sub-orders the slow marketplace is not left waiting behind fast ones.
    """
    durations: dict[int, list[float]] = {marketplace_id: [] for marketplace_id in marketplace_ids}
    if not marketplace_ids:
        return {}
    rows = session.execute(
        sa.select(
            MarketplaceOrder.marketplace_id,
            MarketplaceOrder.placing_started_at,
            MarketplaceOrder.placed_at,
        )
        .where(
            MarketplaceOrder.marketplace_id.in_(marketplace_ids),
            MarketplaceOrder.placed_at.is_not(None),
            MarketplaceOrder.placing_started_at.is_not(None),
        )
        .order_by(MarketplaceOrder.id.desc())
        .limit(PLACEMENT_HISTORY * len(marketplace_ids))
    ).all()
    for marketplace_id, started, placed in rows:
        samples = durations[marketplace_id]
        if len(samples) < PLACEMENT_HISTORY and placed >= started:
            samples.append((placed - started).total_seconds())
    return {
        marketplace_id: (sum(samples) / len(samples) if samples else 0.0)
        for marketplace_id, samples in durations.items()
    }
