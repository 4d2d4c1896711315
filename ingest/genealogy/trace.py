"""Tracing the genealogy graph backward (where from) and forward (where to).

A breadth-first walk, one query per level over the frontier, with a visited set: a cycle in
the data (a pallet recorded inside its own case, a lot transformed into itself) ends the walk
instead of looping it. Places and parties (``gln:``) and business transactions are ends of a
path: reported, never walked through, because a warehouse would otherwise join everything that
ever passed through it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote

from psycopg.rows import dict_row

from ingest.errors import IngestError
from ingest.genealogy.ids import node_kind
from tracehub import db
from tracehub.errors import InvalidError

__all__ = ["DIRECTIONS", "Trace", "TraceEdge", "TraceQueryError", "TraceScope", "trace"]

DIRECTIONS = ("backward", "forward", "both")


class TraceQueryError(IngestError, InvalidError):
    """A trace or export request names nothing to trace."""


_WALKED = frozenset({"lot", "item", "sscc", "product"})


@dataclass(frozen=True)
class TraceEdge:
    src: str
    dst: str
    kind: str
    event_id: str
    event_time: datetime
    valid_to: datetime | None
    quantity: Any
    uom: str | None
    event_hash: str | None

    @property
    def proof(self) -> str:
        return f"/proofs/events/{quote(self.event_id, safe='')}"

    def as_json(self) -> dict[str, Any]:
        return {
            "from": self.src,
            "to": self.dst,
            "kind": self.kind,
            "eventID": self.event_id,
            "eventTime": self.event_time.isoformat(),
            "validTo": self.valid_to.isoformat() if self.valid_to else None,
            "quantity": None if self.quantity is None else float(self.quantity),
            "uom": self.uom,
            "eventHash": self.event_hash,
            "proof": self.proof,
        }


@dataclass(frozen=True)
class TraceScope:
    """Which events' edges a viewer may walk: those captured by ``orgs`` or naming ``keys``
    (ingest/epcis/subjects.py); ``orgs`` None: every edge (the hub's operators)."""

    orgs: Sequence[str] | None = None
    keys: Sequence[str] = ()


@dataclass
class Trace:
    origin: str
    backward: set[str] = field(default_factory=set)
    forward: set[str] = field(default_factory=set)
    edges: dict[int, TraceEdge] = field(default_factory=dict)

    @property
    def nodes(self) -> set[str]:
        return {self.origin} | self.backward | self.forward

    def as_json(self) -> dict[str, Any]:
        role = {n: "backward" for n in self.backward} | {n: "forward" for n in self.forward}
        role[self.origin] = "origin"
        return {
            "origin": self.origin,
            "nodes": [{"id": n, "kind": node_kind(n), "side": role[n]} for n in sorted(self.nodes)],
            "edges": [e.as_json() for _, e in sorted(self.edges.items())],
        }


_STEP = """
SELECT g.id, g.src, g.dst, g.kind, g.event_id, g.event_time, g.valid_to, g.quantity, g.uom,
       ev.event_hash
  FROM genealogy_edges g LEFT JOIN epcis_events ev ON ev.event_id = g.event_id
 WHERE g.{near} = ANY(%(frontier)s)
   AND (%(since)s::timestamptz IS NULL OR coalesce(g.valid_to, 'infinity') >= %(since)s)
   AND (%(until)s::timestamptz IS NULL OR g.event_time <= %(until)s)
   AND (%(orgs)s::text[] IS NULL OR ev.captured_by_org = ANY(%(orgs)s)
        OR ev.subjects && %(keys)s::text[])
"""


def _walk(
    conn: db.Connection,
    result: Trace,
    forward: bool,
    depth: int,
    params: dict[str, Any],
) -> set[str]:
    near, far = ("src", "dst") if forward else ("dst", "src")
    sql = _STEP.format(near=near)
    seen = {result.origin}
    frontier = [result.origin]
    for _ in range(depth):
        if not frontier:
            break
        with conn.cursor(row_factory=dict_row) as cur:
            rows = cur.execute(sql, {**params, "frontier": frontier}).fetchall()
        following: list[str] = []
        for row in rows:
            edge_id = row.pop("id")
            result.edges[edge_id] = TraceEdge(**row)
            node = row[far]
            if node not in seen:
                seen.add(node)
                if node_kind(node) in _WALKED:
                    following.append(node)
        frontier = following
    return seen - {result.origin}


def trace(
    conn: db.Connection,
    origin: str,
    *,
    direction: str = "both",
    depth: int = 50,
    since: datetime | None = None,
    until: datetime | None = None,
    scope: TraceScope | None = None,
) -> Trace:
    """Nodes and edges reachable from ``origin`` (a node id, ingest/genealogy/ids.py)."""
    scope = scope or TraceScope()
    params = {
        "since": since,
        "until": until,
        "orgs": None if scope.orgs is None else list(scope.orgs),
        "keys": list(scope.keys),
    }
    result = Trace(origin)
    if direction in ("backward", "both"):
        result.backward = _walk(conn, result, False, depth, params)
    if direction in ("forward", "both"):
        result.forward = _walk(conn, result, True, depth, params)
    return result
