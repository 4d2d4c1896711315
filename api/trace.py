"""Traces of the genealogy graph, their drawing and their regulator exports.

- ``GET /trace?id=&direction=&depth=&since=&until=``: nodes and edges (each edge with its event
  id, CBV 2.0 hash and proof link) reached from an EPC URI, a Digital Link or ``<gtin>/<lot>``;
- ``GET /trace/graph.svg``: the same trace drawn by Graphviz;
- ``GET /trace/fsma.csv`` / ``/trace/fsma.xlsx``: the FSMA 204 sortable spreadsheet of a lot's
  trace, or of a product (``gtin``) over ``since``..``until``;
- ``GET /trace/epcis``: the trace's events as an EPCIS 2.0 document;
- ``GET /trace/page``: the staff page (no data in it: its script signs in and fetches the rest).

Everything is scoped like an EPCIS query: a caller walks only edges of events its organisation
captured or that name its objects or places (admins: every edge).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from api.db import sync_connection
from api.policy import Access, guard
from api.routing import Router
from api.staff_page import render
from ingest.genealogy import TraceScope, parse_query_id, sync, trace
from ingest.genealogy.fsma import epcis_document, fsma_csv, fsma_rows, fsma_xlsx, trace_events
from ingest.genealogy.render import dot_source, render_svg
from ingest.genealogy.trace import Trace, TraceQueryError
from ingest.parties import scope_orgs, subject_keys_of
from tracehub import db

router = Router(prefix="/trace", tags=["trace"])
Reader = Annotated[Access, Depends(guard("trace.read"))]
Exporter = Annotated[Access, Depends(guard("trace.export"))]
Id = Annotated[
    str, Query(min_length=1, max_length=500, description="EPC URI, Digital Link, gtin/lot")
]
Direction = Annotated[str, Query(pattern="^(backward|forward|both)$")]
Depth = Annotated[int, Query(ge=1, le=100)]
_XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@dataclass(frozen=True)
class Window:
    since: datetime | None
    until: datetime | None


def _window(
    since: Annotated[datetime | None, Query()] = None,
    until: Annotated[datetime | None, Query()] = None,
) -> Window:
    return Window(since, until)


Between = Annotated[Window, Depends(_window)]


def _scope(conn: db.Connection, access: Access) -> TraceScope:
    principal = access.principal
    if principal.has("admin"):
        return TraceScope()
    if principal.org_id is None:
        return TraceScope(orgs=[])
    orgs = scope_orgs(conn, principal.org_id, auditor=principal.has("auditor"))
    return TraceScope(orgs=orgs, keys=subject_keys_of(conn, orgs))


def _trace(
    request: Request, access: Access, origin: str, direction: str, depth: int, window: Window
) -> tuple[Trace, TraceScope, list[str]]:
    with sync_connection(request) as conn:
        sync(conn)
        conn.commit()
        scope = _scope(conn, access)
        node = parse_query_id(origin)
        found = trace(
            conn, node, direction=direction, depth=depth, since=window.since,
            until=window.until, scope=scope,
        )  # fmt: skip
        direct = _direct_events(conn, node, scope)
    return found, scope, direct


def _direct_events(conn: db.Connection, node: str, scope: TraceScope) -> list[str]:
    """Events naming the traced lot itself (its commissioning, its recall), in scope."""
    if not node.startswith("lot:"):
        return []
    rows = conn.execute(
        "SELECT event_id FROM epcis_events WHERE subjects && ARRAY[%(key)s]"
        " AND (%(orgs)s::text[] IS NULL OR captured_by_org = ANY(%(orgs)s)"
        " OR subjects && %(keys)s::text[])",
        {
            "key": node,
            "orgs": None if scope.orgs is None else list(scope.orgs),
            "keys": list(scope.keys),
        },
    ).fetchall()
    return [r[0] for r in rows]


@router.get("")
async def get_trace(
    request: Request,
    access: Reader,
    window: Between,
    id: Id,
    direction: Direction = "both",
    depth: Depth = 50,
) -> dict[str, Any]:
    """Nodes and edges of the trace; each edge names its event, hash and proof."""
    found, _, _ = await run_in_threadpool(_trace, request, access, id, direction, depth, window)
    return {"direction": direction, "depth": depth, **found.as_json()}


@router.get("/graph.svg", response_class=Response)
async def graph(
    request: Request,
    access: Reader,
    window: Between,
    id: Id,
    direction: Direction = "both",
    depth: Depth = 50,
) -> Response:
    """The trace drawn by Graphviz (SVG)."""
    found, _, _ = await run_in_threadpool(_trace, request, access, id, direction, depth, window)
    svg = await run_in_threadpool(render_svg, dot_source(found))
    return Response(svg, media_type="image/svg+xml")


def _export_events(
    request: Request, access: Access, origin: str | None, gtin: str | None, window: Window
) -> list[Any]:
    if origin:
        found, _, direct = _trace(request, access, origin, "both", 50, window)
        ids = {e.event_id for e in found.edges.values()} | set(direct)
    else:
        with sync_connection(request) as conn:
            sync(conn)
            conn.commit()
            scope = _scope(conn, access)
            ids = _product_events(conn, str(gtin), window, scope)
    with sync_connection(request) as conn:
        return trace_events(conn, ids)


def _product_events(conn: db.Connection, gtin: str, window: Window, scope: TraceScope) -> set[str]:
    rows = conn.execute(
        "SELECT DISTINCT g.event_id FROM genealogy_edges g JOIN epcis_events e USING (event_id)"
        " WHERE (g.src LIKE %(prefix)s OR g.dst LIKE %(prefix)s)"
        " AND (%(since)s::timestamptz IS NULL OR g.event_time >= %(since)s)"
        " AND (%(until)s::timestamptz IS NULL OR g.event_time <= %(until)s)"
        " AND (%(orgs)s::text[] IS NULL OR e.captured_by_org = ANY(%(orgs)s)"
        " OR e.subjects && %(keys)s::text[])",
        {
            "prefix": f"lot:{gtin}/%",
            "since": window.since,
            "until": window.until,
            "orgs": None if scope.orgs is None else list(scope.orgs),
            "keys": list(scope.keys),
        },
    ).fetchall()
    return {r[0] for r in rows}


Gtin = Annotated[str | None, Query(pattern="^[0-9]{14}$")]


def _rows(
    request: Request, access: Access, id: str | None, gtin: str | None, window: Window
) -> list[list[str]]:
    if not id and not gtin:
        raise TraceQueryError("name a lot or EPC (id) or a product (gtin)")
    events = _export_events(request, access, id, gtin, window)
    base = request.app.state.config.public_base_url.rstrip("/")
    with sync_connection(request) as conn:
        return fsma_rows(conn, events, base_url=base)


@router.get("/fsma.csv", response_class=Response)
async def fsma_csv_export(
    request: Request, access: Exporter, window: Between, id: Id | None = None, gtin: Gtin = None
) -> Response:
    """FSMA 204 sortable spreadsheet, CSV: one row per critical tracking event and lot."""
    rows = await run_in_threadpool(_rows, request, access, id, gtin, window)
    return Response(
        fsma_csv(rows),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="fsma204.csv"'},
    )


@router.get("/fsma.xlsx", response_class=Response)
async def fsma_xlsx_export(
    request: Request, access: Exporter, window: Between, id: Id | None = None, gtin: Gtin = None
) -> Response:
    """FSMA 204 sortable spreadsheet, XLSX (filterable header)."""
    rows = await run_in_threadpool(_rows, request, access, id, gtin, window)
    body = await run_in_threadpool(fsma_xlsx, rows)
    return Response(
        body,
        media_type=_XLSX,
        headers={"Content-Disposition": 'attachment; filename="fsma204.xlsx"'},
    )


@router.get("/epcis")
async def epcis_export(request: Request, access: Exporter, window: Between, id: Id) -> JSONResponse:
    """The trace's events as an EPCIS 2.0 document."""
    events = await run_in_threadpool(_export_events, request, access, id, None, window)
    return JSONResponse(epcis_document(events), media_type="application/ld+json")


@router.get("/page", response_class=HTMLResponse, include_in_schema=False)
async def page(request: Request) -> HTMLResponse:
    """The trace page (staff sign-in; the graph and table are fetched by its script)."""
    return render(request, "dashboard/trace.html", "Trace")
