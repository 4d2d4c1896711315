"""Public proof endpoints (no sign-in: anyone may check a record against the ledger).

- ``GET /proofs/readings/{device_id}/{seq}``: a reading's proof (tracehub/proof.py).
- ``GET /proofs/events/{event_id}``: an EPCIS event's proof (tracehub/epcis/proof.py).
- ``GET /ledger/anchors/{batch_id}``: the anchor as the ledger holds it (``GetAnchor``,
  evaluated through Org2's peer, else Org1's), plus ``block_number`` when our database knows it.

404 with a message while a record is unknown or not anchored yet. The ledger connection is
opened on first use, once per app, and closed by :func:`close_ledger` at shutdown.
"""

from __future__ import annotations

import json
import threading
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, HTTPException, Path, Request, status
from starlette.concurrency import run_in_threadpool

from api.config import ApiConfig
from api.epcis import sync_connection
from ingest.proofs import ProofUnavailable, proof_for
from ingest.store import ReadingStore
from tracehub import db
from tracehub.epcis.proof import event_proof
from tracehub.ledger import Contract, Gateway, LedgerError
from tracehub.ledger.local import connect_org
from tracehub.proof import BATCH_ID_PATTERN

router = APIRouter(tags=["proofs"])
_lock = threading.Lock()


def _not_found(message: str) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, detail=message)


def _contract(app: FastAPI) -> Contract:
    """The chaincode on a lazily opened gateway: Org2's peer, Org1's if Org2's cannot be had."""
    with _lock:
        contract: Contract | None = getattr(app.state, "proofs_contract", None)
        if contract is not None:
            return contract
        config: ApiConfig = app.state.config
        fabric = config.stack.fabric
        errors: list[str] = []
        for org in (2, 1):
            try:
                gateway = connect_org(fabric, org)
            except (LedgerError, OSError) as exc:
                errors.append(f"org{org}: {exc}")
                continue
            app.state.proofs_gateway = gateway
            contract = gateway.get_network(fabric.channel).get_contract(fabric.chaincode)
            app.state.proofs_contract = contract
            return contract
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"ledger unavailable: {errors}")


def close_ledger(app: FastAPI) -> None:
    """Close the ledger gateway if one was opened (called at app shutdown)."""
    with _lock:
        gateway: Gateway | None = getattr(app.state, "proofs_gateway", None)
        app.state.proofs_gateway = None
        app.state.proofs_contract = None
    if gateway is not None:
        gateway.close()


@router.get("/proofs/readings/{device_id}/{seq}", responses={404: {"description": "not anchored"}})
async def reading_proof(
    device_id: str, seq: Annotated[int, Path(ge=1, lt=2**63)], request: Request
) -> dict[str, Any]:
    """The inclusion proof of reading ``seq`` of ``device_id``."""
    if "\x00" in device_id:
        raise _not_found("no such device")
    config: ApiConfig = request.app.state.config
    options = config.connect_options
    kwargs: dict[str, Any] = {"options": options} if options else {}
    fabric = config.stack.fabric

    def work() -> dict[str, Any]:
        with ReadingStore(lambda: db.connect(config.postgres_dsn, **kwargs)) as store:
            proof = proof_for(
                store, device_id, seq, channel=fabric.channel, chaincode=fabric.chaincode
            )
            return proof.to_dict()

    try:
        return await run_in_threadpool(work)
    except ProofUnavailable as exc:
        raise _not_found(str(exc)) from exc


@router.get("/proofs/events/{event_id:path}", responses={404: {"description": "not anchored"}})
async def event_proof_document(event_id: str, request: Request) -> dict[str, Any]:
    """The inclusion proof of an EPCIS event (by eventID, or hash URI if it had none)."""
    if "\x00" in event_id:
        raise _not_found("no such event")
    fabric = request.app.state.config.stack.fabric

    def work() -> dict[str, Any] | None:
        with sync_connection(request) as conn:
            proof = event_proof(conn, event_id, channel=fabric.channel, chaincode=fabric.chaincode)
            return None if proof is None else proof.to_dict()

    found = await run_in_threadpool(work)
    if found is None:
        raise _not_found(f"event {event_id} is unknown or not anchored yet")
    return found


@router.get("/ledger/anchors/{batch_id}", responses={404: {"description": "not anchored"}})
async def anchor(batch_id: str, request: Request) -> dict[str, Any]:
    """The ledger's anchor record of a batch (readings or ``ev-`` events)."""
    if not BATCH_ID_PATTERN.fullmatch(batch_id):
        raise _not_found(f"{batch_id!r} is not a batch id")
    app = request.app

    def work() -> dict[str, Any]:
        contract = _contract(app)
        try:
            record: dict[str, Any] = json.loads(contract.evaluate("GetAnchor", batch_id))
        except LedgerError as exc:
            if "not anchored" in str(exc):
                raise _not_found(f"batch {batch_id} is not anchored") from exc
            raise HTTPException(status.HTTP_502_BAD_GATEWAY, f"ledger: {exc}") from exc
        with sync_connection(request) as conn:
            table = "epcis_batches" if batch_id.startswith("ev-") else "batches"
            row = conn.execute(
                f"SELECT block_number FROM {table} WHERE batch_id = %s",
                (batch_id,),
            ).fetchone()
        record["block_number"] = row[0] if row else None
        return record

    return await run_in_threadpool(work)
