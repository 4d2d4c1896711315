"""Capture and query of EPCIS events in PostgreSQL (tables of ingest/migrations/0004_epcis.sql).

Functions take a psycopg connection and never commit: the caller owns the transaction.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from psycopg.rows import dict_row

from ingest.epcis.patterns import match_clause
from ingest.epcis.query_params import extra_conditions
from ingest.epcis.subjects import subject_keys
from ingest.errors import IngestError
from tracehub import db
from tracehub.epcis.errors import EPCISValidationError
from tracehub.epcis.hashing import IGNORE_KEY, event_prehash, hash_hex, hash_uri
from tracehub.epcis.schema import DEFAULT_CONTEXT, validate_event
from tracehub.errors import InvalidError, NotFoundError, TooLargeError
from tracehub.merkle import leaf_hash

__all__ = [
    "EVENT_TYPES",
    "CaptureNotFoundError",
    "CaptureTooLargeError",
    "CapturedEvent",
    "EPCISQueryError",
    "EventNotFoundError",
    "EventQuery",
    "capture_events",
    "encode_event",
    "event_by_id",
    "normalise_vocabulary",
    "query_events",
]

EVENT_TYPES = (
    "ObjectEvent",
    "AggregationEvent",
    "TransactionEvent",
    "TransformationEvent",
    "AssociationEvent",
)
# Bare CBV values and their two long forms (web vocabulary, EPCIS 1.x URN) compare equal.
_VOCAB_PREFIXES = (
    "https://ref.gs1.org/cbv/BizStep-",
    "https://ref.gs1.org/cbv/Disp-",
    "https://gs1.org/voc/BizStep-",
    "https://gs1.org/voc/Disp-",
    "urn:epcglobal:cbv:bizstep:",
    "urn:epcglobal:cbv:disp:",
)
IGNORE_ERROR = "errorDeclaration"
_QUANTITY_LISTS = ("quantityList", "childQuantityList", "inputQuantityList", "outputQuantityList")


class EPCISQueryError(IngestError, InvalidError):
    """A query parameter is malformed or not supported; the message names it first."""


class CaptureTooLargeError(IngestError, TooLargeError):
    """An EPCIS document is larger than a capture may be."""


class CaptureNotFoundError(IngestError, NotFoundError):
    """No capture job has this id."""


class EventNotFoundError(IngestError, NotFoundError):
    """No event has this eventID (or, for one captured without, this hash URI)."""


@dataclass(frozen=True)
class CapturedEvent:
    """One stored event: its id, CBV 2.0 hash URI and Merkle leaf hash (hex)."""

    event_id: str
    event_hash: str
    leaf_hash: str


@dataclass(frozen=True)
class EventQuery:
    """Filters of an event query; empty / None means no filter on that field."""

    event_types: Sequence[str] = ()
    ge_event_time: datetime | None = None
    lt_event_time: datetime | None = None
    ge_record_time: datetime | None = None
    lt_record_time: datetime | None = None
    #: any EPC of the event: epcList, childEPCs, parentID, input/output lists, quantity classes
    match_epcs: Sequence[str] = ()
    #: EPCIS MATCH_epc: epcList and childEPCs only
    match_direct_epcs: Sequence[str] = ()
    eq_biz_step: Sequence[str] = ()
    eq_read_point: Sequence[str] = ()
    eq_biz_location: Sequence[str] = ()
    eq_disposition: Sequence[str] = ()
    limit: int = 100
    #: page cursor: only events captured after this one (its seq)
    after_seq: int | None = None
    #: only events captured by one of these organisations or naming one of these keys
    #: (ingest/epcis/subjects.py); None: no such restriction
    scope_orgs: Sequence[str] | None = None
    scope_keys: Sequence[str] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)


def normalise_vocabulary(value: str) -> str:
    """``shipping`` for ``shipping``, ``https://ref.gs1.org/cbv/BizStep-shipping`` and
    ``urn:epcglobal:cbv:bizstep:shipping``; other values unchanged."""
    for prefix in _VOCAB_PREFIXES:
        if value.startswith(prefix):
            return value[len(prefix) :]
    return value


def encode_event(event: Mapping[str, Any]) -> bytes:
    """The exact bytes stored (and put on IPFS) for an event: compact UTF-8 JSON, members in
    the order received."""
    return json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _epcs(event: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    direct: list[str] = []
    for name in ("epcList", "childEPCs"):
        direct.extend(x for x in event.get(name) or [] if isinstance(x, str))
    every = list(direct)
    parent = event.get("parentID")
    if isinstance(parent, str):
        every.append(parent)
    for name in ("inputEPCList", "outputEPCList"):
        every.extend(x for x in event.get(name) or [] if isinstance(x, str))
    for name in _QUANTITY_LISTS:
        for element in event.get(name) or []:
            if isinstance(element, Mapping) and isinstance(element.get("epcClass"), str):
                every.append(element["epcClass"])
    return sorted(set(direct)), sorted(set(every))


def _id_of(value: Any) -> str | None:
    if isinstance(value, Mapping) and isinstance(value.get("id"), str):
        return str(value["id"])
    return None


def _event_time(event: Mapping[str, Any], where: str) -> datetime:
    text = event.get("eventTime")
    try:
        parsed = datetime.fromisoformat(str(text))
    except ValueError as exc:
        raise EPCISValidationError(f"not an ISO 8601 date-time: {text!r}", path=where) from exc
    if parsed.tzinfo is None:
        raise EPCISValidationError("eventTime needs a time zone offset", path=where)
    return parsed


def prepare_event(
    event: Mapping[str, Any],
    *,
    context: Any = None,
    where: str = "event",
    ignore: tuple[str, ...] = (),
) -> tuple[dict[str, Any], str, str]:
    """The event as stored, its CBV 2.0 hash URI and pre-hash string, after validation.

    Stored = the event with an ``@context`` (the document's when it has none) and, when the
    document declares fields outside the hash (``ignore``), that declaration as its
    ``ignoreFields`` member, so the stored bytes alone give the hash again.
    """
    if not isinstance(event, Mapping):
        raise EPCISValidationError("an event must be a JSON object", path=where)
    stored = dict(event)
    if "@context" not in stored:
        stored = {"@context": context if context is not None else [DEFAULT_CONTEXT], **stored}
    validate_event(stored, prefix=where)
    if stored.get("type") not in EVENT_TYPES:
        raise EPCISValidationError(f"type must be one of {list(EVENT_TYPES)}", path=f"{where}.type")
    _event_time(stored, f"{where}.eventTime")
    if ignore:
        own = stored.get(IGNORE_KEY)
        merged = list(dict.fromkeys([*(own if isinstance(own, list) else []), *ignore]))
        stored = {"@context": stored["@context"], IGNORE_KEY: merged, **stored}
        stored[IGNORE_KEY] = merged
    prehash = event_prehash(stored)
    return stored, hash_uri(prehash), prehash


#: The advisory lock key serialising event inserts (``tracehub`` in ASCII).
SEQ_LOCK = 0x7472616365687562
_INSERT = """
INSERT INTO epcis_events (event_id, event_type, event_time, event_json, event_hash, hash_hex,
                          epcs, direct_epcs, biz_step, read_point, biz_location, disposition,
                          source, capture_id, prehash, subjects, captured_by_org)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (event_id) DO NOTHING
"""


def capture_events(
    conn: db.Connection,
    events: Sequence[Mapping[str, Any]],
    *,
    source: str,
    context: Any = None,
    capture_id: str | None = None,
    ignore: tuple[str, ...] = (),
    org: str | None = None,
) -> list[CapturedEvent]:
    """Validate, hash and insert events; all or none (raises before inserting on bad input).

    An event without ``@context`` gets ``context`` (the enclosing document's) or the EPCIS 2.0
    default. An event without ``eventID`` is identified by its hash URI. Capturing the same
    event again is a no-op. An eventID already taken by other content (GS1's examples do that)
    keeps its first event; the new one is stored under its hash URI as event_id. ``ignore``:
    the fields the capture document declares outside the hash (``ignoreFields``). ``org`` is
    the capturing organisation (None: the hub's own pipeline); who may capture what is the
    caller's to check (api/policy.py).
    """
    prepared = [
        prepare_event(event, context=context, where=f"epcisBody.eventList[{i}]", ignore=ignore)
        for i, event in enumerate(events)
    ]
    captured: list[CapturedEvent] = []
    # why: ``seq`` is the query page cursor. Without this lock two capture transactions could
    # commit in the other order than they drew seq numbers, and a reader paging between the
    # two commits would step past the lower seq for ever. Held until the caller commits, it
    # makes seq order commit order (docs/epcis.md, "Paging").
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (SEQ_LOCK,))
    for i, (stored, uri, prehash) in enumerate(prepared):
        row = (stored, uri, prehash, source, capture_id)
        event_id = _insert(conn, *row, stored.get("eventID") or uri, org)
        if event_id is None:
            event_id = _insert(conn, *row, uri, org)
        if event_id is not None and IGNORE_ERROR in stored and not _declares(conn, event_id):
            # why: CBV 2.0 leaves errorDeclaration out of the hash, so an error declaration
            # (the retracted event's eventID, EPCIS 2.0 7.4.1.4) looks like a duplicate of the
            # event it retracts; it is kept beside it instead of being dropped.
            event_id = _insert(conn, *row, f"{event_id}#errorDeclaration", org)
        if event_id is None:
            raise EPCISValidationError(
                _identity_clash(conn, stored.get("eventID"), uri),
                path=f"epcisBody.eventList[{i}].eventID",
            )
        leaf = leaf_hash(bytes.fromhex(hash_hex(uri))).hex()
        captured.append(CapturedEvent(event_id=event_id, event_hash=uri, leaf_hash=leaf))
    return captured


def _declares(conn: db.Connection, event_id: str) -> bool:
    """Whether the stored event ``event_id`` carries an errorDeclaration."""
    row = conn.execute(
        "SELECT convert_from(event_json, 'UTF8')::jsonb ? 'errorDeclaration'"
        " FROM epcis_events WHERE event_id = %s",
        (event_id,),
    ).fetchone()
    return bool(row and row[0])


def _identity_clash(conn: db.Connection, event_id: Any, uri: str) -> str:
    """Why an event has no id left: which other events hold its eventID and its hash URI."""
    holders = conn.execute(
        "SELECT event_id, event_hash FROM epcis_events WHERE event_id = ANY(%s)",
        ([str(event_id), uri] if event_id else [uri],),
    ).fetchall()
    held = {row[0]: row[1] for row in holders}
    parts = []
    if event_id and str(event_id) in held:
        parts.append(
            f"eventID {event_id} is already the id of another event (hash {held[event_id]})"
        )
    if uri in held:
        parts.append(
            f"this event's hash URI {uri} is already the eventID of an event whose content "
            f"hashes to {held[uri]} (its eventID claims a hash it does not have)"
        )
    return "; ".join(parts) + (
        ". If the two differ only in fields your system adds, declare those in the document's "
        "ignoreFields (docs/epcis.md)"
    )


def _insert(
    conn: db.Connection,
    stored: Mapping[str, Any],
    uri: str,
    prehash: str,
    source: str,
    capture_id: str | None,
    event_id: str,
    org: str | None,
) -> str | None:
    """Insert under ``event_id``; returns it, or None when it holds another hash."""
    direct, every = _epcs(stored)
    biz_step = stored.get("bizStep")
    disposition = stored.get("disposition")
    conn.execute(
        _INSERT,
        (
            event_id,
            stored["type"],
            _event_time(stored, "eventTime"),
            encode_event(stored),
            uri,
            hash_hex(uri),
            every,
            direct,
            normalise_vocabulary(biz_step) if isinstance(biz_step, str) else None,
            _id_of(stored.get("readPoint")),
            _id_of(stored.get("bizLocation")),
            normalise_vocabulary(disposition) if isinstance(disposition, str) else None,
            source,
            capture_id,
            prehash,
            subject_keys(stored),
            org,
        ),
    )
    row = conn.execute(
        "SELECT event_hash FROM epcis_events WHERE event_id = %s", (event_id,)
    ).fetchone()
    return event_id if row is not None and row[0] == uri else None


def _row_to_event(row: Mapping[str, Any]) -> dict[str, Any]:
    event: dict[str, Any] = json.loads(bytes(row["event_json"]))
    event["recordTime"] = row["record_time"].isoformat()
    return event


def _where(params: EventQuery) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    args: list[Any] = []

    def add(clause: str, value: Any) -> None:
        clauses.append(clause)
        args.append(value)

    if params.event_types:
        add("event_type = ANY(%s)", list(params.event_types))
    if params.ge_event_time is not None:
        add("event_time >= %s", params.ge_event_time)
    if params.lt_event_time is not None:
        add("event_time < %s", params.lt_event_time)
    if params.ge_record_time is not None:
        add("record_time >= %s", params.ge_record_time)
    if params.lt_record_time is not None:
        add("record_time < %s", params.lt_record_time)
    if params.match_epcs:  # exact URIs or urn:epc:idpat: patterns (ingest/epcis/patterns.py)
        add(*match_clause("epcs", "MATCH_anyEPC", params.match_epcs))
    if params.match_direct_epcs:
        add(*match_clause("direct_epcs", "MATCH_epc", params.match_direct_epcs))
    for clause, value in extra_conditions(params.extra):  # ingest/epcis/query_params.py
        add(clause, value)
    if params.eq_biz_step:
        add("biz_step = ANY(%s)", [normalise_vocabulary(v) for v in params.eq_biz_step])
    if params.eq_disposition:
        add("disposition = ANY(%s)", [normalise_vocabulary(v) for v in params.eq_disposition])
    if params.eq_read_point:
        add("read_point = ANY(%s)", list(params.eq_read_point))
    if params.eq_biz_location:
        add("biz_location = ANY(%s)", list(params.eq_biz_location))
    if params.after_seq is not None:
        add("seq > %s", params.after_seq)
    if params.scope_orgs is not None:
        clauses.append("(captured_by_org = ANY(%s) OR subjects && %s::text[])")
        args.extend([list(params.scope_orgs), list(params.scope_keys)])
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", args


def query_rows(conn: db.Connection, params: EventQuery) -> list[dict[str, Any]]:
    """Matching rows (event_json, record_time, seq, ids, batch_id) in capture order."""
    where, args = _where(params)
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT seq, event_id, event_hash, event_json, record_time, batch_id FROM epcis_events"
            + where
            + " ORDER BY seq LIMIT %s",
            [*args, max(0, params.limit)],
        )
        return list(cur.fetchall())


def query_events(conn: db.Connection, params: EventQuery) -> list[dict[str, Any]]:
    """Events matching ``params`` as EPCIS JSON (with recordTime), in capture order."""
    return [_row_to_event(row) for row in query_rows(conn, params)]


#: An event by eventID, else by hash URI; the first captured when several share it.
FIND_EVENT = (
    " WHERE event_id = %(id)s OR event_hash = %(id)s ORDER BY (event_id = %(id)s) DESC, seq LIMIT 1"
)


def event_by_id(
    conn: db.Connection,
    event_id: str,
    scope: tuple[Sequence[str], Sequence[str]] | None = None,
) -> dict[str, Any] | None:
    """One event by its eventID, else by its CBV 2.0 hash URI (see :data:`FIND_EVENT`); with
    ``scope`` (organisations, keys), only if one of them captured it or it names a key."""
    orgs, keys = scope if scope is not None else (None, ())
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT event_json, record_time FROM (SELECT * FROM epcis_events"
            + FIND_EVENT
            + ") AS e WHERE %(orgs)s::text[] IS NULL OR e.captured_by_org = ANY(%(orgs)s)"
            " OR e.subjects && %(keys)s::text[]",
            {"id": event_id, "orgs": None if orgs is None else list(orgs), "keys": list(keys)},
        )
        row = cur.fetchone()
    return None if row is None else _row_to_event(row)
