"""Starting payments: one per order and idempotency key, provider calls under the retry policy.

Synchronous on purpose: the Stripe SDK is synchronous and a payment may spend seconds in
back-off, so the API runs this in a worker thread with a connection of its own.
The pending row is committed before the provider is called, so a concurrent second submission
finds it (and never calls the provider a second time); the provider sees the same
idempotency key on every attempt, so a retried call cannot charge twice either.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from psycopg.types.json import Jsonb

from commerce.errors import CommerceConflictError, CommerceInvalidError, CommerceNotFoundError
from commerce.payments import banking
from commerce.payments.options import check_provider_options
from commerce.payments.provider import PaymentProvider
from commerce.payments.retry import BACKOFF_S, RetryOutcome, call_with_retry
from commerce.states import transition

MANUAL_METHODS = ("bank_transfer", "letter_of_credit")


@dataclass(frozen=True)
class PaymentResult:
    payment_id: str
    state: str
    created: bool


def _existing(conn: Any, key: str) -> PaymentResult | None:
    row = conn.execute(
        "SELECT payment_id::text, state FROM payments WHERE idempotency_key = %s", (key,)
    ).fetchone()
    return PaymentResult(row[0], row[1], False) if row else None


def check_manual_details(method: str, details: dict[str, Any]) -> dict[str, Any]:
    """Validate bank transfer / letter of credit fields; raises banking.BankFieldError."""
    checked: dict[str, Any] = {
        "bic": banking.check_bic(str(details.get("bic", ""))),
        "reference": banking.check_swift_text("reference", str(details.get("reference", "")), 140),
    }
    if method == "bank_transfer":
        checked["iban"] = banking.check_iban(str(details.get("iban", "")))
    else:
        checked["lc_number"] = banking.check_swift_text(
            "lc_number", str(details.get("lc_number", "")), 16
        )
        if not checked["lc_number"]:
            raise banking.BankFieldError(
                "lc_number: a letter of credit needs its number (MT700 :20:)"
            )
    return checked


def start_payment(
    conn: Any,
    *,
    order_id: str,
    method: str,
    key: str,
    actor: str,
    provider: PaymentProvider | None,
    details: dict[str, Any] | None = None,
    provider_options: dict[str, str] | None = None,
    backoff: tuple[float, ...] = BACKOFF_S,
    sleep: Callable[[float], None] = time.sleep,
) -> PaymentResult:
    """Create (or find, for a repeated key) the order's payment and submit it."""
    provider_options = check_provider_options(provider_options or {})
    row = conn.execute(
        "SELECT settlement_minor, settlement_currency,"
        " hold_until_delivery OR hold_until_customs_release, state"
        " FROM orders WHERE order_id = %s",
        (order_id,),
    ).fetchone()
    if row is None:
        raise CommerceNotFoundError(f"order {order_id} not found")
    amount, currency, hold, order_state = row
    payment_key = f"{order_id}:{key}"
    found = _existing(conn, payment_key)
    if found:
        return found
    if order_state == "cancelled":
        raise CommerceConflictError(f"order {order_id} is cancelled")
    if method not in ("card", *MANUAL_METHODS):
        raise CommerceInvalidError(f"method must be one of card, {', '.join(MANUAL_METHODS)}")
    inserted = conn.execute(
        "INSERT INTO payments (order_id, method, provider, idempotency_key, amount_minor,"
        " currency) VALUES (%s, %s, %s, %s, %s, %s)"
        " ON CONFLICT DO NOTHING RETURNING payment_id::text",
        (
            order_id,
            method,
            provider.name if method == "card" and provider else "manual",
            payment_key,
            amount,
            currency,
        ),
    ).fetchone()
    if inserted is None:
        conn.rollback()
        # Same key (a concurrent twin committed first) or another live payment of the order.
        found = _existing(conn, payment_key)
        if found:
            return found
        raise CommerceConflictError(f"order {order_id} already has a live payment")
    payment_id = inserted[0]
    conn.execute(
        "INSERT INTO state_changes (entity, entity_id, actor, to_state)"
        " VALUES ('payment', %s, %s, 'pending')",
        (payment_id, actor),
    )
    conn.commit()  # visible to a concurrent twin before any provider call
    if method in MANUAL_METHODS:
        return _manual(conn, payment_id, method, details or {}, actor)
    if provider is None:
        raise CommerceInvalidError("no card payment provider is configured")
    outcome = call_with_retry(
        lambda: provider.create(
            amount_minor=amount,
            currency=currency,
            capture_later=hold,
            idempotency_key=payment_key,
            metadata={"order_id": order_id, "payment_id": payment_id},
            options=provider_options or {},
        ),
        backoff=backoff,
        sleep=sleep,
    )
    return _settle(conn, payment_id, outcome, provider, actor)


def _record_attempts(conn: Any, payment_id: str, outcome: RetryOutcome[Any]) -> None:
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO payment_attempts (payment_id, attempt, delay_before_s, outcome, error)"
            " VALUES (%s, %s, %s, %s, %s)",
            [
                (payment_id, a.number, a.delay_before_s, a.outcome, a.error)
                for a in outcome.attempts
            ],
        )


def _to_review(conn: Any, payment_id: str, reason: str, actor: str) -> PaymentResult:
    transition(conn, "payment", payment_id, "manual_review", actor, reason, last_error=reason)
    conn.execute(
        "INSERT INTO manual_review (payment_id, reason) VALUES (%s, %s)", (payment_id, reason)
    )
    conn.commit()
    return PaymentResult(payment_id, "manual_review", True)


def _settle(
    conn: Any, payment_id: str, outcome: RetryOutcome[Any], provider: PaymentProvider, actor: str
) -> PaymentResult:
    _record_attempts(conn, payment_id, outcome)
    conn.execute(
        "UPDATE payments SET attempts = %s, updated_at = now() WHERE payment_id = %s",
        (len(outcome.attempts), payment_id),
    )
    if outcome.final == "manual_review":
        return _to_review(conn, payment_id, outcome.error or "refused by provider", actor)
    if outcome.final == "failed":
        transition(
            conn,
            "payment",
            payment_id,
            "failed",
            actor,
            outcome.error or "",
            last_error=outcome.error,
        )
        conn.commit()
        return PaymentResult(payment_id, "failed", True)
    view = outcome.value
    assert view is not None  # final "ok" carries the provider's answer
    transition(conn, "payment", payment_id, "submitted", actor, provider_ref=view.ref)
    state = provider.our_state(view.status)
    if state != "submitted":
        transition(conn, "payment", payment_id, state, actor, f"provider status {view.status}")
    conn.commit()
    return PaymentResult(payment_id, state, True)


def _manual(
    conn: Any, payment_id: str, method: str, details: dict[str, Any], actor: str
) -> PaymentResult:
    """A bank transfer / letter of credit: validated once, never retried; awaits funds."""
    try:
        checked = check_manual_details(method, details)
    except banking.BankFieldError as exc:
        conn.execute(
            "UPDATE payments SET details = %s WHERE payment_id = %s",
            (Jsonb({k: str(v)[:200] for k, v in details.items()}), payment_id),
        )
        return _to_review(conn, payment_id, f"format error: {exc}", actor)
    conn.execute(
        "UPDATE payments SET details = %s WHERE payment_id = %s", (Jsonb(checked), payment_id)
    )
    transition(conn, "payment", payment_id, "submitted", actor, "awaiting funds")
    conn.commit()
    return PaymentResult(payment_id, "submitted", True)


def confirm_manual(conn: Any, payment_id: str, actor: str) -> str:
    """Funds of a manual payment arrived: authorized for orders on hold, else succeeded."""
    row = conn.execute(
        "SELECT p.method, o.hold_until_delivery OR o.hold_until_customs_release"
        " FROM payments p JOIN orders o USING (order_id)"
        " WHERE p.payment_id = %s",
        (payment_id,),
    ).fetchone()
    if row is None:
        raise CommerceNotFoundError(f"payment {payment_id} not found")
    if row[0] not in MANUAL_METHODS:
        raise CommerceConflictError(
            "only bank transfers and letters of credit are confirmed by hand"
        )
    target = "authorized" if row[1] else "succeeded"
    transition(conn, "payment", payment_id, target, actor, "funds received")
    conn.commit()
    return target


def payment_view(conn: Any, payment_id: str) -> dict[str, Any]:
    cur = conn.execute(
        "SELECT payment_id::text, order_id::text, method, provider, provider_ref, amount_minor,"
        " currency, state, attempts, last_error, details, created_at, updated_at"
        " FROM payments WHERE payment_id = %s",
        (payment_id,),
    )
    row = cur.fetchone()
    if row is None:
        raise CommerceNotFoundError(f"payment {payment_id} not found")
    view = dict(zip([d.name for d in cur.description], row, strict=True))
    view["attempt_log"] = [
        {"attempt": n, "at": at, "delay_before_s": float(d), "outcome": o, "error": e}
        for n, at, d, o, e in conn.execute(
            "SELECT attempt, at, delay_before_s, outcome, error FROM payment_attempts"
            " WHERE payment_id = %s ORDER BY attempt",
            (payment_id,),
        ).fetchall()
    ]
    return view
