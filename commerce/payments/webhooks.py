"""Provider webhooks: verified by Stripe's signature scheme, applied once per event id.

Stripe signs ``"{t}.{payload}"`` with HMAC-SHA256 under the endpoint secret and sends
``Stripe-Signature: t=<unix time>,v1=<hex>``; the SDK's ``Webhook.construct_event`` checks it
and the timestamp tolerance. The event id is the primary key of webhook_events, inserted in the
same transaction as the change it causes, so a replayed event changes nothing.
"""

from __future__ import annotations

from typing import Any

import stripe
from psycopg.types.json import Jsonb

from commerce.errors import CommerceError, CommerceInvalidError
from commerce.states import InvalidTransitionError, transition
from tracehub.errors import InvalidError

#: Stripe event type -> our payment state.
EVENT_STATES = {
    "payment_intent.succeeded": "succeeded",
    "payment_intent.amount_capturable_updated": "authorized",
    "payment_intent.payment_failed": "failed",
    "payment_intent.canceled": "cancelled",
}


class StripeSignatureError(CommerceError, InvalidError):
    """The webhook's signature does not verify."""


def apply_stripe_webhook(
    conn: Any, payload: bytes, signature: str, secret: str, tolerance_s: int = 300
) -> dict[str, Any]:
    """Verify and apply one webhook delivery; returns {event_id, outcome}."""
    try:
        event = stripe.Webhook.construct_event(payload, signature, secret, tolerance_s)
    except stripe.SignatureVerificationError as exc:
        raise StripeSignatureError(f"webhook signature does not verify: {exc}") from exc
    except ValueError as exc:
        raise CommerceInvalidError(f"webhook payload is not a JSON event: {exc}") from exc
    event_id, event_type = str(event["id"]), str(event["type"])
    ref = str(event["data"]["object"]["id"])
    row = conn.execute(
        "SELECT payment_id::text FROM payments WHERE provider = 'stripe' AND provider_ref = %s",
        (ref,),
    ).fetchone()
    payment_id = row[0] if row else None
    claimed = conn.execute(
        "INSERT INTO webhook_events (provider, event_id, type, payment_id, outcome, payload)"
        " VALUES ('stripe', %s, %s, %s, 'received', %s) ON CONFLICT DO NOTHING RETURNING 1",
        (event_id, event_type, payment_id, Jsonb(event.to_dict())),
    ).fetchone()
    if claimed is None:
        conn.rollback()
        return {"event_id": event_id, "outcome": "duplicate: already applied"}
    target = EVENT_STATES.get(event_type)
    if payment_id is None or target is None:
        outcome = "ignored: " + ("unknown payment" if payment_id is None else "event type")
    else:
        try:
            transition(conn, "payment", payment_id, target, "stripe-webhook", event_id)
            outcome = f"applied: payment {payment_id} -> {target}"
        except InvalidTransitionError as exc:
            outcome = f"ignored: {exc}"
    conn.execute(
        "UPDATE webhook_events SET outcome = %s WHERE provider = 'stripe' AND event_id = %s",
        (outcome, event_id),
    )
    conn.commit()
    return {"event_id": event_id, "outcome": outcome}
