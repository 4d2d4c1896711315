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
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Path, Query, Request, Response
from fastapi.responses import StreamingResponse
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, Field

from alerts import rules, store, subscriptions
from alerts.outbound import OutboundPolicy
from alerts.rules import KINDS, RuleSpec
from alerts.subscriptions import SubscriptionSpec
from api import token_versions
from api.auth import Principal
from api.config import ApiConfig
from api.db import Connection
from api.policy import Access, NotPartyError, PolicyError, authorize, guard, scope, scope_of
from api.routing import Router
from ingest.parties import ahold, aparties, target
from tracehub.db import AsyncConnection
from tracehub.errors import UnavailableError

log = logging.getLogger(__name__)
KindName = Literal[
    "temperature_excursion",
    "humidity_excursion",
    "sensor_silent",
    "unexpected_location",
    "custody_gap",
    "sensor_fault",
]
#: Kinds of alerts: the rules' and those other parts raise (customs holds: commerce/customs;
#: recalls: alerts/recalls.py).
AlertKindName = KindName | Literal["customs_hold", "recall"]
StateName = Literal["open", "acknowledged", "resolved"]
KEEPALIVE_S = 15.0
RULE_ID = r"^[A-Za-z0-9._:-]{1,64}$"
# GS1 AI (10): 1-20 characters of GS1's character set 82.
LOT = r"^[!%-?A-Z_a-z\x22]{1,20}$"
NO_NUL = r"^[^\x00]*$"  # PostgreSQL text cannot hold NUL: refuse it as bad input, not a 500
RuleIdPath = Annotated[str, Path(pattern=RULE_ID)]


# -- the live stream --------------------------------------------------------------------


class Broadcaster:
    """One LISTEN connection per process, fanned out to every dashboard's queue."""

    def __init__(self, config: ApiConfig, pool: AsyncConnectionPool) -> None:
        self._config = config
        self._pool = pool
        # Each dashboard's queue, with the organisations whose alerts it may see (None: all).
        self._queues: dict[asyncio.Queue[str], frozenset[str] | None] = {}
        self._task: asyncio.Task[None] | None = None
        self.listening = asyncio.Event()

    async def subscribe(self, orgs: frozenset[str] | None = None) -> asyncio.Queue[str]:
        """A queue of the changes of alerts that one of ``orgs`` is a party to (None: all)."""
        queue: asyncio.Queue[str] = asyncio.Queue(maxsize=1000)
        self._queues[queue] = orgs
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())
        await asyncio.wait_for(self.listening.wait(), 10)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[str]) -> None:
        self._queues.pop(queue, None)

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
            row = await store.find_alert(conn, alert_id)
            if row is None:  # another schema's alert (tests share the channel)
                return
            doc = store.alert_document(row)
            change = str(note.get("change") or store.change_of(doc))
            message = (
                f"id: {alert_id}:{change}\nevent: alert\n"
                f"data: {json.dumps({'change': change, 'alert': doc})}\n\n"
            )
            parties = (await aparties(conn, "alert", alert_id)).orgs()
            pushed = 0
            for queue, orgs in list(self._queues.items()):
                if orgs is not None and not orgs & parties:
                    continue  # not this viewer's alert
                with contextlib.suppress(asyncio.QueueFull):  # a stuck dashboard loses events
                    queue.put_nowait(message)
                    pushed += 1
            if pushed:
                target = f"api:{os.getpid()}:{pushed} dashboard(s)"
                await store.record_stream_delivery(conn, doc, change, target)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.alert_broadcaster = Broadcaster(app.state.config, app.state.pool)
    try:
        yield
    finally:
        await app.state.alert_broadcaster.close()


router = Router(prefix="/alerts", tags=["alerts"], lifespan=lifespan)


@router.get(
    "/stream",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "alert changes"}},
)
async def stream(
    request: Request, access: Annotated[Access, Depends(guard("alert.stream"))]
) -> StreamingResponse:
    """Server-Sent Events: `event: alert` with {change, alert} for every change of an alert the
    caller's organisation is a party to."""
    broadcaster: Broadcaster = request.app.state.alert_broadcaster
    # On a connection of its own: the stream holds none while it lasts.
    orgs = (await scope_of(request, access.principal)).orgs
    try:
        queue = await broadcaster.subscribe(None if orgs is None else frozenset(orgs))
    except TimeoutError:
        raise UnavailableError("the alert stream cannot listen to the database now") from None

    async def events() -> AsyncIterator[str]:
        try:
            yield "event: ready\ndata: {}\n\n"
            while not await request.is_disconnected():
                try:
                    yield await asyncio.wait_for(queue.get(), KEEPALIVE_S)
                except TimeoutError:
                    yield ": keepalive\n\n"
                if not await token_versions.still_current(request.app, access.principal):
                    break  # revoked or disabled since the stream opened (docs/security.md)
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


def _spec(rule: RuleIn) -> RuleSpec:
    return RuleSpec(**rule.model_dump())


async def _rule_target(conn: AsyncConnection, action: str, who: Principal, rule: RuleIn) -> None:
    """The caller may put a rule on what ``rule`` targets (404 if it is no party to it). A rule
    malformed in itself (no or two targets, bad parameters) is the rules' to refuse, first."""
    if (rule.shipment_id is None) == (rule.gtin is None):
        return
    rules.check_params(rule.kind, rule.params)
    kind, key = target(rule.shipment_id, rule.gtin, rule.lot)
    authorize(who, action, await aparties(conn, kind, key))


@router.get("/rules", response_model=list[RuleOut])
async def list_rules(
    conn: Connection, access: Annotated[Access, Depends(guard("rule.list"))]
) -> list[RuleOut]:
    """The alert rules on the caller's shipments, lots and products (the products' default
    bands are implicit, not listed)."""
    orgs = (await scope(conn, access.principal)).orgs
    return [RuleOut(**row) for row in await rules.list_rules(conn, orgs)]


@router.post("/rules", response_model=RuleOut, status_code=201)
async def create_rule(
    rule: RuleIn, conn: Connection, access: Annotated[Access, Depends(guard("rule.create"))]
) -> RuleOut:
    """Add a rule for a product, a lot or a shipment the caller's organisation is party to."""
    await _rule_target(conn, "rule.create", access.principal, rule)
    return RuleOut(**await rules.create_rule(conn, _spec(rule), access.principal.username))


@router.get("/rules/{rule_id}", response_model=RuleOut)
async def get_rule(
    rule_id: RuleIdPath,
    conn: Connection,
    _: Annotated[Access, Depends(guard("rule.read", "rule_id"))],
) -> RuleOut:
    return RuleOut(**await rules.get_rule(conn, rule_id))


@router.put("/rules/{rule_id}", response_model=RuleOut)
async def replace_rule(
    rule_id: RuleIdPath,
    rule: RuleIn,
    conn: Connection,
    access: Annotated[Access, Depends(guard("rule.write", "rule_id"))],
) -> RuleOut:
    """Replace a rule's kind, target, params, severity or enabled flag."""
    await _rule_target(conn, "rule.create", access.principal, rule)
    return RuleOut(**await rules.replace_rule(conn, rule_id, _spec(rule)))


@router.delete("/rules/{rule_id}", status_code=204)
async def delete_rule(
    rule_id: RuleIdPath,
    conn: Connection,
    _: Annotated[Access, Depends(guard("rule.write", "rule_id"))],
) -> Response:
    await rules.delete_rule(conn, rule_id)
    return Response(status_code=204)


# -- subscriptions ----------------------------------------------------------------------


class SubscriptionIn(BaseModel):
    channel: Literal["webhook", "email"]
    target: str = Field(
        min_length=3, max_length=2048, pattern=NO_NUL, description="http(s) URL or e-mail address"
    )
    kinds: list[AlertKindName] | None = None
    shipment_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9._:-]{1,64}$")
    enabled: bool = True


class SubscriptionOut(SubscriptionIn):
    subscription_id: uuid.UUID
    created_by: str
    created_at: datetime
    owner_org: str | None


class SubscriptionCreated(SubscriptionOut):
    secret: str | None = Field(None, description="the webhook's HMAC key; shown once, at creation")


def _subscription(sub: SubscriptionIn) -> SubscriptionSpec:
    return SubscriptionSpec(**sub.model_dump())


Subscriber = Annotated[Access, Depends(guard("subscription.manage", "subscription_id"))]


async def _own_shipment(conn: AsyncConnection, who: Principal, sub: SubscriptionIn) -> None:
    """A subscription may narrow to a shipment only the caller's organisation is party to."""
    if sub.shipment_id is not None and not who.has("admin"):
        parties = await aparties(conn, "shipment", sub.shipment_id)
        if not parties.relations_of(who.org_id):
            raise NotPartyError(f"shipment {sub.shipment_id} not found")


def _outbound_policy(request: Request) -> OutboundPolicy:
    """What webhook targets may reach, from the deployment's settings (alerts/outbound.py)."""
    config: ApiConfig = request.app.state.config
    return OutboundPolicy.from_settings(config.stack)


Outbound = Annotated[OutboundPolicy, Depends(_outbound_policy)]


@router.get("/subscriptions", response_model=list[SubscriptionOut])
async def list_subscriptions(
    conn: Connection, access: Annotated[Access, Depends(guard("subscription.list"))]
) -> list[SubscriptionOut]:
    """The caller's organisation's subscriptions (admins: every one)."""
    owners = (await scope(conn, access.principal)).orgs
    if owners is not None:
        owners = [access.principal.org_id or ""]
    rows = await subscriptions.list_subscriptions(conn, owners)
    return [SubscriptionOut(**row) for row in rows]


@router.post("/subscriptions", response_model=SubscriptionCreated, status_code=201)
async def create_subscription(
    sub: SubscriptionIn,
    conn: Connection,
    access: Annotated[Access, Depends(guard("subscription.create"))],
    policy: Outbound,
) -> SubscriptionCreated:
    """Subscribe a webhook (answer carries its signing secret, once) or an e-mail address, for
    the caller's organisation: it hears of the alerts its organisation is a party to."""
    who = access.principal
    await _own_shipment(conn, who, sub)
    row = await subscriptions.create_subscription(
        conn, _subscription(sub), who.username, who.org_id, policy=policy
    )
    return SubscriptionCreated(**row)


@router.get("/subscriptions/{subscription_id}", response_model=SubscriptionOut)
async def get_subscription(
    subscription_id: uuid.UUID, conn: Connection, _: Subscriber
) -> SubscriptionOut:
    return SubscriptionOut(**await subscriptions.get_subscription(conn, subscription_id))


@router.put("/subscriptions/{subscription_id}", response_model=SubscriptionOut)
async def replace_subscription(
    subscription_id: uuid.UUID,
    sub: SubscriptionIn,
    conn: Connection,
    access: Subscriber,
    policy: Outbound,
) -> SubscriptionOut:
    """Change target, filters or enabled flag (the channel and a webhook's secret stay)."""
    await _own_shipment(conn, access.principal, sub)
    row = await subscriptions.replace_subscription(
        conn, subscription_id, _subscription(sub), policy=policy
    )
    return SubscriptionOut(**row)


@router.delete("/subscriptions/{subscription_id}", status_code=204)
async def delete_subscription(
    subscription_id: uuid.UUID, conn: Connection, _: Subscriber
) -> Response:
    await subscriptions.delete_subscription(conn, subscription_id)
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
    access: Annotated[Access, Depends(guard("alert.list"))],
    state: StateName | None = None,
    shipment_id: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9._:-]{1,64}$")] = None,
    kind: AlertKindName | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[Alert]:
    """Alerts of the caller's shipments and lots, newest first, filtered by state, shipment
    and kind."""
    orgs = (await scope(conn, access.principal)).orgs
    rows = await store.list_alerts(
        conn, state=state, shipment_id=shipment_id, kind=kind, limit=limit, orgs=orgs
    )
    return [Alert(**row) for row in rows]


@router.get("/{alert_id}", response_model=AlertDetail)
async def get_alert(
    alert_id: uuid.UUID,
    conn: Connection,
    _: Annotated[Access, Depends(guard("alert.read", "alert_id"))],
) -> AlertDetail:
    """One alert with its history and the state of each delivery."""
    return AlertDetail(**await store.alert_detail(conn, alert_id))


async def _transition(
    conn: AsyncConnection, alert_id: uuid.UUID, wanted: str, who: Principal, body: Transition | None
) -> AlertDetail:
    note = (body or Transition()).note
    return AlertDetail(**await store.transition(conn, alert_id, wanted, who.username, note))


_CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"description": "the alert's state does not allow this change"}
}


@router.post("/{alert_id}/acknowledge", response_model=AlertDetail, responses=_CONFLICT)
async def acknowledge(
    alert_id: uuid.UUID,
    conn: Connection,
    access: Annotated[Access, Depends(guard("alert.acknowledge", "alert_id"))],
    body: Transition | None = None,
) -> AlertDetail:
    """open -> acknowledged (who and when are recorded); by a party of the alert."""
    return await _transition(conn, alert_id, "acknowledged", access.principal, body)


@router.post("/{alert_id}/resolve", response_model=AlertDetail, responses=_CONFLICT)
async def resolve(
    alert_id: uuid.UUID,
    conn: Connection,
    access: Annotated[Access, Depends(guard("alert.resolve", "alert_id"))],
    body: Transition | None = None,
) -> AlertDetail:
    """open or acknowledged -> resolved; the note becomes the resolution. An alert that keeps
    a held payment is resolved by the buyer's side, or by any party once an inspection of its
    lot was reported after it opened: one party alone cannot free the money."""
    who = access.principal
    buyers, inspected = await ahold(conn, alert_id)
    if buyers and not inspected and not who.has("admin") and who.org_id not in buyers:
        raise PolicyError(
            "this alert holds a payment: the buyer resolves it, or an inspection result first"
        )
    return await _transition(conn, alert_id, "resolved", who, body)


__all__ = ["KINDS", "router"]
