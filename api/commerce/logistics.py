"""/commerce shipments: an order ships as one or more shipments carrying lots/SSCCs; custody
events (EPCIS shipping/receiving) move them."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import AwareDatetime, BaseModel, Field
from starlette.concurrency import run_in_threadpool

from api.auth import Principal, require
from api.commerce.deps import check_party
from api.db import sync_connection
from commerce.errors import CommerceNotFoundError
from commerce.shipments import add_shipment, apply_custody_event

router = APIRouter(tags=["commerce shipments"])
_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "not found"},
    409: {"description": "invalid state transition"},
    422: {"description": "invalid request"},
}


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


@router.post("/orders/{order_id}/shipments", status_code=201, responses=_ERRORS)
async def create_shipment(
    order_id: uuid.UUID,
    body: ShipmentIn,
    request: Request,
    principal: Annotated[Principal, Depends(require("supplier", "logistics"))],
) -> dict[str, str]:
    """A shipment of a confirmed order, carrying registered lots (optionally in SSCCs)."""

    def work() -> None:
        with sync_connection(request) as conn:
            row = conn.execute(
                "SELECT supplier_org FROM orders WHERE order_id = %s", (order_id,)
            ).fetchone()
            if row is None:
                raise CommerceNotFoundError(f"order {order_id} not found")
            if not principal.has("logistics"):
                check_party(principal, row[0])
            add_shipment(
                conn,
                order_id=str(order_id),
                shipment_id=body.shipment_id,
                origin=body.origin,
                destination=body.destination,
                expected_delivery=body.expected_delivery,
                lots=[lot.model_dump() for lot in body.lots],
                actor=principal.username,
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


@router.post("/shipments/{shipment_id}/custody", responses=_ERRORS)
async def custody_event(
    shipment_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9._:-]{1,64}$")],
    body: CustodyIn,
    request: Request,
    principal: Annotated[Principal, Depends(require("logistics"))],
) -> dict[str, str]:
    """A custody event for the shipment: shipping -> in_transit, receiving -> delivered."""

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
