"""Subscriptions (alert_subscriptions): who else hears of alert changes, by webhook or e-mail,
optionally narrowed to kinds and a shipment. The deliverer (alerts/delivery.py) reads them when
it fills the outbox; people edit them through the API with these (async) functions.
"""

from __future__ import annotations

import asyncio
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

from alerts.errors import SubscriptionChannelError, SubscriptionError, SubscriptionNotFoundError
from alerts.outbound import OutboundPolicy, TargetRefusedError, check_target
from alerts.store import row_of, rows_of, shipment_exists
from tracehub.db import AsyncConnection

__all__ = [
    "SUBSCRIPTION_COLUMNS",
    "SubscriptionSpec",
    "create_subscription",
    "delete_subscription",
    "get_subscription",
    "list_subscriptions",
    "replace_subscription",
]

SUBSCRIPTION_COLUMNS = (
    "subscription_id, channel, target, kinds, shipment_id, enabled, created_by, created_at,"
    " owner_org"
)


@dataclass(frozen=True)
class SubscriptionSpec:
    """A subscription as a person states it (its secret and bookkeeping are the hub's)."""

    channel: str
    target: str
    kinds: list[str] | None
    shipment_id: str | None
    enabled: bool


async def _check(
    conn: AsyncConnection, sub: SubscriptionSpec, policy: OutboundPolicy | None
) -> None:
    """The target fits the channel (a webhook's passes the outbound policy, alerts/outbound.py;
    none given: public https only) and the shipment, if one is named, exists."""
    if sub.channel == "webhook":
        if not sub.target.startswith(("http://", "https://")) or " " in sub.target:
            raise SubscriptionError("a webhook target must be an http(s) URL")
        try:  # resolving the name blocks: off the event loop
            await asyncio.to_thread(check_target, sub.target, policy or OutboundPolicy())
        except TargetRefusedError as exc:
            raise SubscriptionError(f"webhook target {exc}") from None
    elif sub.target.count("@") != 1 or any(c in sub.target for c in " \r\n<>,"):
        raise SubscriptionError("an e-mail target must be one address like ops@example.com")
    if sub.shipment_id is not None and not await shipment_exists(conn, sub.shipment_id):
        raise SubscriptionError(f"shipment {sub.shipment_id} does not exist")


async def list_subscriptions(
    conn: AsyncConnection, owners: list[str] | None = None
) -> list[dict[str, Any]]:
    """Subscriptions, oldest first; with ``owners``, only those organisations'."""
    return await rows_of(
        conn,
        f"SELECT {SUBSCRIPTION_COLUMNS} FROM alert_subscriptions"
        " WHERE %(owners)s::text[] IS NULL OR owner_org = ANY(%(owners)s) ORDER BY created_at",
        {"owners": owners},
    )


async def get_subscription(conn: AsyncConnection, subscription_id: uuid.UUID) -> dict[str, Any]:
    row = await row_of(
        conn,
        f"SELECT {SUBSCRIPTION_COLUMNS} FROM alert_subscriptions WHERE subscription_id = %s",
        (subscription_id,),
    )
    if row is None:
        raise SubscriptionNotFoundError(f"no subscription {subscription_id}")
    return row


async def create_subscription(
    conn: AsyncConnection,
    sub: SubscriptionSpec,
    created_by: str,
    owner_org: str | None = None,
    *,
    policy: OutboundPolicy | None = None,
) -> dict[str, Any]:
    """Subscribe a webhook or an e-mail address for ``owner_org`` (None: the hub's staff); the
    row comes back with `secret`, a webhook's new HMAC key (None for e-mail), which is shown
    only this once."""
    await _check(conn, sub, policy)
    secret = secrets.token_urlsafe(32) if sub.channel == "webhook" else None
    row = await row_of(
        conn,
        "INSERT INTO alert_subscriptions (channel, target, secret, kinds, shipment_id, enabled,"
        f" created_by, owner_org) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
        f" RETURNING {SUBSCRIPTION_COLUMNS}",
        (
            sub.channel,
            sub.target,
            secret,
            sub.kinds,
            sub.shipment_id,
            sub.enabled,
            created_by,
            owner_org,
        ),
    )
    assert row is not None
    return {**row, "secret": secret}


async def replace_subscription(
    conn: AsyncConnection,
    subscription_id: uuid.UUID,
    sub: SubscriptionSpec,
    *,
    policy: OutboundPolicy | None = None,
) -> dict[str, Any]:
    """Change target, filters or enabled flag (the channel and a webhook's secret stay)."""
    await _check(conn, sub, policy)
    current = await get_subscription(conn, subscription_id)
    if current["channel"] != sub.channel:
        raise SubscriptionChannelError("a subscription's channel cannot change; create a new one")
    await conn.execute(
        "UPDATE alert_subscriptions SET target = %s, kinds = %s, shipment_id = %s, enabled = %s"
        " WHERE subscription_id = %s",
        (sub.target, sub.kinds, sub.shipment_id, sub.enabled, subscription_id),
    )
    return await get_subscription(conn, subscription_id)


async def delete_subscription(conn: AsyncConnection, subscription_id: uuid.UUID) -> None:
    cur = await conn.execute(
        "DELETE FROM alert_subscriptions WHERE subscription_id = %s", (subscription_id,)
    )
    if cur.rowcount == 0:
        raise SubscriptionNotFoundError(f"no subscription {subscription_id}")
