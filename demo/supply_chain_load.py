"""Bulk loading of a generated chain (demo/supply_chain.py) for benchmarks and scale tests.

Events go into ``epcis_events`` and their edges into ``genealogy_edges`` with COPY, skipping the
capture path: the benchmarks measure queries, not capture. The edges are the same derivation
capture uses (ingest/genealogy/edges.py). Computing CBV 2.0 hashes takes ~10 ms an event (the
JSON-LD canonicalisation), so bulk-loaded events carry a stand-in: the SHA-256 of their stored
bytes in the hash URI form, and source ``bulk:<seed>`` marks them. The graph cursor is moved past
them so a later sync does not apply them twice.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ingest.epcis.store import encode_event, normalise_vocabulary
from ingest.epcis.subjects import subject_keys
from ingest.genealogy.edges import edges_of, event_time
from tracehub import db
from tracehub.epcis.schema import DEFAULT_CONTEXT

__all__ = ["bulk_load"]

_EVENT_COLUMNS = (
    "event_id, event_type, event_time, event_json, event_hash, hash_hex, epcs, direct_epcs,"
    " biz_step, biz_location, source, subjects, captured_by_org"
)


def _epcs(event: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    direct = [*event.get("epcList", []), *event.get("childEPCs", [])]
    every = list(direct)
    if "parentID" in event:
        every.append(event["parentID"])
    every += event.get("outputEPCList", [])
    for name in ("quantityList", "inputQuantityList", "outputQuantityList"):
        every += [q["epcClass"] for q in event.get(name, [])]
    return sorted(set(direct)), sorted(set(every))


def _stored(event: Mapping[str, Any]) -> tuple[bytes, str, str]:
    raw = encode_event({"@context": [DEFAULT_CONTEXT], **event})
    digest = hashlib.sha256(raw).hexdigest()
    return raw, f"ni:///sha-256;{digest}?ver=CBV2.0", digest


def bulk_load(
    conn: db.Connection,
    events: Callable[[], Iterable[dict[str, Any]]],
    *,
    source: str,
    org: str | None = None,
) -> tuple[int, int]:
    """COPY the events ``events()`` yields, then (a second pass) their edges; returns (events,
    edges). Two passes keep memory flat: nothing is held but the event at hand. The caller
    commits."""
    count = edges = 0
    with conn.cursor() as cur:
        with cur.copy(f"COPY epcis_events ({_EVENT_COLUMNS}) FROM STDIN") as copy:
            for event in events():
                raw, uri, digest = _stored(event)
                direct, every = _epcs(event)
                place = event.get("bizLocation", {}).get("id")
                step = normalise_vocabulary(event.get("bizStep", "")) or None
                copy.write_row(
                    (
                        uri, event["type"], event_time(event), raw, uri, digest, every, direct,
                        step, place, source, subject_keys(event), org,
                    )
                )  # fmt: skip
                count += 1
        with cur.copy(
            "COPY genealogy_edges (src, dst, kind, event_id, event_time, quantity, uom) FROM STDIN"
        ) as copy:
            for event in events():
                _, uri, _ = _stored(event)
                at = event_time(event)
                for edge in edges_of(event):
                    copy.write_row(
                        (edge.src, edge.dst, edge.kind, uri, at, edge.quantity, edge.uom)
                    )
                    edges += 1
    conn.execute(
        "UPDATE genealogy_cursor SET seq = (SELECT coalesce(max(seq), 0) FROM epcis_events)"
    )
    return count, edges
