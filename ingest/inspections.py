"""Inspection reports: a PDF stored byte for byte on IPFS, its SHA-256 anchored via EPCIS.

`record_inspection` checks the PDF, adds it to IPFS, records an EPCIS 2.0 ObjectEvent
(``bizStep`` inspecting, the lot's class in ``quantityList`` as a GS1 Digital Link URI) whose
``certificationInfo`` names the report by ``ni:///sha-256;<hex>`` (RFC 6920) and ``ipfs://<cid>``,
and whose ``th:inspection`` extension repeats hash, CID, result and the inspection id. The
event's CBV 2.0 hash therefore covers the report's hash; the event is sealed and anchored with
the other events (ingest.epcis.anchoring), so the report is anchored with it.

Functions take a synchronous psycopg connection and never commit: the caller owns the
transaction (the same rule as ingest.epcis). IPFS keeps the bytes whether or not the caller
commits; an orphan object is harmless (content-addressed, and pinned only).
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from psycopg.rows import dict_row

from ingest.epcis import capture_events
from ingest.errors import IngestError
from ingest.parties import visible_lot, visible_shipment
from tracehub import db
from tracehub.epcis.schema import DEFAULT_CONTEXT
from tracehub.errors import InvalidError, NotFoundError, TooLargeError, UpstreamError
from tracehub.gs1 import DIGITAL_LINK_BASE, DigitalLinkError, build_uri
from tracehub.ipfs import ContentStore

__all__ = [
    "EXTENSION_NAMESPACE",
    "MAX_REPORT_BYTES",
    "Inspection",
    "InspectionError",
    "InvalidReportError",
    "ReportIntegrityError",
    "ReportTooLargeError",
    "UnknownSubjectError",
    "get_inspection",
    "inspection_event",
    "list_inspections",
    "record_inspection",
    "report_bytes",
]

#: Reports larger than this are refused (a scanned multi-page report fits comfortably).
MAX_REPORT_BYTES = 20 * 1024 * 1024
#: JSON-LD namespace of TraceHub's EPCIS extension members (``th:...``); ``.invalid`` because
#: it names, it is not fetched.
EXTENSION_NAMESPACE = "https://tracehub.invalid/ns/epcis#"
#: Digital Link URIs in events use GS1's canonical resolver host, whoever resolves them.
PDF_MAGIC = b"%PDF-"
RESULTS = ("pass", "fail")
_MAX_SUMMARY = 4000


class InspectionError(IngestError):
    """An inspection cannot be recorded or read as asked (root of the inspections' errors)."""


class InvalidReportError(InspectionError, InvalidError):
    """The upload is not a PDF, or a field is invalid."""


class ReportTooLargeError(InspectionError, TooLargeError):
    """The report exceeds MAX_REPORT_BYTES."""


class UnknownSubjectError(InspectionError, NotFoundError):
    """The lot, shipment or inspection does not exist."""


class ReportIntegrityError(InspectionError, UpstreamError):
    """The bytes IPFS returned do not hash to the recorded SHA-256."""


@dataclass(frozen=True)
class Inspection:
    """One recorded inspection and where its report and event are."""

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

    def to_dict(self) -> dict[str, Any]:
        out = {name: getattr(self, name) for name in self.__dataclass_fields__}
        out["inspected_at"] = self.inspected_at.isoformat()
        return out


def check_pdf(pdf: bytes) -> None:
    """Refuse what is not plausibly a PDF: empty, too large, or without the ``%PDF-`` header."""
    if len(pdf) > MAX_REPORT_BYTES:
        raise ReportTooLargeError(
            f"the report is {len(pdf)} bytes; the limit is {MAX_REPORT_BYTES}"
        )
    if not pdf:
        raise InvalidReportError("the report is empty")
    # PDF readers accept the header within the first 1024 bytes; we insist on byte 0 so the
    # stored object is unambiguous.
    if not pdf.startswith(PDF_MAGIC):
        raise InvalidReportError("the report is not a PDF (it must start with %PDF-)")
    if b"%%EOF" not in pdf[-1024:]:
        raise InvalidReportError("the report is not a complete PDF (no %%EOF marker at its end)")


def inspection_event(
    *,
    inspection_id: str,
    gtin: str,
    lot: str,
    result: str,
    report_sha256: str,
    report_cid: str,
    when: datetime,
) -> dict[str, Any]:
    """The EPCIS 2.0 ObjectEvent that anchors an inspection report (with its own @context)."""
    return {
        "@context": [DEFAULT_CONTEXT, {"th": EXTENSION_NAMESPACE}],
        "type": "ObjectEvent",
        "eventID": f"urn:uuid:{inspection_id}",
        "eventTime": when.astimezone(UTC).isoformat(timespec="milliseconds"),
        "eventTimeZoneOffset": "+00:00",
        "epcList": [],
        "action": "OBSERVE",
        "bizStep": "inspecting",
        "quantityList": [{"epcClass": build_uri(DIGITAL_LINK_BASE, gtin, lot)}],
        "certificationInfo": [f"ni:///sha-256;{report_sha256}", f"ipfs://{report_cid}"],
        "th:inspection": {
            "th:inspectionID": inspection_id,
            "th:result": result,
            "th:reportSHA256": report_sha256,
            "th:reportCID": report_cid,
        },
    }


def _check_fields(
    gtin: str, lot: str, result: str, summary: str, inspector: str, shipment_id: str | None
) -> str:
    if result not in RESULTS:
        raise InvalidReportError(f"result must be one of {list(RESULTS)}, got {result!r}")
    if len(summary) > _MAX_SUMMARY:
        raise InvalidReportError(f"summary is longer than {_MAX_SUMMARY} characters")
    if not inspector:
        raise InvalidReportError("the inspector must be named")
    if "\x00" in summary or (shipment_id is not None and "\x00" in shipment_id):
        raise InvalidReportError("summary and shipment_id cannot contain NUL characters")
    try:
        uri = build_uri(DIGITAL_LINK_BASE, gtin, lot)
    except DigitalLinkError as exc:
        raise InvalidReportError(str(exc)) from exc
    # The canonical 14-digit GTIN, as stored in lots.
    return uri.split("/01/", 1)[1].split("/", 1)[0]


def record_inspection(
    conn: db.Connection,
    ipfs: ContentStore,
    *,
    pdf: bytes,
    gtin: str,
    lot: str,
    shipment_id: str | None,
    inspector: str,
    result: str,
    summary: str,
    when: datetime | None = None,
    inspector_org: str | None = None,
) -> Inspection:
    """Store the report on IPFS, capture its EPCIS event and insert the inspection (no commit).

    ``inspector_org`` is the inspector's organisation; the inspection is recorded as
    commissioned by the lot's parties that commissioned it (inspection_commissions). Whether the
    inspector may report on the lot is the caller's to check (api/policy.py)."""
    check_pdf(pdf)
    gtin = _check_fields(gtin, lot, result, summary, inspector, shipment_id)
    if (
        conn.execute("SELECT 1 FROM lots WHERE gtin = %s AND lot = %s", (gtin, lot)).fetchone()
        is None
    ):
        raise UnknownSubjectError(f"lot {gtin}/{lot} does not exist")
    if shipment_id is not None:
        found = conn.execute(
            "SELECT 1 FROM shipments WHERE shipment_id = %s", (shipment_id,)
        ).fetchone()
        if found is None:
            raise UnknownSubjectError(f"shipment {shipment_id} does not exist")
    inspection_id = str(uuid.uuid4())
    sha256 = hashlib.sha256(pdf).hexdigest()
    cid = ipfs.add(pdf, filename=f"inspection-{inspection_id}.pdf")
    moment = when or datetime.now(UTC)
    event = inspection_event(
        inspection_id=inspection_id,
        gtin=gtin,
        lot=lot,
        result=result,
        report_sha256=sha256,
        report_cid=cid,
        when=moment,
    )
    (captured,) = capture_events(conn, [event], source=f"inspection:{inspector}", org=inspector_org)
    row = conn.execute(
        "INSERT INTO inspections (inspection_id, gtin, lot, shipment_id, inspector, result,"
        " summary, report_sha256, report_cid, report_size, event_id, event_hash, inspected_at,"
        " inspector_org, commissioned_by)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,"
        " (SELECT min(client_org) FROM inspection_commissions WHERE gtin = %s AND lot = %s"
        "  AND inspection_org = %s)) RETURNING inspected_at",
        (
            inspection_id,
            gtin,
            lot,
            shipment_id,
            inspector,
            result,
            summary,
            sha256,
            cid,
            len(pdf),
            captured.event_id,
            captured.event_hash,
            moment,
            inspector_org,
            gtin,
            lot,
            inspector_org,
        ),
    ).fetchone()
    assert row is not None
    return Inspection(
        inspection_id=inspection_id,
        gtin=gtin,
        lot=lot,
        shipment_id=shipment_id,
        inspector=inspector,
        result=result,
        summary=summary,
        report_sha256=sha256,
        report_cid=cid,
        report_size=len(pdf),
        event_id=captured.event_id,
        event_hash=captured.event_hash,
        inspected_at=row[0],
    )


_COLUMNS = (
    "inspection_id::text, gtin, lot, shipment_id, inspector, result, summary, report_sha256,"
    " report_cid, report_size, event_id, event_hash, inspected_at"
)


def get_inspection(conn: db.Connection, inspection_id: str) -> Inspection:
    """One inspection; UnknownSubjectError if there is none with that id."""
    try:
        key = str(uuid.UUID(inspection_id))
    except ValueError:
        raise UnknownSubjectError(f"no inspection {inspection_id!r} (not a UUID)") from None
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            f"SELECT {_COLUMNS} FROM inspections WHERE inspection_id = %s", (key,)
        ).fetchone()
    if row is None:
        raise UnknownSubjectError(f"no inspection {inspection_id}")
    return Inspection(**row)


def list_inspections(
    conn: db.Connection,
    *,
    gtin: str | None = None,
    lot: str | None = None,
    shipment_id: str | None = None,
    limit: int = 100,
    orgs: list[str] | None = None,
) -> list[Inspection]:
    """Inspections of a lot, a product or a shipment (newest first); with ``orgs``, only those
    of lots or shipments one of them is a party to, or that one of them commissioned or
    made."""
    clauses: list[str] = []
    args: dict[str, Any] = {"o": orgs, "limit": limit}
    for column, value in (("gtin", gtin), ("lot", lot), ("shipment_id", shipment_id)):
        if value is not None:
            clauses.append(f"{column} = %({column})s")
            args[column] = value
    if orgs is not None:
        clauses.append(
            "(commissioned_by = ANY(%(o)s) OR inspector_org = ANY(%(o)s) OR "
            + visible_lot("i.gtin", "i.lot").replace("%(orgs)s", "%(o)s")
            + " OR EXISTS (SELECT 1 FROM shipments vs1 WHERE vs1.shipment_id = i.shipment_id AND "
            + visible_shipment("vs1").replace("%(orgs)s", "%(o)s")
            + "))"
        )
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            f"SELECT {_COLUMNS} FROM inspections i {where} ORDER BY inspected_at DESC"
            " LIMIT %(limit)s",
            args,
        ).fetchall()
    return [Inspection(**row) for row in rows]


def report_bytes(ipfs: ContentStore, inspection: Inspection) -> bytes:
    """The report from IPFS, only if it still hashes to the recorded SHA-256."""
    data = ipfs.cat(inspection.report_cid)
    digest = hashlib.sha256(data).hexdigest()
    if digest != inspection.report_sha256:
        raise ReportIntegrityError(
            f"IPFS object {inspection.report_cid} hashes to {digest}, "
            f"not the recorded {inspection.report_sha256}"
        )
    return data


def commission(
    conn: db.Connection, *, gtin: str, lot: str, client_org: str, inspection_org: str, actor: str
) -> str:
    """``client_org`` commissions ``inspection_org`` to inspect the lot (idempotent); returns
    the commission's id. The caller commits."""
    if (
        conn.execute("SELECT 1 FROM organisations WHERE org_id = %s", (inspection_org,)).fetchone()
        is None
    ):
        raise InvalidReportError(f"organisation {inspection_org!r} does not exist")
    row = conn.execute(
        "INSERT INTO inspection_commissions (gtin, lot, client_org, inspection_org, created_by)"
        " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (gtin, lot, client_org, inspection_org)"
        " DO UPDATE SET created_by = inspection_commissions.created_by"
        " RETURNING commission_id::text",
        (gtin, lot, client_org, inspection_org, actor),
    ).fetchone()
    assert row is not None
    return str(row[0])
