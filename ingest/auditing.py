"""The auditor's questions to the store: search batches, devices and events; re-verify a stored
batch, reading or device against IPFS and the ledger; export an audit bundle.

The checks themselves are the kernel's (tracehub/audit.py, tracehub/bundle.py); this module
finds what to check and states the outcome as an :class:`~tracehub.audit.AuditResult` (a failed
check is a result, not an error). Searches and lookups take a synchronous connection: the API
runs them in a worker thread, next to the IPFS and ledger calls.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from cryptography.hazmat.primitives.serialization import Encoding
from psycopg.rows import dict_row

from certs.pki import PKI
from certs.registry import LedgerCertificateDirectory, LedgerRegistry
from ingest import bundle as bundles
from ingest.errors import IngestError
from ingest.parties import visible_shipment
from tracehub.audit import AuditResult, verify_proof
from tracehub.bundle import BundleError, check_batch_entry
from tracehub.db import Connection
from tracehub.errors import NotFoundError
from tracehub.ipfs import ContentStore, IPFSError
from tracehub.ledger import Contract, LedgerError
from tracehub.proof import Proof
from tracehub.verify import TrustStore

__all__ = [
    "AuditNotFoundError",
    "StoredBatch",
    "audit_bundle",
    "device_fingerprint",
    "find_batches",
    "find_devices",
    "find_events",
    "stored_batch",
    "verify_batch",
    "verify_device",
    "verify_reading",
]


class AuditNotFoundError(IngestError, NotFoundError):
    """The batch or device to re-verify is not in the store."""


class _Ipfs(Protocol):
    def cat(self, cid: str) -> bytes: ...


def _dict_rows(conn: Connection, sql: str, args: Any) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(sql, args).fetchall()


# ------------------------------------------------------------------------------ search


def find_batches(
    conn: Connection,
    *,
    kind: str | None = None,
    state: str | None = None,
    q: str | None = None,
    device: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Batches of readings and of EPCIS events (``kind`` readings or events), newest first.

    ``q`` is the start of a batch id, root or transaction id; ``device`` keeps the reading
    batches holding one of the device's readings; ``since``/``until`` the batches whose time
    range overlaps the interval."""
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
        sql += " AND (starts_with(batch_id, %s) OR starts_with(root, %s) OR starts_with(tx_id, %s))"
        args += [q, q, q]
    if device:
        sql += (
            " AND kind = 'readings' AND batch_id IN (SELECT r.batch_id FROM readings r"
            " WHERE r.device_id = %s AND r.batch_id IS NOT NULL)"
        )
        args.append(device)
    if since:
        sql += " AND last_time >= %s"
        args.append(since)
    if until:
        sql += " AND first_time <= %s"
        args.append(until)
    sql += " ORDER BY sealed_at DESC LIMIT %s"
    args.append(limit)
    return _dict_rows(conn, sql, args)


#: SQL: event ``e`` names a lot class with lot number %s (a subject key ``lot:<gtin>/<lot>``;
#: the 14-digit GTIN puts the lot number at character 20).
_NAMES_LOT = (
    "EXISTS (SELECT 1 FROM unnest(e.subjects) k WHERE k LIKE 'lot:%%' AND substr(k, 20) = %s)"
)


#: SQL: device ``d`` watched (at some time) a shipment with a party among %(orgs)s.
VISIBLE_DEVICE = (
    "(%(orgs)s::text[] IS NULL OR EXISTS (SELECT 1 FROM device_assignments vda"
    " JOIN shipments vds USING (shipment_id) WHERE vda.device_id = {d}"
    f" AND {visible_shipment('vds')}))"
)


def find_devices(
    conn: Connection, *, q: str | None = None, limit: int = 100, orgs: list[str] | None = None
) -> list[dict[str, Any]]:
    """Devices the gateway has seen (id containing ``q``, matched as text, not a pattern), with
    the fingerprint of the certificate they sign with; with ``orgs``, only devices that
    watched one of their shipments."""
    return _dict_rows(
        conn,
        "SELECT device_id, certificate_sha256, first_seen, last_seen, last_seq FROM devices"
        " WHERE (%(q)s::text IS NULL OR strpos(device_id, %(q)s) > 0)"
        f" AND {VISIBLE_DEVICE.format(d='devices.device_id')}"
        " ORDER BY device_id LIMIT %(limit)s",
        {"q": q, "limit": limit, "orgs": orgs},
    )


def device_visible(conn: Connection, device_id: str, orgs: list[str] | None) -> bool:
    """Whether the device watched a shipment one of ``orgs`` is a party to (None: any)."""
    row = conn.execute(
        f"SELECT {VISIBLE_DEVICE.format(d='%(device)s')}", {"device": device_id, "orgs": orgs}
    ).fetchone()
    return bool(row and row[0])


def find_events(
    conn: Connection,
    *,
    biz_step: str | None = None,
    epc: str | None = None,
    q: str | None = None,
    lot: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
    scope: tuple[list[str], list[str]] | None = None,
) -> list[dict[str, Any]]:
    """EPCIS events (of a bizStep, naming an EPC, whose id or hash starts with ``q`` — the
    hash as ``ni:///sha-256;…`` or bare hex —, naming the lot, with an event time in
    [``since``, ``until``]), newest capture first; with ``scope`` (organisations, party-model
    keys), only those one of them captured or that name a key."""
    orgs, keys = scope if scope is not None else (None, [])
    return _dict_rows(
        conn,
        "SELECT event_id, event_type, event_time, biz_step, event_hash, batch_id,"
        " batch_index FROM epcis_events e"
        " WHERE (%(step)s::text IS NULL OR biz_step = %(step)s)"
        " AND (%(epc)s::text IS NULL OR %(epc)s = ANY(epcs))"
        " AND (%(q)s::text IS NULL OR starts_with(event_id, %(q)s)"
        "   OR starts_with(event_hash, %(q)s) OR starts_with(hash_hex, lower(%(q)s)))"
        " AND (%(lot)s::text IS NULL OR " + _NAMES_LOT.replace("%s", "%(lot)s") + ")"
        " AND (%(since)s::timestamptz IS NULL OR event_time >= %(since)s)"
        " AND (%(until)s::timestamptz IS NULL OR event_time <= %(until)s)"
        " AND (%(orgs)s::text[] IS NULL OR captured_by_org = ANY(%(orgs)s)"
        "   OR subjects && %(keys)s::text[])"
        " ORDER BY seq DESC LIMIT %(limit)s",
        {
            "step": biz_step,
            "epc": epc,
            "q": q,
            "lot": lot,
            "since": since,
            "until": until,
            "limit": limit,
            "orgs": orgs,
            "keys": keys,
        },
    )


# ------------------------------------------------------------------------------ re-verification


@dataclass(frozen=True)
class StoredBatch:
    """A batch of readings or events as the store records it."""

    batch_id: str
    kind: str  # "readings" | "events"
    ipfs_cid: str | None
    state: str


def stored_batch(conn: Connection, batch_id: str) -> StoredBatch:
    """The batch of readings or events with this id (AuditNotFoundError if none)."""
    row = conn.execute(
        "SELECT 'readings', ipfs_cid, state FROM batches WHERE batch_id = %s UNION ALL"
        " SELECT 'events', ipfs_cid, state FROM epcis_batches WHERE batch_id = %s",
        (batch_id, batch_id),
    ).fetchone()
    if row is None:
        raise AuditNotFoundError(f"no batch {batch_id}")
    return StoredBatch(batch_id, *row)


def verify_batch(batch: StoredBatch, *, ipfs: _Ipfs, ledger: Contract) -> AuditResult:
    """Fetch the batch object from IPFS and check CID, layout, root and count against the
    ledger's anchor (and, for event batches, every event's CBV 2.0 hash)."""
    if batch.state != "anchored":
        return AuditResult(failure=f"batch is {batch.state}, not anchored yet")
    try:
        anchor = json.loads(ledger.evaluate("GetAnchor", batch.batch_id))
    except LedgerError as exc:
        return AuditResult(failure=f"ledger: {exc}")
    assert batch.ipfs_cid is not None  # an anchored batch is stored
    try:
        data = ipfs.cat(batch.ipfs_cid)
    except IPFSError as exc:
        return AuditResult(passed=["ledger"], failure=f"ipfs: {exc}")
    entry = {
        "batch_id": batch.batch_id,
        "kind": batch.kind,
        "ipfs_cid": batch.ipfs_cid,
        "object_base64": base64.b64encode(data).decode(),
        "anchor": anchor,
    }
    try:
        check_batch_entry(entry, None)
    except BundleError as exc:
        return AuditResult(passed=["ledger", "ipfs"], failure=str(exc))
    return AuditResult(passed=["ledger", "ipfs", "root"])


def verify_reading(
    proof: Proof, *, pki_dir: Path, ipfs: ContentStore, ledger: Contract
) -> AuditResult:
    """Re-verify a reading's proof: path, batch on IPFS, signature (the hub's CA chain and CRL,
    a stale CRL admitted; the certificate as enrolled on the ledger), anchor on the ledger."""
    ca, crl = (pki_dir / name for name in ("ca-bundle.pem", "crl.pem"))
    trust = TrustStore.from_pem_files(ca, crl, allow_stale_crls=True)
    directory = LedgerCertificateDirectory(LedgerRegistry(ledger))
    return verify_proof(proof, ipfs=ipfs, ledger=ledger, trust=trust, directory=directory)


def device_fingerprint(conn: Connection, device_id: str) -> str:
    """The fingerprint of the certificate the gateway recorded for a device
    (AuditNotFoundError if it never saw the device)."""
    row = conn.execute(
        "SELECT certificate_sha256 FROM devices WHERE device_id = %s", (device_id,)
    ).fetchone()
    if row is None:
        raise AuditNotFoundError(f"no device {device_id}")
    fingerprint: str = row[0]
    return fingerprint


def verify_device(device_id: str, fingerprint: str, *, ledger: Contract) -> AuditResult:
    """The device's signing certificate is enrolled on the ledger under this device id and not
    revoked."""
    try:
        record = LedgerRegistry(ledger).certificate(fingerprint)
    except LedgerError as exc:
        return AuditResult(failure=f"ledger: {exc}")
    if record is None:
        return AuditResult(failure="certificate not enrolled on the ledger")
    if record.get("device_id") != device_id:
        return AuditResult(
            passed=["enrolled"], failure=f"certificate enrolled for {record.get('device_id')!r}"
        )
    if record.get("revoked_at") or record.get("status") == "revoked":
        return AuditResult(
            passed=["enrolled", "identity"],
            failure=f"certificate revoked at {record.get('revoked_at')}"
            f" ({record.get('revocation_reason')})",
        )
    return AuditResult(passed=["enrolled", "identity", "not-revoked"])


# ------------------------------------------------------------------------------ bundles


def audit_bundle(
    conn: Connection,
    *,
    ipfs: _Ipfs,
    ledger: Contract,
    pki_dir: Path,
    channel: str,
    chaincode: str,
    batch_id: str | None = None,
    gtin: str | None = None,
    lot: str | None = None,
    shipment_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> dict[str, Any]:
    """The audit bundle (docs/audit-bundle.md) of one batch, a lot, a shipment or a time range,
    with the hub's trust anchors and, for devices enrolled without a ledger record, their
    certificates from the hub's PKI."""
    for moment in (since, until):
        if moment is not None and moment.tzinfo is None:
            raise bundles.BundleSelectionError("since/until need a time zone offset")
    selection = bundles.select(
        conn,
        batch_id=batch_id,
        gtin=gtin,
        lot=lot,
        shipment_id=shipment_id,
        since=since,
        until=until,
    )
    ca, crl = ((pki_dir / name).read_bytes() for name in ("ca-bundle.pem", "crl.pem"))
    pki = PKI(pki_dir)

    def local_certificate(fingerprint: str) -> str | None:
        found = pki.certificate_by_fingerprint(fingerprint)
        return None if found is None else found.certificate.public_bytes(Encoding.PEM).decode()

    return bundles.build_bundle(
        conn,
        selection,
        ipfs=ipfs,
        ledger=ledger,
        local_certificate=local_certificate,
        ca_bundle_pem=ca,
        crl_pem=crl,
        channel=channel,
        chaincode=chaincode,
    )
