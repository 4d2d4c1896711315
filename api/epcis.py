"""EPCIS 2.0 REST bindings (capture and query), after GS1's openapi.yaml where practical.

- ``POST /epcis/capture``: an EPCISDocument (JSON-LD, or XML 2.0 / 1.2 sent as
  ``application/xml``; ingest/epcis/documents.py). Captured synchronously in one
  transaction (all or nothing); answers 202 with ``Location: /epcis/capture/{captureID}``.
  Schema-invalid input is 400 naming the failing field's path.
- ``GET /epcis/capture/{captureID}``: the capture job.
- ``GET /epcis/events``: an EPCISQueryDocument of the events matching the query parameters,
  paged with ``perPage`` / ``nextPageToken`` (the next page's URL is in a ``Link`` header);
  EPCIS 2.0 XML when the client sends ``Accept: application/xml``.
- ``GET /epcis/events/{eventID}``: one event.
- ``GET /epcis/prehashes/{eventID}``: the event's CBV 2.0 pre-hash string (what was hashed).

The EPCIS module is synchronous (psycopg), so handlers run it in the thread pool on a connection
of their own.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlencode

import psycopg
from fastapi import Depends, Request, status
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from api.db import sync_connection
from api.policy import Access, PolicyError, authorize, guard
from api.routing import Router
from ingest.epcis import (
    CaptureNotFoundError,
    CaptureTooLargeError,
    EventNotFoundError,
    EventQuery,
    capture_events,
)
from ingest.epcis.documents import is_xml, read_capture_body
from ingest.epcis.prehash import prehash_record
from ingest.epcis.query_text import encode_token, no_nul, parse_pairs
from ingest.epcis.readings import readings_as_events
from ingest.epcis.store import event_by_id, query_rows
from ingest.epcis.subjects import identifiers
from ingest.parties import Parties, scope_orgs, subject_keys_of
from tracehub import db
from tracehub.epcis import EPCISValidationError
from tracehub.epcis.hashing import ignore_declaration
from tracehub.epcis.schema import DEFAULT_CONTEXT, validate_document
from tracehub.epcis.xml_output import query_document_xml

router = Router(prefix="/epcis", tags=["epcis"])
_MAX_BODY = 16 * 1024 * 1024
_JSONLD = "application/ld+json"


def _document_events(document: dict[str, Any]) -> list[Any]:
    """The events of an EPCISDocument (or of an EPCISQueryDocument's results)."""
    body = document.get("epcisBody")
    if not isinstance(body, dict):
        raise EPCISValidationError("epcisBody: missing or not an object")
    if document.get("type") == "EPCISQueryDocument":
        results = body.get("queryResults")
        results = results.get("resultsBody") if isinstance(results, dict) else None
        events = results.get("eventList", []) if isinstance(results, dict) else []
    elif "eventList" in body:
        events = body["eventList"]
    elif "event" in body:
        events = [body["event"]]
    else:
        events = []
    if not isinstance(events, list):
        raise EPCISValidationError("epcisBody.eventList: must be a list")
    return events


@router.post(
    "/capture",
    status_code=status.HTTP_202_ACCEPTED,
    responses={400: {"description": "invalid EPCIS document"}},
)
async def capture(
    request: Request,
    access: Annotated[Access, Depends(guard("epcis.capture"))],
) -> JSONResponse:
    """Capture an EPCISDocument; 202 with the capture job's location. Every EPC, lot class and
    location an event names must be one the caller's organisation owns or is a party to (403
    otherwise: all or nothing)."""
    principal = access.principal
    raw = await request.body()
    if len(raw) > _MAX_BODY:
        raise CaptureTooLargeError("document too large")
    # JSON-LD or XML (EPCIS 2.0 / 1.2): both become the same JSON-LD document
    document = await run_in_threadpool(read_capture_body, raw, request.headers.get("content-type"))
    if document.get("type") not in ("EPCISDocument", "EPCISQueryDocument"):
        raise EPCISValidationError("type: must be EPCISDocument")
    capture_id = secrets.token_hex(16)
    source = f"api:{principal.username}"

    def work() -> int:
        validate_document(document)
        events = _document_events(document)
        with sync_connection(request) as conn:
            if not principal.has("admin"):
                _check_subjects(conn, principal.org_id, events)
            conn.execute(
                "INSERT INTO epcis_capture_jobs (capture_id, source) VALUES (%s, %s)",
                (capture_id, source),
            )
            captured = capture_events(
                conn,
                events,
                source=source,
                context=document.get("@context"),
                capture_id=capture_id,
                ignore=ignore_declaration(document),
                org=principal.org_id,
            )
            conn.execute(
                "UPDATE epcis_capture_jobs SET running = false, success = true,"
                " finished_at = now(), captured = %s WHERE capture_id = %s",
                (len(captured), capture_id),
            )
            conn.commit()
            return len(captured)

    try:
        count = await run_in_threadpool(work)
    except RecursionError as exc:
        raise EPCISValidationError("$: the document is nested too deeply") from exc
    except psycopg.DataError as exc:  # e.g. a NUL character, which PostgreSQL text cannot hold
        raise EPCISValidationError(
            f"$: the document holds a value PostgreSQL cannot store: {exc}"
        ) from exc
    location = f"/epcis/capture/{capture_id}"
    return JSONResponse(
        {"captureID": capture_id, "captured": count},
        status_code=status.HTTP_202_ACCEPTED,
        headers={"Location": location},
    )


def _check_subjects(conn: db.Connection, org: str | None, events: list[Any]) -> None:
    """Refuse (403) an event naming anything the organisation neither owns nor is party to."""
    own = set(subject_keys_of(conn, [org])) if org else set()
    for i, event in enumerate(events):
        if not isinstance(event, dict):
            continue
        for identifier, keys in identifiers(event):
            if not keys & own:
                raise PolicyError(
                    f"epcisBody.eventList[{i}]: {identifier} is not your organisation's,"
                    " nor one it is a party to"
                )


def scope_of_caller(conn: db.Connection, access: Access) -> tuple[list[str], list[str]] | None:
    """(organisations, keys) whose events the caller sees; None for admins (all)."""
    who = access.principal
    if who.has("admin"):
        return None
    orgs = scope_orgs(conn, who.org_id, auditor=who.has("auditor")) if who.org_id else []
    return orgs, subject_keys_of(conn, orgs) if orgs else []


@router.get("/capture/{capture_id}", responses={404: {"description": "unknown capture"}})
async def capture_job(
    capture_id: str,
    request: Request,
    _: Annotated[Access, Depends(guard("epcis.capture_job", "capture_id"))],
) -> dict[str, Any]:
    """The capture job: running, success, events captured, errors."""

    def work() -> tuple[Any, ...] | None:
        with sync_connection(request) as conn:
            return conn.execute(
                "SELECT created_at, finished_at, running, success, captured, errors"
                " FROM epcis_capture_jobs WHERE capture_id = %s",
                (capture_id,),
            ).fetchone()

    row = await run_in_threadpool(work)
    if row is None:
        raise CaptureNotFoundError(f"capture {capture_id} not found")
    created, finished, running, success, captured, errors = row
    return {
        "captureID": capture_id,
        "createdAt": created.isoformat(),
        "finishedAt": finished.isoformat() if finished else None,
        "running": running,
        "success": success,
        "captureErrorBehaviour": "rollback",
        "captured": captured,
        "errors": errors,
    }


def parse_query(request: Request) -> tuple[EventQuery, bool]:
    """The EventQuery of the request's parameters (400 on anything malformed)."""
    return parse_pairs(request.query_params.multi_items())


def query_document(events: list[dict[str, Any]]) -> dict[str, Any]:
    """An EPCISQueryDocument holding ``events``."""
    return {
        "@context": [DEFAULT_CONTEXT],
        "type": "EPCISQueryDocument",
        "schemaVersion": "2.0",
        "creationDate": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "epcisBody": {
            "queryResults": {
                "queryName": "SimpleEventQuery",
                "resultsBody": {"eventList": events},
            }
        },
    }


@router.get("/events", responses={400: {"description": "malformed query parameter"}})
async def events(
    request: Request, access: Annotated[Access, Depends(guard("epcis.query"))]
) -> Response:
    """Events matching the EPCIS simple-event-query parameters, as an EPCISQueryDocument (JSON-LD,
    or XML on ``Accept: application/xml``): only those the caller's organisation captured or whose
    objects or locations it is a party to (an auditor: also those of the organisations that
    engaged it)."""
    parsed, include_readings = parse_query(request)
    return await query_response(request, access, parsed, include_readings)


async def query_response(
    request: Request, access: Access, parsed: EventQuery, include_readings: bool
) -> Response:
    """The EPCISQueryDocument page of ``parsed`` in the caller's scope (JSON-LD or XML), the
    next page's URL in a ``Link`` header."""
    per_page = parsed.limit - 1

    def work() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        with sync_connection(request) as conn:
            scope = scope_of_caller(conn, access)
            query = parsed
            if scope is not None:
                query = dataclasses.replace(parsed, scope_orgs=scope[0], scope_keys=scope[1])
            rows = query_rows(conn, query)
            mapped: list[dict[str, Any]] = []
            # Readings are merged only into the first page (they have no place in our paging).
            if include_readings and query.after_seq is None:
                mapped = readings_as_events(conn, query, limit=per_page)
            return rows, mapped

    rows, mapped = await run_in_threadpool(work)
    page = rows[:per_page]
    result: list[dict[str, Any]] = []
    for row in page:
        event = json.loads(bytes(row["event_json"]))
        event["recordTime"] = row["record_time"].isoformat()
        result.append(event)
    result.extend(mapped)
    headers: dict[str, str] = {}
    if len(rows) > per_page:
        params = [(k, v) for k, v in request.query_params.multi_items() if k != "nextPageToken"]
        params.append(("nextPageToken", encode_token(page[-1]["seq"])))
        headers["Link"] = f'<{request.url.path}?{urlencode(params)}>; rel="next"'
    if _wants_xml(request):
        created = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        body = query_document_xml(result, creation_date=created)
        return Response(body, headers=headers, media_type="application/xml")
    return JSONResponse(query_document(result), headers=headers, media_type=_JSONLD)


def _wants_xml(request: Request) -> bool:
    """XML when the client's Accept names XML before (or without) any JSON type."""
    for entry in request.headers.get("accept", "").split(","):
        media = entry.split(";", 1)[0].strip().lower()
        if is_xml(media):
            return True
        if media in (_JSONLD, "application/json"):
            return False
    return False


@router.get("/prehashes/{event_id:path}", responses={404: {"description": "unknown event"}})
async def prehash(
    event_id: str, request: Request, access: Annotated[Access, Depends(guard("epcis.read"))]
) -> dict[str, Any]:
    """Exactly what was hashed for an event: its CBV 2.0 pre-hash string and its SHA-256; 404
    unless the caller would find the event with a query."""
    no_nul("eventID", event_id)

    def work() -> dict[str, Any] | None:
        with sync_connection(request) as conn:
            if event_by_id(conn, event_id, scope_of_caller(conn, access)) is None:
                return None
            return prehash_record(conn, event_id)

    found = await run_in_threadpool(work)
    if found is None:
        raise EventNotFoundError(f"event {event_id} not found")
    return found


@router.get("/events/{event_id:path}", responses={404: {"description": "unknown event"}})
async def event(
    event_id: str, request: Request, access: Annotated[Access, Depends(guard("epcis.read"))]
) -> JSONResponse:
    """One event by its eventID (or, for an event captured without one, its hash URI); 404
    unless the caller would find it with a query."""
    no_nul("eventID", event_id)

    def work() -> dict[str, Any] | None:
        with sync_connection(request) as conn:
            return event_by_id(conn, event_id, scope_of_caller(conn, access))

    found = await run_in_threadpool(work)
    if found is None:
        raise EventNotFoundError(f"event {event_id} not found")
    authorize(access.principal, "epcis.read", Parties.of([("party", access.principal.org_id)]))
    return JSONResponse(found, media_type=_JSONLD)
