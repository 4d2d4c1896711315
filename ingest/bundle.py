"""Building audit bundles from the store: select the anchored records, then gather their proofs.

The bundle format and its offline check are the kernel's (tracehub/bundle.py, docs/audit-bundle.md).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from certs.registry import LedgerRegistry
from ingest.errors import IngestError
from ingest.proofs import Anchored, tree_of
from tracehub import db
from tracehub.bundle import BUNDLE_KIND, BUNDLE_VERSION, MAX_RECORDS
from tracehub.epcis.hashing import hash_hex
from tracehub.errors import InvalidError, NotFoundError
from tracehub.gs1 import DIGITAL_LINK_BASE, build_uri

__all__ = [
    "BundleSelectionError",
    "Selection",
    "SelectionNotFoundError",
    "build_bundle",
    "select",
]


class BundleSelectionError(IngestError, InvalidError):
    """The selection is malformed (not exactly one kind of criterion) or too large to bundle."""


class SelectionNotFoundError(IngestError, NotFoundError):
    """The selection names a batch, shipment or lot that does not exist."""


class _Ipfs(Protocol):
    def cat(self, cid: str) -> bytes: ...


class _Ledger(Protocol):
    def evaluate(self, name: str, *args: str) -> bytes: ...


# ------------------------------------------------------------------------------ selection


@dataclass
class Selection:
    """Anchored records chosen for a bundle: reading keys and event ids, by batch."""

    scope: dict[str, str]
    readings: dict[str, list[int]] = field(default_factory=dict)  # batch_id -> indexes
    events: dict[str, list[int]] = field(default_factory=dict)  # ev- batch_id -> indexes

    @property
    def size(self) -> int:
        return sum(map(len, self.readings.values())) + sum(map(len, self.events.values()))


def _lot_classes(lots: Iterable[tuple[str, str]]) -> list[str]:
    return [build_uri(DIGITAL_LINK_BASE, gtin, lot) for gtin, lot in lots]


def select(
    conn: db.Connection,
    *,
    batch_id: str | None = None,
    gtin: str | None = None,
    lot: str | None = None,
    shipment_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Selection:
    """The anchored readings and events of one batch, a lot, a shipment or a time range.

    A lot or shipment takes the readings of devices assigned to its shipments (within the
    assignment's validity) and the events naming its lots (Digital Link class URIs) or its
    inspections."""
    given = [batch_id is not None, lot is not None, shipment_id is not None, since is not None]
    if sum(given) != 1:
        raise BundleSelectionError(
            "choose exactly one of batch_id, gtin + lot, shipment_id, since/until"
        )
    sel = Selection(scope={})
    reading_sql = ""
    event_sql = ""
    args: tuple[Any, ...] = ()
    event_args: tuple[Any, ...] = ()
    anchored_r = "JOIN batches b ON b.batch_id = r.batch_id AND b.state = 'anchored'"
    anchored_e = "JOIN epcis_batches b ON b.batch_id = e.batch_id AND b.state = 'anchored'"
    if batch_id is not None:
        sel.scope = {"batch_id": batch_id}
        reading_sql = (
            f"SELECT r.batch_id, r.batch_index FROM readings r {anchored_r} WHERE r.batch_id = %s"
        )
        event_sql = (
            f"SELECT e.batch_id, e.batch_index FROM epcis_events e {anchored_e}"
            " WHERE e.batch_id = %s"
        )
        args = event_args = (batch_id,)
        exists = conn.execute(
            "SELECT 1 FROM batches WHERE batch_id = %s UNION ALL"
            " SELECT 1 FROM epcis_batches WHERE batch_id = %s",
            (batch_id, batch_id),
        ).fetchone()
        if exists is None:
            raise SelectionNotFoundError(f"no batch {batch_id}")
    elif since is not None:
        end = until or datetime.now(UTC)
        sel.scope = {"since": since.isoformat(), "until": end.isoformat()}
        reading_sql = (
            f"SELECT r.batch_id, r.batch_index FROM readings r {anchored_r}"
            " WHERE r.ts >= %s AND r.ts < %s"
        )
        event_sql = (
            f"SELECT e.batch_id, e.batch_index FROM epcis_events e {anchored_e}"
            " WHERE e.event_time >= %s AND e.event_time < %s"
        )
        args = event_args = (since, end)
    else:
        if shipment_id is not None:
            sel.scope = {"shipment_id": shipment_id}
            shipments = [shipment_id]
            lots = conn.execute(
                "SELECT gtin, lot FROM shipment_lots WHERE shipment_id = %s", (shipment_id,)
            ).fetchall()
            if (
                conn.execute(
                    "SELECT 1 FROM shipments WHERE shipment_id = %s", (shipment_id,)
                ).fetchone()
                is None
            ):
                raise SelectionNotFoundError(f"no shipment {shipment_id}")
        else:
            if gtin is None or lot is None:
                raise BundleSelectionError("a lot is named by gtin and lot")
            sel.scope = {"gtin": gtin, "lot": lot}
            if (
                conn.execute(
                    "SELECT 1 FROM lots WHERE gtin = %s AND lot = %s", (gtin, lot)
                ).fetchone()
                is None
            ):
                raise SelectionNotFoundError(f"no lot {gtin}/{lot}")
            lots = [(gtin, lot)]
            shipments = [
                r[0]
                for r in conn.execute(
                    "SELECT DISTINCT shipment_id FROM shipment_lots WHERE gtin = %s AND lot = %s",
                    (gtin, lot),
                ).fetchall()
            ]
        reading_sql = (
            f"SELECT DISTINCT r.batch_id, r.batch_index FROM readings r {anchored_r}"
            " JOIN device_assignments da ON da.device_id = r.device_id"
            " AND r.ts >= da.valid_from AND (da.valid_to IS NULL OR r.ts < da.valid_to)"
            " WHERE da.shipment_id = ANY(%s)"
        )
        args = (shipments,)
        lot_pairs = [f"{g}/{x}" for g, x in lots]
        event_sql = (
            f"SELECT DISTINCT e.batch_id, e.batch_index FROM epcis_events e {anchored_e}"
            " WHERE e.epcs && %s OR e.event_id IN (SELECT event_id FROM inspections"
            " WHERE shipment_id = ANY(%s) OR gtin || '/' || lot = ANY(%s))"
        )
        event_args = (_lot_classes(lots), shipments, lot_pairs)
    for target, sql, values in (
        (sel.readings, reading_sql, args),
        (sel.events, event_sql, event_args),
    ):
        rows = conn.execute(sql + f" LIMIT {MAX_RECORDS + 1}", values).fetchall()
        for batch, index in rows:
            target.setdefault(batch, []).append(index)
        if sel.size > MAX_RECORDS:
            raise BundleSelectionError(f"more than {MAX_RECORDS} records: narrow the selection")
    for indexes in (*sel.readings.values(), *sel.events.values()):
        indexes.sort()
    return sel


# ------------------------------------------------------------------------------ building


def _anchor(ledger: _Ledger, batch_id: str) -> dict[str, Any]:
    anchor: dict[str, Any] = json.loads(ledger.evaluate("GetAnchor", batch_id))
    return anchor


def build_bundle(
    conn: db.Connection,
    selection: Selection,
    *,
    ipfs: _Ipfs,
    ledger: _Ledger,
    local_certificate: Callable[[str], str | None] | None = None,
    ca_bundle_pem: bytes,
    crl_pem: bytes,
    channel: str = "trace",
    chaincode: str = "tracehub",
) -> dict[str, Any]:
    """The bundle document (a JSON-ready dict) for a selection.

    Signers' certificates come from the ledger (GetDeviceCertificate), else from
    ``local_certificate`` (SHA-256 hex -> PEM, the hub's PKI); ``device_certificate_sources``
    says which."""
    batches: list[dict[str, Any]] = []
    records: list[dict[str, Any]] = []
    fingerprints: set[str] = set()
    for batch_id, indexes in sorted(selection.readings.items()):
        row = conn.execute(
            "SELECT ipfs_cid, tx_id, block_number, first_ts, last_ts FROM batches"
            " WHERE batch_id = %s",
            (batch_id,),
        ).fetchone()
        assert row is not None
        cid, tx_id, block, first_ts, last_ts = row
        anchored = Anchored(batch_id, cid, tx_id, block, channel, chaincode)
        keys = conn.execute(
            "SELECT batch_index, reading_hash, certificate_sha256, device_id, seq FROM readings"
            " WHERE batch_id = %s AND ts BETWEEN %s AND %s ORDER BY batch_index",
            (batch_id, first_ts, last_ts),
        ).fetchall()
        tree = tree_of(k[1] for k in keys)
        wanted = set(indexes)
        for index, reading_hash, cert_sha, device_id, seq in keys:
            if index not in wanted:
                continue
            fingerprints.add(cert_sha)
            proof = anchored.reading_proof(tree, index, reading_hash, cert_sha)
            records.append(
                {"type": "reading", "id": f"{device_id}#{seq}", "proof": proof.to_dict()}
            )
        batches.append(_batch_entry("readings", batch_id, cid, block, ipfs, ledger))
    for batch_id, indexes in sorted(selection.events.items()):
        row = conn.execute(
            "SELECT ipfs_cid, tx_id, block_number FROM epcis_batches WHERE batch_id = %s",
            (batch_id,),
        ).fetchone()
        assert row is not None
        cid, tx_id, block = row
        anchored = Anchored(batch_id, cid, tx_id, block, channel, chaincode)
        rows = conn.execute(
            "SELECT event_id, event_hash, batch_index FROM epcis_events WHERE batch_id = %s"
            " ORDER BY batch_index",
            (batch_id,),
        ).fetchall()
        # One tree per batch, every wanted proof taken from it.
        tree = tree_of(hash_hex(r[1]) for r in rows)
        wanted = set(indexes)
        for event_id, uri, index in rows:
            if index not in wanted:
                continue
            event_doc = anchored.event_proof(tree, index, event_id, uri)
            records.append({"type": "event", "id": event_id, "proof": event_doc.to_dict()})
        batches.append(_batch_entry("events", batch_id, cid, block, ipfs, ledger))
    # The ledger's registry first (independent of the hub); the hub's own PKI for devices
    # enrolled without a ledger record. Each certificate's source is stated in the bundle.
    certificates: dict[str, str] = {}
    sources: dict[str, str] = {}
    registry = LedgerRegistry(ledger)  # type: ignore[arg-type]
    for fp in sorted(fingerprints):
        record = registry.certificate(fp)
        if record is not None:
            certificates[fp], sources[fp] = record["certificate_pem"], "ledger"
        elif local_certificate is not None and (pem := local_certificate(fp)) is not None:
            certificates[fp], sources[fp] = pem, "hub-pki"
    return {
        "kind": BUNDLE_KIND,
        "version": BUNDLE_VERSION,
        "created_at": datetime.now(UTC).isoformat(),
        "scope": selection.scope,
        "channel": channel,
        "chaincode": chaincode,
        "trust": {"ca_certificates_pem": ca_bundle_pem.decode(), "crls_pem": crl_pem.decode()},
        "device_certificates": certificates,
        "device_certificate_sources": sources,
        "batches": batches,
        "records": records,
    }


def _batch_entry(
    kind: str, batch_id: str, cid: str, block: int, ipfs: _Ipfs, ledger: _Ledger
) -> dict[str, Any]:
    return {
        "batch_id": batch_id,
        "kind": kind,
        "ipfs_cid": cid,
        "object_base64": base64.b64encode(ipfs.cat(cid)).decode("ascii"),
        "anchor": _anchor(ledger, batch_id),
        "block_number": block,
    }
