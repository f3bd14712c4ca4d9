"""Stripe's events signed and posted to /webhooks/stripe (`post_event`, for every test of the
webhook), and its `charge.dispute.*` events as Stripe sends them (the whole Dispute object, per
docs.stripe.com/api/disputes/object)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from typing import Any

from flask import Flask

from onecart.settings import get_settings

EVIDENCE_DUE = 1_767_225_599  # 2025-12-31 23:59:59 UTC


def dispute_object(
    dispute_id: str,
    *,
    charge: str,
    intent: str | None,
    amount: int,
    status: str,
    currency: str = "usd",
    reason: str = "fraudulent",
    withdrawn: bool = False,
    reinstated: bool = False,
) -> dict[str, Any]:
    """A Dispute object; `withdrawn`/`reinstated` list the balance transactions Stripe adds."""
    movements = []
    if withdrawn:
        movements.append({"id": f"txn_{uuid.uuid4().hex[:14]}", "amount": -amount})
    if reinstated:
        movements.append({"id": f"txn_{uuid.uuid4().hex[:14]}", "amount": amount})
    return {
        "id": dispute_id,
        "object": "dispute",
        "amount": amount,
        "balance_transactions": [
            {"object": "balance_transaction", "currency": currency, "type": "adjustment", **m}
            for m in movements
        ],
        "charge": charge,
        "created": int(time.time()),
        "currency": currency,
        "evidence": {"uncategorized_text": None},
        "evidence_details": {
            "due_by": EVIDENCE_DUE,
            "has_evidence": False,
            "past_due": False,
            "submission_count": 0,
        },
        "is_charge_refundable": False,
        "livemode": False,
        "metadata": {},
        "payment_intent": intent,
        "reason": reason,
        "status": status,
    }


def charge_of(intent_id: str) -> str:
    """The id of the PaymentIntent's charge at (local)Stripe."""
    from tests.checkout.shop import stripe_client

    intent = stripe_client().v1.payment_intents.retrieve(
        intent_id, params={"expand": ["latest_charge"]}
    )
    return str(intent.latest_charge.id)


def new_dispute_id() -> str:
    return f"du_{uuid.uuid4().hex[:24]}"


def post_event(
    app: Flask,
    event_type: str,
    data: dict[str, Any],
    *,
    created: int | None = None,
    event_id: str | None = None,
) -> Any:
    """Stripe's signed event of `event_type` carrying `data`, made at `created` (default now)."""
    payload = {
        "id": event_id or f"evt_{uuid.uuid4().hex[:16]}",
        "object": "event",
        "type": event_type,
        "created": created or int(time.time()),
        "data": {"object": data},
    }
    body = json.dumps(payload).encode()
    timestamp = int(time.time())
    secret = get_settings().stripe_webhook_secret.encode()
    signature = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return app.test_client().post(
        "/webhooks/stripe",
        data=body,
        headers={
            "Stripe-Signature": f"t={timestamp},v1={signature}",
            "Content-Type": "application/json",
        },
    )
