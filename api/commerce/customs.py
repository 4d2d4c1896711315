"""/commerce customs: classification, the tariff table, landed cost of a quote, the customs
broker of a shipment and its clearance steps (commerce/customs/ does the work).

A hold for inspection opens a ``customs_hold`` alert on the shipment through the alerts
module (delivered like any alert); the release clears it.
"""

from __future__ import annotations

import logging
import uuid
from contextlib import ExitStack
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import AwareDatetime, BaseModel, Field
from starlette.concurrency import run_in_threadpool

from alerts.customs import alert_clearance_step
from api.commerce.deps import ledger_session, provider_of
from api.db import Connection, sync_connection
from api.policy import Access, authorize, guard
from commerce.customs import clearance
from commerce.customs.errors import CustomsConflictError, CustomsForbiddenError
from commerce.customs.landed_cost import Costs
from commerce.customs.quotes import classify, quote_landed_cost
from commerce.customs.tariffs import ALL_RATES_SQL, RATES_SQL, rate_of_row
from commerce.release import reevaluate_shipments
from ingest.parties import aparties

router = APIRouter(tags=["commerce customs"])
log = logging.getLogger(__name__)
_ERRORS: dict[int | str, dict[str, Any]] = {
    403: {"description": "not your organisation's"},
    404: {"description": "not found"},
    409: {"description": "clashes with the clearance so far"},
    422: {"description": "invalid request"},
}
OrgId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]
ShipmentId = Annotated[str, Field(pattern=r"^[A-Za-z0-9._:-]{1,64}$")]
Country = Annotated[str, Field(pattern=r"^[A-Z]{2}$")]
MinorAmount = Annotated[int, Query(ge=0, le=10**15)]


class ClassificationIn(BaseModel):
    gtin: Annotated[str, Field(pattern=r"^[0-9]{14}$")]
    hs_code: Annotated[str, Field(pattern=r"^[0-9]{6}$")] | None = None
    lot: Annotated[str, Field(min_length=1, max_length=20, pattern=r"^[\x21-\x7e]+$")] | None = None
    origin_country: Country | None = None


@router.post("/classifications", responses=_ERRORS)
async def set_classification(
    body: ClassificationIn,
    conn: Connection,
    access: Annotated[Access, Depends(guard("product.classify"))],
) -> dict[str, Any]:
    """The brand owner sets a product's 6-digit HS code; the lot's supplier (or the brand
    owner) its country of origin."""
    principal = access.principal
    if body.hs_code is not None:
        authorize(principal, "product.classify", await aparties(conn, "product", body.gtin))
    if body.lot is not None:
        authorize(principal, "lot.origin", await aparties(conn, "lot", f"{body.gtin}/{body.lot}"))
    await classify(
        conn, gtin=body.gtin, hs_code=body.hs_code, lot=body.lot, origin_country=body.origin_country
    )
    await conn.commit()
    return body.model_dump()


@router.get("/tariffs", responses=_ERRORS)
async def tariffs(
    conn: Connection,
    _: Annotated[Access, Depends(guard("tariff.read"))],
    destination: Annotated[str, Query(pattern=r"^[A-Z]{2}$")],
    hs6: Annotated[list[str] | None, Query()] = None,
) -> list[dict[str, Any]]:
    """The duty/VAT rows into ``destination`` (optionally of some HS subheadings), with their
    source and date."""
    if hs6 is None:
        cur = await conn.execute(ALL_RATES_SQL, (destination,))
    else:
        cur = await conn.execute(RATES_SQL, (destination, hs6))
    return [
        {
            **vars(r),
            "duty_pct": str(r.duty_pct),
            "vat_pct": str(r.vat_pct),
            "source_date": r.source_date.isoformat(),
        }
        for r in map(rate_of_row, await cur.fetchall())
    ]


@router.get("/quotes/{quote_id}/landed-cost", responses=_ERRORS)
async def landed_cost(
    quote_id: uuid.UUID,
    conn: Connection,
    _: Annotated[Access, Depends(guard("quote.landed_cost", "quote_id"))],
    freight_minor: MinorAmount = 0,
    insurance_minor: MinorAmount = 0,
    origin_charges_minor: MinorAmount = 0,
    destination: Annotated[str | None, Query(pattern=r"^[A-Z]{2}$")] = None,
    currency: Annotated[str | None, Query(pattern=r"^[A-Z]{3}$")] = None,
) -> dict[str, Any]:
    """The quote's landed cost under EXW, FOB, CIF, DAP and DDP: goods, freight, insurance,
    origin charges (estimates in the quote's currency, minor units), duty and VAT from the
    tariff table, who pays each, in ``currency`` (default the quote's), every component with
    its source."""
    dest, results = await quote_landed_cost(
        conn,
        str(quote_id),
        costs=Costs(freight_minor, insurance_minor, origin_charges_minor),
        destination=destination,
        currency=currency,
    )
    return {
        "quote_id": str(quote_id),
        "destination": dest,
        "landed_cost": [r.to_dict() for r in results],
    }


class BrokerIn(BaseModel):
    broker_org: OrgId


@router.post("/shipments/{shipment_id}/customs-broker", responses=_ERRORS)
async def assign_broker(
    shipment_id: ShipmentId,
    body: BrokerIn,
    request: Request,
    access: Annotated[Access, Depends(guard("shipment.assign_broker", "shipment_id"))],
) -> dict[str, str]:
    """The shipper (or, under DAP/DPU/DDP, the buyer) names the shipment's customs broker."""

    def work() -> None:
        with sync_connection(request) as conn:
            relations = access.relations
            if access.principal.has("admin"):
                relations = frozenset({"shipper"})
            clearance.assign_broker(
                conn,
                shipment_id,
                body.broker_org,
                relations=relations,
                actor=access.principal.username,
            )
            conn.commit()

    await run_in_threadpool(work)
    return {"shipment_id": shipment_id, "broker_org": body.broker_org}


class StepIn(BaseModel):
    step: Annotated[str, Field(pattern=r"^(lodged|held_for_inspection|released|duties_paid)$")]
    note: Annotated[str, Field(max_length=2000, pattern=r"^[^\x00]*$")] = ""
    at: AwareDatetime | None = None


@router.post("/shipments/{shipment_id}/clearance", status_code=201, responses=_ERRORS)
async def record_step(
    shipment_id: ShipmentId,
    body: StepIn,
    request: Request,
    access: Annotated[Access, Depends(guard("shipment.clearance_record", "shipment_id"))],
) -> dict[str, Any]:
    """The shipment's customs broker records a clearance step: an anchored EPCIS event; a hold
    for inspection opens a customs_hold alert, the release clears it."""
    principal = access.principal
    broker = principal.org_id
    if broker is None:
        raise CustomsForbiddenError("clearance steps are recorded by the broker's organisation")

    def work() -> dict[str, Any]:
        with sync_connection(request) as conn, ExitStack() as stack:
            step = clearance.record_step(
                conn,
                shipment_id,
                body.step,
                broker_org=broker,
                actor=principal.username,
                note=body.note,
                at=body.at,
            )
            alert_id = alert_clearance_step(
                conn,
                shipment_id=step.shipment_id,
                step=step.step,
                at=step.at,
                note=step.note,
                event_hash=step.event_hash,
            )
            if alert_id is not None:
                clearance.link_alert(conn, step.event_id, alert_id)
            conn.commit()
            payments = {}
            if step.step == "released":
                # The release is the evidence a held payment may wait for: decide now (the
                # worker and release-check would too, later).
                try:
                    ledger = stack.enter_context(ledger_session(request))
                except Exception as exc:  # the step stands; release-check decides later
                    log.warning("no release decision after %s: %s", step.event_id, exc)
                    return {**vars(step), "at": step.at.isoformat(), "alert_id": alert_id}
                payments = reevaluate_shipments(
                    conn, [shipment_id], ledger=ledger, provider=provider_of(request)
                )
            return {
                **vars(step),
                "at": step.at.isoformat(),
                "alert_id": alert_id,
                "payments": payments,
            }

    return await run_in_threadpool(work)


@router.get("/shipments/{shipment_id}/clearance", responses=_ERRORS)
async def clearance_of(
    shipment_id: ShipmentId,
    request: Request,
    _: Annotated[Access, Depends(guard("shipment.clearance_read", "shipment_id"))],
) -> dict[str, Any]:
    """The shipment's clearance status and steps (each with its EPCIS event hash)."""

    def work() -> dict[str, Any]:
        with sync_connection(request) as conn:
            steps = clearance.steps_of(conn, shipment_id)
            return {
                "shipment_id": shipment_id,
                "status": clearance.status(steps),
                "steps": steps,
            }

    return await run_in_threadpool(work)


@router.post("/orders/{order_id}/hold-until-customs-release", responses=_ERRORS)
async def hold_until_release(
    order_id: uuid.UUID,
    conn: Connection,
    access: Annotated[Access, Depends(guard("order.customs_hold", "order_id"))],
) -> dict[str, Any]:
    """The buyer makes the order's payment wait for "released by customs" as evidence (before
    paying: the payment is then authorized and held, like one waiting for delivery)."""
    cur = await conn.execute(
        "UPDATE orders SET hold_until_customs_release = true WHERE order_id = %s"
        " AND state IN ('placed', 'confirmed') AND NOT EXISTS (SELECT 1 FROM payments p"
        " WHERE p.order_id = orders.order_id AND p.state NOT IN ('failed', 'cancelled'))"
        " RETURNING order_id",
        (order_id,),
    )
    if await cur.fetchone() is None:
        await conn.rollback()
        raise CustomsConflictError(
            f"order {order_id} is not open for this (already paid, shipped or cancelled)"
        )
    await conn.execute(
        "INSERT INTO state_changes (entity, entity_id, actor, from_state, to_state, note)"
        " SELECT 'order', order_id::text, %s, state, state, 'hold until customs release'"
        " FROM orders WHERE order_id = %s",
        (access.principal.username, order_id),
    )
    await conn.commit()
    return {"order_id": str(order_id), "hold_until_customs_release": True, "at": _now()}


def _now() -> str:
    return datetime.now(UTC).isoformat()
