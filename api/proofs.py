"""Public proof endpoints (no sign-in: anyone may check a record against the ledger).

- ``GET /proofs/readings/{device_id}/{seq}``: a reading's proof (tracehub/proof.py).
- ``GET /proofs/readings/{device_id}?first=&last=``: the proofs of a range of its readings.
- ``GET /proofs/events/{event_id}``: an EPCIS event's proof (tracehub/epcis/proof.py).
- ``GET /ledger/anchors/{batch_id}``: the anchor as the ledger holds it (``GetAnchor``,
  evaluated through Org2's peer, else Org1's), plus ``block_number`` when our database knows it.

404 with a message while a record is unknown or not anchored yet. Proofs are built by
ingest/proofs.py (the one proof builder), which keeps the trees of recently proved batches in
the app's :class:`~ingest.proofs.TreeCache`; the ledger is the app's one (api/ledger.py).
"""

from __future__ import annotations

import json
import threading
from typing import Annotated, Any

from fastapi import FastAPI, Path, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from api.db import Connection, sync_connection
from api.ledger import AUDIT_ORG, HUB_ORG, Ledger
from api.routing import Router
from ingest.proofs import (
    TreeCache,
    anchored_event_proof,
    anchored_reading_proof,
    anchored_reading_proofs,
    block_number,
    ledger_anchor,
)

router = Router(tags=["proofs"])
_lock = threading.Lock()


def _tree_cache(app: FastAPI) -> TreeCache:
    with _lock:
        cache: TreeCache | None = getattr(app.state, "proof_trees", None)
        if cache is None:
            cache = app.state.proof_trees = TreeCache()
        return cache


@router.get(
    "/proofs/readings/{device_id}/{seq}",
    response_class=Response,
    responses={
        200: {"content": {"application/json": {}}, "description": "the proof"},
        404: {"description": "not anchored"},
        409: {"description": "the stored batch does not hold the reading"},
    },
)
async def reading_proof(
    device_id: str,
    seq: Annotated[int, Path(ge=1, lt=2**63)],
    request: Request,
    conn: Connection,
) -> Response:
    """The inclusion proof of reading ``seq`` of ``device_id`` (tracehub/proof.py's JSON)."""
    fabric = request.app.state.config.stack.fabric
    proof = await anchored_reading_proof(
        conn,
        device_id,
        seq,
        trees=_tree_cache(request.app),
        channel=fabric.channel,
        chaincode=fabric.chaincode,
    )
    # Encoded here once, not walked again by FastAPI's generic encoder. No cache headers: the
    # page verifies what the server says now, not what it said before.
    return Response(proof.to_json().encode(), media_type="application/json")


@router.get(
    "/proofs/readings/{device_id}",
    response_class=Response,
    responses={
        200: {"content": {"application/json": {}}, "description": "the proofs"},
        400: {"description": "an empty range, or one of more than 1,000 readings"},
    },
)
async def reading_proofs(
    device_id: str,
    first: Annotated[int, Query(ge=1, lt=2**63)],
    last: Annotated[int, Query(ge=1, lt=2**63)],
    request: Request,
    conn: Connection,
) -> Response:
    """The proofs of readings ``first``..``last`` of ``device_id`` (at most 1,000) by seq, each
    as ``GET /proofs/readings/{device_id}/{seq}`` gives it, and why the others have none."""
    fabric = request.app.state.config.stack.fabric
    proofs, unavailable = await anchored_reading_proofs(
        conn,
        device_id,
        first,
        last,
        trees=_tree_cache(request.app),
        channel=fabric.channel,
        chaincode=fabric.chaincode,
    )
    body = (
        b'{"device_id":'
        + json.dumps(device_id).encode()
        + b',"proofs":{'
        + b",".join(b'"%d":%s' % (seq, proof.to_json().encode()) for seq, proof in proofs.items())
        + b'},"unavailable":'
        + json.dumps({str(seq): why for seq, why in unavailable.items()}).encode()
        + b"}"
    )
    return Response(body, media_type="application/json")


@router.get("/proofs/events/{event_id:path}", responses={404: {"description": "not anchored"}})
async def event_proof_document(event_id: str, request: Request) -> dict[str, Any]:
    """The inclusion proof of an EPCIS event (by eventID, or hash URI if it had none)."""
    fabric = request.app.state.config.stack.fabric

    def work() -> dict[str, Any]:
        with sync_connection(request) as conn:
            proof = anchored_event_proof(
                conn, event_id, channel=fabric.channel, chaincode=fabric.chaincode
            )
        return proof.to_dict()

    return await run_in_threadpool(work)


@router.get("/ledger/anchors/{batch_id}", responses={404: {"description": "not anchored"}})
async def anchor(batch_id: str, request: Request, ledger: Ledger) -> dict[str, Any]:
    """The ledger's anchor record of a batch (readings or ``ev-`` events)."""

    def work() -> dict[str, Any]:
        record = ledger_anchor(ledger.contract(AUDIT_ORG, HUB_ORG), batch_id)
        with sync_connection(request) as conn:
            record["block_number"] = block_number(conn, batch_id)
        return record

    return await run_in_threadpool(work)
