"""The auditor's view: search anchors, batches, devices and events; re-verify any; export bundles.

JSON endpoints (auditor role; admin admitted):

- ``GET /auditor/batches`` reading and ``ev-`` event batches (state, root, CID, tx, block);
- ``GET /auditor/devices`` devices seen by the gateway (certificate fingerprint, last seq);
- ``GET /auditor/events`` EPCIS events (id, type, time, bizStep, CBV 2.0 hash, batch);
- ``POST /auditor/verify/batch/{batch_id}``, ``/verify/event/{event_id}``,
  ``/verify/reading/{device_id}/{seq}``, ``/verify/device/{device_id}``: server-side
  re-verification against IPFS and the ledger (tracehub.audit, tracehub.bundle), answering
  ``{"ok", "passed", "failure"}`` — a failed check is a 200 with ``ok: false``, not an error;
- ``GET /auditor/bundle?batch_id=…|gtin=…&lot=…|shipment_id=…|since=…&until=…``: an audit bundle
  (docs/audit-bundle.md) that ``tracehub verify BUNDLE --offline`` checks.

``GET /auditor`` is the HTML page. It holds no data: its script signs in with /auth/token, keeps
the bearer token in sessionStorage (gone with the tab; never a cookie, so no CSRF surface) and
calls the JSON endpoints with it.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path as FilePath
from typing import Annotated, Any

from cryptography.hazmat.primitives.serialization import Encoding
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Path, Query, Request, status
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.templating import Jinja2Templates
from psycopg.rows import dict_row
from starlette.concurrency import run_in_threadpool

from api.auth import Principal, require
from api.config import ApiConfig
from api.db import sync_connection
from certs.pki import PKI
from certs.registry import LedgerCertificateDirectory, LedgerRegistry
from ingest import bundle as bundle_builder
from ingest.proofs import ProofUnavailable, event_proof, proof_for
from ingest.store import ReadingStore
from tracehub import bundle as bundles
from tracehub import db
from tracehub.audit import AuditResult, verify_event_proof, verify_proof
from tracehub.ipfs import IPFSError, KuboClient
from tracehub.ledger import Contract, Gateway, LedgerError
from tracehub.ledger.local import connect_org
from tracehub.verify import TrustStore

PEM = Encoding.PEM
TEMPLATES = Jinja2Templates(directory=FilePath(__file__).parent / "templates")
_lock = threading.Lock()


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    try:
        yield
    finally:
        with _lock:
            gateway: Gateway | None = getattr(app.state, "auditor_gateway", None)
            app.state.auditor_gateway = None
        if gateway is not None:
            gateway.close()


router = APIRouter(prefix="/auditor", tags=["auditor"], lifespan=_lifespan)
Auditor = Annotated[Principal, Depends(require("auditor"))]
#: PostgreSQL text cannot hold NUL: refuse it as a 422 rather than fail in the database.
NO_NUL = r"^[^\x00]*$"
PathText = Annotated[str, Path(max_length=2048, pattern=NO_NUL)]


def _ledger(app: FastAPI) -> Contract:
    """Org2's peer (the hub anchors through Org1's; an auditor reads from the other org)."""
    with _lock:
        gateway: Gateway | None = getattr(app.state, "auditor_gateway", None)
        config: ApiConfig = app.state.config
        fabric = config.stack.fabric
        if gateway is None:
            try:
                gateway = connect_org(fabric, 2)
            except (LedgerError, OSError) as exc:
                raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"ledger: {exc}") from exc
            app.state.auditor_gateway = gateway
        return gateway.get_network(fabric.channel).get_contract(fabric.chaincode)


def _trust_pem(config: ApiConfig) -> tuple[bytes, bytes]:
    pki = config.stack.pki_dir
    return (pki / "ca-bundle.pem").read_bytes(), (pki / "crl.pem").read_bytes()


def _verdict(result: AuditResult) -> dict[str, Any]:
    return {"ok": result.ok, "passed": result.passed, "failure": result.failure}


async def _dict_rows(request: Request, sql: str, args: Sequence[Any]) -> list[dict[str, Any]]:
    """All rows of a query (run in a worker thread), each a dict by column name."""

    def work() -> list[dict[str, Any]]:
        with sync_connection(request) as conn, conn.cursor(row_factory=dict_row) as cur:
            return cur.execute(sql, args).fetchall()

    return await run_in_threadpool(work)


@router.get("", response_class=HTMLResponse, include_in_schema=False)
async def page(request: Request) -> HTMLResponse:
    """The auditor page (data is fetched by its script with the signed-in token)."""
    return TEMPLATES.TemplateResponse(request, "auditor/index.html", {"title": "Auditor"})


# ------------------------------------------------------------------------------ search


@router.get("/batches")
async def batches(
    request: Request,
    principal: Auditor,
    kind: Annotated[str | None, Query(pattern="^(readings|events)$")] = None,
    state: Annotated[str | None, Query(pattern="^(sealed|stored|anchored)$")] = None,
    q: Annotated[
        str | None, Query(max_length=128, pattern=NO_NUL, description="batch id, root or tx")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """Batches of readings and of EPCIS events, newest first."""
    parts = []
    if kind in (None, "readings"):
        parts.append(
            "SELECT 'readings' AS kind, batch_id, sealed_at, count, first_ts AS first_time,"
            " last_ts AS last_time, root, ipfs_cid, state, tx_id, block_number FROM batches"
        )
    if kind in (None, "events"):
        parts.append(
            "SELECT 'events', batch_id, sealed_at, count, first_time, last_time, root,"
            " ipfs_cid, state, tx_id, block_number FROM epcis_batches"
        )
    sql = f"SELECT * FROM ({' UNION ALL '.join(parts)}) b WHERE true"
    args: list[Any] = []
    if state:
        sql += " AND state = %s"
        args.append(state)
    if q:
        sql += " AND (batch_id = %s OR root = %s OR tx_id = %s)"
        args += [q, q, q]
    sql += " ORDER BY sealed_at DESC LIMIT %s"
    args.append(limit)

    return await _dict_rows(request, sql, args)


@router.get("/devices")
async def devices(
    request: Request,
    principal: Auditor,
    q: Annotated[str | None, Query(max_length=128, pattern=NO_NUL)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """Devices the gateway has seen, with the fingerprint of the certificate they sign with."""

    return await _dict_rows(
        request,
        "SELECT device_id, certificate_sha256, first_seen, last_seen, last_seq"
        " FROM devices WHERE %s::text IS NULL OR device_id LIKE %s"
        " ORDER BY device_id LIMIT %s",
        (q, f"%{q}%", limit),
    )


@router.get("/events")
async def events(
    request: Request,
    principal: Auditor,
    biz_step: Annotated[str | None, Query(alias="bizStep", max_length=200, pattern=NO_NUL)] = None,
    epc: Annotated[str | None, Query(max_length=500, pattern=NO_NUL)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """EPCIS events, newest capture first."""

    return await _dict_rows(
        request,
        "SELECT event_id, event_type, event_time, biz_step, event_hash, batch_id,"
        " batch_index FROM epcis_events"
        " WHERE (%s::text IS NULL OR biz_step = %s)"
        " AND (%s::text IS NULL OR %s = ANY(epcs))"
        " ORDER BY seq DESC LIMIT %s",
        (biz_step, biz_step, epc, epc, limit),
    )


# ------------------------------------------------------------------------------ verification


@router.post("/verify/batch/{batch_id}", responses={404: {"description": "unknown batch"}})
async def verify_batch(request: Request, batch_id: PathText, principal: Auditor) -> dict[str, Any]:
    """Fetch the batch object from IPFS and check CID, layout, root and count against the
    ledger's anchor (and, for event batches, every event's CBV 2.0 hash)."""
    app = request.app
    config: ApiConfig = app.state.config

    def work() -> dict[str, Any]:
        with sync_connection(request) as conn:
            row = conn.execute(
                "SELECT 'readings', ipfs_cid, state FROM batches WHERE batch_id = %s UNION ALL"
                " SELECT 'events', ipfs_cid, state FROM epcis_batches WHERE batch_id = %s",
                (batch_id, batch_id),
            ).fetchone()
        if row is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no batch {batch_id}")
        kind, cid, state = row
        if state != "anchored":
            return {"ok": False, "passed": [], "failure": f"batch is {state}, not anchored yet"}
        ledger = _ledger(app)
        try:
            anchor = json.loads(ledger.evaluate("GetAnchor", batch_id))
        except LedgerError as exc:
            return {"ok": False, "passed": [], "failure": f"ledger: {exc}"}
        try:
            with KuboClient(config.stack.ipfs_api) as ipfs:
                data = ipfs.cat(cid)
        except IPFSError as exc:
            return {"ok": False, "passed": ["ledger"], "failure": f"ipfs: {exc}"}
        entry = {
            "batch_id": batch_id,
            "kind": kind,
            "ipfs_cid": cid,
            "object_base64": base64.b64encode(data).decode(),
            "anchor": anchor,
        }
        try:
            bundles.check_batch_entry(entry, None)
        except bundles.BundleError as exc:
            return {"ok": False, "passed": ["ledger", "ipfs"], "failure": str(exc)}
        return {"ok": True, "passed": ["ledger", "ipfs", "root"], "failure": None}

    return await run_in_threadpool(work)


@router.post("/verify/event/{event_id:path}", responses={404: {"description": "not anchored"}})
async def verify_event(request: Request, event_id: PathText, principal: Auditor) -> dict[str, Any]:
    """Re-verify an EPCIS event's proof against IPFS and the ledger."""
    app = request.app
    config: ApiConfig = app.state.config
    fabric = config.stack.fabric

    def work() -> dict[str, Any]:
        with sync_connection(request) as conn:
            proof = event_proof(conn, event_id, channel=fabric.channel, chaincode=fabric.chaincode)
        if proof is None:
            raise HTTPException(404, f"event {event_id} is unknown or not anchored yet")
        with KuboClient(config.stack.ipfs_api) as ipfs:
            return _verdict(verify_event_proof(proof, ipfs=ipfs, ledger=_ledger(app)))

    return await run_in_threadpool(work)


@router.post("/verify/reading/{device_id}/{seq}", responses={404: {"description": "not anchored"}})
async def verify_reading(
    request: Request,
    device_id: PathText,
    seq: Annotated[int, Path(ge=1, le=2**63 - 1)],
    principal: Auditor,
) -> dict[str, Any]:
    """Re-verify a reading: path, batch on IPFS, signature (CA chain, CRL, ledger directory),
    anchor on the ledger."""
    app = request.app
    config: ApiConfig = app.state.config
    fabric = config.stack.fabric
    kwargs: dict[str, Any] = {"options": config.connect_options} if config.connect_options else {}

    def work() -> dict[str, Any]:
        try:
            with ReadingStore(lambda: db.connect(config.postgres_dsn, **kwargs)) as store:
                proof = proof_for(
                    store, device_id, seq, channel=fabric.channel, chaincode=fabric.chaincode
                )
        except ProofUnavailable as exc:
            raise HTTPException(404, str(exc)) from exc
        ca, crl = (config.stack.pki_dir / n for n in ("ca-bundle.pem", "crl.pem"))
        trust = TrustStore.from_pem_files(ca, crl, allow_stale_crls=True)
        ledger = _ledger(app)
        directory = LedgerCertificateDirectory(LedgerRegistry(ledger))
        with KuboClient(config.stack.ipfs_api) as ipfs:
            result = verify_proof(proof, ipfs=ipfs, ledger=ledger, trust=trust, directory=directory)
        return _verdict(result)

    return await run_in_threadpool(work)


@router.post("/verify/device/{device_id}", responses={404: {"description": "unknown device"}})
async def verify_device(
    request: Request, device_id: PathText, principal: Auditor
) -> dict[str, Any]:
    """The device's signing certificate (as the gateway recorded it) is enrolled on the ledger
    under this device id and not revoked."""
    app = request.app

    def work() -> dict[str, Any]:
        with sync_connection(request) as conn:
            row = conn.execute(
                "SELECT certificate_sha256 FROM devices WHERE device_id = %s", (device_id,)
            ).fetchone()
        if row is None:
            raise HTTPException(404, f"no device {device_id}")
        registry = LedgerRegistry(_ledger(app))
        try:
            record = registry.certificate(row[0])
        except LedgerError as exc:
            return {"ok": False, "passed": [], "failure": f"ledger: {exc}"}
        if record is None:
            return {"ok": False, "passed": [], "failure": "certificate not enrolled on the ledger"}
        if record.get("device_id") != device_id:
            return {
                "ok": False,
                "passed": ["enrolled"],
                "failure": f"certificate enrolled for {record.get('device_id')!r}",
            }
        if record.get("revoked_at") or record.get("status") == "revoked":
            return {
                "ok": False,
                "passed": ["enrolled", "identity"],
                "failure": f"certificate revoked at {record.get('revoked_at')}"
                f" ({record.get('revocation_reason')})",
            }
        return {"ok": True, "passed": ["enrolled", "identity", "not-revoked"], "failure": None}

    return await run_in_threadpool(work)


# ------------------------------------------------------------------------------ bundles


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
    batch_id: Annotated[str | None, Query(max_length=128, pattern=NO_NUL)] = None,
    gtin: Annotated[str | None, Query(pattern=r"^[0-9]{14}$")] = None,
    lot: Annotated[str | None, Query(min_length=1, max_length=20, pattern=NO_NUL)] = None,
    shipment_id: Annotated[str | None, Query(max_length=64, pattern=NO_NUL)] = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> JSONResponse:
    """An audit bundle of one batch, a lot, a shipment or a time range."""
    app = request.app
    config: ApiConfig = app.state.config
    fabric = config.stack.fabric
    for moment in (since, until):
        if moment is not None and moment.tzinfo is None:
            raise HTTPException(400, "since/until need a time zone offset")

    def work() -> dict[str, Any]:
        with sync_connection(request) as conn:
            try:
                selection = bundle_builder.select(
                    conn,
                    batch_id=batch_id,
                    gtin=gtin,
                    lot=lot,
                    shipment_id=shipment_id,
                    since=since,
                    until=until,
                )
            except bundles.BundleError as exc:
                code = 404 if str(exc).startswith("no ") else 400
                raise HTTPException(code, str(exc)) from exc
            ca, crl = _trust_pem(config)
            pki = PKI(config.stack.pki_dir)

            def local_certificate(fingerprint: str) -> str | None:
                found = pki.certificate_by_fingerprint(fingerprint)
                return None if found is None else found.certificate.public_bytes(PEM).decode()

            with KuboClient(config.stack.ipfs_api) as ipfs:
                return bundle_builder.build_bundle(
                    conn,
                    selection,
                    ipfs=ipfs,
                    ledger=_ledger(app),
                    local_certificate=local_certificate,
                    ca_bundle_pem=ca,
                    crl_pem=crl,
                    channel=fabric.channel,
                    chaincode=fabric.chaincode,
                )

    try:
        document = await run_in_threadpool(work)
    except (IPFSError, LedgerError) as exc:
        raise HTTPException(status.HTTP_502_BAD_GATEWAY, str(exc)) from exc
    return JSONResponse(
        document, headers={"Content-Disposition": 'attachment; filename="audit-bundle.json"'}
    )
