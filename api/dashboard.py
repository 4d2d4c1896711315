"""The logistics dashboard: live shipments, latest readings, open alerts, condition charts.

JSON endpoints (logistics role; admin admitted), each over the shipments the caller's
organisation is a party to (shipper, receiver, carrier; api/policy.py); the data is
ingest/monitoring.py's and, for alerts, alerts/store.py's:

- ``GET /dashboard/shipments``: each shipment with its lots, open alert count and the last
  reading of the devices assigned to it (time, temperature, humidity, position);
- ``GET /dashboard/readings/latest``: the latest environment reading of every device, paged
  (``limit``, ``offset``) and filtered by shipment and device id prefix;
- ``GET /dashboard/alerts``: open and acknowledged alerts, newest first;
- ``GET /dashboard/shipments/{id}/series``: temperature/humidity of the shipment's devices over
  the ``hours`` up to its newest reading (at most ``points`` points, evenly thinned) with the
  allowed band of its products, for the charts.

``GET /dashboard`` is the page (no data in it, only the labels of codes in the caller's
language; its script signs in like the auditor page, acknowledges and resolves alerts through
``/alerts/{id}/acknowledge|resolve`` and shows the API's refusal when there is one, draws the
charts as SVG itself, follows ``/alerts/stream`` with fetch so the bearer token can be sent —
EventSource cannot send headers — and falls back to polling every 15 s).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Path, Query, Request
from fastapi.responses import HTMLResponse

from alerts.store import unresolved_alerts, unresolved_counts
from api.db import Connection
from api.policy import Access, guard, scope
from api.routing import Router
from api.staff_page import render
from ingest import monitoring

router = Router(prefix="/dashboard", tags=["dashboard"])
Logistics = Annotated[Access, Depends(guard("dashboard.read"))]


@router.get("", response_class=HTMLResponse, include_in_schema=False)
async def page(request: Request) -> HTMLResponse:
    """The dashboard page."""
    return render(request, "dashboard/index.html", "Logistics")


def _with_open_alerts(row: dict[str, Any], count: int) -> dict[str, Any]:
    """The shipment with its open alert count after its lots, where the dashboard reads it."""
    tail = {key: row.pop(key) for key in ("last_reading", "last_position")}
    return {**row, "open_alerts": count, **tail}


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
    orgs = (await scope(conn, principal.principal)).orgs
    rows = await monitoring.shipments(conn, state, limit, orgs)
    counts = await unresolved_counts(conn, [row["shipment_id"] for row in rows])
    return [_with_open_alerts(row, counts.get(row["shipment_id"], 0)) for row in rows]


@router.get("/readings/latest")
async def latest_readings(
    conn: Connection,
    principal: Logistics,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    shipment_id: Annotated[str | None, Query(max_length=64, pattern=r"^[^\x00]*$")] = None,
    device: Annotated[
        str | None, Query(max_length=128, pattern=r"^[^\x00]*$", description="device id prefix")
    ] = None,
) -> list[dict[str, Any]]:
    """The latest environment reading of each device (ordered by device id), with the
    shipment it is assigned to; a page of ``limit`` from ``offset``."""
    orgs = (await scope(conn, principal.principal)).orgs
    return await monitoring.latest_readings(
        conn, limit, orgs, offset=offset, shipment_id=shipment_id, device=device or None
    )


@router.get("/alerts")
async def open_alerts(
    conn: Connection,
    principal: Logistics,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[dict[str, Any]]:
    """Alerts not yet resolved, newest first."""
    orgs = (await scope(conn, principal.principal)).orgs
    return await unresolved_alerts(conn, limit, orgs)


@router.get("/shipments/{shipment_id}/series", responses={404: {"description": "no shipment"}})
async def series(
    conn: Connection,
    principal: Annotated[Access, Depends(guard("dashboard.series", "shipment_id"))],
    shipment_id: Annotated[str, Path(max_length=64, pattern=r"^[^\x00]*$")],
    hours: Annotated[float, Query(gt=0, le=24 * 90)] = 24,
    points: Annotated[int, Query(ge=2, le=5000)] = 500,
) -> dict[str, Any]:
    """Temperature and humidity of the shipment's devices, with its products' band."""
    return await monitoring.shipment_series(conn, shipment_id, hours, points)
