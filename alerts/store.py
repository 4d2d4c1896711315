"""Alert rows and their changes, as 0003_trace's contract says.

Every change of an alert (opened, cleared, acknowledged, resolved) writes, in the caller's
transaction: the alert row, an alert_history row, the outbox rows of each delivery channel
(alert_deliveries) and NOTIFY tracehub_alerts {alert_id, state, shipment_id, kind}. The SQL is
shared by the engine (sync psycopg) and the API (async psycopg).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

NOTIFY_CHANNEL = "tracehub_alerts"
MQTT_TOPIC = "tracehub/v1/alerts/{kind}"
#: Allowed state changes: open -> acknowledged -> resolved, and open -> resolved.
TRANSITIONS = {("open", "acknowledged"), ("open", "resolved"), ("acknowledged", "resolved")}

ALERT_COLUMNS = (
    "alert_id::text, rule_id, kind, severity, state, shipment_id, gtin, lot, device_id,"
    " started_at, ended_at, opened_at, detail, event_hash, acknowledged_by, acknowledged_at,"
    " resolved_by, resolved_at, resolution"
)
SELECT_ALERT = f"SELECT {ALERT_COLUMNS} FROM alerts WHERE alert_id = %s"

HISTORY_SQL = (
    "INSERT INTO alert_history (alert_id, actor, from_state, to_state, note)"
    " VALUES (%s, %s, %s, %s, %s)"
)
NOTIFY_SQL = "SELECT pg_notify('tracehub_alerts', %s)"
# One outbox row for the MQTT topic and one per matching e-mail / webhook subscription.
OUTBOX_SQL = """
INSERT INTO alert_deliveries (alert_id, change, channel, target, subscription_id, payload)
SELECT %(alert_id)s::uuid, %(change)s, 'mqtt', %(topic)s, NULL, %(payload)s
UNION ALL
SELECT %(alert_id)s::uuid, %(change)s, s.channel, s.target, s.subscription_id, %(payload)s
  FROM alert_subscriptions s
 WHERE s.enabled
   AND (s.kinds IS NULL OR %(kind)s = ANY (s.kinds))
   AND (s.shipment_id IS NULL OR s.shipment_id = %(shipment_id)s)
"""


def transition_error(current: str, wanted: str) -> str | None:
    """Why `current -> wanted` is not allowed, or None if it is."""
    if (current, wanted) in TRANSITIONS:
        return None
    if current == wanted:
        return f"the alert is already {current}"
    return (
        f"an alert that is {current} cannot become {wanted} "
        "(allowed: open -> acknowledged -> resolved, open -> resolved)"
    )


def _iso(value: object) -> object:
    return value.isoformat() if isinstance(value, datetime) else value


def alert_document(row: Mapping[str, Any]) -> dict[str, Any]:
    """An alert row as JSON-ready data (what every channel delivers)."""
    return {key: _iso(value) for key, value in row.items()}


def notify_payload(doc: Mapping[str, Any], change: str) -> str:
    """The contract's {alert_id, state, shipment_id, kind}, plus what changed: PostgreSQL
    folds identical notifications of one transaction into one, and an alert opened and cleared
    in one transaction must be announced twice."""
    return json.dumps(
        {
            "alert_id": doc["alert_id"],
            "state": doc["state"],
            "shipment_id": doc["shipment_id"],
            "kind": doc["kind"],
            "change": change,
        }
    )


def outbox_params(doc: Mapping[str, Any], change: str) -> dict[str, Any]:
    return {
        "alert_id": doc["alert_id"],
        "change": change,
        "topic": MQTT_TOPIC.format(kind=doc["kind"]),
        "payload": Jsonb({"change": change, "alert": doc}),
        "kind": doc["kind"],
        "shipment_id": doc["shipment_id"],
    }


def fetch_alert(conn: psycopg.Connection, alert_id: str) -> dict[str, Any] | None:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(SELECT_ALERT, (alert_id,)).fetchone()
    return alert_document(row) if row else None


def announce(conn: psycopg.Connection, alert_id: str, change: str) -> dict[str, Any]:
    """Queue the change for every channel and NOTIFY listeners; returns the alert document."""
    doc = fetch_alert(conn, alert_id)
    assert doc is not None
    conn.execute(OUTBOX_SQL, outbox_params(doc, change))
    conn.execute(NOTIFY_SQL, (notify_payload(doc, change),))
    return doc


def open_alert(
    conn: psycopg.Connection,
    *,
    rule_id: str,
    kind: str,
    severity: str,
    shipment_id: str | None,
    gtin: str | None,
    lot: str | None,
    device_id: str | None,
    started_at: datetime,
    detail: Mapping[str, Any],
) -> str:
    """Insert an open alert with its first history row; returns its id (not yet announced)."""
    row = conn.execute(
        "INSERT INTO alerts (rule_id, kind, severity, shipment_id, gtin, lot, device_id,"
        " started_at, detail) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
        " RETURNING alert_id::text",
        (rule_id, kind, severity, shipment_id, gtin, lot, device_id, started_at, Jsonb(detail)),
    ).fetchone()
    assert row is not None
    alert_id = str(row[0])
    conn.execute(HISTORY_SQL, (alert_id, "engine", None, "open", f"rule {rule_id} breached"))
    return alert_id


def clear_alert(conn: psycopg.Connection, alert_id: str, ended_at: datetime, note: str) -> None:
    """The condition is over: set ended_at (the alert stays open until someone resolves it)."""
    row = conn.execute(
        "UPDATE alerts SET ended_at = %s WHERE alert_id = %s AND ended_at IS NULL RETURNING state",
        (ended_at, alert_id),
    ).fetchone()
    if row is None:
        return
    conn.execute(HISTORY_SQL, (alert_id, "engine", row[0], row[0], note))
    announce(conn, alert_id, "cleared")
