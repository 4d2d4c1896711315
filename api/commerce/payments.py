"""/commerce payments: start (idempotent), view, confirm manual ones, the manual review queue,
Stripe webhooks, reconciliation, and the evidence-linked release check.

Provider-bound work runs in a worker thread on a pooled sync connection (api/db.py): the Stripe
SDK is synchronous and a payment may spend up to 7 s in back-off.
"""

from __future__ import annotations

import uuid
from contextlib import ExitStack
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from api.commerce.deps import commerce_config, ledger_session, provider_of
from api.db import sync_connection
from api.policy import Access, guard
from commerce.errors import CommerceNotFoundError
from commerce.payments import reconcile, service, webhooks
from commerce.release import evaluate_release
from tracehub.ledger import LedgerUnavailableError

router = APIRouter(tags=["commerce payments"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "bad signature"},
    404: {"description": "not found"},
    409: {"description": "invalid state transition"},
    422: {"description": "invalid request"},
}


class BankDetails(BaseModel):
    """Manual payment fields: BIC, remittance reference, IBAN (transfer) or LC number."""

    bic: Annotated[str, Field(max_length=64)] = ""
    reference: Annotated[str, Field(max_length=500)] = ""
    iban: Annotated[str, Field(max_length=64)] = ""
    lc_number: Annotated[str, Field(max_length=64)] = ""


class PaymentIn(BaseModel):
    method: Annotated[str, Field(pattern=r"^(card|bank_transfer|letter_of_credit)$")]
    bank: BankDetails | None = None
    provider_options: Annotated[
        dict[
            Annotated[str, Field(pattern=r"^[a-z_]{1,40}$")],
            Annotated[str, Field(max_length=500, pattern=r"^[^\x00]*$")],
        ],
        Field(
            max_length=10,
            description="provider parameters from an allow-list (description, receipt_email, ...)",
        ),
    ] = {}


class PaymentOut(BaseModel):
    payment_id: str
    state: str
    created: bool


def _order_parties(conn: Any, order_id: str) -> tuple[str, str]:
    row = conn.execute(
        "SELECT buyer_org, supplier_org FROM orders WHERE order_id = %s", (order_id,)
    ).fetchone()
    if row is None:
        raise CommerceNotFoundError(f"order {order_id} not found")
    return row[0], row[1]


@router.post("/orders/{order_id}/payments", response_model=PaymentOut, responses=_ERRORS)
async def start_payment(
    order_id: uuid.UUID,
    body: PaymentIn,
    request: Request,
    access: Annotated[Access, Depends(guard("order.pay", "order_id"))],
    key: Annotated[
        str,
        Header(alias="Idempotency-Key", min_length=1, max_length=200, pattern=r"^[\x21-\x7e]+$"),
    ],
) -> PaymentOut:
    """Pay an order (card via Stripe, or bank transfer / letter of credit). The same
    Idempotency-Key returns the same payment and never charges twice."""
    config = commerce_config(request)
    provider = provider_of(request)

    def work() -> service.PaymentResult:
        with sync_connection(request) as conn:
            _order_parties(conn, str(order_id))
            return service.start_payment(
                conn,
                order_id=str(order_id),
                method=body.method,
                key=key,
                actor=access.principal.username,
                provider=provider,
                details=body.bank.model_dump() if body.bank else {},
                provider_options=body.provider_options,
                backoff=config.backoff_s,
            )

    result = await run_in_threadpool(work)
    return PaymentOut(payment_id=result.payment_id, state=result.state, created=result.created)


@router.get("/payments/{payment_id}", responses=_ERRORS)
async def get_payment(
    payment_id: uuid.UUID,
    request: Request,
    _: Annotated[Access, Depends(guard("payment.read", "payment_id"))],
) -> dict[str, Any]:
    """A payment with every provider attempt (number, time, back-off before it, outcome)."""

    def work() -> dict[str, Any]:
        with sync_connection(request) as conn:
            return service.payment_view(conn, str(payment_id))

    return await run_in_threadpool(work)


@router.post("/payments/{payment_id}/confirm", responses=_ERRORS)
async def confirm_payment(
    payment_id: uuid.UUID,
    request: Request,
    access: Annotated[Access, Depends(guard("payment.admin"))],
) -> dict[str, str]:
    """Funds of a bank transfer / letter of credit arrived (treasury confirms by hand)."""

    def work() -> str:
        with sync_connection(request) as conn:
            return service.confirm_manual(conn, str(payment_id), access.principal.username)

    state = await run_in_threadpool(work)
    return {"payment_id": str(payment_id), "state": state}


@router.get("/manual-review")
async def manual_review(
    request: Request, _: Annotated[Access, Depends(guard("payment.admin"))]
) -> list[dict[str, Any]]:
    """Payments waiting for a person: format/validation errors, provider refusals."""

    def work() -> list[dict[str, Any]]:
        with sync_connection(request) as conn:
            cur = conn.execute(
                "SELECT review_id, payment_id::text, reason, created_at FROM manual_review"
                " WHERE resolved_at IS NULL ORDER BY review_id LIMIT 1000"
            )
            names = [d.name for d in cur.description or []]
            return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]

    return await run_in_threadpool(work)


@router.post("/webhooks/stripe", responses=_ERRORS)
async def stripe_webhook(
    request: Request,
    signature: Annotated[str, Header(alias="Stripe-Signature", max_length=2000)],
) -> dict[str, str]:
    """Stripe events, verified by their signature and applied once per event id."""
    payload = await request.body()
    secret = commerce_config(request).webhook_secret

    def work() -> dict[str, Any]:
        with sync_connection(request) as conn:
            return webhooks.apply_stripe_webhook(conn, payload, signature, secret)

    result = await run_in_threadpool(work)
    return {k: str(v) for k, v in result.items()}


@router.post("/reconciliation")
async def run_reconciliation(
    request: Request, _: Annotated[Access, Depends(guard("payment.admin"))]
) -> dict[str, Any]:
    """Compare every Stripe-backed payment with the provider; list the disagreements."""
    provider = provider_of(request)

    def work() -> dict[str, Any]:
        with sync_connection(request) as conn:
            checked, mismatches = reconcile.reconcile(conn, provider)
            return {"checked": checked, "mismatches": [m.__dict__ for m in mismatches]}

    return await run_in_threadpool(work)


@router.post("/orders/{order_id}/release-check", responses=_ERRORS)
async def release_check(
    order_id: uuid.UUID,
    request: Request,
    _: Annotated[Access, Depends(guard("order.release_check", "order_id"))],
) -> dict[str, str]:
    """Re-evaluate the hold rule now: hold or release the order's payment (ledger-recorded)."""
    provider = provider_of(request)

    def work() -> str:
        with sync_connection(request) as conn, ExitStack() as stack:
            _order_parties(conn, str(order_id))
            try:
                ledger = stack.enter_context(ledger_session(request))
            except Exception as exc:  # no decision without its ledger record
                raise LedgerUnavailableError(f"the ledger is unreachable: {exc}") from exc
            return evaluate_release(conn, str(order_id), ledger=ledger, provider=provider)

    # A refused capture is a PaymentCaptureError (502), an unreachable ledger 503.
    state = await run_in_threadpool(work)
    return {"order_id": str(order_id), "payment_state": state}


@router.get("/orders/{order_id}/payment-decisions", responses=_ERRORS)
async def payment_decisions(
    order_id: uuid.UUID,
    request: Request,
    _: Annotated[Access, Depends(guard("order.payment_decisions", "order_id"))],
) -> list[dict[str, Any]]:
    """Hold/release decisions with their evidence and ledger transaction ids."""

    def work() -> list[dict[str, Any]]:
        with sync_connection(request) as conn:
            cur = conn.execute(
                "SELECT seq, decision, evidence, record_id, tx_id, decided_at"
                " FROM payment_decisions WHERE order_id = %s ORDER BY seq",
                (order_id,),
            )
            names = [d.name for d in cur.description or []]
            return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]

    return await run_in_threadpool(work)
