"""What logistics watches, read from the store: shipments with their lots and last reading, each
device's latest environment reading, and a shipment's condition series with its products' band
(the logistics dashboard's data; its open alerts are the alerts area's).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg.rows import dict_row

from ingest.errors import IngestError
from ingest.parties import visible_shipment
from tracehub.db import AsyncConnection
from tracehub.errors import NotFoundError

__all__ = ["ShipmentNotFoundError", "latest_readings", "shipment_series", "shipments"]


class ShipmentNotFoundError(IngestError, NotFoundError):
    """No shipment has this id."""


# Readings of a shipment: its devices' readings inside their assignment windows.
_SHIPMENT_READINGS = """
    readings r JOIN device_assignments da ON da.device_id = r.device_id
      AND r.ts >= da.valid_from AND (da.valid_to IS NULL OR r.ts < da.valid_to)
"""


async def _rows(conn: AsyncConnection, sql: str, params: Any) -> list[dict[str, Any]]:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(sql, params)
    return await cur.fetchall()


def _number(value: Any) -> float | None:
    """A JSON number from reading data, or None (bools and strings are not readings)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


async def shipments(
    conn: AsyncConnection, state: str | None, limit: int, orgs: list[str] | None = None
) -> list[dict[str, Any]]:
    """Shipments (in transit first, then newest), each with its lots, the last reading of its
    devices (device, time, data, position) and its last known position; with ``orgs``, only
    those one of them is a party to."""
    return await _rows(
        conn,
        "SELECT s.shipment_id, s.origin, s.destination, s.state, s.expected_delivery,"
        " s.shipped_at, s.delivered_at,"
        " (SELECT coalesce(json_agg(json_build_object('gtin', sl.gtin, 'lot', sl.lot,"
        "   'sscc', sl.sscc, 'quantity', sl.quantity)), '[]')"
        "   FROM shipment_lots sl WHERE sl.shipment_id = s.shipment_id) AS lots,"
        " (SELECT json_build_object('device_id', r.device_id, 'ts', r.ts, 'data', r.data,"
        "   'loc', r.loc) FROM " + _SHIPMENT_READINGS + " WHERE da.shipment_id = s.shipment_id"
        "   ORDER BY r.ts DESC LIMIT 1) AS last_reading,"
        " (SELECT r.loc FROM " + _SHIPMENT_READINGS + " WHERE da.shipment_id = s.shipment_id"
        "   AND r.loc IS NOT NULL ORDER BY r.ts DESC LIMIT 1) AS last_position"
        " FROM shipments s WHERE (%(state)s::text IS NULL OR s.state = %(state)s)"
        f" AND (%(orgs)s::text[] IS NULL OR {visible_shipment('s')})"
        " ORDER BY s.state = 'in_transit' DESC, s.created_at DESC LIMIT %(limit)s",
        {"state": state, "limit": limit, "orgs": orgs},
    )


async def latest_readings(
    conn: AsyncConnection,
    limit: int,
    orgs: list[str] | None = None,
    *,
    offset: int = 0,
    shipment_id: str | None = None,
    device: str | None = None,
) -> list[dict[str, Any]]:
    """The latest environment reading of each device (by device id), with the shipment it is
    assigned to; a page of ``limit`` from ``offset``, only the shipment's devices with
    ``shipment_id``, only device ids starting with ``device``; with ``orgs``, only readings
    taken for a shipment one of them is a party to."""
    rows = await _rows(
        conn,
        "SELECT * FROM (SELECT DISTINCT ON (r.device_id) r.device_id, r.seq, r.ts, r.data,"
        " r.loc,"
        " (SELECT da.shipment_id FROM device_assignments da WHERE da.device_id = r.device_id"
        "   AND r.ts >= da.valid_from AND (da.valid_to IS NULL OR r.ts < da.valid_to)"
        "   ORDER BY da.valid_from DESC LIMIT 1) AS shipment_id"
        " FROM readings r WHERE r.kind = 'environment'"
        " AND (%(device)s::text IS NULL OR starts_with(r.device_id, %(device)s))"
        " AND (%(orgs)s::text[] IS NULL OR EXISTS (SELECT 1 FROM device_assignments da"
        "   JOIN shipments s USING (shipment_id) WHERE da.device_id = r.device_id"
        f"   AND r.ts >= da.valid_from AND (da.valid_to IS NULL OR r.ts < da.valid_to)"
        f"   AND {visible_shipment('s')}))"
        " ORDER BY r.device_id, r.ts DESC) AS latest"
        " WHERE (%(shipment)s::text IS NULL OR shipment_id = %(shipment)s)"
        " ORDER BY device_id LIMIT %(limit)s OFFSET %(offset)s",
        {
            "limit": limit,
            "offset": offset,
            "orgs": orgs,
            "shipment": shipment_id,
            "device": device,
        },
    )
    return rows


async def shipment_series(
    conn: AsyncConnection, shipment_id: str, hours: float, points: int
) -> dict[str, Any]:
    """Temperature and humidity of the shipment's devices over the ``hours`` up to its newest
    reading (so a delivered shipment still has its chart), at most ``points`` of them (thinned
    evenly, first and last kept), with the narrowest band of its products;
    ShipmentNotFoundError if there is no such shipment."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        "SELECT max(p.temp_min_c) AS temp_min, min(p.temp_max_c) AS temp_max,"
        " max(p.humidity_min) AS humidity_min, min(p.humidity_max) AS humidity_max,"
        " bool_or(true) AS found"
        " FROM shipments s LEFT JOIN shipment_lots sl USING (shipment_id)"
        " LEFT JOIN products p ON p.gtin = sl.gtin WHERE s.shipment_id = %s",
        (shipment_id,),
    )
    band = await cur.fetchone()
    if band is None or band.pop("found") is None:
        raise ShipmentNotFoundError(f"no shipment {shipment_id}")
    await cur.execute(
        "SELECT max(r.ts) AS newest FROM " + _SHIPMENT_READINGS + " WHERE da.shipment_id = %s"
        " AND r.kind = 'environment'",
        (shipment_id,),
    )
    newest = await cur.fetchone()
    until = (newest or {}).get("newest") or datetime.now(UTC)
    since = until - timedelta(hours=hours)
    await cur.execute(
        "SELECT r.device_id, r.ts, r.data->'temperature_c' AS t, r.data->'humidity_pct' AS h"
        " FROM " + _SHIPMENT_READINGS + " WHERE da.shipment_id = %s AND r.ts >= %s"
        " AND r.kind = 'environment' ORDER BY r.ts LIMIT 100000",
        (shipment_id, since),
    )
    rows = await cur.fetchall()
    # Thin evenly, first and last kept, so a week of 1 Hz data stays a light chart.
    if len(rows) > points:
        rows_kept = [rows[round(i * (len(rows) - 1) / (points - 1))] for i in range(points)]
    else:
        rows_kept = rows
    return {
        "shipment_id": shipment_id,
        "since": since,
        "band": {k: (float(v) if v is not None else None) for k, v in band.items()},
        "points": [
            {
                "device_id": r["device_id"],
                "ts": r["ts"],
                "temperature_c": _number(r["t"]),
                "humidity_pct": _number(r["h"]),
            }
            for r in rows_kept
        ],
        "thinned_from": len(rows),
    }
