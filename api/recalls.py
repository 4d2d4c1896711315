"""Recalls: open (the brand owner), read, acknowledge with quantities (each affected party),
close. ingest/genealogy/recalls.py keeps them; alerts/recalls.py tells the parties and, through
commerce's release rule, holds the payments of affected open orders.

- ``POST /recalls`` {targets, reason, class}: the affected set, the recall's EPCIS event, one
  alert per affected lot and shipment; 201 with the recall;
- ``GET /recalls``: the recalls the caller's organisation opened or is a party to;
- ``GET /recalls/{id}``; ``POST /recalls/{id}/acknowledgements`` {located, quarantined,
  returned, note}; ``POST /recalls/{id}/close``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any
from uuid import UUID

from fastapi import Depends, Request, status
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from alerts.recalls import alert_recall
from api.db import sync_connection
from api.policy import Access, authorize, guard
from api.routing import Router
from ingest.genealogy.ids import parse_query_id
from ingest.genealogy.recalls import (
    RecallInvalidError,
    acknowledge,
    close_recall,
    open_recall,
    recall_document,
)
from ingest.parties import parties

router = Router(prefix="/recalls", tags=["recalls"])


class RecallRequest(BaseModel):
    targets: list[Annotated[str, Field(min_length=1, max_length=500)]] = Field(
        min_length=1, max_length=100
    )
    reason: str = Field(min_length=1, max_length=2000)
    recall_class: str = Field(alias="class", pattern="^(I|II|III)$")


class Acknowledgement(BaseModel):
    located: Decimal = Field(default=Decimal(0), ge=0)
    quarantined: Decimal = Field(default=Decimal(0), ge=0)
    returned: Decimal = Field(default=Decimal(0), ge=0)
    note: str | None = Field(default=None, max_length=2000)


def _gtin_of(target: str) -> str:
    node = parse_query_id(target)
    if not node.startswith(("lot:", "item:", "product:")):
        raise RecallInvalidError(f"{target}: not a lot, item or product of a GTIN")
    return node.split(":", 1)[1].split("/", 1)[0]


@router.post("", status_code=status.HTTP_201_CREATED)
async def open_(
    request: Request,
    access: Annotated[Access, Depends(guard("recall.open"))],
    body: RecallRequest,
) -> dict[str, Any]:
    """Open a recall of lots or EPCs of the caller's organisation's products."""
    principal = access.principal

    def work() -> dict[str, Any]:
        with sync_connection(request) as conn:
            owners: set[str] = set()
            for gtin in sorted({_gtin_of(t) for t in body.targets}):
                found = parties(conn, "product", gtin)
                authorize(principal, "recall.open", found)
                owners |= found.orgs("brand_owner")
            if len(owners) != 1:
                raise RecallInvalidError("the targets must be products of one brand owner")
            opened = open_recall(
                conn,
                brand_org=owners.pop(),
                opened_by=principal.username,
                targets=body.targets,
                reason=body.reason,
                recall_class=body.recall_class,
            )
            alerts = alert_recall(conn, opened, recall_class=body.recall_class, reason=body.reason)
            doc = recall_document(conn, opened.recall_id)
            conn.commit()
        return {**doc, "alerts": alerts}

    return await run_in_threadpool(work)


@router.get("")
async def list_(
    request: Request, access: Annotated[Access, Depends(guard("recall.list"))]
) -> list[dict[str, Any]]:
    """Recalls the caller's organisation opened or is affected by (admins: all)."""
    principal = access.principal
    every = principal.has("admin")

    def work() -> list[dict[str, Any]]:
        with sync_connection(request) as conn:
            rows = conn.execute(
                "SELECT recall_id::text FROM recalls r WHERE %(all)s OR r.brand_org = %(org)s"
                " OR EXISTS (SELECT 1 FROM recall_parties p WHERE p.recall_id = r.recall_id"
                " AND p.org_id = %(org)s) ORDER BY opened_at DESC LIMIT 200",
                {"all": every, "org": principal.org_id},
            ).fetchall()
            return [recall_document(conn, r[0]) for r in rows]

    return await run_in_threadpool(work)


@router.get("/{recall_id}")
async def read(
    request: Request,
    recall_id: UUID,
    access: Annotated[Access, Depends(guard("recall.read", "recall_id"))],
) -> dict[str, Any]:
    """One recall: its affected items, parties with their answers, and held orders."""

    def work() -> dict[str, Any]:
        with sync_connection(request) as conn:
            return recall_document(conn, str(recall_id))

    return await run_in_threadpool(work)


@router.post("/{recall_id}/acknowledgements")
async def acknowledge_(
    request: Request,
    recall_id: UUID,
    access: Annotated[Access, Depends(guard("recall.acknowledge", "recall_id"))],
    body: Acknowledgement,
) -> dict[str, Any]:
    """The caller's organisation acknowledges the recall with the quantities it found."""
    principal = access.principal

    def work() -> dict[str, Any]:
        with sync_connection(request) as conn:
            acknowledge(
                conn,
                str(recall_id),
                str(principal.org_id),
                principal.username,
                located=body.located,
                quarantined=body.quarantined,
                returned=body.returned,
                note=body.note,
            )
            doc = recall_document(conn, str(recall_id))
            conn.commit()
            return doc

    return await run_in_threadpool(work)


@router.post("/{recall_id}/close")
async def close(
    request: Request,
    recall_id: UUID,
    access: Annotated[Access, Depends(guard("recall.close", "recall_id"))],
) -> dict[str, Any]:
    """Close the recall."""

    def work() -> dict[str, Any]:
        with sync_connection(request) as conn:
            close_recall(conn, str(recall_id))
            doc = recall_document(conn, str(recall_id))
            conn.commit()
            return doc

    return await run_in_threadpool(work)
