"""/commerce trade documents of a shipment: issue (the shipper), list and download (the
shipment's shipper, receiver, customs broker and their auditors). commerce/documents/ does
the work; downloads are the exact stored bytes, checked against their recorded SHA-256."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from api.db import sync_connection
from api.policy import Access, guard
from commerce.documents import store
from tracehub.ipfs_replicated import StackStore, content_store

router = APIRouter(tags=["commerce documents"])
_ERRORS: dict[int | str, dict[str, Any]] = {
    403: {"description": "not your organisation's"},
    404: {"description": "not found"},
    409: {"description": "a new version needs a correction reason"},
    422: {"description": "invalid request"},
    502: {"description": "IPFS unavailable or the bytes no longer match"},
}
ShipmentId = Annotated[str, Field(pattern=r"^[A-Za-z0-9._:-]{1,64}$")]
Kind = Literal["commercial_invoice", "packing_list", "certificate_of_origin"]


class IssueIn(BaseModel):
    kind: Kind
    reason: Annotated[str, Field(max_length=2000, pattern=r"^[^\x00]*$")] = ""
    languages: Annotated[
        list[Literal["en", "es", "zh", "ar"]] | None, Field(min_length=1, max_length=2)
    ] = None


def _ipfs(request: Request) -> StackStore:
    return content_store(request.app.state.config.stack)


def _out(doc: store.Issued, shipment_id: str) -> dict[str, Any]:
    base = f"/commerce/shipments/{shipment_id}/documents/file?kind={doc.kind}&version={doc.version}"
    return {
        **doc.to_dict(),
        "pdf_url": f"{base}&format=pdf",
        "json_url": f"{base}&format=json",
        "proof_url": f"/proofs/events/{doc.event_id}",
    }


@router.post("/shipments/{shipment_id}/documents", status_code=201, responses=_ERRORS)
async def issue(
    shipment_id: ShipmentId,
    body: IssueIn,
    request: Request,
    access: Annotated[Access, Depends(guard("shipment.documents_issue", "shipment_id"))],
) -> dict[str, Any]:
    """Generate the document from the order and shipment (PDF + JSON), store it on IPFS and
    anchor its SHA-256 through an EPCIS event. Again: a correction, with a reason (a new
    version; the earlier one stays)."""
    principal = access.principal

    def work() -> store.Issued:
        with sync_connection(request) as conn, _ipfs(request) as ipfs:
            doc = store.issue(
                conn,
                ipfs,
                shipment_id=shipment_id,
                kind=body.kind,
                actor=principal.username,
                org=principal.org_id,
                reason=body.reason,
                languages=list(body.languages) if body.languages else None,
            )
            conn.commit()
            return doc

    return _out(await run_in_threadpool(work), shipment_id)


@router.get("/shipments/{shipment_id}/documents", responses=_ERRORS)
async def listing(
    shipment_id: ShipmentId,
    request: Request,
    _: Annotated[Access, Depends(guard("shipment.documents_read", "shipment_id"))],
) -> list[dict[str, Any]]:
    """Every version of the shipment's documents, with download and proof links."""

    def work() -> list[store.Issued]:
        with sync_connection(request) as conn:
            return store.list_documents(conn, shipment_id)

    return [_out(d, shipment_id) for d in await run_in_threadpool(work)]


@router.get(
    "/shipments/{shipment_id}/documents/file",
    response_class=Response,
    responses={
        **_ERRORS,
        200: {"content": {"application/pdf": {}, "application/json": {}}},
    },
)
async def download(
    shipment_id: ShipmentId,
    request: Request,
    _: Annotated[Access, Depends(guard("shipment.documents_read", "shipment_id"))],
    kind: Kind,
    version: Annotated[int | None, Query(ge=1, le=10_000)] = None,
    format: Literal["pdf", "json"] = "pdf",
) -> Response:
    """One version's exact bytes (the latest without ``version``)."""

    def work() -> tuple[store.Issued, bytes]:
        with sync_connection(request) as conn:
            doc = store.get_document(conn, shipment_id, kind, version)
        with _ipfs(request) as ipfs:
            return doc, store.document_bytes(ipfs, doc, format)

    doc, data = await run_in_threadpool(work)
    digest = doc.pdf_sha256 if format == "pdf" else doc.json_sha256
    return Response(
        data,
        media_type="application/pdf" if format == "pdf" else "application/json",
        headers={
            "Content-Disposition": f'attachment; filename="{doc.number}.{format}"',
            "X-Content-SHA256": digest,
            "X-Event-ID": doc.event_id,
            "Cache-Control": "private, max-age=3600",
        },
    )
