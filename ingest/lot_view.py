"""What the store holds of a lot, for the buyer's page: product, lot, shipments, journey,
conditions with their excursions, inspections -- what the brand owner publishes
(publication_settings, 0009): a section it turned off is not read; receivers and carriers are
named only where they opted in. The journey's and shipments' locations are shown at the level it
chose (``journey_detail``, 0013): city and country from the location master data (``locations``)
by default, the sites as captured ("site"), or none.

`load_lot(conn, link)` assembles it from the traceability tables (0003_trace) and the readings of
the devices assigned to the lot's shipments (0001_initial). Only public fields are selected: no
prices, no parties' contacts, no user ids. Every reading carries what the browser needs to
verify it (its signed envelope, device and seq for the proof URL), every EPCIS event its CBV 2.0
hash. The page's view of it (with the lot's alerts, from alerts/) is api/lot_view.py's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from ingest.epcis.store import normalise_vocabulary
from ingest.epcis.subjects import identifier_keys
from ingest.inspections import EXTENSION_NAMESPACE
from tracehub.db import AsyncConnection
from tracehub.gs1 import DIGITAL_LINK_BASE, DigitalLink, build_uri

__all__ = [
    "JOURNEY_DETAILS",
    "MAX_JOURNEY",
    "MAX_SERIES",
    "Excursion",
    "LotRecord",
    "excursions",
    "load_lot",
    "location_gln",
    "merge_journey",
]

#: How precisely a public journey names its places (publication_settings.journey_detail).
JOURNEY_DETAILS = ("city", "site", "none")
#: What a journey entry that is a signed reading carries to be verified in the browser: its
#: signed bytes name the site (loc, and the reader's or custody step's place), so they are
#: published only at site level.
_SIGNED_FIELDS = ("envelope", "device_id", "seq", "batch_id")

#: Readings drawn at most per lot (the newest); a reefer logger at one reading a minute for a
#: two-week voyage stays below it. Bounded so a page never grows without limit.
MAX_SERIES = 2000
MAX_JOURNEY = 500
#: A device's custody reading and an EPCIS event are one step when they name the same business
#: step at the same site within this many seconds of each other (a scanner's clock and the
#: time an operator keys into the EPCIS capture differ by minutes, not hours).
SAME_STEP_S = 900


@dataclass
class Excursion:
    """A run of consecutive readings outside the allowed band."""

    quantity: str  # "temperature" | "humidity"
    start: str
    end: str
    extreme: float
    points: int


@dataclass
class LotRecord:
    """One lot as stored: JSON-ready dicts (its product alone when the link names no lot)."""

    link: DigitalLink
    product: dict[str, Any]
    lot: dict[str, Any]
    shipments: list[dict[str, Any]]
    journey: list[dict[str, Any]]
    series: list[dict[str, Any]]
    band: dict[str, float | None]
    excursions: list[Excursion] = field(default_factory=list)
    inspections: list[dict[str, Any]] = field(default_factory=list)
    #: the brand owner's publication settings (ingest/organisations.py's fields)
    publication: dict[str, Any] = field(default_factory=dict)
    #: open recalls whose affected set holds the lot (always shown: a safety notice is not
    #: the brand owner's to hide), each with its anchored EPCIS event
    recalls: list[dict[str, Any]] = field(default_factory=list)


def _num(value: Decimal | None) -> float | None:
    return float(value) if value is not None else None


def _iso(value: datetime | date | None) -> str | None:
    return value.isoformat() if value is not None else None


async def load_lot(conn: AsyncConnection, link: DigitalLink) -> LotRecord | None:
    """The lot as stored, or None when the GTIN (or lot) is unknown."""
    cur = await conn.execute(
        "SELECT p.gtin, p.name, p.description, o.name, o.country, p.temp_min_c, p.temp_max_c,"
        " p.humidity_min, p.humidity_max, coalesce(ps.show_journey, true),"
        " coalesce(ps.show_conditions, true), coalesce(ps.show_inspections, true),"
        " coalesce(ps.show_alerts, true), coalesce(ps.journey_detail, 'city') FROM products p"
        " LEFT JOIN organisations o ON o.org_id = p.owner_org"
        " LEFT JOIN publication_settings ps ON ps.org_id = p.owner_org WHERE p.gtin = %s",
        (link.gtin,),
    )
    row = await cur.fetchone()
    if row is None:
        return None
    product = {
        "gtin": row[0],
        "name": row[1],
        "description": row[2],
        "brand_owner": row[3],
        "brand_owner_country": row[4],
    }
    band = {
        "temp_min_c": _num(row[5]),
        "temp_max_c": _num(row[6]),
        "humidity_min": _num(row[7]),
        "humidity_max": _num(row[8]),
    }
    published = dict(
        zip(
            (
                "show_journey",
                "show_conditions",
                "show_inspections",
                "show_alerts",
                "journey_detail",
            ),
            row[9:14],
            strict=True,
        )
    )
    lot: dict[str, Any] = {}
    shipments: list[dict[str, Any]] = []
    journey: list[dict[str, Any]] = []
    series: list[dict[str, Any]] = []
    if link.lot is not None:
        cur = await conn.execute(
            "SELECT l.lot, l.produced_on, l.expires_on, l.quantity, o.name, o.country"
            " FROM lots l LEFT JOIN organisations o ON o.org_id = l.supplier_org"
            " WHERE l.gtin = %s AND l.lot = %s",
            (link.gtin, link.lot),
        )
        lrow = await cur.fetchone()
        if lrow is None:
            return None
        lot = {
            "lot": lrow[0],
            "produced_on": _iso(lrow[1]),
            "expires_on": _iso(lrow[2]),
            "quantity": lrow[3],
            "supplier": lrow[4],
            "supplier_country": lrow[5],
        }
        shipments = await _shipments(conn, link)
        journey, series = await _readings(conn, link)
        # What the brand owner chose not to publish is not read out at all.
        if not published["show_journey"]:
            journey = []
        if not published["show_conditions"]:
            series = []
    record = LotRecord(
        link=link,
        product=product,
        lot=lot,
        shipments=shipments,
        journey=journey,
        series=series,
        band=band,
        excursions=excursions(series, band),
        publication=published,
    )
    if link.lot is not None:
        record.recalls = await _recalls(conn, link)
        if published["show_inspections"]:
            record.inspections = await _inspections(conn, link)
        if published["show_journey"]:
            events = await _epcis_journey(conn, link)
            record.journey = merge_journey(record.journey, events)
        await _at_detail(conn, record, str(published["journey_detail"]))
    return record


def location_gln(identifier: str | None) -> str | None:
    """The GLN a location names: a bare GLN (a reading's ``loc``), an SGLN EPC URI or a GS1
    Digital Link with AI 414 (an SGLN's extension is a place within the GLN's site: the same
    city). None for anything else."""
    if not identifier:
        return None
    if len(identifier) == 13 and identifier.isdigit():
        return identifier
    for key in sorted(identifier_keys(identifier)):
        if key.startswith("gln:"):
            return key[4:]
    return None


async def _at_detail(conn: AsyncConnection, record: LotRecord, detail: str) -> None:
    """Reduce the journey's and shipments' places to ``detail``: "site" leaves them as
    captured; "city" shows the city and country of each recorded location and nothing for the
    rest (a free-text place may be an address); "none" shows no place. Below site level the
    signed readings of the journey lose their signed bytes (they name the site), so only its
    EPCIS events (by their hashes) are verified in the browser."""
    if detail == "site":
        return
    places = (
        [e.get("loc") for e in record.journey]
        + [s["origin"] for s in record.shipments]
        + [s["destination"] for s in record.shipments]
    )
    glns = {g for g in map(location_gln, places) if g}
    cities: dict[str, str] = {}
    if detail == "city" and glns:
        cur = await conn.execute(
            "SELECT gln, city, country_code FROM locations WHERE gln = ANY(%s)", (sorted(glns),)
        )
        cities = {r[0]: f"{r[1]}, {r[2]}" for r in await cur.fetchall()}

    def city(identifier: str | None) -> str | None:
        gln = location_gln(identifier)
        return cities.get(gln) if gln else None

    journey = []
    for entry in record.journey:
        shown = {k: v for k, v in entry.items() if k not in _SIGNED_FIELDS or "event_id" in entry}
        shown["where"] = city(entry.get("loc"))
        shown["loc"] = None
        if "reading" in entry:  # a merged step: its device reading names the site too
            reading = {k: v for k, v in entry["reading"].items() if k not in _SIGNED_FIELDS}
            shown["reading"] = {**reading, "where": shown["where"], "loc": None}
        journey.append(shown)
    record.journey = journey
    for shipment in record.shipments:
        shipment["origin"] = city(shipment["origin"])
        shipment["destination"] = city(shipment["destination"])


async def _recalls(conn: AsyncConnection, link: DigitalLink) -> list[dict[str, Any]]:
    """Open recalls affecting the lot (ingest/genealogy/recalls.py), newest first."""
    cur = await conn.execute(
        "SELECT r.recall_id::text, r.class, r.reason, r.opened_at, r.event_id, e.event_hash,"
        " e.hash_hex, e.batch_id FROM recalls r JOIN recall_items i USING (recall_id)"
        " JOIN epcis_events e ON e.event_id = r.event_id"
        " WHERE i.node = %s AND r.state = 'open' ORDER BY r.opened_at DESC",
        (f"lot:{link.gtin}/{link.lot}",),
    )
    return [
        {
            "recall_id": r[0],
            "class": r[1],
            "reason": r[2],
            "opened_at": _iso(r[3]),
            "event_id": r[4],
            "event_hash": r[5],
            "hash_hex": r[6],
            "batch_id": r[7],
        }
        for r in await cur.fetchall()
    ]


def _when(entry: dict[str, Any]) -> str:
    return str(entry["ts"])


def merge_journey(
    readings: list[dict[str, Any]], events: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """One row per custody step, in time order: a device's custody reading (kind ``event``)
    and the EPCIS event of the same step (same bizStep, same site's GLN, at most SAME_STEP_S
    apart; the closest pairs first) become the event's row with the reading under
    ``reading``, so the row carries both sources and both proofs. The rest stay rows of their
    own (RFID reads, events no device recorded, readings no event matched)."""
    pairs = sorted(
        (apart, r, e)
        for r, entry in enumerate(readings)
        if entry.get("kind") == "event"
        for e, event in enumerate(events)
        if (apart := _apart_if_same_step(entry, event)) is not None
    )
    partner: dict[int, int] = {}
    for _, r, e in pairs:
        if r not in partner and e not in partner.values():
            partner[r] = e
    merged: list[dict[str, Any]] = []
    for r, entry in enumerate(readings):
        if r not in partner:
            merged.append(entry)
            continue
        reading = {k: v for k, v in entry.items() if k not in ("kind", "step", "disposition")}
        merged.append({**events[partner[r]], "reading": reading, "sources": ["device", "epcis"]})
    taken = set(partner.values())
    merged += [event for e, event in enumerate(events) if e not in taken]
    return sorted(merged, key=_when)


def _apart_if_same_step(reading: dict[str, Any], event: dict[str, Any]) -> float | None:
    """Seconds between a custody reading and an EPCIS event of the same step, else None."""
    site = location_gln(reading.get("loc"))
    step = normalise_vocabulary(str(reading.get("step")))
    if site is None or event.get("step") != step or location_gln(event.get("loc")) != site:
        return None
    at = datetime.fromisoformat(str(reading["ts"]))
    apart = abs((datetime.fromisoformat(str(event["ts"])) - at).total_seconds())
    return apart if apart <= SAME_STEP_S else None


def lot_class(link: DigitalLink) -> str:
    """The lot's class identifier in EPCIS quantity lists (its GS1 Digital Link URI)."""
    return build_uri(DIGITAL_LINK_BASE, link.gtin, link.lot)


async def _epcis_journey(conn: AsyncConnection, link: DigitalLink) -> list[dict[str, Any]]:
    """Custody EPCIS events naming the lot (its LGTIN), with their CBV 2.0 hashes."""
    cur = await conn.execute(
        "SELECT event_id, event_time, biz_step, biz_location, read_point, disposition,"
        " event_hash, hash_hex, batch_id FROM epcis_events WHERE epcs @> ARRAY[%s]"
        " ORDER BY event_time LIMIT %s",
        (lot_class(link), MAX_JOURNEY),
    )
    return [
        {
            "kind": "epcis",
            "ts": r[1].isoformat(),
            "event_id": r[0],
            "step": _step(r[2]),
            "where": _place(r[3] or r[4]),
            "loc": r[3] or r[4],
            "disposition": r[5],
            "event_hash": r[6],
            "hash_hex": r[7],
            "batch_id": r[8],
        }
        for r in await cur.fetchall()
    ]


def _step(biz_step: str | None) -> str:
    """The bizStep's short name: CBV's as stored; TraceHub's own (customs clearance steps,
    commerce/customs/clearance.py) without their namespace, e.g. ``customs_released``."""
    if biz_step is None:
        return "event"
    return biz_step.removeprefix(EXTENSION_NAMESPACE)


def _place(identifier: str | None) -> str | None:
    """`GLN 9506000134005` for a location naming a GLN (an SGLN's too), else the identifier."""
    gln = location_gln(identifier)
    return f"GLN {gln}" if gln else identifier


async def _inspections(conn: AsyncConnection, link: DigitalLink) -> list[dict[str, Any]]:
    """Inspection reports of the lot: result, summary, the PDF's hash and CID, its event."""
    cur = await conn.execute(
        "SELECT i.inspection_id, i.result, i.summary, i.report_sha256, i.report_cid,"
        " i.report_size, i.event_id, e.event_hash, e.hash_hex, i.inspected_at"
        " FROM inspections i JOIN epcis_events e USING (event_id)"
        " WHERE i.gtin = %s AND i.lot = %s ORDER BY i.inspected_at LIMIT 20",
        (link.gtin, link.lot),
    )
    return [
        {
            "inspection_id": str(r[0]),
            "result": r[1],
            "summary": r[2],
            "sha256": r[3],
            "cid": r[4],
            "size": r[5],
            "event_id": r[6],
            "event_hash": r[7],
            "hash_hex": r[8],
            "inspected_at": _iso(r[9]),
            "pdf_url": f"{link.path}?linkType=gs1:certificationInfo&report={r[0]}",
        }
        for r in await cur.fetchall()
    ]


async def _shipments(conn: AsyncConnection, link: DigitalLink) -> list[dict[str, Any]]:
    cur = await conn.execute(
        "SELECT s.origin, s.destination, s.state, s.shipped_at, s.delivered_at,"
        " so.name, ro.name, co.name,"
        # The customs clearance status: the latest step but "duties_paid" (0016).
        " (SELECT c.step FROM clearance_steps c WHERE c.shipment_id = s.shipment_id"
        "   AND c.step <> 'duties_paid' ORDER BY c.at DESC, c.id DESC LIMIT 1)"
        " FROM shipments s"
        " JOIN (SELECT DISTINCT shipment_id FROM shipment_lots WHERE gtin = %s AND lot = %s) sl"
        "   ON sl.shipment_id = s.shipment_id"
        " LEFT JOIN organisations so ON so.org_id = s.shipper_org"
        # The receiver and the carrier are named only where they opted in.
        " LEFT JOIN organisations ro ON ro.org_id = s.receiver_org AND EXISTS (SELECT 1 FROM"
        "   publication_settings rp WHERE rp.org_id = ro.org_id AND rp.name_when_party)"
        " LEFT JOIN organisations co ON co.org_id = s.carrier_org AND EXISTS (SELECT 1 FROM"
        "   publication_settings cp WHERE cp.org_id = co.org_id AND cp.name_when_party)"
        " ORDER BY s.shipped_at NULLS LAST, s.created_at",
        (link.gtin, link.lot),
    )
    return [
        {
            "origin": r[0],
            "destination": r[1],
            "state": r[2],
            "shipped_at": _iso(r[3]),
            "delivered_at": _iso(r[4]),
            "shipper": r[5],
            "receiver": r[6],
            "carrier": r[7],
            "clearance": r[8],
        }
        for r in await cur.fetchall()
    ]


async def _readings(
    conn: AsyncConnection, link: DigitalLink
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Readings of the devices assigned to the lot's shipments, within their assignment."""
    cur = await conn.execute(
        "SELECT r.device_id, r.seq, r.ts, r.kind, r.data, r.loc, r.envelope, r.batch_id"
        " FROM device_assignments a"
        " JOIN (SELECT DISTINCT shipment_id FROM shipment_lots WHERE gtin = %s AND lot = %s) sl"
        "   ON sl.shipment_id = a.shipment_id"
        " JOIN readings r ON r.device_id = a.device_id AND r.ts >= a.valid_from"
        "   AND (a.valid_to IS NULL OR r.ts < a.valid_to)"
        " ORDER BY r.ts, r.device_id, r.seq LIMIT %s",
        (link.gtin, link.lot, MAX_SERIES + MAX_JOURNEY),
    )
    journey: list[dict[str, Any]] = []
    series: list[dict[str, Any]] = []
    for device_id, seq, ts, kind, data, loc, envelope, batch_id in await cur.fetchall():
        base = {
            "ts": ts.isoformat(),
            "device_id": device_id,
            "seq": seq,
            "batch_id": batch_id,
            "envelope": bytes(envelope).decode("ascii"),
        }
        if kind == "environment":
            if len(series) < MAX_SERIES:
                series.append(
                    {
                        **base,
                        "temperature_c": float(data["temperature_c"]),
                        "humidity_pct": float(data["humidity_pct"]),
                    }
                )
        elif kind == "health":
            continue  # the device's own state (a sensor fault), not a step of the goods
        elif len(journey) < MAX_JOURNEY:
            journey.append({**base, **_journey_entry(kind, data, loc)})
    return journey, series


def _journey_entry(kind: str, data: dict[str, Any], loc: str | None) -> dict[str, Any]:
    """A custody event (an `event` reading) or an RFID read, as the timeline shows it."""
    if kind == "rfid":
        return {
            "kind": "rfid",
            "step": "observed",
            "where": data.get("reader") or loc,
            "loc": loc,
            "epc": data.get("epc"),
            **({"card_id": data["card_id"]} if "card_id" in data else {}),
        }
    return {
        "kind": "event",
        "step": str(data.get("bizStep", data.get("type", "event"))),
        "where": data.get("where") or loc,
        "loc": loc,
        "disposition": data.get("disposition"),
    }


def excursions(series: list[dict[str, Any]], band: dict[str, float | None]) -> list[Excursion]:
    """Runs of consecutive readings outside the band, per quantity."""
    out: list[Excursion] = []
    for quantity, key, low, high in (
        ("temperature", "temperature_c", band["temp_min_c"], band["temp_max_c"]),
        ("humidity", "humidity_pct", band["humidity_min"], band["humidity_max"]),
    ):
        run: list[dict[str, Any]] = []
        for point in [*series, None]:
            value = point[key] if point else None
            outside = value is not None and (
                (low is not None and value < low) or (high is not None and value > high)
            )
            if outside and point is not None:
                run.append(point)
                continue
            if run:
                values = [p[key] for p in run]
                above = high is not None and max(values) > high
                out.append(
                    Excursion(
                        quantity=quantity,
                        start=run[0]["ts"],
                        end=run[-1]["ts"],
                        extreme=max(values) if above else min(values),
                        points=len(run),
                    )
                )
                run = []
    return out
