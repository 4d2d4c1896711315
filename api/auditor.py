"""The auditor's view: search anchors, batches, devices and events; re-verify any; export bundles.

JSON endpoints (auditor role; admin admitted). An auditor sees what its engagement covers:
the records of the organisations that engaged its organisation (api/policy.py). Batches and
their anchors are evidence any verifier may check, so they are listed and verified for every
auditor; devices, events, readings and bundles of lots or shipments only within the
engagement; bundles of a whole batch or time range (which span organisations) only for admins.

- ``GET /auditor/batches`` reading and ``ev-`` event batches (state, root, CID, tx, block),
  searched by the start of a batch id, root or tx id, by device, by time range;
- ``GET /auditor/devices`` devices seen by the gateway (certificate fingerprint, last seq);
- ``GET /auditor/events`` EPCIS events (id, type, time, bizStep, CBV 2.0 hash, batch), searched
  by the start of an event id or hash, by lot, by time range;
- ``POST /auditor/verify/batch/{batch_id}``, ``/verify/event/{event_id}``,
  ``/verify/reading/{device_id}/{seq}``, ``/verify/device/{device_id}``: server-side
  re-verification against IPFS and the ledger (tracehub.audit, tracehub.bundle), answering
  ``{"ok", "passed", "failure"}`` — a failed check is a 200 with ``ok: false``, not an error;
- ``GET /auditor/bundle?batch_id=…|gtin=…&lot=…|shipment_id=…|since=…&until=…``: an audit bundle
  (docs/audit-bundle.md) that ``tracehub verify BUNDLE --offline`` checks.

The searches, re-verification and bundles are ingest/auditing.py's (the checks the kernel's),
the ledger the app's one (api/ledger.py), read through Org2's peer.

``GET /auditor`` is the HTML page. It holds no data: its script signs in with /auth/token, keeps
the bearer token in sessionStorage (gone with the tab; never a cookie, so no CSRF surface) and
calls the JSON endpoints with it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, Path, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.concurrency import run_in_threadpool

from api.config import ApiConfig
from api.db import sync_connection
from api.ledger import AUDIT_ORG, Ledger
from api.policy import Access, NotPartyError, PolicyError, authorize, guard
from api.routing import Router
from api.staff_page import render
from ingest import auditing
from ingest.epcis.store import event_by_id
from ingest.parties import Parties, parties, scope_orgs, subject_keys_of, target
from ingest.proofs import anchored_event_proof, proof_for
from ingest.store import ReadingStore
from tracehub import db
from tracehub.audit import AuditResult, verify_event_proof
from tracehub.ipfs_replicated import content_store

router = Router(prefix="/auditor", tags=["auditor"])
Auditor = Annotated[Access, Depends(guard("auditor.read"))]
Verifier = Annotated[Access, Depends(guard("auditor.verify"))]


def _orgs(conn: db.Connection, access: Access) -> list[str] | None:
    """The organisations the caller's engagement covers (None: an admin, all)."""
    who = access.principal
    if who.has("admin"):
        return None
    return scope_orgs(conn, who.org_id, auditor=True) if who.org_id else []


def _scope(conn: db.Connection, access: Access) -> tuple[list[str], list[str]] | None:
    orgs = _orgs(conn, access)
    return None if orgs is None else (orgs, subject_keys_of(conn, orgs) if orgs else [])


def _device_in_scope(conn: db.Connection, access: Access, device_id: str) -> None:
    if not auditing.device_visible(conn, device_id, _orgs(conn, access)):
        raise NotPartyError(f"unknown device {device_id}")


#: PostgreSQL text cannot hold NUL: refuse it as a 422 rather than fail in the database.
NO_NUL = r"^[^\x00]*$"
PathText = Annotated[str, Path(max_length=2048, pattern=NO_NUL)]


def _verdict(result: AuditResult) -> dict[str, Any]:
    return {"ok": result.ok, "passed": result.passed, "failure": result.failure}


@router.get("", response_class=HTMLResponse, include_in_schema=False)
async def page(request: Request) -> HTMLResponse:
    """The auditor page (data is fetched by its script with the signed-in token)."""
    return render(request, "auditor/index.html", "Auditor")


# ------------------------------------------------------------------------------ search


@router.get("/batches")
async def batches(
    request: Request,
    principal: Auditor,
    kind: Annotated[str | None, Query(pattern="^(readings|events)$")] = None,
    state: Annotated[str | None, Query(pattern="^(sealed|stored|anchored)$")] = None,
    q: Annotated[
        str | None,
        Query(max_length=128, pattern=NO_NUL, description="start of a batch id, root or tx id"),
    ] = None,
    device: Annotated[
        str | None, Query(max_length=128, pattern=NO_NUL, description="batches of its readings")
    ] = None,
    since: Annotated[datetime | None, Query(description="time range overlaps from")] = None,
    until: Annotated[datetime | None, Query(description="time range overlaps until")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """Batches of readings and of EPCIS events, newest first; a device outside the caller's
    engagement is not found (which batches hold its readings is the engagement's business)."""

    def work() -> list[dict[str, Any]]:
        with sync_connection(request) as conn:
            if device:
                _device_in_scope(conn, principal, device)
            return auditing.find_batches(
                conn,
                kind=kind,
                state=state,
                q=q,
                device=device,
                since=since,
                until=until,
                limit=limit,
            )

    return await run_in_threadpool(work)


@router.get("/devices")
async def devices(
    request: Request,
    principal: Auditor,
    q: Annotated[str | None, Query(max_length=128, pattern=NO_NUL)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """Devices the gateway has seen, with the fingerprint of the certificate they sign with."""

    def work() -> list[dict[str, Any]]:
        with sync_connection(request) as conn:
            return auditing.find_devices(conn, q=q, limit=limit, orgs=_orgs(conn, principal))

    return await run_in_threadpool(work)


@router.get("/events")
async def events(
    request: Request,
    principal: Auditor,
    biz_step: Annotated[str | None, Query(alias="bizStep", max_length=200, pattern=NO_NUL)] = None,
    epc: Annotated[str | None, Query(max_length=500, pattern=NO_NUL)] = None,
    q: Annotated[
        str | None,
        Query(max_length=200, pattern=NO_NUL, description="start of an event id or hash"),
    ] = None,
    lot: Annotated[str | None, Query(max_length=20, pattern=NO_NUL)] = None,
    since: Annotated[datetime | None, Query(description="event time from")] = None,
    until: Annotated[datetime | None, Query(description="event time until")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """EPCIS events, newest capture first."""

    def work() -> list[dict[str, Any]]:
        with sync_connection(request) as conn:
            return auditing.find_events(
                conn,
                biz_step=biz_step,
                epc=epc,
                q=q,
                lot=lot,
                since=since,
                until=until,
                limit=limit,
                scope=_scope(conn, principal),
            )

    return await run_in_threadpool(work)


# ------------------------------------------------------------------------------ verification


@router.post("/verify/batch/{batch_id}", responses={404: {"description": "unknown batch"}})
async def verify_batch(
    request: Request, batch_id: PathText, principal: Verifier, ledger: Ledger
) -> dict[str, Any]:
    """Fetch the batch object from IPFS and check CID, layout, root and count against the
    ledger's anchor (and, for event batches, every event's CBV 2.0 hash)."""
    config: ApiConfig = request.app.state.config

    def work() -> dict[str, Any]:
        with sync_connection(request) as conn:
            batch = auditing.stored_batch(conn, batch_id)
        with content_store(config.stack) as ipfs:
            contract = ledger.contract(AUDIT_ORG)
            return _verdict(auditing.verify_batch(batch, ipfs=ipfs, ledger=contract))

    return await run_in_threadpool(work)


@router.post("/verify/event/{event_id:path}", responses={404: {"description": "not anchored"}})
async def verify_event(
    request: Request, event_id: PathText, principal: Verifier, ledger: Ledger
) -> dict[str, Any]:
    """Re-verify an EPCIS event's proof against IPFS and the ledger."""
    config: ApiConfig = request.app.state.config
    fabric = config.stack.fabric

    def work() -> dict[str, Any]:
        with sync_connection(request) as conn:
            if event_by_id(conn, event_id, _scope(conn, principal)) is None:
                raise NotPartyError(f"event {event_id} not found")
            proof = anchored_event_proof(
                conn, event_id, channel=fabric.channel, chaincode=fabric.chaincode
            )
        with content_store(config.stack) as ipfs:
            contract = ledger.contract(AUDIT_ORG)
            return _verdict(verify_event_proof(proof, ipfs=ipfs, ledger=contract))

    return await run_in_threadpool(work)


@router.post("/verify/reading/{device_id}/{seq}", responses={404: {"description": "not anchored"}})
async def verify_reading(
    request: Request,
    device_id: PathText,
    seq: Annotated[int, Path(ge=1, le=2**63 - 1)],
    principal: Verifier,
    ledger: Ledger,
) -> dict[str, Any]:
    """Re-verify a reading: path, batch on IPFS, signature (CA chain, CRL, ledger directory),
    anchor on the ledger."""
    config: ApiConfig = request.app.state.config
    fabric = config.stack.fabric
    kwargs: dict[str, Any] = {"options": config.connect_options} if config.connect_options else {}

    def work() -> dict[str, Any]:
        with sync_connection(request) as conn:
            _device_in_scope(conn, principal, device_id)
        with ReadingStore(lambda: db.connect(config.postgres_dsn, **kwargs)) as store:
            proof = proof_for(
                store, device_id, seq, channel=fabric.channel, chaincode=fabric.chaincode
            )
        with content_store(config.stack) as ipfs:
            result = auditing.verify_reading(
                proof, pki_dir=config.stack.pki_dir, ipfs=ipfs, ledger=ledger.contract(AUDIT_ORG)
            )
        return _verdict(result)

    return await run_in_threadpool(work)


@router.post("/verify/device/{device_id}", responses={404: {"description": "unknown device"}})
async def verify_device(
    request: Request, device_id: PathText, principal: Verifier, ledger: Ledger
) -> dict[str, Any]:
    """The device's signing certificate (as the gateway recorded it) is enrolled on the ledger
    under this device id and not revoked."""

    def work() -> dict[str, Any]:
        with sync_connection(request) as conn:
            _device_in_scope(conn, principal, device_id)
            fingerprint = auditing.device_fingerprint(conn, device_id)
        contract = ledger.contract(AUDIT_ORG)
        return _verdict(auditing.verify_device(device_id, fingerprint, ledger=contract))

    return await run_in_threadpool(work)


# ------------------------------------------------------------------------------ bundles


def _bundle_in_scope(
    conn: db.Connection,
    access: Access,
    gtin: str | None,
    lot: str | None,
    shipment: str | None,
    others: tuple[Any, ...],
) -> None:
    """A lot's or shipment's bundle needs the engagement to cover it (404); a batch or time
    range (``others``) spans organisations: admins only (403). A malformed selection is the
    bundle's to refuse (400)."""
    who = access.principal
    chosen = [x for x in (gtin or lot, shipment, *others) if x is not None]
    naive = any(isinstance(x, datetime) and x.tzinfo is None for x in others)
    if who.has("admin") or len(chosen) != 1 or naive:
        return
    if shipment is None and (gtin is None or lot is None):
        raise PolicyError("bundles of a batch or a time range span organisations: admins only")
    kind, key = target(shipment, gtin, lot)
    found = parties(conn, kind, key)
    if not found.relations_of(who.org_id) & {"auditor"}:
        authorize(who, "auditor.read", Parties())  # the role
        raise NotPartyError(f"{kind} {key} not found")


@router.get(
    "/bundle",
    responses={
        200: {"description": "an audit bundle (docs/audit-bundle.md)"},
        400: {"description": "no or several selections, or too many records"},
        404: {"description": "unknown batch, lot or shipment"},
    },
)
async def bundle(
    request: Request,
    principal: Auditor,
    ledger: Ledger,
    batch_id: Annotated[str | None, Query(max_length=128, pattern=NO_NUL)] = None,
    gtin: Annotated[str | None, Query(pattern=r"^[0-9]{14}$")] = None,
    lot: Annotated[str | None, Query(min_length=1, max_length=20, pattern=NO_NUL)] = None,
    shipment_id: Annotated[str | None, Query(max_length=64, pattern=NO_NUL)] = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> JSONResponse:
    """An audit bundle of one batch, a lot, a shipment or a time range."""
    config: ApiConfig = request.app.state.config
    fabric = config.stack.fabric

    def work() -> dict[str, Any]:
        with sync_connection(request) as conn, content_store(config.stack) as ipfs:
            _bundle_in_scope(conn, principal, gtin, lot, shipment_id, (batch_id, since or until))
            return auditing.audit_bundle(
                conn,
                ipfs=ipfs,
                ledger=ledger.contract(AUDIT_ORG),
                pki_dir=config.stack.pki_dir,
                channel=fabric.channel,
                chaincode=fabric.chaincode,
                batch_id=batch_id,
                gtin=gtin,
                lot=lot,
                shipment_id=shipment_id,
                since=since,
                until=until,
            )

    document = await run_in_threadpool(work)
    return JSONResponse(
        document, headers={"Content-Disposition": 'attachment; filename="audit-bundle.json"'}
    )
