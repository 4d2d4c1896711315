"""/commerce scorecards: supplier scores and tiers, customer RFM tiers, manual inputs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import AwareDatetime, BaseModel, Field
from starlette.concurrency import run_in_threadpool

from api.db import sync_connection
from api.policy import Access, guard
from commerce.errors import CommerceInvalidError
from commerce.scorecards import customer_rfm, supplier_scorecards

router = APIRouter(tags=["commerce scorecards"])
Score = Annotated[str, Field(pattern=r"^(100(\.0{1,2})?|[0-9]{1,2}(\.[0-9]{1,2})?)$")]


class SupplierInputs(BaseModel):
    """Manual criteria (0..100) where no data exists."""

    cost: Score = "50"
    innovation: Score = "50"
    environmental: Score = "50"
    quality_pass_rate: Score | None = None


@router.put(
    "/scorecards/suppliers/{supplier_org}/inputs",
    responses={422: {"description": "invalid request"}},
)
async def put_inputs(
    supplier_org: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")],
    body: SupplierInputs,
    request: Request,
    _: Annotated[Access, Depends(guard("scorecard.inputs"))],
) -> dict[str, Any]:
    """Set a supplier's manual scorecard inputs."""

    def work() -> None:
        with sync_connection(request) as conn:
            conn.execute(
                "INSERT INTO supplier_inputs (supplier_org, cost, innovation, environmental,"
                " quality_pass_rate) VALUES (%s, %s, %s, %s, %s) ON CONFLICT (supplier_org)"
                " DO UPDATE SET cost = EXCLUDED.cost, innovation = EXCLUDED.innovation,"
                " environmental = EXCLUDED.environmental,"
                " quality_pass_rate = EXCLUDED.quality_pass_rate, updated_at = now()",
                (
                    supplier_org,
                    body.cost,
                    body.innovation,
                    body.environmental,
                    body.quality_pass_rate,
                ),
            )
            conn.commit()

    await run_in_threadpool(work)
    return {"supplier_org": supplier_org, **body.model_dump()}


@router.get("/scorecards/suppliers")
async def suppliers(
    request: Request, access: Annotated[Access, Depends(guard("scorecard.suppliers"))]
) -> list[dict[str, Any]]:
    """The weighted score (30/25/20/15/10 %) and tier of each supplier the caller's organisation
    ordered from, over its own trade (admins: every supplier, all trade)."""
    buyer = None if access.principal.has("admin") else access.principal.org_id

    def work() -> list[dict[str, Any]]:
        with sync_connection(request) as conn:
            return supplier_scorecards(conn, buyer)

    return await run_in_threadpool(work)


@router.get("/scorecards/customers")
async def customers(
    request: Request,
    access: Annotated[Access, Depends(guard("scorecard.customers"))],
    as_of: AwareDatetime | None = None,
) -> list[dict[str, Any]]:
    """Recency, frequency, monetary value (USD) and RFM tier of each of the caller's
    organisation's customers, over its own orders (admins: every buyer, all orders)."""
    supplier = None if access.principal.has("admin") else access.principal.org_id
    moment = as_of or datetime.now(UTC)
    if moment.year < 2:  # the trailing 365-day window would start before year 1
        raise CommerceInvalidError("as_of must be in year 2 or later")

    def work() -> list[dict[str, Any]]:
        with sync_connection(request) as conn:
            return customer_rfm(conn, moment, supplier)

    return await run_in_threadpool(work)
