"""Recalls: opened by a brand owner for lots or EPCs, with their affected set frozen, recorded
as an EPCIS event (anchored like every event), answered by each affected party, closed.

Notifying the parties and holding payments is the alerts' (alerts/recalls.py): a recall opens
an alert of kind ``recall`` on each affected lot and shipment. Functions never commit.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from psycopg.rows import dict_row

from ingest.epcis.store import capture_events
from ingest.errors import IngestError
from ingest.genealogy.affected import Affected, affected_set
from ingest.genealogy.ids import parse_query_id
from tracehub import db
from tracehub.errors import ConflictError, InvalidError, NotFoundError

__all__ = [
    "CLASSES",
    "Opened",
    "RecallError",
    "RecallInvalidError",
    "RecallNotFoundError",
    "RecallStateError",
    "acknowledge",
    "close_recall",
    "open_recall",
    "recall_document",
    "recalls_of_lot",
]

CLASSES = ("I", "II", "III")


class RecallError(IngestError):
    """Root of the recall errors."""


class RecallInvalidError(RecallError, InvalidError):
    """A recall request names nothing recallable or an unknown class."""


class RecallNotFoundError(RecallError, NotFoundError):
    """No recall has this id."""


class RecallStateError(RecallError, ConflictError):
    """The recall is closed."""


@dataclass(frozen=True)
class Opened:
    recall_id: str
    event_id: str
    event_hash: str
    affected: Affected


def _recall_event(recall_id: str, targets: list[str], at: datetime) -> dict[str, Any]:
    """The recall as an EPCIS ObjectEvent: the recalled identifiers, disposition recalled, and
    the recall as a business transaction (so the trace shows it beside the goods)."""
    classes = [t for t in targets if t.startswith("urn:epc:class:") or "/10/" in t]
    instances = [t for t in targets if t not in classes]
    event: dict[str, Any] = {
        "type": "ObjectEvent",
        "eventID": f"urn:uuid:{recall_id}",
        "eventTime": at.isoformat(),
        "eventTimeZoneOffset": "+00:00",
        "action": "OBSERVE",
        "bizStep": "holding",
        "disposition": "recalled",
        "bizTransactionList": [{"bizTransaction": f"urn:tracehub:recall:{recall_id}"}],
    }
    if instances:
        event["epcList"] = instances
    if classes:
        event["quantityList"] = [{"epcClass": c} for c in classes]
    return event


def open_recall(
    conn: db.Connection,
    *,
    brand_org: str,
    opened_by: str,
    targets: list[str],
    reason: str,
    recall_class: str,
) -> Opened:
    """Open a recall of ``targets`` (EPC URIs, Digital Links or ``<gtin>/<lot>``)."""
    if recall_class not in CLASSES:
        raise RecallInvalidError(f"class must be one of {list(CLASSES)}")
    if not targets or not reason.strip():
        raise RecallInvalidError("a recall needs targets and a reason")
    nodes = [parse_query_id(t) for t in targets]
    found = affected_set(conn, nodes)
    recall_id = str(uuid.uuid4())
    now = datetime.now(UTC)
    conn.execute(
        "INSERT INTO recalls (recall_id, brand_org, class, reason, targets, opened_by, opened_at)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (recall_id, brand_org, recall_class, reason, nodes, opened_by, now),
    )
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO recall_items (recall_id, node, node_kind) VALUES (%s, %s, %s)",
            [(recall_id, n, k) for n, k in sorted(found.nodes.items())],
        )
        cur.executemany(
            "INSERT INTO recall_parties (recall_id, org_id, relations) VALUES (%s, %s, %s)",
            [
                (recall_id, org, sorted(rel))
                for org, rel in sorted(found.parties.items())
                if org != brand_org
            ],
        )
        cur.executemany(
            "INSERT INTO recall_orders (recall_id, order_id) VALUES (%s, %s::uuid)",
            [(recall_id, o) for o in found.orders],
        )
    event = _recall_event(
        recall_id, [_epcis_form(t, n) for t, n in zip(targets, nodes, strict=True)], now
    )
    (captured,) = capture_events(conn, [event], source=f"recall:{recall_id}", org=brand_org)
    conn.execute(
        "UPDATE recalls SET event_id = %s WHERE recall_id = %s", (captured.event_id, recall_id)
    )
    return Opened(recall_id, captured.event_id, captured.event_hash, found)


def _epcis_form(given: str, node: str) -> str:
    """An identifier EPCIS accepts: as given when it is a URI, else the lot's Digital Link."""
    if given.startswith(("urn:", "https://", "http://")):
        return given
    if node.startswith("lot:"):
        gtin, lot = node[4:].split("/", 1)
        return f"https://id.gs1.org/01/{gtin}/10/{lot}"
    return given


def _state(conn: db.Connection, recall_id: str) -> str:
    row = conn.execute(
        "SELECT state FROM recalls WHERE recall_id = %s FOR UPDATE", (recall_id,)
    ).fetchone()
    if row is None:
        raise RecallNotFoundError("no such recall")
    return str(row[0])


def acknowledge(
    conn: db.Connection,
    recall_id: str,
    org_id: str,
    user: str,
    *,
    located: Decimal,
    quarantined: Decimal,
    returned: Decimal,
    note: str | None = None,
) -> None:
    """A party acknowledges the recall and reports its quantities (again: replaced)."""
    if _state(conn, recall_id) != "open":
        raise RecallStateError("the recall is closed")
    if min(located, quarantined, returned) < 0:
        raise RecallInvalidError("quantities cannot be negative")
    row = conn.execute(
        "UPDATE recall_parties SET acknowledged_by = %s, acknowledged_at = now(),"
        " qty_located = %s, qty_quarantined = %s, qty_returned = %s, note = %s"
        " WHERE recall_id = %s AND org_id = %s RETURNING 1",
        (user, located, quarantined, returned, note, recall_id, org_id),
    ).fetchone()
    if row is None:
        raise RecallNotFoundError("your organisation is not a party to this recall")


def close_recall(conn: db.Connection, recall_id: str) -> None:
    """Close the recall (the brand owner's decision; unanswered parties stay on record)."""
    if _state(conn, recall_id) != "open":
        raise RecallStateError("the recall is already closed")
    conn.execute(
        "UPDATE recalls SET state = 'closed', closed_at = now() WHERE recall_id = %s", (recall_id,)
    )


def recall_document(conn: db.Connection, recall_id: str) -> dict[str, Any]:
    """The recall with its items, parties and orders, JSON-ready."""
    with conn.cursor(row_factory=dict_row) as cur:
        recall = cur.execute(
            "SELECT r.recall_id::text, r.brand_org, r.class, r.reason, r.targets, r.state,"
            " r.opened_by, r.opened_at, r.closed_at, r.event_id, e.event_hash"
            " FROM recalls r LEFT JOIN epcis_events e USING (event_id) WHERE r.recall_id = %s",
            (recall_id,),
        ).fetchone()
        if recall is None:
            raise RecallNotFoundError("no such recall")
        items = cur.execute(
            "SELECT node, node_kind AS kind FROM recall_items WHERE recall_id = %s ORDER BY node",
            (recall_id,),
        ).fetchall()
        parties = cur.execute(
            "SELECT org_id, relations, acknowledged_by, acknowledged_at, qty_located,"
            " qty_quarantined, qty_returned, note FROM recall_parties WHERE recall_id = %s"
            " ORDER BY org_id",
            (recall_id,),
        ).fetchall()
        orders = cur.execute(
            "SELECT order_id::text FROM recall_orders WHERE recall_id = %s ORDER BY 1",
            (recall_id,),
        ).fetchall()
    doc: dict[str, Any] = _jsonable(
        {**recall, "items": items, "parties": parties, "orders": [o["order_id"] for o in orders]}
    )
    return doc


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value


def recalls_of_lot(conn: db.Connection, gtin: str, lot: str) -> list[dict[str, Any]]:
    """Open recalls whose affected set holds the lot (what its QR page shows)."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            "SELECT r.recall_id::text, r.class, r.reason, r.opened_at, r.event_id, e.event_hash"
            " FROM recalls r JOIN recall_items i USING (recall_id)"
            " LEFT JOIN epcis_events e ON e.event_id = r.event_id"
            " WHERE i.node = %s AND r.state = 'open' ORDER BY r.opened_at",
            (f"lot:{gtin}/{lot}",),
        ).fetchall()
    return [_jsonable(dict(r)) for r in rows]
