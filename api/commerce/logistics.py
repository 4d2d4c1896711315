"""/commerce shipments: an order ships as one or more shipments carrying lots/SSCCs; custody
events (EPCIS shipping/receiving) move them."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import AwareDatetime, BaseModel, Field
from starlette.concurrency import run_in_threadpool

from api.db import sync_connection
from api.policy import Access, guard
from commerce.errors import CommerceNotFoundError
from commerce.shipments import add_shipment, apply_custody_event, assign_carrier

router = APIRouter(tags=["commerce shipments"])
_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "not found"},
    409: {"description": "invalid state transition"},
    422: {"description": "invalid request"},
}


OrgId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]
ShipmentId = Annotated[str, Field(pattern=r"^[A-Za-z0-9._:-]{1,64}$")]


class LotIn(BaseModel):
    gtin: Annotated[str, Field(pattern=r"^[0-9]{14}$")]
    lot: Annotated[str, Field(min_length=1, max_length=20, pattern=r"^[\x21-\x7e]+$")]
    sscc: Annotated[str, Field(pattern=r"^[0-9]{18}$")] | None = None
    quantity: Annotated[int, Field(gt=0, le=1_000_000_000)] | None = None


class ShipmentIn(BaseModel):
    shipment_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9._:-]{1,64}$")]
    origin: Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00]*$")]
    destination: Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00]*$")]
    expected_delivery: AwareDatetime | None = None
    lots: Annotated[list[LotIn], Field(min_length=1, max_length=100)]
    carrier_org: OrgId | None = Field(None, description="the carrier the shipper assigns")


@router.post("/orders/{order_id}/shipments", status_code=201, responses=_ERRORS)
async def create_shipment(
    order_id: uuid.UUID,
    body: ShipmentIn,
    request: Request,
    access: Annotated[Access, Depends(guard("order.ship", "order_id"))],
) -> dict[str, str]:
    """A shipment of a confirmed order, carrying registered lots (optionally in SSCCs); only
    the order's supplier ships it (it is the shipper) and may name the carrier."""

    def work() -> None:
        with sync_connection(request) as conn:
            row = conn.execute(
                "SELECT supplier_org FROM orders WHERE order_id = %s", (order_id,)
            ).fetchone()
            if row is None:
                raise CommerceNotFoundError(f"order {order_id} not found")
            add_shipment(
                conn,
                order_id=str(order_id),
                shipment_id=body.shipment_id,
                origin=body.origin,
                destination=body.destination,
                expected_delivery=body.expected_delivery,
                lots=[lot.model_dump() for lot in body.lots],
                actor=access.principal.username,
                carrier_org=body.carrier_org,
            )
            conn.commit()

    await run_in_threadpool(work)
    return {"shipment_id": body.shipment_id, "state": "planned"}


class CustodyIn(BaseModel):
    biz_step: Annotated[
        str,
        Field(pattern=r"^(shipping|receiving|urn:epcglobal:cbv:bizstep:(shipping|receiving))$"),
    ]
    at: AwareDatetime
    event_hash: Annotated[str, Field(max_length=200, pattern=r"^[\x21-\x7e]+$")] | None = None


class CarrierIn(BaseModel):
    carrier_org: OrgId


@router.post("/shipments/{shipment_id}/carrier", responses=_ERRORS)
async def carrier(
    shipment_id: ShipmentId,
    body: CarrierIn,
    request: Request,
    access: Annotated[Access, Depends(guard("shipment.assign_carrier", "shipment_id"))],
) -> dict[str, str]:
    """The shipper assigns the shipment's carrier (while the shipment is planned)."""

    def work() -> None:
        with sync_connection(request) as conn:
            assign_carrier(conn, shipment_id, body.carrier_org, access.principal.username)
            conn.commit()

    await run_in_threadpool(work)
    return {"shipment_id": shipment_id, "carrier_org": body.carrier_org}


@router.post("/shipments/{shipment_id}/custody", responses=_ERRORS)
async def custody_event(
    shipment_id: ShipmentId,
    body: CustodyIn,
    request: Request,
    access: Annotated[Access, Depends(guard("shipment.custody", "shipment_id"))],
) -> dict[str, str]:
    """A custody event for the shipment: shipping -> in_transit, receiving -> delivered. Only
    the carrier the shipper assigned, or the receiver, posts them."""
    principal = access.principal

    def work() -> str:
        with sync_connection(request) as conn:
            state = apply_custody_event(
                conn,
                shipment_id,
                body.biz_step,
                body.at,
                event_hash=body.event_hash,
                actor=principal.username,
            )
            conn.commit()
            return state

    state = await run_in_threadpool(work)
    return {"shipment_id": shipment_id, "state": state}
