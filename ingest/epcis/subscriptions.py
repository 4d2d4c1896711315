"""Named EPCIS queries, subscriptions to them, and the subscription outbox (decision 0018).

A named query is a stored set of simple-event-query parameters owned by an organisation. A
subscription sends the events matching it to a webhook: on capture (``stream``) or on a
schedule. The feed worker (alerts/epcis_feed.py) moves each subscription's cursor over the
captured events (:func:`fill_outbox`, :func:`fire_schedules`), one outbox row per (subscription,
event), and delivers the rows (:func:`claim_due`, :func:`delivery_batch`). Both steps evaluate
the query with the scope of the subscription's owner as it is at that moment
(:func:`owner_scope`): an event its owner could not query is never delivered.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import psycopg
from psycopg.rows import dict_row

from ingest.epcis.query_text import parse_pairs
from ingest.epcis.schedule import Schedule
from ingest.epcis.store import EPCISQueryError, EventQuery, query_rows
from ingest.errors import IngestError
from ingest.parties import scope_orgs, subject_keys_of
from tracehub import db
from tracehub.epcis.schema import DEFAULT_CONTEXT
from tracehub.errors import ConflictError, NotFoundError

__all__ = [
    "NamedQueryExistsError",
    "NamedQueryNotFoundError",
    "OwnerScope",
    "QuerySubscriptionNotFoundError",
    "SubscriptionSpec",
    "claim_due",
    "create_query",
    "create_subscription",
    "delete_query",
    "delete_subscription",
    "delivery_batch",
    "fill_outbox",
    "fire_schedules",
    "get_query",
    "get_subscription",
    "list_queries",
    "list_subscriptions",
    "mark_attempt",
    "owner_scope",
    "query_of",
    "query_pairs",
    "top_seq",
]

#: (organisations, subject keys) an owner may query; None: every event (an operator).
OwnerScope = tuple[list[str], list[str]] | None
#: Parameters a stored query may not hold: paging is the reader's, readings have no seq.
_NOT_STORED = ("nextPageToken", "includeReadings")
_BATCH = 500
#: what a query name may be (the table's check says the same)
_NAME = re.compile(r"[A-Za-z0-9._~-]{1,128}")


class NamedQueryNotFoundError(IngestError, NotFoundError):
    """The caller's organisation has no named query of this name."""


class NamedQueryExistsError(IngestError, ConflictError):
    """The caller's organisation already has a named query of this name."""


class QuerySubscriptionNotFoundError(IngestError, NotFoundError):
    """The named query has no subscription of this id."""


# -- named queries --------------------------------------------------------------------------


def query_pairs(query: Mapping[str, Any]) -> list[tuple[str, str]]:
    """A query object (``{"EQ_bizStep": ["shipping"], "perPage": 10}``) as parameter pairs,
    checked like a query string (400 naming the parameter)."""
    pairs: list[tuple[str, str]] = []
    for name, value in query.items():
        if name in _NOT_STORED:
            raise EPCISQueryError(f"{name}: not part of a named query")
        items = value if isinstance(value, list) else [value]
        for item in items:
            if isinstance(item, bool):
                item = "true" if item else "false"
            if not isinstance(item, str | int | float):
                raise EPCISQueryError(f"{name}: values are strings, numbers or lists of them")
            pairs.append((str(name), str(item)))
    parse_pairs(pairs)
    return pairs


def query_of(pairs: Sequence[Sequence[str]], **changes: Any) -> EventQuery:
    """The EventQuery of stored parameter pairs, with ``changes`` (scope, cursor, limit)."""
    parsed, _ = parse_pairs([(str(k), str(v)) for k, v in pairs])
    return replace(parsed, **changes)


def _query_json(row: Mapping[str, Any]) -> dict[str, Any]:
    query: dict[str, list[str]] = {}
    for name, value in row["params"]:
        query.setdefault(name, []).append(value)
    return {"name": row["name"], "query": query, "createdAt": row["created_at"].isoformat()}


def create_query(
    conn: db.Connection, owner: str | None, name: str, query: Mapping[str, Any], created_by: str
) -> dict[str, Any]:
    pairs = query_pairs(query)
    try:
        with conn.cursor(row_factory=dict_row) as cur:
            cur.execute(
                "INSERT INTO epcis_named_queries (owner_org, name, params, created_by)"
                " VALUES (%s, %s, %s, %s) RETURNING name, params, created_at",
                (owner, name, json.dumps(pairs), created_by),
            )
            row = cur.fetchone()
        conn.commit()
    except psycopg.errors.UniqueViolation:
        conn.rollback()
        raise NamedQueryExistsError(f"a query named {name!r} exists") from None
    assert row is not None
    return _query_json(row)


def list_queries(conn: db.Connection, owner: str | None) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT name, params, created_at FROM epcis_named_queries"
            " WHERE owner_org IS NOT DISTINCT FROM %s ORDER BY name",
            (owner,),
        )
        return [_query_json(row) for row in cur.fetchall()]


def _query_row(conn: db.Connection, owner: str | None, name: str) -> dict[str, Any]:
    if not _NAME.fullmatch(name):  # no such name can exist (and a NUL would not reach SQL)
        raise NamedQueryNotFoundError(f"query {name!r} not found")
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT query_id, name, params, created_at FROM epcis_named_queries"
            " WHERE owner_org IS NOT DISTINCT FROM %s AND name = %s",
            (owner, name),
        )
        row = cur.fetchone()
    if row is None:
        raise NamedQueryNotFoundError(f"query {name} not found")
    return row


def get_query(conn: db.Connection, owner: str | None, name: str) -> dict[str, Any]:
    """The named query (``query_id`` and ``params`` included for the caller's use)."""
    row = _query_row(conn, owner, name)
    return {**_query_json(row), "query_id": row["query_id"], "params": row["params"]}


def delete_query(conn: db.Connection, owner: str | None, name: str) -> None:
    """Delete the query; its subscriptions and their pending deliveries go with it."""
    row = _query_row(conn, owner, name)
    conn.execute("DELETE FROM epcis_named_queries WHERE query_id = %s", (row["query_id"],))
    conn.commit()


# -- subscriptions --------------------------------------------------------------------------

_SUB_COLUMNS = (
    "subscription_id, dest, stream, schedule, report_if_empty, created_at, last_notified_at"
)


def _sub_json(row: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "subscriptionID": str(row["subscription_id"]),
        "dest": row["dest"],
        "createdAt": row["created_at"].isoformat(),
        "reportIfEmpty": row["report_if_empty"],
    }
    if row["stream"]:
        out["stream"] = True
    else:
        out["schedule"] = row["schedule"]
    if row["last_notified_at"] is not None:
        out["lastNotifiedAt"] = row["last_notified_at"].isoformat()
    return out


def top_seq(conn: db.Connection, before: datetime | None = None) -> int:
    """The last captured event's seq (with ``before``: of those recorded before it)."""
    row = conn.execute(
        "SELECT coalesce(max(seq), 0) FROM epcis_events"
        " WHERE %(t)s::timestamptz IS NULL OR record_time < %(t)s",
        {"t": before},
    ).fetchone()
    return int(row[0]) if row else 0


@dataclass(frozen=True)
class SubscriptionSpec:
    dest: str
    secret: str
    stream: bool
    schedule: Mapping[str, Any] | None
    report_if_empty: bool
    initial_record_time: datetime | None


def create_subscription(
    conn: db.Connection, query_id: int, spec: SubscriptionSpec, created_by: str
) -> dict[str, Any]:
    """A subscription from now on (or from ``initial_record_time``: events recorded since)."""
    if spec.stream == (spec.schedule is not None):
        raise EPCISQueryError("stream: set stream to true, or give a schedule (not both)")
    if spec.schedule is not None:
        Schedule(spec.schedule)
    start = top_seq(conn, spec.initial_record_time or datetime.now(UTC))
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "INSERT INTO epcis_subscriptions (query_id, dest, secret, stream, schedule,"
            " report_if_empty, last_seq, created_by) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
            f" RETURNING {_SUB_COLUMNS}",
            (
                query_id,
                spec.dest,
                spec.secret,
                spec.stream,
                None if spec.schedule is None else json.dumps(spec.schedule),
                spec.report_if_empty,
                start,
                created_by,
            ),
        )
        row = cur.fetchone()
    conn.commit()
    assert row is not None
    return _sub_json(row)


def list_subscriptions(conn: db.Connection, query_id: int) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            f"SELECT {_SUB_COLUMNS} FROM epcis_subscriptions WHERE query_id = %s"
            " ORDER BY created_at",
            (query_id,),
        )
        return [_sub_json(row) for row in cur.fetchall()]


def _sub_uuid(subscription_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(subscription_id)
    except ValueError:
        raise QuerySubscriptionNotFoundError(f"subscription {subscription_id} not found") from None


def get_subscription(conn: db.Connection, query_id: int, subscription_id: str) -> dict[str, Any]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            f"SELECT {_SUB_COLUMNS} FROM epcis_subscriptions"
            " WHERE query_id = %s AND subscription_id = %s",
            (query_id, _sub_uuid(subscription_id)),
        )
        row = cur.fetchone()
    if row is None:
        raise QuerySubscriptionNotFoundError(f"subscription {subscription_id} not found")
    return _sub_json(row)


def delete_subscription(conn: db.Connection, query_id: int, subscription_id: str) -> None:
    gone = conn.execute(
        "DELETE FROM epcis_subscriptions WHERE query_id = %s AND subscription_id = %s",
        (query_id, _sub_uuid(subscription_id)),
    ).rowcount
    conn.commit()
    if not gone:
        raise QuerySubscriptionNotFoundError(f"subscription {subscription_id} not found")


# -- the owner's scope, now ---------------------------------------------------------------


def owner_scope(conn: db.Connection, username: str) -> OwnerScope:
    """What the user may query now (as GET /epcis/events would scope it): nothing once the user
    is disabled or gone, everything for an operator (admin)."""
    row = conn.execute(
        "SELECT roles, org_id, disabled FROM users WHERE username = %s", (username,)
    ).fetchone()
    if row is None or row[2]:
        return [], []
    roles, org = set(row[0]), row[1]
    if "admin" in roles:
        return None
    if org is None:
        return [], []
    orgs = scope_orgs(conn, org, auditor="auditor" in roles)
    return orgs, subject_keys_of(conn, orgs)


def _scoped(query: EventQuery, scope: OwnerScope) -> EventQuery:
    if scope is None:
        return query
    return replace(query, scope_orgs=scope[0], scope_keys=scope[1])


# -- filling the outbox -------------------------------------------------------------------


def _advance(conn: db.Connection, sub: Mapping[str, Any], *, report_empty: bool) -> int:
    """Queue the subscription's new matching events and move its cursor; returns how many."""
    top = top_seq(conn)
    scope = owner_scope(conn, sub["created_by"])
    query = _scoped(query_of(sub["params"], after_seq=sub["last_seq"], limit=_BATCH), scope)
    rows = query_rows(conn, query)
    cursor = max([r["seq"] for r in rows] + ([top] if len(rows) < _BATCH else []))
    for row in rows:
        conn.execute(
            "INSERT INTO epcis_subscription_outbox (subscription_id, seq, event_id)"
            " VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
            (sub["subscription_id"], row["seq"], row["event_id"] or row["event_hash"]),
        )
    if not rows and report_empty:
        conn.execute(
            "INSERT INTO epcis_subscription_outbox (subscription_id) VALUES (%s)",
            (sub["subscription_id"],),
        )
    conn.execute(
        "UPDATE epcis_subscriptions SET last_seq = greatest(last_seq, %s)"
        " WHERE subscription_id = %s",
        (cursor, sub["subscription_id"]),
    )
    return len(rows)


_DUE_SUBS = (
    "SELECT s.subscription_id, s.last_seq, s.created_by, s.schedule, s.report_if_empty,"
    " s.last_fired_at, q.params FROM epcis_subscriptions s"
    " JOIN epcis_named_queries q USING (query_id)"
)


def fill_outbox(conn: db.Connection) -> int:
    """Queue new matching events of every stream subscription behind the last capture (at most
    a batch each); returns how many subscriptions are still behind it (call again)."""
    top = top_seq(conn)
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            _DUE_SUBS + " WHERE s.stream AND s.last_seq < %s FOR UPDATE OF s SKIP LOCKED",
            (top,),
        )
        subs = cur.fetchall()
    behind = 0
    for sub in subs:
        if _advance(conn, sub, report_empty=False) >= _BATCH:
            behind += 1
    conn.commit()
    return behind


def fire_schedules(conn: db.Connection, now: datetime) -> int:
    """Run the scheduled subscriptions whose schedule names this second (once per second)."""
    second = now.replace(microsecond=0)
    fired = 0
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            _DUE_SUBS + " WHERE NOT s.stream AND (s.last_fired_at IS NULL OR s.last_fired_at < %s)"
            " FOR UPDATE OF s SKIP LOCKED",
            (second,),
        )
        subs = cur.fetchall()
    for sub in subs:
        if not Schedule(sub["schedule"]).matches(second):
            continue
        _advance(conn, sub, report_empty=sub["report_if_empty"])
        conn.execute(
            "UPDATE epcis_subscriptions SET last_fired_at = %s WHERE subscription_id = %s",
            (second, sub["subscription_id"]),
        )
        fired += 1
    conn.commit()
    return fired


# -- delivering ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Claimed:
    """Outbox rows of one subscription, claimed for one delivery."""

    subscription_id: str
    ids: list[int]
    seqs: list[int]
    attempts: int


def claim_due(conn: db.Connection, lease_s: float, limit: int = 200) -> list[Claimed]:
    """Claim due rows (a lease: a crashed worker's claims come back), grouped by subscription."""
    rows = conn.execute(
        "UPDATE epcis_subscription_outbox o SET attempts = attempts + 1,"
        " next_attempt_at = now() + make_interval(secs => %s)"
        " FROM (SELECT id FROM epcis_subscription_outbox WHERE state = 'pending'"
        "  AND next_attempt_at <= now() ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED) due"
        " WHERE o.id = due.id RETURNING o.subscription_id::text, o.id, o.seq, o.attempts",
        (lease_s, limit),
    ).fetchall()
    conn.commit()
    groups: dict[str, Claimed] = {}
    for sub_id, row_id, seq, attempts in sorted(rows, key=lambda r: r[1]):
        group = groups.setdefault(sub_id, Claimed(sub_id, [], [], 0))
        group.ids.append(row_id)
        if seq is not None:
            group.seqs.append(seq)
        groups[sub_id] = replace(group, attempts=max(group.attempts, attempts))
    return list(groups.values())


@dataclass(frozen=True)
class Delivery:
    """What to send for a claim: where, the signing secret, the document (None: nothing)."""

    dest: str
    secret: str
    document: dict[str, Any] | None


def _proof_entry(row: Mapping[str, Any], base_url: str) -> dict[str, Any]:
    key = row["event_id"] or row["event_hash"]
    return {
        "eventID": key,
        "eventHash": row["event_hash"],
        "anchored": row["batch_id"] is not None,
        "proof": f"{base_url}/proofs/events/{quote(key, safe='')}",
    }


def query_document(
    rows: Sequence[Mapping[str, Any]], query_name: str, subscription_id: str, base_url: str
) -> dict[str, Any]:
    """An EPCISQueryDocument of the events, each with its hash and proof link (``proofs``:
    the same order as ``eventList``; a proof answers once the event's batch is anchored)."""
    events = []
    for row in rows:
        event = json.loads(bytes(row["event_json"]))
        event["recordTime"] = row["record_time"].isoformat()
        events.append(event)
    return {
        "@context": [DEFAULT_CONTEXT, {"tracehub": "urn:tracehub:epcis:"}],
        "type": "EPCISQueryDocument",
        "schemaVersion": "2.0",
        "creationDate": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "epcisBody": {
            "queryResults": {
                "queryName": query_name,
                "subscriptionID": subscription_id,
                "resultsBody": {"eventList": events},
            }
        },
        "tracehub:proofs": [_proof_entry(row, base_url) for row in rows],
    }


def delivery_batch(conn: db.Connection, claim: Claimed, base_url: str) -> Delivery | None:
    """The document for a claim, with the owner's scope of now: rows whose event the owner may
    no longer query are marked ``withheld`` and left out. None: the subscription is gone."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT s.dest, s.secret, s.created_by, q.name FROM epcis_subscriptions s"
            " JOIN epcis_named_queries q USING (query_id) WHERE s.subscription_id = %s",
            (claim.subscription_id,),
        )
        sub = cur.fetchone()
        if sub is None:
            conn.commit()
            return None
        scope = owner_scope(conn, sub["created_by"])
        cur.execute(
            "SELECT seq, event_id, event_hash, event_json, record_time, batch_id"
            " FROM epcis_events WHERE seq = ANY(%(seqs)s) AND (%(orgs)s::text[] IS NULL"
            " OR captured_by_org = ANY(%(orgs)s) OR subjects && %(keys)s::text[]) ORDER BY seq",
            {
                "seqs": claim.seqs,
                "orgs": None if scope is None else scope[0],
                "keys": [] if scope is None else scope[1],
            },
        )
        rows = cur.fetchall()
    visible = {r["seq"] for r in rows}
    withheld = [s for s in claim.seqs if s not in visible]
    if withheld:
        conn.execute(
            "UPDATE epcis_subscription_outbox SET state = 'withheld', last_error = %s"
            " WHERE subscription_id = %s AND seq = ANY(%s)",
            ("outside the owner's scope at delivery", claim.subscription_id, withheld),
        )
    conn.commit()
    if not rows and claim.seqs:
        return Delivery(sub["dest"], sub["secret"], None)  # everything withheld
    return Delivery(
        sub["dest"],
        sub["secret"],
        query_document(rows, sub["name"], claim.subscription_id, base_url),
    )


def mark_attempt(
    conn: db.Connection,
    claim: Claimed,
    *,
    error: str | None,
    retry_in_s: float,
    final: bool,
) -> None:
    """Record the attempt's outcome on the claim's (still pending) rows."""
    if error is None:
        conn.execute(
            "UPDATE epcis_subscription_outbox SET state = 'delivered', delivered_at = now(),"
            " last_error = NULL WHERE id = ANY(%s) AND state = 'pending'",
            (claim.ids,),
        )
        conn.execute(
            "UPDATE epcis_subscriptions SET last_notified_at = now() WHERE subscription_id = %s",
            (claim.subscription_id,),
        )
    else:
        conn.execute(
            "UPDATE epcis_subscription_outbox SET last_error = %s, state = %s,"
            " next_attempt_at = now() + make_interval(secs => %s)"
            " WHERE id = ANY(%s) AND state = 'pending'",
            (error[:1000], "failed" if final else "pending", retry_in_s, claim.ids),
        )
    conn.commit()
