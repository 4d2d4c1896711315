"""Inspection reports over HTTP (ingest.inspections does the work).

- ``POST /inspections`` (inspector): multipart upload of the PDF (``report``) with ``gtin``,
  ``lot``, optional ``shipment_id``, ``result`` (pass | fail) and ``summary``. 400 for what is
  not a PDF or an invalid field, 413 above the size limit, 404 for an unknown lot/shipment.
- ``GET /inspections?gtin=&lot=&shipment_id=``: the list (any signed-in user).
- ``GET /inspections/{id}``: metadata; ``GET /inspections/{id}/report.pdf``: the exact bytes from
  IPFS, served only if they still hash to the recorded SHA-256 (502 otherwise).

Reports are public evidence for the buyer page, but listing and reading them here needs a token;
the resolver shows them to the public with its own rules. Refusals are ingest.inspections'
errors (and IPFS's), answered by api/errors.py according to their kind.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import Depends, File, Form, Query, Request, UploadFile, status
from fastapi.responses import Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from api.db import Connection, sync_connection
from api.policy import Access, NotPartyError, authorize, guard, scope
from api.routing import Router
from ingest import inspections as core
from ingest.parties import aparties
from tracehub.gs1 import normalise_gtin
from tracehub.ipfs_replicated import StackStore, content_store

router = Router(prefix="/inspections", tags=["inspections"])


class InspectionOut(BaseModel):
    inspection_id: str
    gtin: str
    lot: str
    shipment_id: str | None
    inspector: str
    result: str
    summary: str
    report_sha256: str
    report_cid: str
    report_size: int
    event_id: str
    event_hash: str
    inspected_at: datetime
    report_url: str


def _out(inspection: core.Inspection) -> InspectionOut:
    return InspectionOut(
        **inspection.to_dict() | {"inspected_at": inspection.inspected_at},
        report_url=f"/inspections/{inspection.inspection_id}/report.pdf",
    )


def _ipfs(request: Request) -> StackStore:
    return content_store(request.app.state.config.stack)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=InspectionOut,
    responses={
        400: {"description": "not a PDF, or an invalid field"},
        404: {"description": "unknown lot or shipment"},
        413: {"description": "report too large"},
        502: {"description": "IPFS unavailable"},
    },
)
async def upload(
    request: Request,
    conn: Connection,
    access: Annotated[Access, Depends(guard("inspection.create"))],
    report: Annotated[UploadFile, File(description="the inspection report (PDF)")],
    gtin: Annotated[str, Form(max_length=14)],
    lot: Annotated[str, Form(max_length=20)],
    result: Annotated[Literal["pass", "fail"], Form()],
    summary: Annotated[str, Form(max_length=4000)] = "",
    shipment_id: Annotated[str | None, Form(max_length=64)] = None,
) -> InspectionOut:
    """Upload an inspection report; it is stored on IPFS and anchored via an EPCIS event. Only
    an inspector of an organisation commissioned for the lot reports on it."""
    principal = access.principal
    if not principal.has("admin"):
        key = f"{normalise_gtin(gtin)}/{lot}"
        authorize(principal, "inspection.create", await aparties(conn, "lot", key))
    await conn.rollback()
    # Read one byte past the limit so an oversized upload is detected without reading it all.
    pdf = await report.read(core.MAX_REPORT_BYTES + 1)

    def work() -> core.Inspection:
        with sync_connection(request) as conn, _ipfs(request) as ipfs:
            inspection = core.record_inspection(
                conn,
                ipfs,
                pdf=pdf,
                gtin=gtin,
                lot=lot,
                shipment_id=shipment_id or None,
                inspector=principal.username,
                result=result,
                summary=summary,
                inspector_org=principal.org_id,
            )
            conn.commit()
            return inspection

    return _out(await run_in_threadpool(work))


class CommissionIn(BaseModel):
    gtin: Annotated[str, Field(pattern=r"^[0-9]{8,14}$")]
    lot: Annotated[str, Field(min_length=1, max_length=20, pattern=r"^[\x21-\x7e]+$")]
    inspection_org: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]


@router.post(
    "/commissions",
    status_code=status.HTTP_201_CREATED,
    responses={404: {"description": "unknown lot"}},
)
async def commission(
    body: CommissionIn,
    request: Request,
    conn: Connection,
    access: Annotated[Access, Depends(guard("inspection.commission"))],
) -> dict[str, str]:
    """A party of the lot commissions an inspection organisation to inspect it."""
    principal = access.principal
    gtin = normalise_gtin(body.gtin)
    lot_parties = await aparties(conn, "lot", f"{gtin}/{body.lot}")
    authorize(principal, "inspection.commission", lot_parties)
    await conn.rollback()
    # An admin commissions on the brand owner's behalf.
    owners = sorted(lot_parties.orgs("brand_owner"))
    client = owners[0] if principal.has("admin") and owners else principal.org_id
    if client is None or (principal.has("admin") and not owners):
        raise NotPartyError(f"lot {gtin}/{body.lot} not found")

    def work() -> str:
        with sync_connection(request) as sync:
            found = core.commission(
                sync,
                gtin=gtin,
                lot=body.lot,
                client_org=client,
                inspection_org=body.inspection_org,
                actor=principal.username,
            )
            sync.commit()
            return found

    commission_id = await run_in_threadpool(work)
    return {"commission_id": commission_id, "gtin": gtin, "lot": body.lot}


@router.get("", response_model=list[InspectionOut])
async def listing(
    request: Request,
    conn: Connection,
    access: Annotated[Access, Depends(guard("inspection.list"))],
    gtin: Annotated[str | None, Query(pattern=r"^[0-9]{14}$")] = None,
    lot: Annotated[str | None, Query(max_length=20, pattern=r"^[^\x00]*$")] = None,
    shipment_id: Annotated[str | None, Query(max_length=64, pattern=r"^[^\x00]*$")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[InspectionOut]:
    """Inspections of a lot (gtin + lot), a product or a shipment, newest first: of the lots
    the caller's organisation is a party to, or that it commissioned or made."""
    orgs = (await scope(conn, access.principal)).orgs
    await conn.rollback()

    def work() -> list[core.Inspection]:
        with sync_connection(request) as sync:
            return core.list_inspections(
                sync, gtin=gtin, lot=lot, shipment_id=shipment_id, limit=limit, orgs=orgs
            )

    return [_out(i) for i in await run_in_threadpool(work)]


async def _one(request: Request, inspection_id: str) -> core.Inspection:
    def work() -> core.Inspection:
        with sync_connection(request) as conn:
            return core.get_inspection(conn, inspection_id)

    return await run_in_threadpool(work)


@router.get(
    "/{inspection_id}",
    response_model=InspectionOut,
    responses={404: {"description": "unknown inspection"}},
)
async def one(
    request: Request,
    inspection_id: str,
    _: Annotated[Access, Depends(guard("inspection.read", "inspection_id"))],
) -> InspectionOut:
    """One inspection's metadata."""
    return _out(await _one(request, inspection_id))


@router.get(
    "/{inspection_id}/report.pdf",
    response_class=Response,
    responses={
        200: {"content": {"application/pdf": {}}, "description": "the report's exact bytes"},
        404: {"description": "unknown inspection"},
        502: {"description": "IPFS unavailable or the bytes no longer match"},
    },
)
async def report_pdf(
    request: Request,
    inspection_id: str,
    _: Annotated[Access, Depends(guard("inspection.read", "inspection_id"))],
) -> Response:
    """The report from IPFS, checked against its recorded SHA-256 before it is served."""
    inspection = await _one(request, inspection_id)

    def work() -> bytes:
        with _ipfs(request) as ipfs:
            return core.report_bytes(ipfs, inspection)

    data = await run_in_threadpool(work)
    return Response(
        data,
        media_type="application/pdf",
        headers={
            "Content-Disposition": f'inline; filename="inspection-{inspection.inspection_id}.pdf"',
            "X-Content-SHA256": inspection.report_sha256,
            "Cache-Control": "private, max-age=3600",
        },
    )
