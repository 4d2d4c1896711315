"""The customs broker of a shipment and the clearance steps it records.

The shipper assigns the broker; under DAP, DPU or DDP the buyer (the receiver) may too, since
import clearance is then arranged at destination. Each step (lodged, held_for_inspection,
released, duties_paid) is an EPCIS ObjectEvent naming the shipment's lots and SSCCs (so it is
anchored with the other events and shows on the lot's journey), with a ``th:clearance``
extension: step, shipment, note. Order rule: the declaration is lodged first; nothing but
``duties_paid`` follows a release, and a hold needs an open (unreleased) declaration.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from commerce.customs.errors import (
    CustomsConflictError,
    CustomsForbiddenError,
    CustomsInvalidError,
    CustomsNotFoundError,
)
from commerce.documents.record import sscc_uri
from ingest.epcis import capture_events
from ingest.inspections import EXTENSION_NAMESPACE
from tracehub.epcis.schema import DEFAULT_CONTEXT
from tracehub.gs1 import DIGITAL_LINK_BASE, build_uri

STEPS = ("lodged", "held_for_inspection", "released", "duties_paid")
#: bizStep URIs of the steps (CBV 2.0 has no customs steps; EPCIS admits any URI there).
BIZ_STEP = {step: f"{EXTENSION_NAMESPACE}customs_{step}" for step in STEPS}
BUYER_ARRANGED = ("DAP", "DPU", "DDP")


@dataclass(frozen=True)
class Step:
    shipment_id: str
    step: str
    at: datetime
    note: str
    broker_org: str
    event_id: str
    event_hash: str


def link_alert(conn: Any, event_id: str, alert_id: str) -> None:
    """Note on the step the alert it opened (a hold's customs_hold alert; the caller commits)."""
    conn.execute(
        "UPDATE clearance_steps SET alert_id = %s WHERE event_id = %s", (alert_id, event_id)
    )


def assign_broker(
    conn: Any, shipment_id: str, broker_org: str, *, relations: frozenset[str], actor: str
) -> None:
    """Name the shipment's customs broker (sync connection; the caller commits)."""
    row = conn.execute(
        "SELECT o.incoterm FROM shipments s JOIN order_shipments os USING (shipment_id)"
        " JOIN orders o USING (order_id) WHERE s.shipment_id = %s",
        (shipment_id,),
    ).fetchone()
    if row is None:
        raise CustomsNotFoundError(f"shipment {shipment_id} of an order not found")
    if "shipper" not in relations and row[0] not in BUYER_ARRANGED:
        raise CustomsForbiddenError(
            f"under {row[0]} the shipper assigns the broker; the buyer does under"
            f" {', '.join(BUYER_ARRANGED)}"
        )
    if (
        conn.execute("SELECT 1 FROM organisations WHERE org_id = %s", (broker_org,)).fetchone()
        is None
    ):
        raise CustomsInvalidError(f"organisation {broker_org!r} does not exist")
    conn.execute(
        "UPDATE shipments SET customs_broker_org = %s WHERE shipment_id = %s",
        (broker_org, shipment_id),
    )
    conn.execute(
        "INSERT INTO state_changes (entity, entity_id, actor, from_state, to_state, note)"
        " SELECT 'shipment', shipment_id, %s, state, state, %s FROM shipments"
        " WHERE shipment_id = %s",
        (actor, f"customs broker {broker_org}", shipment_id),
    )


def _check_order(done: list[str], step: str) -> None:
    if step not in STEPS:
        raise CustomsInvalidError(f"step must be one of {list(STEPS)}")
    if step != "lodged" and "lodged" not in done:
        raise CustomsConflictError("the declaration is lodged first")
    if "released" in done and step != "duties_paid":
        raise CustomsConflictError(f"the goods are released; {step!r} cannot follow")
    if step == "duties_paid" and "duties_paid" in done:
        raise CustomsConflictError("duties are already recorded as paid")


def clearance_event(
    *,
    shipment_id: str,
    step: str,
    at: datetime,
    note: str,
    lots: list[tuple[str, str]],
    ssccs: list[str],
) -> dict[str, Any]:
    """The EPCIS 2.0 ObjectEvent of one clearance step."""
    event: dict[str, Any] = {
        "@context": [DEFAULT_CONTEXT, {"th": EXTENSION_NAMESPACE}],
        "type": "ObjectEvent",
        "eventTime": at.astimezone(UTC).isoformat(timespec="milliseconds"),
        "eventTimeZoneOffset": "+00:00",
        "epcList": [sscc_uri(s) for s in ssccs],
        "quantityList": [{"epcClass": build_uri(DIGITAL_LINK_BASE, g, lot)} for g, lot in lots],
        "action": "OBSERVE",
        "bizStep": BIZ_STEP[step],
        "th:clearance": {"th:step": step, "th:shipmentID": shipment_id, "th:note": note},
    }
    if step == "held_for_inspection":
        event["disposition"] = "sellable_not_accessible"
    return event


def record_step(
    conn: Any,
    shipment_id: str,
    step: str,
    *,
    broker_org: str,
    actor: str,
    note: str = "",
    at: datetime | None = None,
) -> Step:
    """Record a step by the shipment's broker: capture its event, store it (no commit)."""
    row = conn.execute(
        "SELECT customs_broker_org FROM shipments WHERE shipment_id = %s FOR UPDATE",
        (shipment_id,),
    ).fetchone()
    if row is None:
        raise CustomsNotFoundError(f"shipment {shipment_id} not found")
    if row[0] != broker_org:
        raise CustomsForbiddenError(f"{broker_org} is not the customs broker of {shipment_id}")
    done = [
        r[0]
        for r in conn.execute(
            "SELECT step FROM clearance_steps WHERE shipment_id = %s ORDER BY at, id",
            (shipment_id,),
        ).fetchall()
    ]
    _check_order(done, step)
    parts = conn.execute(
        "SELECT gtin, lot, sscc FROM shipment_lots WHERE shipment_id = %s ORDER BY 1, 2, 3",
        (shipment_id,),
    ).fetchall()
    moment = at or datetime.now(UTC)
    event = clearance_event(
        shipment_id=shipment_id,
        step=step,
        at=moment,
        note=note,
        lots=sorted({(g, lot) for g, lot, _ in parts}),
        ssccs=sorted({s for _, _, s in parts if s}),
    )
    (captured,) = capture_events(conn, [event], source=f"customs:{actor}", org=broker_org)
    conn.execute(
        "INSERT INTO clearance_steps (shipment_id, step, at, note, broker_org, event_id,"
        " event_hash, recorded_by) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
        (
            shipment_id,
            step,
            moment,
            note,
            broker_org,
            captured.event_id,
            captured.event_hash,
            actor,
        ),
    )
    return Step(shipment_id, step, moment, note, broker_org, captured.event_id, captured.event_hash)


def steps_of(conn: Any, shipment_id: str) -> list[dict[str, Any]]:
    """The shipment's clearance steps, oldest first."""
    rows = conn.execute(
        "SELECT step, at, note, broker_org, event_id, event_hash, alert_id::text"
        " FROM clearance_steps WHERE shipment_id = %s ORDER BY at, id",
        (shipment_id,),
    ).fetchall()
    return [
        {
            "step": s,
            "at": at.isoformat(),
            "note": n,
            "broker_org": b,
            "event_id": e,
            "event_hash": h,
            "alert_id": a,
        }
        for s, at, n, b, e, h, a in rows
    ]


def status(steps: list[dict[str, Any]]) -> str:
    """not_lodged | lodged | held_for_inspection | released (duties_paid does not move it)."""
    current = "not_lodged"
    for s in steps:
        if s["step"] != "duties_paid":
            current = s["step"]
    return current
