"""Alert rows and their changes, as 0003_trace's contract says.

Every change of an alert (opened, cleared, acknowledged, resolved) writes, in the caller's
transaction: the alert row, an alert_history row, the outbox rows of each delivery channel
(alert_deliveries) and NOTIFY tracehub_alerts {alert_id, state, shipment_id, kind}. The SQL is
shared by the engine (sync psycopg) and the API (async psycopg): the engine opens and clears
alerts, people acknowledge and resolve them (:func:`transition`), and the API's queries of
alerts, their history and deliveries are the async functions at the end.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from alerts.errors import AlertNotFoundError, AlertStateError
from ingest.parties import alert_party_orgs, visible_lot, visible_shipment
from tracehub import db
from tracehub.db import AsyncConnection
from tracehub.pki_names import ORG_ALERT_TOPIC, ORG_USERNAME_PREFIX

NOTIFY_CHANNEL = "tracehub_alerts"
#: The hub-wide topic: every alert, readable only by service:gateway (the hub's own tools).
MQTT_TOPIC = "tracehub/v1/alerts/{kind}"
#: Per organisation party to the alert: readable only by that organisation's client (org:<id>).
ORG_TOPIC_PREFIX, ORG_TOPIC_SUFFIX = ORG_ALERT_TOPIC.split("{username}")
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
# One outbox row for the hub-wide MQTT topic, one per organisation party to the alert (its own
# topic), and one per matching e-mail / webhook subscription. A subscription hears only of
# alerts its organisation is a party to (the hub staff's, with no organisation, of every alert).
OUTBOX_SQL = (
    """
INSERT INTO alert_deliveries (alert_id, change, channel, target, subscription_id, payload)
SELECT %(alert_id)s::uuid, %(change)s, 'mqtt', %(topic)s, NULL::uuid, %(payload)s
UNION ALL
SELECT %(alert_id)s::uuid, %(change)s, 'mqtt',
       %(org_topic_prefix)s || po.org || %(org_topic_suffix)s, NULL::uuid, %(payload)s
  FROM (SELECT DISTINCT ppo.org FROM """
    + alert_party_orgs("%(alert_id)s")
    + """ AS ppo(org)) po
UNION ALL
SELECT %(alert_id)s::uuid, %(change)s, s.channel, s.target, s.subscription_id, %(payload)s
  FROM alert_subscriptions s
 WHERE s.enabled
   AND (s.kinds IS NULL OR %(kind)s = ANY (s.kinds))
   AND (s.shipment_id IS NULL OR s.shipment_id = %(shipment_id)s)
   AND (s.owner_org IS NULL OR s.owner_org IN """
    + alert_party_orgs("%(alert_id)s")
    + """)
"""
)
#: SQL: the alert row ``a`` concerns a shipment or lot with a party among %(orgs)s (None: all).
VISIBLE_ALERT = (
    "(%(orgs)s::text[] IS NULL OR EXISTS (SELECT 1 FROM shipments vs0"
    f" WHERE vs0.shipment_id = a.shipment_id AND {visible_shipment('vs0')})"
    f" OR (a.gtin IS NOT NULL AND a.lot IS NOT NULL AND {visible_lot('a.gtin', 'a.lot')}))"
)


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
        "org_topic_prefix": ORG_TOPIC_PREFIX + ORG_USERNAME_PREFIX,
        "org_topic_suffix": ORG_TOPIC_SUFFIX.format(kind=doc["kind"]),
        "payload": Jsonb({"change": change, "alert": doc}),
        "kind": doc["kind"],
        "shipment_id": doc["shipment_id"],
    }


def fetch_alert(conn: db.Connection, alert_id: str) -> dict[str, Any] | None:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(SELECT_ALERT, (alert_id,)).fetchone()
    return alert_document(row) if row else None


def announce(conn: db.Connection, alert_id: str, change: str) -> dict[str, Any]:
    """Queue the change for every channel and NOTIFY listeners; returns the alert document."""
    doc = fetch_alert(conn, alert_id)
    assert doc is not None
    conn.execute(OUTBOX_SQL, outbox_params(doc, change))
    conn.execute(NOTIFY_SQL, (notify_payload(doc, change),))
    return doc


def open_alert(
    conn: db.Connection,
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
    event_hash: str | None = None,
) -> str:
    """Insert an open alert with its first history row; returns its id (not yet announced).
    ``event_hash``: the anchored EPCIS event the alert stands on, when it already has one (a
    recall, a customs hold); the rules' alerts get theirs once their own event is anchored."""
    row = conn.execute(
        "INSERT INTO alerts (rule_id, kind, severity, shipment_id, gtin, lot, device_id,"
        " started_at, detail, event_hash) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
        " RETURNING alert_id::text",
        (
            rule_id,
            kind,
            severity,
            shipment_id,
            gtin,
            lot,
            device_id,
            started_at,
            Jsonb(detail),
            event_hash,
        ),
    ).fetchone()
    assert row is not None
    alert_id = str(row[0])
    conn.execute(HISTORY_SQL, (alert_id, "engine", None, "open", f"rule {rule_id} breached"))
    return alert_id


def clear_alert(conn: db.Connection, alert_id: str, ended_at: datetime, note: str) -> None:
    """The condition is over: set ended_at (the alert stays open until someone resolves it)."""
    row = conn.execute(
        "UPDATE alerts SET ended_at = %s WHERE alert_id = %s AND ended_at IS NULL RETURNING state",
        (ended_at, alert_id),
    ).fetchone()
    if row is None:
        return
    conn.execute(HISTORY_SQL, (alert_id, "engine", row[0], row[0], note))
    announce(conn, alert_id, "cleared")


# -- the API's side (async psycopg) -------------------------------------------------------


async def row_of(conn: AsyncConnection, sql: str, args: Any = None) -> dict[str, Any] | None:
    """The first row of a query as a dict by column name, or None."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(sql, args)
    return await cur.fetchone()


async def rows_of(conn: AsyncConnection, sql: str, args: Any = None) -> list[dict[str, Any]]:
    """Every row of a query, each a dict by column name."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(sql, args)
    return await cur.fetchall()


async def shipment_exists(conn: AsyncConnection, shipment_id: str) -> bool:
    return (
        await row_of(conn, "SELECT 1 FROM shipments WHERE shipment_id = %s", (shipment_id,))
        is not None
    )


def change_of(doc: Mapping[str, Any]) -> str:
    """What happened to an alert, judged from its row (NOTIFY carries only the state)."""
    if doc["state"] == "open":
        return "cleared" if doc.get("ended_at") else "opened"
    return str(doc["state"])


async def find_alert(conn: AsyncConnection, alert_id: str | uuid.UUID) -> dict[str, Any] | None:
    """An alert's row (ALERT_COLUMNS), or None."""
    return await row_of(conn, SELECT_ALERT, (alert_id,))


async def list_alerts(
    conn: AsyncConnection,
    *,
    state: str | None = None,
    shipment_id: str | None = None,
    kind: str | None = None,
    limit: int = 100,
    orgs: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """Alerts, newest first, filtered by state, shipment and kind; with ``orgs``, only those
    of shipments and lots one of them is a party to."""
    return await rows_of(
        conn,
        f"SELECT {ALERT_COLUMNS} FROM alerts a"
        " WHERE (%(state)s::text IS NULL OR state = %(state)s)"
        " AND (%(shipment)s::text IS NULL OR shipment_id = %(shipment)s)"
        " AND (%(kind)s::text IS NULL OR kind = %(kind)s)"
        f" AND {VISIBLE_ALERT}"
        " ORDER BY opened_at DESC LIMIT %(limit)s",
        {
            "state": state,
            "shipment": shipment_id,
            "kind": kind,
            "limit": limit,
            "orgs": None if orgs is None else list(orgs),
        },
    )


async def alert_detail(conn: AsyncConnection, alert_id: uuid.UUID) -> dict[str, Any]:
    """An alert's row with its `history` and the state of each of its `deliveries`."""
    row = await find_alert(conn, alert_id)
    if row is None:
        raise AlertNotFoundError(f"no alert {alert_id}")
    history = await rows_of(
        conn,
        "SELECT at, actor, from_state, to_state, note FROM alert_history WHERE alert_id = %s"
        " ORDER BY at, id",
        (alert_id,),
    )
    deliveries = await rows_of(
        conn,
        "SELECT id, change, channel, target, state, attempts, last_error, created_at,"
        " delivered_at FROM alert_deliveries WHERE alert_id = %s ORDER BY id",
        (alert_id,),
    )
    return {**row, "history": history, "deliveries": deliveries}


async def transition(
    conn: AsyncConnection, alert_id: uuid.UUID, wanted: str, actor: str, note: str
) -> dict[str, Any]:
    """A person moves an alert to `wanted` (acknowledged or resolved; the note becomes the
    resolution), with its history row, outbox rows and NOTIFY, and commits; returns
    :func:`alert_detail`. AlertStateError when the state does not allow it."""
    cur = await conn.execute("SELECT state FROM alerts WHERE alert_id = %s FOR UPDATE", (alert_id,))
    row = await cur.fetchone()
    if row is None:
        raise AlertNotFoundError(f"no alert {alert_id}")
    error = transition_error(row[0], wanted)
    if error:
        raise AlertStateError(error)
    if wanted == "acknowledged":
        sql = (
            "UPDATE alerts SET state = 'acknowledged', acknowledged_by = %s,"
            " acknowledged_at = now() WHERE alert_id = %s"
        )
        args: tuple[Any, ...] = (actor, alert_id)
    else:
        sql = (
            "UPDATE alerts SET state = 'resolved', resolved_by = %s, resolved_at = now(),"
            " resolution = %s WHERE alert_id = %s"
        )
        args = (actor, note or None, alert_id)
    await conn.execute(sql, args)
    await conn.execute(HISTORY_SQL, (alert_id, actor, row[0], wanted, note))
    doc = alert_document(await find_alert(conn, alert_id) or {})
    await conn.execute(OUTBOX_SQL, outbox_params(doc, wanted))
    await conn.execute(NOTIFY_SQL, (notify_payload(doc, wanted),))
    await conn.commit()
    return await alert_detail(conn, alert_id)


async def record_stream_delivery(
    conn: AsyncConnection, doc: Mapping[str, Any], change: str, target: str
) -> None:
    """A change pushed to dashboards (Server-Sent Events), as a delivered `sse` outbox row."""
    await conn.execute(
        "INSERT INTO alert_deliveries (alert_id, change, channel, target, payload,"
        " state, attempts, delivered_at) VALUES (%s, %s, 'sse', %s, %s,"
        " 'delivered', 1, now())",
        (doc["alert_id"], change, target, Jsonb({"change": change, "alert": doc})),
    )


async def unresolved_alerts(
    conn: AsyncConnection, limit: int, orgs: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """Alerts not yet resolved, newest first (the dashboard's columns); with ``orgs``, only
    those one of them is a party to."""
    return await rows_of(
        conn,
        "SELECT alert_id::text, rule_id, kind, severity, state, shipment_id, gtin, lot,"
        " device_id, started_at, ended_at, opened_at, detail FROM alerts a"
        f" WHERE state <> 'resolved' AND {VISIBLE_ALERT} ORDER BY opened_at DESC"
        " LIMIT %(limit)s",
        {"limit": limit, "orgs": None if orgs is None else list(orgs)},
    )


async def unresolved_counts(conn: AsyncConnection, shipment_ids: Sequence[str]) -> dict[str, int]:
    """How many alerts of each of these shipments are not resolved (shipments without any are
    left out)."""
    rows = await rows_of(
        conn,
        "SELECT shipment_id, count(*) AS n FROM alerts WHERE shipment_id = ANY(%s)"
        " AND state <> 'resolved' GROUP BY shipment_id",
        (list(shipment_ids),),
    )
    return {row["shipment_id"]: row["n"] for row in rows}


async def lot_alerts(conn: AsyncConnection, gtin: str, lot: str) -> list[dict[str, Any]]:
    """Alerts on a lot or its shipments, as the public may see them: kind, severity, state and
    when (ISO 8601), not who or why."""
    rows = await rows_of(
        conn,
        "SELECT kind, severity, state, started_at, ended_at FROM alerts"
        " WHERE (gtin = %s AND lot = %s) OR shipment_id IN"
        " (SELECT shipment_id FROM shipment_lots WHERE gtin = %s AND lot = %s)"
        " ORDER BY started_at LIMIT 100",
        (gtin, lot, gtin, lot),
    )
    return [alert_document(row) for row in rows]
