"""EPCIS 2.0 named queries and query subscriptions (REST binding, after GS1's openapi.yaml).

- ``POST /epcis/queries`` ``{"name", "query"}``: a named query of the caller's organisation
  (201, ``Location``); ``GET /epcis/queries``, ``GET`` / ``DELETE /epcis/queries/{queryName}``.
- ``GET /epcis/queries/{queryName}/events``: its events, scoped and paged like /epcis/events.
  The same path as a WebSocket (``?stream=true``) pushes an EPCISQueryDocument whenever matching
  events are captured; the bearer token comes as the subprotocol pair
  ``["tracehub.bearer", <token>]`` (browsers cannot set headers on a WebSocket) or an
  ``Authorization`` header, never in the URL (URLs end up in logs).
- ``POST /epcis/queries/{queryName}/subscriptions`` ``{"dest", "signatureToken"?, "stream":
  true | "schedule": {...}, "reportIfEmpty"?, "initialRecordTime"?}``: a webhook subscription
  (target checked by the outbound policy, 422 if refused); ``GET`` lists them, ``GET`` /
  ``DELETE .../subscriptions/{subscriptionID}``. Deliveries: alerts/epcis_feed.py.

Everything is looked up within the caller's organisation: another company's query names answer
404 as if absent.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import secrets
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, Request, WebSocket, status
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.websockets import WebSocketDisconnect

from alerts.outbound import check_target
from api import token_versions
from api.alerts import Outbound
from api.auth import AuthError, Principal, read_token
from api.db import sync_connection
from api.epcis import query_response, scope_of_caller
from api.policy import Access, authorize, guard
from api.routing import Router
from ingest.epcis.query_text import parse_pairs
from ingest.epcis.store import EPCISQueryError, query_rows
from ingest.epcis.subscriptions import (
    SubscriptionSpec,
    create_query,
    create_subscription,
    delete_query,
    delete_subscription,
    get_query,
    get_subscription,
    list_queries,
    list_subscriptions,
    top_seq,
)
from ingest.epcis.subscriptions import query_document as subscription_document
from tracehub.errors import TraceHubError

router = Router(prefix="/epcis/queries", tags=["epcis"])
NAME = r"^[A-Za-z0-9._~-]{1,128}$"
#: the reader's paging, the one part of a named query's parameters a request may add
_PAGING = ("perPage", "nextPageToken")
#: how often a WebSocket subscriber's query is run again
WS_POLL_S = 0.2
WS_SUBPROTOCOL = "tracehub.bearer"


class QueryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=NAME)
    query: dict[str, Any] = Field(default_factory=dict)


class SubscriptionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dest: str = Field(max_length=2048, pattern=r"^[!-~]+$")
    signatureToken: str | None = Field(
        default=None, min_length=16, max_length=256, pattern=r"^[!-~]+$"
    )
    stream: bool | None = None
    schedule: dict[str, str | int] | None = None
    reportIfEmpty: bool = False
    initialRecordTime: datetime | None = None


Reader = Annotated[Access, Depends(guard("epcis.named_query.read"))]
Subscriber = Annotated[Access, Depends(guard("epcis.subscription"))]


async def _run(request: Request, work: Any, *args: Any) -> Any:
    def call() -> Any:
        with sync_connection(request) as conn:
            return work(conn, *args)

    return await run_in_threadpool(call)


@router.post("", status_code=status.HTTP_201_CREATED)
async def create(
    body: QueryIn,
    request: Request,
    access: Annotated[Access, Depends(guard("epcis.named_query.create"))],
) -> JSONResponse:
    """Create a named query of the caller's organisation (409 if the name is taken)."""
    who = access.principal
    created = await _run(request, create_query, who.org_id, body.name, body.query, who.username)
    return JSONResponse(
        created, status_code=201, headers={"Location": f"/epcis/queries/{body.name}"}
    )


@router.get("")
async def list_(request: Request, access: Reader) -> list[dict[str, Any]]:
    """The caller's organisation's named queries."""
    result: list[dict[str, Any]] = await _run(request, list_queries, access.principal.org_id)
    return result


def _public(query: dict[str, Any]) -> dict[str, Any]:
    return {k: query[k] for k in ("name", "query", "createdAt")}


@router.get("/{queryName}", responses={404: {"description": "no such query"}})
async def read(queryName: str, request: Request, access: Reader) -> dict[str, Any]:
    """The named query's definition."""
    return _public(await _run(request, get_query, access.principal.org_id, queryName))


@router.delete("/{queryName}", status_code=204, responses={404: {"description": "no such query"}})
async def delete(
    queryName: str,
    request: Request,
    access: Annotated[Access, Depends(guard("epcis.named_query.delete"))],
) -> Response:
    """Delete the query and, with it, every subscription to it."""
    await _run(request, delete_query, access.principal.org_id, queryName)
    return Response(status_code=204)


@router.get("/{queryName}/events", responses={404: {"description": "no such query"}})
async def events(queryName: str, request: Request, access: Reader) -> Response:
    """The named query's events in the caller's scope, paged like GET /epcis/events."""
    extra = [(k, v) for k, v in request.query_params.multi_items()]
    for name, _ in extra:
        if name not in _PAGING:
            raise EPCISQueryError(f"{name}: a named query takes only {', '.join(_PAGING)}")
    query = await _run(request, get_query, access.principal.org_id, queryName)
    parsed, _ = parse_pairs([*(tuple(p) for p in query["params"]), *extra])
    return await query_response(request, access, parsed, False)


# -- webhook subscriptions ------------------------------------------------------------------


@router.post(
    "/{queryName}/subscriptions",
    status_code=status.HTTP_201_CREATED,
    responses={404: {"description": "no such query"}, 422: {"description": "target refused"}},
)
async def subscribe(
    queryName: str,
    body: SubscriptionIn,
    request: Request,
    access: Subscriber,
    policy: Outbound,
) -> JSONResponse:
    """Subscribe a webhook to the named query: ``stream: true`` (on capture) or a
    ``schedule``. Without ``signatureToken`` the hub makes one and returns it this once."""
    if not body.dest.startswith(("http://", "https://")) or " " in body.dest:
        raise EPCISQueryError("dest: must be an http(s) URL")
    secret = body.signatureToken or secrets.token_urlsafe(32)
    spec = SubscriptionSpec(
        dest=body.dest,
        secret=secret,
        stream=bool(body.stream),
        schedule=body.schedule,
        report_if_empty=body.reportIfEmpty,
        initial_record_time=body.initialRecordTime,
    )
    who = access.principal

    def work(conn: Any) -> dict[str, Any]:
        query = get_query(conn, who.org_id, queryName)  # 404 before any look at the target
        check_target(body.dest, policy)  # 422 naming why, if refused (alerts/outbound.py)
        return create_subscription(conn, query["query_id"], spec, who.username)

    created: dict[str, Any] = await _run(request, work)
    if body.signatureToken is None:
        created["signatureToken"] = secret
    location = f"/epcis/queries/{queryName}/subscriptions/{created['subscriptionID']}"
    return JSONResponse(created, status_code=201, headers={"Location": location})


@router.get("/{queryName}/subscriptions", responses={404: {"description": "no such query"}})
async def subscriptions(
    queryName: str,
    request: Request,
    access: Subscriber,
) -> list[dict[str, Any]]:
    """The named query's webhook subscriptions (no secrets)."""

    def work(conn: Any) -> list[dict[str, Any]]:
        query = get_query(conn, access.principal.org_id, queryName)
        return list_subscriptions(conn, query["query_id"])

    result: list[dict[str, Any]] = await _run(request, work)
    return result


@router.get(
    "/{queryName}/subscriptions/{subscriptionID}",
    responses={404: {"description": "no such subscription"}},
)
async def subscription(
    queryName: str,
    subscriptionID: str,
    request: Request,
    access: Subscriber,
) -> dict[str, Any]:
    """One subscription (no secret)."""

    def work(conn: Any) -> dict[str, Any]:
        query = get_query(conn, access.principal.org_id, queryName)
        return get_subscription(conn, query["query_id"], subscriptionID)

    result: dict[str, Any] = await _run(request, work)
    return result


@router.delete(
    "/{queryName}/subscriptions/{subscriptionID}",
    status_code=204,
    responses={404: {"description": "no such subscription"}},
)
async def unsubscribe(
    queryName: str,
    subscriptionID: str,
    request: Request,
    access: Subscriber,
) -> Response:
    """Unsubscribe (pending deliveries are dropped)."""

    def work(conn: Any) -> None:
        query = get_query(conn, access.principal.org_id, queryName)
        delete_subscription(conn, query["query_id"], subscriptionID)

    await _run(request, work)
    return Response(status_code=204)


# -- WebSocket subscriptions -------------------------------------------------------------


def _ws_token(ws: WebSocket) -> tuple[str | None, str | None]:
    """(token, subprotocol to answer with) from the subprotocols or the Authorization header."""
    offered = [p.strip() for p in ws.headers.get("sec-websocket-protocol", "").split(",")]
    if WS_SUBPROTOCOL in offered:
        i = offered.index(WS_SUBPROTOCOL)
        if i + 1 < len(offered) and offered[i + 1]:
            return offered[i + 1], WS_SUBPROTOCOL
    scheme, _, value = ws.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value:
        return value.strip(), None
    return None, None


async def _ws_principal(ws: WebSocket, token: str) -> Principal:
    """As current_principal does for HTTP: valid, not revoked, authorized to read queries."""
    principal = read_token(ws.app.state.config.token_key, token)
    if not await token_versions.still_current(ws.app, principal):
        raise AuthError("the token was revoked or the user is disabled")
    authorize(principal, "epcis.named_query.read")
    return principal


@router.websocket("/{queryName}/events")
async def stream(ws: WebSocket, queryName: str) -> None:
    """``?stream=true``: an EPCISQueryDocument for each pass that found newly captured events
    matching the query, in the subscriber's scope of that moment. Closed with 1008 when the
    token is missing, invalid or revoked, or the query is not the caller's."""
    token, subprotocol = _ws_token(ws)
    if token is None:
        await ws.close(code=1008, reason="a bearer token is required")
        return
    try:
        principal = await _ws_principal(ws, token)
        if ws.query_params.get("stream") != "true" or len(ws.query_params) != 1:
            raise EPCISQueryError("a WebSocket subscription takes only stream=true")
        access = authorize(principal, "epcis.named_query.read")

        def start(conn: Any) -> tuple[Any, int]:
            query = get_query(conn, principal.org_id, queryName)
            parsed, _ = parse_pairs([tuple(p) for p in query["params"]])
            return parsed, top_seq(conn)

        parsed, cursor = await run_in_threadpool(_with_conn, ws, start)
    except TraceHubError as exc:
        await ws.close(code=1008, reason=str(exc)[:120])
        return
    await ws.accept(subprotocol=subprotocol)
    stream_id = f"ws-{secrets.token_hex(8)}"
    base_url = ws.app.state.config.stack.api.public_url.rstrip("/")
    closed = asyncio.ensure_future(ws.receive())

    def poll(conn: Any, after: int) -> list[dict[str, Any]]:
        scope = scope_of_caller(conn, access)  # the subscriber's scope now
        query = dataclasses.replace(parsed, after_seq=after, limit=1000)
        if scope is not None:
            query = dataclasses.replace(query, scope_orgs=scope[0], scope_keys=scope[1])
        return query_rows(conn, query)

    try:
        while not closed.done():
            rows = await run_in_threadpool(_with_conn, ws, poll, cursor)
            if rows:
                cursor = rows[-1]["seq"]
                document = subscription_document(rows, queryName, stream_id, base_url)
                await ws.send_text(json.dumps(document))
            if not await token_versions.still_current(ws.app, principal):
                await ws.close(code=1008, reason="the token was revoked")
                break
            await asyncio.wait({closed}, timeout=WS_POLL_S)
    except WebSocketDisconnect:
        pass
    finally:
        closed.cancel()


def _with_conn(ws: WebSocket, work: Any, *args: Any) -> Any:
    with sync_connection(ws) as conn:
        return work(conn, *args)
