"""Issue, list and read trade documents; each version anchored like an inspection report.

Issuing stores the PDF and the JSON byte for byte on IPFS and captures an EPCIS ObjectEvent
whose ``certificationInfo`` names both by ``ni:///sha-256;<hex>`` (RFC 6920) and ``ipfs://``,
so the documents are anchored with the event's batch (ingest.epcis.anchoring). The event names
the shipment's SSCCs and the order (bizTransaction ``po``), not the lots: documents are not
on the public journey. A version is never changed (a trigger refuses it); a correction is the
next version, naming the one it supersedes and why.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from psycopg.types.json import Jsonb

from commerce.documents.build import KINDS, build, document_number
from commerce.documents.labels import languages_for
from commerce.documents.pdf import render
from commerce.documents.record import load_record, sscc_uri
from commerce.errors import (
    CommerceConflictError,
    CommerceError,
    CommerceInvalidError,
    CommerceNotFoundError,
)
from ingest.epcis import capture_events
from ingest.inspections import EXTENSION_NAMESPACE
from tracehub.epcis.schema import DEFAULT_CONTEXT
from tracehub.errors import UpstreamError
from tracehub.ipfs import ContentStore


class DocumentIntegrityError(CommerceError, UpstreamError):
    """The bytes IPFS returned do not hash to the recorded SHA-256."""


@dataclass(frozen=True)
class Issued:
    document_id: str
    shipment_id: str
    kind: str
    version: int
    number: str
    languages: list[str]
    pdf_sha256: str
    pdf_cid: str
    json_sha256: str
    json_cid: str
    event_id: str
    event_hash: str
    created_at: datetime
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        out = {name: getattr(self, name) for name in self.__dataclass_fields__}
        out["created_at"] = self.created_at.isoformat()
        return out


def canonical_json(body: dict[str, Any]) -> bytes:
    """The JSON bytes stored and hashed: sorted keys, no spaces, UTF-8."""
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def document_event(
    *,
    document_id: str,
    kind: str,
    version: int,
    order_id: str,
    ssccs: list[str],
    pdf: tuple[str, str],
    data: tuple[str, str],
    when: datetime,
) -> dict[str, Any]:
    """The EPCIS 2.0 event naming a document version's PDF and JSON (sha256, cid) pairs."""
    return {
        "@context": [DEFAULT_CONTEXT, {"th": EXTENSION_NAMESPACE}],
        "type": "ObjectEvent",
        "eventID": f"urn:uuid:{document_id}",
        "eventTime": when.astimezone(UTC).isoformat(timespec="milliseconds"),
        "eventTimeZoneOffset": "+00:00",
        "epcList": [sscc_uri(s) for s in ssccs],
        "action": "OBSERVE",
        "bizTransactionList": [{"type": "po", "bizTransaction": f"urn:uuid:{order_id}"}],
        "certificationInfo": [
            f"ni:///sha-256;{pdf[0]}",
            f"ipfs://{pdf[1]}",
            f"ni:///sha-256;{data[0]}",
            f"ipfs://{data[1]}",
        ],
        "th:tradeDocument": {
            "th:documentID": document_id,
            "th:kind": kind,
            "th:version": version,
            "th:pdfSHA256": pdf[0],
            "th:jsonSHA256": data[0],
        },
    }


def issue(
    conn: Any,
    ipfs: ContentStore,
    *,
    shipment_id: str,
    kind: str,
    actor: str,
    org: str | None,
    reason: str = "",
    languages: list[str] | None = None,
    when: datetime | None = None,
) -> Issued:
    """Generate the next version of the shipment's ``kind`` document, store it on IPFS,
    capture its event and record it (sync connection; the caller commits). A version after
    the first is a correction and needs a ``reason``."""
    if kind not in KINDS:
        raise CommerceInvalidError(f"kind must be one of {list(KINDS)}")
    record = load_record(conn, shipment_id)
    conn.execute("SELECT pg_advisory_xact_lock(hashtext('trade-doc:' || %s))", (shipment_id,))
    last = conn.execute(
        "SELECT version, document_id::text FROM trade_documents WHERE shipment_id = %s AND"
        " kind = %s ORDER BY version DESC LIMIT 1",
        (shipment_id, kind),
    ).fetchone()
    if last is not None and not reason.strip():
        raise CommerceConflictError(
            f"{kind} v{last[0]} of {shipment_id} exists; a new version is a correction: give"
            " the reason"
        )
    version = 1 if last is None else int(last[0]) + 1
    supersedes = None if last is None else document_number(shipment_id, kind, version - 1)
    langs = languages or languages_for(record.buyer.country)
    moment = (when or datetime.now(UTC)).replace(microsecond=0)
    body = build(
        kind,
        record,
        version=version,
        issued_at=moment,
        languages=langs,
        supersedes=supersedes,
        reason=reason.strip(),
    )
    data = canonical_json(body)
    pdf = render(kind, body, langs, moment)
    document_id = str(uuid.uuid4())
    name = document_number(shipment_id, kind, version)
    pdf_pair = (hashlib.sha256(pdf).hexdigest(), ipfs.add(pdf, filename=f"{name}.pdf"))
    json_pair = (hashlib.sha256(data).hexdigest(), ipfs.add(data, filename=f"{name}.json"))
    event = document_event(
        document_id=document_id,
        kind=kind,
        version=version,
        order_id=record.order_id,
        ssccs=sorted({lot["sscc"] for lot in record.lots if lot["sscc"]}),
        pdf=pdf_pair,
        data=json_pair,
        when=moment,
    )
    (captured,) = capture_events(conn, [event], source=f"trade-document:{actor}", org=org)
    row = conn.execute(
        "INSERT INTO trade_documents (document_id, shipment_id, order_id, kind, version,"
        " languages, reason, body, json_sha256, json_cid, pdf_sha256, pdf_cid, pdf_size,"
        " event_id, event_hash, created_by, created_at)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
        " RETURNING created_at",
        (
            document_id,
            shipment_id,
            record.order_id,
            kind,
            version,
            langs,
            reason.strip(),
            Jsonb(body),
            json_pair[0],
            json_pair[1],
            pdf_pair[0],
            pdf_pair[1],
            len(pdf),
            captured.event_id,
            captured.event_hash,
            actor,
            moment,
        ),
    ).fetchone()
    return Issued(
        document_id=document_id,
        shipment_id=shipment_id,
        kind=kind,
        version=version,
        number=name,
        languages=langs,
        pdf_sha256=pdf_pair[0],
        pdf_cid=pdf_pair[1],
        json_sha256=json_pair[0],
        json_cid=json_pair[1],
        event_id=captured.event_id,
        event_hash=captured.event_hash,
        created_at=row[0],
        reason=reason.strip(),
    )


_COLUMNS = (
    "document_id::text, shipment_id, kind, version, languages, pdf_sha256, pdf_cid,"
    " json_sha256, json_cid, event_id, event_hash, created_at, reason"
)


def _issued(row: Any) -> Issued:
    did, sid, kind, version, langs, ps, pc, js, jc, eid, eh, at, reason = row
    return Issued(
        did,
        sid,
        kind,
        version,
        document_number(sid, kind, version),
        list(langs),
        ps,
        pc,
        js,
        jc,
        eid,
        eh,
        at,
        reason,
    )


def list_documents(conn: Any, shipment_id: str) -> list[Issued]:
    """Every version of every document of the shipment (by kind, then version)."""
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM trade_documents WHERE shipment_id = %s ORDER BY kind, version",
        (shipment_id,),
    ).fetchall()
    return [_issued(r) for r in rows]


def get_document(conn: Any, shipment_id: str, kind: str, version: int | None) -> Issued:
    """One version (the latest when ``version`` is None)."""
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM trade_documents WHERE shipment_id = %s AND kind = %s"
        " AND (%s::int IS NULL OR version = %s) ORDER BY version DESC LIMIT 1",
        (shipment_id, kind, version, version),
    ).fetchone()
    if row is None:
        raise CommerceNotFoundError(f"no {kind} of shipment {shipment_id}")
    return _issued(row)


def document_bytes(ipfs: ContentStore, doc: Issued, fmt: str) -> bytes:
    """The stored bytes (pdf or json) from IPFS, only if they still hash to the record."""
    cid, digest = (doc.pdf_cid, doc.pdf_sha256) if fmt == "pdf" else (doc.json_cid, doc.json_sha256)
    data = ipfs.cat(cid)
    if hashlib.sha256(data).hexdigest() != digest:
        raise DocumentIntegrityError(f"IPFS object {cid} no longer hashes to the recorded {digest}")
    return data
