"""The state machines of rfqs, quotes, orders, payments and shipments, and their audit trail.

A transition is allowed only if the table below lists it; `transition()` changes the row with
a compare-and-set on the current state (so two concurrent changes cannot both win) and records
who, when, from and to in ``state_changes``.
"""

from __future__ import annotations

from typing import Any

from psycopg import sql

from commerce.errors import CommerceConflictError, CommerceNotFoundError

ALLOWED: dict[str, dict[str, frozenset[str]]] = {
    "rfq": {
        "open": frozenset({"quoted", "cancelled"}),
        "quoted": frozenset({"quoted", "closed", "cancelled"}),
    },
    "quote": {
        "sent": frozenset({"accepted", "rejected", "expired", "withdrawn"}),
    },
    "order": {
        "placed": frozenset({"confirmed", "cancelled"}),
        "confirmed": frozenset({"shipped", "cancelled"}),
        "shipped": frozenset({"delivered"}),
        "delivered": frozenset({"completed"}),
    },
    "payment": {
        "pending": frozenset({"submitted", "failed", "manual_review", "cancelled"}),
        "submitted": frozenset({"authorized", "succeeded", "failed", "cancelled"}),
        "authorized": frozenset({"held", "released", "cancelled"}),
        "held": frozenset({"released", "cancelled"}),
        "succeeded": frozenset({"refunded"}),
        "manual_review": frozenset({"pending", "failed", "cancelled"}),
    },
    "shipment": {
        "planned": frozenset({"in_transit", "cancelled"}),
        "in_transit": frozenset({"delivered"}),
    },
}

_TABLES = {
    "rfq": ("rfqs", "rfq_id"),
    "quote": ("quotes", "quote_id"),
    "order": ("orders", "order_id"),
    "payment": ("payments", "payment_id"),
    "shipment": ("shipments", "shipment_id"),
}


class InvalidTransitionError(CommerceConflictError):
    """A state change the machine does not allow."""

    def __init__(self, entity: str, entity_id: str, current: str, target: str) -> None:
        allowed = sorted(ALLOWED[entity].get(current, frozenset()))
        super().__init__(
            f"{entity} {entity_id} is {current!r}; it cannot become {target!r}"
            f" (allowed from {current!r}: {allowed or 'nothing, it is final'})"
        )
        self.entity, self.entity_id, self.current, self.target = entity, entity_id, current, target


def check(entity: str, entity_id: str, current: str, target: str) -> None:
    """Raise InvalidTransitionError unless ``current -> target`` is allowed."""
    if target not in ALLOWED[entity].get(current, frozenset()):
        raise InvalidTransitionError(entity, entity_id, current, target)


def _sql(entity: str, extra: dict[str, Any]) -> sql.Composed:
    table, key = _TABLES[entity]
    sets: list[sql.Composable] = [sql.SQL("state = %(target)s")]
    sets += [sql.SQL("{} = {}").format(sql.Identifier(k), sql.Placeholder(k)) for k in extra]
    return sql.SQL(
        "WITH cur AS (SELECT state FROM {t} WHERE {k} = %(id)s FOR UPDATE),"
        " upd AS (UPDATE {t} SET {sets} WHERE {k} = %(id)s AND state = ANY(%(from)s)"
        " RETURNING 1)"
        " SELECT (SELECT state FROM cur), (SELECT count(*) FROM upd)"
    ).format(t=sql.Identifier(table), k=sql.Identifier(key), sets=sql.SQL(", ").join(sets))


def _sources(entity: str, target: str) -> list[str]:
    return [s for s, targets in ALLOWED[entity].items() if target in targets]


def _record(
    entity: str, entity_id: str, actor: str, current: str, target: str, note: str
) -> tuple[str, tuple[str, str, str, str, str, str]]:
    return (
        "INSERT INTO state_changes (entity, entity_id, actor, from_state, to_state, note)"
        " VALUES (%s, %s, %s, %s, %s, %s)",
        (entity, entity_id, actor, current, target, note),
    )


def transition(
    conn: Any, entity: str, entity_id: str, target: str, actor: str, note: str = "", **extra: Any
) -> str:
    """Move ``entity_id`` to ``target`` (sync psycopg connection); returns the old state."""
    params = {"id": entity_id, "target": target, "from": _sources(entity, target), **extra}
    row = conn.execute(_sql(entity, extra), params).fetchone()
    current, changed = row
    if current is None:
        raise CommerceNotFoundError(f"{entity} {entity_id} not found")
    if not changed:
        raise InvalidTransitionError(entity, entity_id, current, target)
    conn.execute(*_record(entity, entity_id, actor, current, target, note))
    return str(current)


async def atransition(
    conn: Any, entity: str, entity_id: str, target: str, actor: str, note: str = "", **extra: Any
) -> str:
    """`transition` on an async psycopg connection."""
    params = {"id": entity_id, "target": target, "from": _sources(entity, target), **extra}
    cur = await conn.execute(_sql(entity, extra), params)
    current, changed = await cur.fetchone()
    if current is None:
        raise CommerceNotFoundError(f"{entity} {entity_id} not found")
    if not changed:
        raise InvalidTransitionError(entity, entity_id, current, target)
    await conn.execute(*_record(entity, entity_id, actor, current, target, note))
    return str(current)
