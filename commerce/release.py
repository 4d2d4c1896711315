"""Evidence-linked payment release.

An order with ``hold_until_delivery`` keeps its authorized payment until every shipment of the
order is delivered (a receiving custody event) AND no excursion alert on its shipments or their
lots is unresolved. Each decision (hold, then release) is stored with the evidence it relied on
-- the custody events' hashes, the alert ids and their EPCIS event hashes -- and recorded on the
ledger as ``payment-decision:<order>:<n>``. A new hold decision is recorded only when its
reasons change, so re-evaluating is idempotent.

An order with ``hold_until_customs_release`` (0016) also, or instead, waits until every shipment
has a ``released`` clearance step recorded by its customs broker (the step's EPCIS event hash is
the evidence); a shipment held for inspection and not yet released keeps the payment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg.types.json import Jsonb

from commerce.errors import PaymentCaptureError
from commerce.ledger import RecordLedger, publish_pending
from commerce.payments.provider import PaymentProvider
from commerce.payments.retry import call_with_retry
from commerce.states import transition

# A recall holds payments like an excursion does (alerts/recalls.py).
EXCURSIONS = ("temperature_excursion", "humidity_excursion", "recall")


@dataclass(frozen=True)
class Decision:
    decision: str  # hold | release | none
    reasons: list[str]
    evidence: dict[str, Any]


def gather_evidence(conn: Any, order_id: str) -> dict[str, Any]:
    """Shipments, custody event hashes, excursion alerts and clearance steps of the order, and
    which of delivery and customs release it waits for."""
    rules = conn.execute(
        "SELECT hold_until_delivery, hold_until_customs_release FROM orders WHERE order_id = %s",
        (order_id,),
    ).fetchone()
    clearance = conn.execute(
        "SELECT c.shipment_id, c.step, c.at, c.event_hash FROM clearance_steps c"
        " JOIN order_shipments os USING (shipment_id) WHERE os.order_id = %s"
        " ORDER BY c.at, c.id",
        (order_id,),
    ).fetchall()
    shipments = conn.execute(
        "SELECT s.shipment_id, s.state FROM order_shipments os"
        " JOIN shipments s USING (shipment_id) WHERE os.order_id = %s ORDER BY s.shipment_id",
        (order_id,),
    ).fetchall()
    events = conn.execute(
        "SELECT c.shipment_id, c.biz_step, c.at, c.event_hash FROM custody_events c"
        " JOIN order_shipments os USING (shipment_id) WHERE os.order_id = %s ORDER BY c.id",
        (order_id,),
    ).fetchall()
    alerts = conn.execute(
        "SELECT DISTINCT a.alert_id::text, a.kind, a.state, a.event_hash FROM alerts a"
        " JOIN order_shipments os ON os.order_id = %s"
        " WHERE a.kind = ANY(%s) AND (a.shipment_id = os.shipment_id OR EXISTS ("
        "   SELECT 1 FROM shipment_lots sl WHERE sl.shipment_id = os.shipment_id"
        "   AND sl.gtin = a.gtin AND sl.lot = a.lot))"
        " ORDER BY 1",
        (order_id, list(EXCURSIONS)),
    ).fetchall()
    return {
        "shipments": [{"shipment_id": s, "state": st} for s, st in shipments],
        "custody_events": [
            {"shipment_id": s, "biz_step": b, "at": at.isoformat(), "event_hash": h}
            for s, b, at, h in events
        ],
        "alerts": [
            {"alert_id": a, "kind": k, "state": st, "event_hash": h} for a, k, st, h in alerts
        ],
        "waits_for": [
            name
            for name, on in zip(
                ("delivery", "customs_release"), rules or (True, False), strict=True
            )
            if on
        ],
        "clearance": [
            {"shipment_id": s, "step": st, "at": at.isoformat(), "event_hash": h}
            for s, st, at, h in clearance
        ],
    }


def decide(evidence: dict[str, Any]) -> Decision:
    reasons = []
    shipments = evidence["shipments"]
    if not shipments:
        reasons.append("no shipment yet")
    waits = evidence.get("waits_for", ["delivery"])
    pending = [s["shipment_id"] for s in shipments if s["state"] != "delivered"]
    if pending and "delivery" in waits:
        reasons.append(f"delivery not confirmed: {pending}")
    if "customs_release" in waits:
        released = {c["shipment_id"] for c in evidence["clearance"] if c["step"] == "released"}
        waiting = [s["shipment_id"] for s in shipments if s["shipment_id"] not in released]
        if waiting:
            reasons.append(f"not released by customs: {waiting}")
    open_alerts = [a["alert_id"] for a in evidence["alerts"] if a["state"] != "resolved"]
    if open_alerts:
        reasons.append(f"unresolved excursion alerts: {open_alerts}")
    return Decision("hold" if reasons else "release", reasons, evidence)


def evaluate_release(
    conn: Any,
    order_id: str,
    *,
    ledger: RecordLedger,
    provider: PaymentProvider | None,
    actor: str = "release-rule",
) -> str:
    """Hold or release the order's payment per the rule; returns the payment state after.

    Returns "none" when the order has no payment on hold (or no hold rule).
    """
    row = conn.execute(
        "SELECT p.payment_id::text, p.state, p.method, p.provider_ref, p.idempotency_key"
        " FROM payments p JOIN orders o USING (order_id)"
        " WHERE p.order_id = %s AND (o.hold_until_delivery OR o.hold_until_customs_release)"
        " AND p.state IN ('authorized', 'held') FOR UPDATE OF p",
        (order_id,),
    ).fetchone()
    if row is None:
        conn.rollback()
        publish_pending(conn, ledger)
        return "none"
    payment_id, state, method, ref, key = row
    decision = decide(gather_evidence(conn, order_id))
    last = conn.execute(
        "SELECT decision, evidence->'reasons' FROM payment_decisions WHERE order_id = %s"
        " ORDER BY seq DESC LIMIT 1",
        (order_id,),
    ).fetchone()
    if decision.decision == "hold":
        if state == "authorized":
            transition(conn, "payment", payment_id, "held", actor, "; ".join(decision.reasons))
        if last is None or last[0] != "hold" or last[1] != decision.reasons:
            _store(conn, order_id, decision)
        conn.commit()
        publish_pending(conn, ledger)
        return "held"
    if method == "card" and provider is not None and ref:
        outcome = call_with_retry(lambda: provider.capture(ref, idempotency_key=f"{key}:capture"))
        if outcome.final != "ok":
            conn.rollback()
            raise PaymentCaptureError(f"capture of payment {payment_id} failed: {outcome.error}")
    transition(conn, "payment", payment_id, "released", actor, "; ".join(decision.reasons))
    _store(conn, order_id, decision)
    conn.commit()
    publish_pending(conn, ledger)
    return "released"


def _store(conn: Any, order_id: str, decision: Decision) -> None:
    seq_row = conn.execute(
        "SELECT coalesce(max(seq), 0) + 1 FROM payment_decisions WHERE order_id = %s",
        (order_id,),
    ).fetchone()
    seq = int(seq_row[0])
    evidence = {"reasons": decision.reasons, **decision.evidence}
    conn.execute(
        "INSERT INTO payment_decisions (order_id, seq, decision, evidence, record_id)"
        " VALUES (%s, %s, %s, %s, %s)",
        (order_id, seq, decision.decision, Jsonb(evidence), f"payment-decision:{order_id}:{seq}"),
    )


def reevaluate_shipments(
    conn: Any,
    shipment_ids: list[str],
    *,
    ledger: RecordLedger,
    provider: PaymentProvider | None,
) -> dict[str, str]:
    """Re-decide the hold of every order carrying one of the shipments (new evidence on them:
    custody, customs); returns each order's payment state after."""
    orders = conn.execute(
        "SELECT DISTINCT order_id::text FROM order_shipments WHERE shipment_id = ANY(%s)",
        (shipment_ids,),
    ).fetchall()
    conn.commit()
    return {
        order_id: evaluate_release(conn, order_id, ledger=ledger, provider=provider)
        for (order_id,) in orders
    }
