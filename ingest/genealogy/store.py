"""Keeping the genealogy graph in step with the captured events (ingest/migrations/0015).

:func:`sync` reads the events captured since its cursor, in seq order (which is commit order,
ingest/epcis/store.py), and applies each: its edges are added, its aggregation DELETEs close
edges, its error declaration retracts the declared event's edges. Readers call it before they
read, so the graph is never behind the events. Functions never commit: the caller owns the
transaction.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from ingest.genealogy.edges import Edge, closings, edges_of, event_time, retracts
from tracehub import db

__all__ = ["apply_event", "copy_edges", "sync"]

#: Serialises graph updates (``genealogy`` in ASCII, truncated to 8 bytes).
SYNC_LOCK = 0x67656E65616C6F67
_COLUMNS = ("src", "dst", "kind", "event_id", "event_time", "quantity", "uom")


def sync(conn: db.Connection, *, batch: int = 2000) -> int:
    """Apply every event captured since the last sync; returns how many were read."""
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (SYNC_LOCK,))
    row = conn.execute("SELECT seq FROM genealogy_cursor").fetchone()
    cursor = int(row[0]) if row else 0
    total = 0
    while True:
        rows = conn.execute(
            "SELECT seq, event_id, event_hash, event_json FROM epcis_events"
            " WHERE seq > %s ORDER BY seq LIMIT %s",
            (cursor, batch),
        ).fetchall()
        if not rows:
            break
        for seq, event_id, event_hash, raw in rows:
            apply_event(conn, event_id, event_hash, json.loads(bytes(raw)))
            cursor = seq
        total += len(rows)
    if total:
        conn.execute("UPDATE genealogy_cursor SET seq = %s", (cursor,))
    return total


def apply_event(
    conn: db.Connection, event_id: str, event_hash: str, event: Mapping[str, Any]
) -> None:
    """Apply one stored event to the graph."""
    if "errorDeclaration" in event:
        declared, reason = retracts(event)
        _retract(conn, event_id, event_hash, declared, reason)
        return
    gone = conn.execute(
        "SELECT 1 FROM genealogy_retracted WHERE event_id = %s", (event_id,)
    ).fetchone()
    if gone is not None:
        return
    at = event_time(event)
    edges = edges_of(event)
    if edges:
        copy_edges(conn, ((e, event_id, at) for e in edges))
    for closing in closings(event):
        conn.execute(
            "UPDATE genealogy_edges SET valid_to = %s, closed_by = %s"
            " WHERE dst = %s AND kind = 'contains' AND valid_to IS NULL AND event_time <= %s"
            " AND (cardinality(%s::text[]) = 0 OR src = ANY(%s::text[]))",
            (at, event_id, closing.parent, at, list(closing.children), list(closing.children)),
        )


def _retract(
    conn: db.Connection, by: str, event_hash: str, declared: str | None, reason: str | None
) -> None:
    """Retract the declared event (by eventID, else every other event of the same hash)."""
    rows = conn.execute(
        "SELECT event_id FROM epcis_events WHERE event_id <> %(by)s"
        " AND (event_id = %(declared)s OR (%(declared)s::text IS NULL AND event_hash = %(hash)s))",
        {"by": by, "declared": declared, "hash": event_hash},
    ).fetchall()
    retracted = {r[0] for r in rows} | ({declared} if declared and declared != by else set())
    for event_id in sorted(retracted):
        conn.execute(
            "INSERT INTO genealogy_retracted (event_id, declared_by, reason) VALUES (%s, %s, %s)"
            " ON CONFLICT (event_id) DO NOTHING",
            (event_id, by, reason),
        )
    ids = sorted(retracted)
    conn.execute("DELETE FROM genealogy_edges WHERE event_id = ANY(%s)", (ids,))
    # A retracted DELETE never took the children out: their edges are open again.
    conn.execute(
        "UPDATE genealogy_edges SET valid_to = NULL, closed_by = NULL WHERE closed_by = ANY(%s)",
        (ids,),
    )


def copy_edges(conn: db.Connection, rows: Iterable[tuple[Edge, str, Any]]) -> int:
    """Bulk-insert edges (COPY); returns how many."""
    count = 0
    with (
        conn.cursor() as cur,
        cur.copy(f"COPY genealogy_edges ({', '.join(_COLUMNS)}) FROM STDIN") as copy,
    ):
        for edge, event_id, at in rows:
            copy.write_row((edge.src, edge.dst, edge.kind, event_id, at, edge.quantity, edge.uom))
            count += 1
    return count
