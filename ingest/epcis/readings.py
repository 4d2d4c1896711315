"""Readings seen as EPCIS 2.0 events (docs/epcis.md, "Readings as EPCIS").

- An RFID reading (kind ``rfid``, ``data.epc`` hex) is an ObjectEvent, action OBSERVE, whose
  epcList holds the EPC as a pure-identity URI (``urn:epc:id:sgtin:...``) where it decodes as a
  GS1 SGTIN/SSCC/SGLN-96, else as a raw EPC URI (``urn:epc:raw:96.x<HEX>``, EPC TDS §12.4).
  A 125 kHz card's id (``data.card_id``) is not an EPC: its epcList holds
  ``urn:tracehub:card:<HEX>``, an identifier URI of our own, never an ``urn:epc:`` one.
- An environment reading is an ObjectEvent, action OBSERVE, with an empty epcList and one
  sensorElement: measurement types ``Temperature`` (uom ``CEL``) and ``RelativeHumidity``
  (uom ``P1``, percent), the GS1 Web Vocabulary terms the EPCIS 2.0 context and JSON Schema
  name (expanded: ``gs1:Temperature``, ``gs1:RelativeHumidity``).
- ``readPoint`` comes from the reading's ``loc``: a GLN becomes its GS1 Digital Link
  (``https://id.gs1.org/414/<GLN>``), a read point URI is used as it is.
- The eventID is ``urn:tracehub:reading:<device_id>:<seq>`` (device id percent-encoded), stable,
  so a page can link a reading and its event.

Mapped events are views, never captured: the reading itself is what is signed and anchored.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote

from psycopg.rows import dict_row

from ingest.epcis.store import EventQuery
from tracehub import db
from tracehub.epcis.schema import DEFAULT_CONTEXT
from tracehub.gs1 import DIGITAL_LINK_BASE, decode_epc

__all__ = ["reading_event_id", "reading_to_event", "readings_as_events"]

_GLN = re.compile(r"[0-9]{13}")
_HEX = re.compile(r"[0-9A-Fa-f]+")


def reading_event_id(device_id: str, seq: int) -> str:
    """The eventID of a reading's EPCIS view."""
    return f"urn:tracehub:reading:{quote(device_id, safe='')}:{seq}"


def _time(ts: datetime | str) -> str:
    text = ts if isinstance(ts, str) else ts.isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


def _read_point(loc: str | None) -> dict[str, str] | None:
    if not loc:
        return None
    if _GLN.fullmatch(loc):
        return {"id": f"{DIGITAL_LINK_BASE}/414/{loc}"}
    return {"id": loc}


def epc_uri(epc_hex: str) -> str:
    """The pure-identity URI of a GS1 EPC, or its raw EPC URI."""
    decoded = decode_epc(epc_hex)
    if decoded is not None:
        return decoded.uri
    return f"urn:epc:raw:{len(epc_hex) * 4}.x{epc_hex.upper()}"


def card_uri(card_hex: str) -> str:
    """The instance URI of a 125 kHz card id (not an EPC, so not under urn:epc:)."""
    return f"urn:tracehub:card:{card_hex.upper()}"


def reading_to_event(reading: Mapping[str, Any]) -> dict[str, Any] | None:
    """The EPCIS ObjectEvent of a reading (keys device_id, seq, ts, kind, data, loc), or None
    for kinds without an EPCIS view (``event``) or data that does not fit one."""
    data = reading.get("data") or {}
    event: dict[str, Any] = {
        "@context": [DEFAULT_CONTEXT],
        "type": "ObjectEvent",
        "eventID": reading_event_id(str(reading["device_id"]), int(reading["seq"])),
        "eventTime": _time(reading["ts"]),
        "eventTimeZoneOffset": "+00:00",
        "action": "OBSERVE",
    }
    kind = reading.get("kind")
    if kind == "rfid":
        epc, card = data.get("epc"), data.get("card_id")
        if isinstance(card, str) and _HEX.fullmatch(card):
            event["epcList"] = [card_uri(card)]
        elif isinstance(epc, str) and _HEX.fullmatch(epc):
            event["epcList"] = [epc_uri(epc)]
        else:
            return None
    elif kind == "environment":
        report = []
        if isinstance(data.get("temperature_c"), int | float):
            report.append({"type": "Temperature", "value": data["temperature_c"], "uom": "CEL"})
        if isinstance(data.get("humidity_pct"), int | float):
            report.append({"type": "RelativeHumidity", "value": data["humidity_pct"], "uom": "P1"})
        if not report:
            return None
        event["epcList"] = []
        metadata: dict[str, Any] = {"time": event["eventTime"]}
        event["sensorElementList"] = [{"sensorMetadata": metadata, "sensorReport": report}]
    else:
        return None
    read_point = _read_point(reading.get("loc"))
    if read_point is not None:
        event["readPoint"] = read_point
    return event


def _matches(event: Mapping[str, Any], query: EventQuery) -> bool:
    epcs = set(event.get("epcList") or [])
    if query.match_epcs and not epcs.intersection(query.match_epcs):
        return False
    if query.match_direct_epcs and not epcs.intersection(query.match_direct_epcs):
        return False
    read_point = (event.get("readPoint") or {}).get("id")
    if query.eq_read_point and read_point not in query.eq_read_point:
        return False
    # Readings carry no business step, location or disposition: such a filter excludes them.
    return not (query.eq_biz_step or query.eq_biz_location or query.eq_disposition)


def readings_as_events(
    conn: db.Connection, query: EventQuery, *, limit: int
) -> list[dict[str, Any]]:
    """Up to ``limit`` stored readings matching ``query``, as EPCIS events (oldest first).

    Time filters run in SQL (eventTime = the reading's ts, recordTime = when it was received);
    EPC and read point filters on the mapped events, over at most 20 x ``limit`` readings.
    """
    if query.event_types and "ObjectEvent" not in query.event_types:
        return []
    clauses = ["kind IN ('rfid', 'environment')"]
    args: list[Any] = []
    for column, op, value in (
        ("ts", ">=", query.ge_event_time),
        ("ts", "<", query.lt_event_time),
        ("received_at", ">=", query.ge_record_time),
        ("received_at", "<", query.lt_record_time),
    ):
        if value is not None:
            clauses.append(f"{column} {op} %s")
            args.append(value)
    if query.scope_orgs is not None:
        # Only readings of devices watching, at that moment, a shipment of one of the scope's
        # organisations.
        clauses.append(
            "EXISTS (SELECT 1 FROM device_assignments da JOIN shipments s USING (shipment_id)"
            " WHERE da.device_id = readings.device_id AND da.valid_from <= readings.ts"
            " AND (da.valid_to IS NULL OR readings.ts < da.valid_to)"
            " AND (s.shipper_org = ANY(%s) OR s.receiver_org = ANY(%s)"
            " OR s.carrier_org = ANY(%s)))"
        )
        args.extend([list(query.scope_orgs)] * 3)
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT device_id, seq, ts, kind, data, loc, received_at FROM readings WHERE "
            + " AND ".join(clauses)
            + " ORDER BY ts, device_id, seq LIMIT %s",
            [*args, limit * 20],
        )
        rows = cur.fetchall()
    out: list[dict[str, Any]] = []
    for row in rows:
        event = reading_to_event(row)
        if event is None or not _matches(event, query):
            continue
        event["recordTime"] = _time(row["received_at"])
        out.append(event)
        if len(out) >= limit:
            break
    return out
