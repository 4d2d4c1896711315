"""Payments against the real stripe-mock (behind a loopback proxy that can stall or fail) and
the real PostgreSQL: the retry schedule, manual review, webhooks, reconciliation."""

from __future__ import annotations

import time
from itertools import pairwise
from typing import Any

import pytest

from commerce.payments.service import start_payment
from commerce.payments.stripe_provider import StripeProvider
from tests.support.api import ApiHarness
from tests.support.commerce import (
    party_headers,
    pay_order,
    place_order,
    sign_stripe,
    stripe_event,
)

pytestmark = pytest.mark.integration


@pytest.fixture()
def stripe_timeout_s() -> float:
    """The API's Stripe client gives up after 0.5 s, well before a stalled request (1.5 s)."""
    return 0.5


def _order(h: ApiHarness, buyer: dict[str, str], key: str, hold: bool = False) -> str:
    placed = place_order(h, buyer, key, quantity=2, hold_until_delivery=hold)
    assert placed.status_code == 201, placed.text
    order_id: str = placed.json()["order_id"]
    return order_id


def _pay(
    conn: Any, order_id: str, key: str, provider: StripeProvider, sleep: RecordingSleep
) -> Any:
    """A card payment of ``order_id`` under ``key`` through ``provider``, sleeping ``sleep``."""
    return start_payment(
        conn, order_id=order_id, method="card", key=key, actor="t", provider=provider, sleep=sleep
    )


class RecordingSleep:
    """Really sleeps, and remembers what it was asked to sleep."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        time.sleep(seconds)


def test_timeout_storm_retries_after_1_2_4_s_then_fails(h: ApiHarness, proxy: Any) -> None:
    buyer = party_headers(h, "buyer", "buy-a")
    order_id = _order(h, buyer, "storm")
    # stall (client times out after 0.5 s), 500, stall, 500: four attempts, all transient
    proxy.plan = ["stall", "500", "stall", "500"]
    provider = StripeProvider("sk_test_storm", proxy.url, timeout_s=0.5)
    sleep = RecordingSleep()
    with h.connect() as conn:
        result = _pay(conn, order_id, "k1", provider, sleep)
        assert result.state == "failed"
        attempts = conn.execute(
            "SELECT attempt, delay_before_s, outcome, error FROM payment_attempts ORDER BY attempt"
        ).fetchall()
        state, last_error, n = conn.execute(
            "SELECT state, last_error, attempts FROM payments"
        ).fetchone()
    assert sleep.delays == [1.0, 2.0, 4.0]
    assert [(a, float(d), o) for a, d, o, _ in attempts] == [
        (1, 0.0, "transient"),
        (2, 1.0, "transient"),
        (3, 2.0, "transient"),
        (4, 4.0, "transient"),
    ]
    assert "connection" in attempts[0][3] and "HTTP 500" in attempts[1][3]
    assert state == "failed" and n == 4 and last_error.startswith("gave up after 4 attempts")
    # what the server saw: four requests, one idempotency key, gaps = timeout/answer + backoff
    posts = proxy.payment_intent_posts()
    assert len(posts) == 4 and len({p.idempotency_key for p in posts}) == 1
    gaps = [b.at - a.at for a, b in pairwise(posts)]
    # after a stall the client waited its 0.5 s timeout; after a 500 it answered at once
    assert 1.45 <= gaps[0] <= 2.2, gaps
    assert 1.95 <= gaps[1] <= 2.7, gaps
    assert 4.45 <= gaps[2] <= 5.2, gaps
    # the failed state is final for that payment: the same key does not charge again
    with h.connect() as conn:
        again = _pay(conn, order_id, "k1", provider, sleep)
    assert again.state == "failed" and not again.created and len(proxy.payment_intent_posts()) == 4


def test_transient_then_success_keeps_one_key(h: ApiHarness, proxy: Any) -> None:
    buyer = party_headers(h, "buyer", "buy-a")
    order_id = _order(h, buyer, "flaky")
    proxy.plan = ["500"]
    provider = StripeProvider("sk_test_flaky", proxy.url, timeout_s=2)
    sleep = RecordingSleep()
    with h.connect() as conn:
        result = _pay(conn, order_id, "k", provider, sleep)
    assert result.state == "submitted" and sleep.delays == [1.0]
    posts = proxy.payment_intent_posts()
    assert [p.answered for p in posts] == ["500", "pass"]
    assert posts[0].idempotency_key == posts[1].idempotency_key == f"{order_id}:k"


def test_format_error_is_never_retried_and_goes_to_manual_review(h: ApiHarness, proxy: Any) -> None:
    buyer = party_headers(h, "buyer", "buy-a")
    admin = party_headers(h, "admin", None)
    order_id = _order(h, buyer, "fmt")
    # stripe-mock validates the request against Stripe's OpenAPI: not an allowed value -> 400
    reply = pay_order(
        h,
        buyer,
        order_id,
        "p1",
        method="card",
        provider_options={"setup_future_usage": "sometimes"},
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["state"] == "manual_review"
    assert len(proxy.payment_intent_posts()) == 1  # exactly one call, no retry
    view = h.client.get(f"/commerce/payments/{reply.json()['payment_id']}", headers=buyer).json()
    assert [a["outcome"] for a in view["attempt_log"]] == ["permanent"]
    assert "HTTP 400" in view["last_error"]
    # a malformed SWIFT/BIC field of a bank transfer: validated here, never sent, reviewed
    order2 = _order(h, buyer, "fmt2")
    bank = pay_order(
        h,
        buyer,
        order2,
        "p2",
        method="bank_transfer",
        bank={"bic": "DEUTDEFF", "iban": "DE89370400440532013000", "reference": "INV-1 {urgent}"},
    )
    assert bank.status_code == 200 and bank.json()["state"] == "manual_review"
    queue = h.client.get("/commerce/manual-review", headers=admin).json()
    reasons = {q["payment_id"]: q["reason"] for q in queue}
    assert "HTTP 400" in reasons[reply.json()["payment_id"]]
    assert "outside the SWIFT x set: ['{', '}']" in reasons[bank.json()["payment_id"]]
    assert len(proxy.payment_intent_posts()) == 1
    # a well-formed transfer awaits funds; treasury confirms it
    order3 = _order(h, buyer, "ok3")
    good = pay_order(
        h,
        buyer,
        order3,
        "p3",
        method="bank_transfer",
        bank={"bic": "DEUTDEFF", "iban": "DE89 3704 0044 0532 0130 00", "reference": "INV-3"},
    )
    assert good.json()["state"] == "submitted"
    confirmed = h.client.post(
        f"/commerce/payments/{good.json()['payment_id']}/confirm", headers=admin
    )
    assert confirmed.json()["state"] == "succeeded"


def test_webhook_verified_and_replay_changes_nothing(h: ApiHarness, proxy: Any) -> None:
    buyer = party_headers(h, "buyer", "buy-a")
    admin = party_headers(h, "admin", None)
    order_id = _order(h, buyer, "wh")
    paid = pay_order(h, buyer, order_id, "w", method="card")
    payment_id = paid.json()["payment_id"]
    with h.connect() as conn:
        ref = conn.execute("SELECT provider_ref FROM payments").fetchone()[0]
    secret = h.config.extra["commerce"].webhook_secret  # type: ignore[attr-defined]
    payload = stripe_event("payment_intent.succeeded", ref, "succeeded")

    forged = h.client.post(
        "/commerce/webhooks/stripe",
        content=payload,
        headers={"Stripe-Signature": sign_stripe(payload, "whsec_wrong")},
    )
    assert forged.status_code == 400 and "signature" in forged.json()["detail"]
    stale = h.client.post(
        "/commerce/webhooks/stripe",
        content=payload,
        headers={"Stripe-Signature": sign_stripe(payload, secret, int(time.time()) - 3600)},
    )
    assert stale.status_code == 400

    first = h.client.post(
        "/commerce/webhooks/stripe",
        content=payload,
        headers={"Stripe-Signature": sign_stripe(payload, secret)},
    )
    assert first.status_code == 200, first.text
    assert first.json()["outcome"] == f"applied: payment {payment_id} -> succeeded"

    def snapshot() -> tuple[Any, ...]:
        with h.connect() as conn:
            return (
                conn.execute("SELECT state, updated_at FROM payments").fetchall(),
                conn.execute("SELECT count(*) FROM state_changes").fetchone(),
                conn.execute("SELECT count(*), max(outcome) FROM webhook_events").fetchone(),
            )

    before = snapshot()
    replay = h.client.post(
        "/commerce/webhooks/stripe",
        content=payload,
        headers={"Stripe-Signature": sign_stripe(payload, secret)},
    )
    assert replay.status_code == 200 and replay.json()["outcome"].startswith("duplicate")
    assert snapshot() == before
    # reconciliation: stripe-mock keeps no state, so its view of the intent stays
    # requires_payment_method (-> submitted) while ours says succeeded: one mismatch found
    report = h.client.post("/commerce/reconciliation", headers=admin).json()
    assert report["checked"] == 1
    assert [(m["payment_id"], m["ours"], m["provider_status"]) for m in report["mismatches"]] == [
        (payment_id, "succeeded", "requires_payment_method")
    ]
