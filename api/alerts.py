"""Alerts over HTTP: list and inspect, acknowledge and resolve, rules and subscriptions, and a
live Server-Sent Events stream for dashboards.

The stream listens on NOTIFY tracehub_alerts with one connection per API process (started with
the first dashboard) and fans each change out to every connected dashboard, recording an `sse`
delivery row per change it pushed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import (
    APIRouter,
    Depends,
    FastAPI,
    HTTPException,
    Path,
    Query,
    Request,
    Response,
    status,
)
from fastapi.responses import StreamingResponse
from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, Field

from alerts import store
from alerts.rules import KINDS, RuleError, check_params
from api.auth import Principal, require
from api.config import ApiConfig
from api.db import Connection

log = logging.getLogger(__name__)
KindName = Literal[
    "temperature_excursion",
    "humidity_excursion",
    "sensor_silent",
    "unexpected_location",
    "custody_gap",
]
StateName = Literal["open", "acknowledged", "resolved"]
Reader = Annotated[Principal, Depends(require("logistics", "auditor"))]
Staff = Annotated[Principal, Depends(require("logistics"))]
KEEPALIVE_S = 15.0
RULE_ID = r"^[A-Za-z0-9._:-]{1,64}$"
# GS1 AI (10): 1-20 characters of GS1's character set 82.
LOT = r"^[!%-?A-Z_a-z\x22]{1,20}$"
NO_NUL = r"^[^\x00]*$"  # PostgreSQL text cannot hold NUL: refuse it as bad input, not a 500
RuleIdPath = Annotated[str, Path(pattern=RULE_ID)]


# -- the live stream --------------------------------------------------------------------


def change_of(doc: dict[str, Any]) -> str:
    """What happened to an alert, judged from its row (NOTIFY carries only the state)."""
    if doc["state"] == "open":
        return "cleared" if doc.get("ended_at") else "opened"
    return str(doc["state"])


class Broadcaster:
    """One LISTEN connection per process, fanned out to every dashboard's queue."""

    def __init__(self, config: ApiConfig, pool: AsyncConnectionPool) -> None:
        self._config = config
        self._pool = pool
        self._queues: set[asyncio.Queue[str]] = set()
        self._task: asyncio.Task[None] | None = None
        self.listening = asyncio.Event()

    async def subscribe(self) -> asyncio.Queue[str]:
        queue: asyncio.Queue[str] = asyncio.Queue(maxsize=1000)
        self._queues.add(queue)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())
        await asyncio.wait_for(self.listening.wait(), 10)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[str]) -> None:
        self._queues.discard(queue)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                options = self._config.connect_options
                conn = await (
                    AsyncConnection.connect(
                        self._config.postgres_dsn, autocommit=True, options=options
                    )
                    if options
                    else AsyncConnection.connect(self._config.postgres_dsn, autocommit=True)
                )
                async with conn:
                    await conn.execute(f"LISTEN {store.NOTIFY_CHANNEL}")
                    self.listening.set()
                    async for note in conn.notifies():
                        await self._fan_out(note.payload)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("alert stream: LISTEN connection lost; reconnecting")
                self.listening.clear()
                await asyncio.sleep(1)

    async def _fan_out(self, payload: str) -> None:
        try:
            note = json.loads(payload)
            alert_id = str(uuid.UUID(note["alert_id"]))
        except (ValueError, KeyError, TypeError):
            return
        async with self._pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(store.SELECT_ALERT, (alert_id,))
            row = await cur.fetchone()
            if row is None:  # another schema's alert (tests share the channel)
                return
            doc = store.alert_document(row)
            change = str(note.get("change") or change_of(doc))
            message = (
                f"id: {alert_id}:{change}\nevent: alert\n"
                f"data: {json.dumps({'change': change, 'alert': doc})}\n\n"
            )
            pushed = 0
            for queue in list(self._queues):
                with contextlib.suppress(asyncio.QueueFull):  # a stuck dashboard loses events
                    queue.put_nowait(message)
                    pushed += 1
            if pushed:
                await conn.execute(
                    "INSERT INTO alert_deliveries (alert_id, change, channel, target, payload,"
                    " state, attempts, delivered_at) VALUES (%s, %s, 'sse', %s, %s,"
                    " 'delivered', 1, now())",
                    (
                        alert_id,
                        change,
                        f"api:{os.getpid()}:{pushed} dashboard(s)",
                        Jsonb({"change": change, "alert": doc}),
                    ),
                )


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.alert_broadcaster = Broadcaster(app.state.config, app.state.pool)
    try:
        yield
    finally:
        await app.state.alert_broadcaster.close()


router = APIRouter(prefix="/alerts", tags=["alerts"], lifespan=lifespan)


@router.get(
    "/stream",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "alert changes"}},
)
async def stream(request: Request, principal: Staff) -> StreamingResponse:
    """Server-Sent Events: `event: alert` with {change, alert} for every alert change."""
    broadcaster: Broadcaster = request.app.state.alert_broadcaster
    try:
        queue = await broadcaster.subscribe()
    except TimeoutError:
        raise HTTPException(503, "the alert stream cannot listen to the database now") from None

    async def events() -> AsyncIterator[str]:
        try:
            yield "event: ready\ndata: {}\n\n"
            while not await request.is_disconnected():
                try:
                    yield await asyncio.wait_for(queue.get(), KEEPALIVE_S)
                except TimeoutError:
                    yield ": keepalive\n\n"
        finally:
            broadcaster.unsubscribe(queue)

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


# -- rules ------------------------------------------------------------------------------


class RuleIn(BaseModel):
    rule_id: str = Field(pattern=RULE_ID)
    kind: KindName
    gtin: str | None = Field(default=None, pattern=r"^[0-9]{14}$")
    lot: str | None = Field(default=None, pattern=LOT)
    shipment_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9._:-]{1,64}$")
    params: dict[str, Any] = Field(default_factory=dict)
    severity: Literal["info", "warning", "critical"] = "warning"
    enabled: bool = True


class RuleOut(RuleIn):
    created_by: str
    created_at: datetime
    updated_at: datetime


RULE_COLUMNS = (
    "rule_id, kind, gtin, lot, shipment_id, params, severity, enabled, created_by,"
    " created_at, updated_at"
)


def _checked_rule(rule: RuleIn) -> dict[str, Any]:
    targets = [rule.shipment_id is not None, rule.gtin is not None]
    if sum(targets) != 1:
        raise HTTPException(
            422, "a rule targets exactly one of: shipment_id, gtin (a product), gtin + lot"
        )
    if rule.lot is not None and rule.gtin is None:
        raise HTTPException(422, "a lot rule needs the lot's gtin")
    try:
        return check_params(rule.kind, rule.params)
    except RuleError as exc:
        raise HTTPException(422, str(exc)) from exc


async def _target_exists(conn: AsyncConnection, rule: RuleIn) -> None:
    if rule.shipment_id is not None:
        return await _shipment_exists(conn, rule.shipment_id)
    args: tuple[str | None, ...]
    if rule.lot is not None:
        sql, args, what = (
            "SELECT 1 FROM lots WHERE gtin = %s AND lot = %s",
            (rule.gtin, rule.lot),
            f"lot {rule.gtin}/{rule.lot}",
        )
    else:
        sql, args, what = (
            "SELECT 1 FROM products WHERE gtin = %s",
            (rule.gtin,),
            f"product {rule.gtin}",
        )
    if await (await conn.execute(sql, args)).fetchone() is None:
        raise HTTPException(422, f"{what} does not exist")


async def _found(
    conn: AsyncConnection, sql: str, args: tuple[Any, ...], missing: str
) -> dict[str, Any]:
    """The one row of a query by its key, as a dict; 404 ``missing`` when there is none."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(sql, args)
    row = await cur.fetchone()
    if row is None:
        raise HTTPException(404, missing)
    return row


async def _rule(conn: AsyncConnection, rule_id: str) -> RuleOut:
    sql = f"SELECT {RULE_COLUMNS} FROM alert_rules WHERE rule_id = %s"
    return RuleOut(**await _found(conn, sql, (rule_id,), f"no alert rule {rule_id}"))


@router.get("/rules", response_model=list[RuleOut])
async def list_rules(conn: Connection, principal: Reader) -> list[RuleOut]:
    """Every alert rule (the products' default bands are implicit, not listed)."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(f"SELECT {RULE_COLUMNS} FROM alert_rules ORDER BY rule_id")
    return [RuleOut(**row) for row in await cur.fetchall()]


@router.post("/rules", response_model=RuleOut, status_code=201)
async def create_rule(rule: RuleIn, conn: Connection, principal: Staff) -> RuleOut:
    """Add a rule for a product, a lot or a shipment."""
    params = _checked_rule(rule)
    await _target_exists(conn, rule)
    cur = await conn.execute(
        "INSERT INTO alert_rules (rule_id, kind, gtin, lot, shipment_id, params, severity,"
        " enabled, created_by) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (rule_id) DO NOTHING RETURNING rule_id",
        (
            rule.rule_id,
            rule.kind,
            rule.gtin,
            rule.lot,
            rule.shipment_id,
            Jsonb(params),
            rule.severity,
            rule.enabled,
            principal.username,
        ),
    )
    if await cur.fetchone() is None:
        raise HTTPException(409, f"alert rule {rule.rule_id} already exists")
    return await _rule(conn, rule.rule_id)


@router.get("/rules/{rule_id}", response_model=RuleOut)
async def get_rule(rule_id: RuleIdPath, conn: Connection, principal: Reader) -> RuleOut:
    return await _rule(conn, rule_id)


@router.put("/rules/{rule_id}", response_model=RuleOut)
async def replace_rule(
    rule_id: RuleIdPath, rule: RuleIn, conn: Connection, principal: Staff
) -> RuleOut:
    """Replace a rule's kind, target, params, severity or enabled flag."""
    if rule.rule_id != rule_id:
        raise HTTPException(422, "rule_id in the body must match the path")
    params = _checked_rule(rule)
    await _target_exists(conn, rule)
    cur = await conn.execute(
        "UPDATE alert_rules SET kind = %s, gtin = %s, lot = %s, shipment_id = %s, params = %s,"
        " severity = %s, enabled = %s, updated_at = now() WHERE rule_id = %s RETURNING rule_id",
        (
            rule.kind,
            rule.gtin,
            rule.lot,
            rule.shipment_id,
            Jsonb(params),
            rule.severity,
            rule.enabled,
            rule_id,
        ),
    )
    if await cur.fetchone() is None:
        raise HTTPException(404, f"no alert rule {rule_id}")
    return await _rule(conn, rule_id)


@router.delete("/rules/{rule_id}", status_code=204)
async def delete_rule(rule_id: RuleIdPath, conn: Connection, principal: Staff) -> Response:
    cur = await conn.execute("DELETE FROM alert_rules WHERE rule_id = %s", (rule_id,))
    if cur.rowcount == 0:
        raise HTTPException(404, f"no alert rule {rule_id}")
    await conn.execute("DELETE FROM alert_rule_state WHERE rule_id = %s", (rule_id,))
    return Response(status_code=204)


# -- subscriptions ----------------------------------------------------------------------


class SubscriptionIn(BaseModel):
    channel: Literal["webhook", "email"]
    target: str = Field(
        min_length=3, max_length=2048, pattern=NO_NUL, description="http(s) URL or e-mail address"
    )
    kinds: list[KindName] | None = None
    shipment_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9._:-]{1,64}$")
    enabled: bool = True


class SubscriptionOut(SubscriptionIn):
    subscription_id: uuid.UUID
    created_by: str
    created_at: datetime


class SubscriptionCreated(SubscriptionOut):
    secret: str | None = Field(None, description="the webhook's HMAC key; shown once, at creation")


SUBSCRIPTION_COLUMNS = (
    "subscription_id, channel, target, kinds, shipment_id, enabled, created_by, created_at"
)


def _check_target(sub: SubscriptionIn) -> None:
    if sub.channel == "webhook":
        if not sub.target.startswith(("http://", "https://")) or " " in sub.target:
            raise HTTPException(422, "a webhook target must be an http(s) URL")
    elif sub.target.count("@") != 1 or any(c in sub.target for c in " \r\n<>,"):
        raise HTTPException(422, "an e-mail target must be one address like ops@example.com")


async def _shipment_exists(conn: AsyncConnection, shipment_id: str | None) -> None:
    if shipment_id is None:
        return
    cur = await conn.execute("SELECT 1 FROM shipments WHERE shipment_id = %s", (shipment_id,))
    if await cur.fetchone() is None:
        raise HTTPException(422, f"shipment {shipment_id} does not exist")


@router.get("/subscriptions", response_model=list[SubscriptionOut])
async def list_subscriptions(conn: Connection, principal: Staff) -> list[SubscriptionOut]:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(f"SELECT {SUBSCRIPTION_COLUMNS} FROM alert_subscriptions ORDER BY created_at")
    return [SubscriptionOut(**row) for row in await cur.fetchall()]


@router.post("/subscriptions", response_model=SubscriptionCreated, status_code=201)
async def create_subscription(
    sub: SubscriptionIn, conn: Connection, principal: Staff
) -> SubscriptionCreated:
    """Subscribe a webhook (answer carries its signing secret, once) or an e-mail address."""
    _check_target(sub)
    await _shipment_exists(conn, sub.shipment_id)
    secret = secrets.token_urlsafe(32) if sub.channel == "webhook" else None
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        "INSERT INTO alert_subscriptions (channel, target, secret, kinds, shipment_id, enabled,"
        f" created_by) VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING {SUBSCRIPTION_COLUMNS}",
        (
            sub.channel,
            sub.target,
            secret,
            sub.kinds,
            sub.shipment_id,
            sub.enabled,
            principal.username,
        ),
    )
    row = await cur.fetchone()
    assert row is not None
    return SubscriptionCreated(**row, secret=secret)


async def _subscription(conn: AsyncConnection, subscription_id: uuid.UUID) -> SubscriptionOut:
    sql = f"SELECT {SUBSCRIPTION_COLUMNS} FROM alert_subscriptions WHERE subscription_id = %s"
    missing = f"no subscription {subscription_id}"
    return SubscriptionOut(**await _found(conn, sql, (subscription_id,), missing))


@router.get("/subscriptions/{subscription_id}", response_model=SubscriptionOut)
async def get_subscription(
    subscription_id: uuid.UUID, conn: Connection, principal: Staff
) -> SubscriptionOut:
    return await _subscription(conn, subscription_id)


@router.put("/subscriptions/{subscription_id}", response_model=SubscriptionOut)
async def replace_subscription(
    subscription_id: uuid.UUID, sub: SubscriptionIn, conn: Connection, principal: Staff
) -> SubscriptionOut:
    """Change target, filters or enabled flag (the channel and a webhook's secret stay)."""
    _check_target(sub)
    await _shipment_exists(conn, sub.shipment_id)
    current = await _subscription(conn, subscription_id)
    if current.channel != sub.channel:
        raise HTTPException(409, "a subscription's channel cannot change; create a new one")
    await conn.execute(
        "UPDATE alert_subscriptions SET target = %s, kinds = %s, shipment_id = %s, enabled = %s"
        " WHERE subscription_id = %s",
        (sub.target, sub.kinds, sub.shipment_id, sub.enabled, subscription_id),
    )
    return await _subscription(conn, subscription_id)


@router.delete("/subscriptions/{subscription_id}", status_code=204)
async def delete_subscription(
    subscription_id: uuid.UUID, conn: Connection, principal: Staff
) -> Response:
    cur = await conn.execute(
        "DELETE FROM alert_subscriptions WHERE subscription_id = %s", (subscription_id,)
    )
    if cur.rowcount == 0:
        raise HTTPException(404, f"no subscription {subscription_id}")
    return Response(status_code=204)


# -- alerts -----------------------------------------------------------------------------


class Alert(BaseModel):
    alert_id: uuid.UUID
    rule_id: str
    kind: str
    severity: str
    state: str
    shipment_id: str | None
    gtin: str | None
    lot: str | None
    device_id: str | None
    started_at: datetime
    ended_at: datetime | None
    opened_at: datetime
    detail: dict[str, Any]
    event_hash: str | None
    acknowledged_by: str | None
    acknowledged_at: datetime | None
    resolved_by: str | None
    resolved_at: datetime | None
    resolution: str | None


class HistoryEntry(BaseModel):
    at: datetime
    actor: str
    from_state: str | None
    to_state: str
    note: str


class DeliveryEntry(BaseModel):
    id: int
    change: str
    channel: str
    target: str
    state: str
    attempts: int
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None


class AlertDetail(Alert):
    history: list[HistoryEntry]
    deliveries: list[DeliveryEntry]


class Transition(BaseModel):
    note: str = Field(default="", max_length=2000, pattern=NO_NUL)


@router.get("", response_model=list[Alert])
async def list_alerts(
    conn: Connection,
    principal: Reader,
    state: StateName | None = None,
    shipment_id: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9._:-]{1,64}$")] = None,
    kind: KindName | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[Alert]:
    """Alerts, newest first, filtered by state, shipment and kind."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        f"SELECT {store.ALERT_COLUMNS} FROM alerts"
        " WHERE (%(state)s::text IS NULL OR state = %(state)s)"
        " AND (%(shipment)s::text IS NULL OR shipment_id = %(shipment)s)"
        " AND (%(kind)s::text IS NULL OR kind = %(kind)s)"
        " ORDER BY opened_at DESC LIMIT %(limit)s",
        {"state": state, "shipment": shipment_id, "kind": kind, "limit": limit},
    )
    return [Alert(**row) for row in await cur.fetchall()]


async def _alert(conn: AsyncConnection, alert_id: uuid.UUID) -> AlertDetail:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(store.SELECT_ALERT, (alert_id,))
    row = await cur.fetchone()
    if row is None:
        raise HTTPException(404, f"no alert {alert_id}")
    await cur.execute(
        "SELECT at, actor, from_state, to_state, note FROM alert_history WHERE alert_id = %s"
        " ORDER BY at, id",
        (alert_id,),
    )
    history = [HistoryEntry(**h) for h in await cur.fetchall()]
    await cur.execute(
        "SELECT id, change, channel, target, state, attempts, last_error, created_at,"
        " delivered_at FROM alert_deliveries WHERE alert_id = %s ORDER BY id",
        (alert_id,),
    )
    deliveries = [DeliveryEntry(**d) for d in await cur.fetchall()]
    return AlertDetail(**row, history=history, deliveries=deliveries)


@router.get("/{alert_id}", response_model=AlertDetail)
async def get_alert(alert_id: uuid.UUID, conn: Connection, principal: Reader) -> AlertDetail:
    """One alert with its history and the state of each delivery."""
    return await _alert(conn, alert_id)


async def _transition(
    conn: AsyncConnection, alert_id: uuid.UUID, wanted: str, who: Principal, note: str
) -> AlertDetail:
    cur = await conn.execute("SELECT state FROM alerts WHERE alert_id = %s FOR UPDATE", (alert_id,))
    row = await cur.fetchone()
    if row is None:
        raise HTTPException(404, f"no alert {alert_id}")
    error = store.transition_error(row[0], wanted)
    if error:
        raise HTTPException(status.HTTP_409_CONFLICT, error)
    if wanted == "acknowledged":
        sql = (
            "UPDATE alerts SET state = 'acknowledged', acknowledged_by = %s,"
            " acknowledged_at = now() WHERE alert_id = %s"
        )
        args: tuple[Any, ...] = (who.username, alert_id)
    else:
        sql = (
            "UPDATE alerts SET state = 'resolved', resolved_by = %s, resolved_at = now(),"
            " resolution = %s WHERE alert_id = %s"
        )
        args = (who.username, note or None, alert_id)
    await conn.execute(sql, args)
    await conn.execute(store.HISTORY_SQL, (alert_id, who.username, row[0], wanted, note))
    dcur = conn.cursor(row_factory=dict_row)
    await dcur.execute(store.SELECT_ALERT, (alert_id,))
    doc = store.alert_document(await dcur.fetchone() or {})
    await conn.execute(store.OUTBOX_SQL, store.outbox_params(doc, wanted))
    await conn.execute(store.NOTIFY_SQL, (store.notify_payload(doc, wanted),))
    await conn.commit()
    return await _alert(conn, alert_id)


_CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"description": "the alert's state does not allow this change"}
}


@router.post("/{alert_id}/acknowledge", response_model=AlertDetail, responses=_CONFLICT)
async def acknowledge(
    alert_id: uuid.UUID, conn: Connection, principal: Staff, body: Transition | None = None
) -> AlertDetail:
    """open -> acknowledged (who and when are recorded)."""
    return await _transition(conn, alert_id, "acknowledged", principal, (body or Transition()).note)


@router.post("/{alert_id}/resolve", response_model=AlertDetail, responses=_CONFLICT)
async def resolve(
    alert_id: uuid.UUID, conn: Connection, principal: Staff, body: Transition | None = None
) -> AlertDetail:
    """open or acknowledged -> resolved; the note becomes the resolution."""
    return await _transition(conn, alert_id, "resolved", principal, (body or Transition()).note)


__all__ = ["KINDS", "router"]
