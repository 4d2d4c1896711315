"""The logistics dashboard: live shipments, latest readings, open alerts, condition charts.

JSON endpoints (logistics role; admin admitted), read straight from the database:

- ``GET /dashboard/shipments``: each shipment with its lots, open alert count and the last
  reading of the devices assigned to it (time, temperature, humidity, position);
- ``GET /dashboard/readings/latest``: the latest environment reading of every device;
- ``GET /dashboard/alerts``: open and acknowledged alerts, newest first;
- ``GET /dashboard/shipments/{id}/series``: temperature/humidity of the shipment's devices over
  the last ``hours`` (at most ``points`` points, evenly thinned) with the allowed band of its
  products, for the charts.

``GET /dashboard`` is the page (no data in it; its script signs in like the auditor page, draws
the charts as SVG itself, follows ``/alerts/stream`` with fetch so the bearer token can be sent
— EventSource cannot send headers — and falls back to polling every 15 s).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path as FilePath
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from psycopg import AsyncConnection
from psycopg.rows import dict_row

from api.auth import Principal, require
from api.db import Connection

TEMPLATES = Jinja2Templates(directory=FilePath(__file__).parent / "templates")
router = APIRouter(prefix="/dashboard", tags=["dashboard"])
Logistics = Annotated[Principal, Depends(require("logistics"))]

# Readings of a shipment: its devices' readings inside their assignment windows.
_SHIPMENT_READINGS = """
    readings r JOIN device_assignments da ON da.device_id = r.device_id
      AND r.ts >= da.valid_from AND (da.valid_to IS NULL OR r.ts < da.valid_to)
"""


def _number(value: Any) -> float | None:
    """A JSON number from reading data, or None (bools and strings are not readings)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


async def _dict_rows(
    conn: AsyncConnection, sql: str, params: Sequence[Any]
) -> list[dict[str, Any]]:
    """All rows of a query, each a dict by column name."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(sql, params)
    return await cur.fetchall()


@router.get("", response_class=HTMLResponse, include_in_schema=False)
async def page(request: Request) -> HTMLResponse:
    """The dashboard page."""
    return TEMPLATES.TemplateResponse(request, "dashboard/index.html", {"title": "Logistics"})


@router.get("/shipments")
async def shipments(
    conn: Connection,
    principal: Logistics,
    state: Annotated[
        str | None, Query(pattern="^(planned|in_transit|delivered|cancelled)$")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[dict[str, Any]]:
    """Shipments (in transit first), their lots, open alerts and last reading."""
    return await _dict_rows(
        conn,
        "SELECT s.shipment_id, s.origin, s.destination, s.state, s.expected_delivery,"
        " s.shipped_at, s.delivered_at,"
        " (SELECT coalesce(json_agg(json_build_object('gtin', sl.gtin, 'lot', sl.lot,"
        "   'sscc', sl.sscc, 'quantity', sl.quantity)), '[]')"
        "   FROM shipment_lots sl WHERE sl.shipment_id = s.shipment_id) AS lots,"
        " (SELECT count(*) FROM alerts a WHERE a.shipment_id = s.shipment_id"
        "   AND a.state <> 'resolved') AS open_alerts,"
        " (SELECT json_build_object('device_id', r.device_id, 'ts', r.ts, 'data', r.data,"
        "   'loc', r.loc) FROM " + _SHIPMENT_READINGS + " WHERE da.shipment_id = s.shipment_id"
        "   ORDER BY r.ts DESC LIMIT 1) AS last_reading,"
        " (SELECT r.loc FROM " + _SHIPMENT_READINGS + " WHERE da.shipment_id = s.shipment_id"
        "   AND r.loc IS NOT NULL ORDER BY r.ts DESC LIMIT 1) AS last_position"
        " FROM shipments s WHERE %s::text IS NULL OR s.state = %s"
        " ORDER BY s.state = 'in_transit' DESC, s.created_at DESC LIMIT %s",
        (state, state, limit),
    )


@router.get("/readings/latest")
async def latest_readings(
    conn: Connection,
    principal: Logistics,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[dict[str, Any]]:
    """The latest environment reading of each device, with the shipment it is assigned to."""
    return await _dict_rows(
        conn,
        "SELECT DISTINCT ON (r.device_id) r.device_id, r.seq, r.ts, r.data, r.loc,"
        " (SELECT da.shipment_id FROM device_assignments da WHERE da.device_id = r.device_id"
        "   AND r.ts >= da.valid_from AND (da.valid_to IS NULL OR r.ts < da.valid_to)"
        "   ORDER BY da.valid_from DESC LIMIT 1) AS shipment_id"
        " FROM readings r WHERE r.kind = 'environment'"
        " ORDER BY r.device_id, r.ts DESC LIMIT %s",
        (limit,),
    )


@router.get("/alerts")
async def open_alerts(
    conn: Connection,
    principal: Logistics,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[dict[str, Any]]:
    """Alerts not yet resolved, newest first."""
    return await _dict_rows(
        conn,
        "SELECT alert_id::text, rule_id, kind, severity, state, shipment_id, gtin, lot,"
        " device_id, started_at, ended_at, opened_at, detail FROM alerts"
        " WHERE state <> 'resolved' ORDER BY opened_at DESC LIMIT %s",
        (limit,),
    )


@router.get("/shipments/{shipment_id}/series", responses={404: {"description": "no shipment"}})
async def series(
    conn: Connection,
    principal: Logistics,
    shipment_id: Annotated[str, Path(max_length=64, pattern=r"^[^\x00]*$")],
    hours: Annotated[float, Query(gt=0, le=24 * 90)] = 24,
    points: Annotated[int, Query(ge=2, le=5000)] = 500,
) -> dict[str, Any]:
    """Temperature and humidity of the shipment's devices, with its products' band."""
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
        raise HTTPException(404, f"no shipment {shipment_id}")
    since = datetime.now(UTC) - timedelta(hours=hours)
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
