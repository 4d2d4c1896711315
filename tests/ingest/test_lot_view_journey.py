"""One journey row per custody step: a device's custody reading and the EPCIS event of the same
step merge (ingest/lot_view.py's merge_journey); what is not the same step stays apart."""

from __future__ import annotations

from typing import Any

from ingest.lot_view import SAME_STEP_S, merge_journey

FACTORY = "9506000134005"
BUYER = "9506000134012"


def reading(ts: str, step: str, loc: str, seq: int, kind: str = "event") -> dict[str, Any]:
    return {
        "kind": kind,
        "ts": ts,
        "device_id": "dock-scanner-1",
        "seq": seq,
        "batch_id": "b-1",
        "envelope": f"e.{seq}.s",
        "step": step,
        "where": "Shenzhen dock 3",
        "loc": loc,
        "disposition": "in_transit",
    }


def event(ts: str, step: str, gln: str, n: int) -> dict[str, Any]:
    return {
        "kind": "epcis",
        "ts": ts,
        "event_id": f"urn:uuid:{n}",
        "step": step,
        "where": f"GLN {gln}",
        "loc": f"https://id.gs1.org/414/{gln}",
        "event_hash": f"ni:///sha-256;{n}",
    }


def test_the_same_step_at_the_same_site_is_one_row_with_both_sources() -> None:
    readings = [
        reading("2026-12-01T06:17:00+00:00", "shipping", FACTORY, 3),
        reading("2026-12-01T06:00:00+00:00", "observed", FACTORY, 2, kind="rfid"),
    ]
    events = [
        event("2026-12-01T06:19:30+00:00", "shipping", FACTORY, 1),
        event("2026-12-01T09:00:00+00:00", "sensor_reporting", FACTORY, 2),
    ]
    journey = merge_journey(readings, events)
    assert [e["step"] for e in journey] == ["observed", "shipping", "sensor_reporting"]
    shipping = journey[1]
    assert shipping["event_id"] == "urn:uuid:1" and shipping["ts"] == events[0]["ts"]
    assert shipping["sources"] == ["device", "epcis"]
    assert shipping["reading"]["seq"] == 3 and shipping["reading"]["envelope"] == "e.3.s"
    assert shipping["reading"]["where"] == "Shenzhen dock 3"


def test_another_site_another_step_or_too_far_apart_stay_two_rows() -> None:
    far = SAME_STEP_S + 60
    readings = [
        reading("2026-12-01T06:00:00+00:00", "shipping", FACTORY, 1),
        reading("2026-12-02T06:00:00+00:00", "shipping", FACTORY, 2),
        reading("2026-12-03T06:00:00+00:00", "receiving", BUYER, 3),
    ]
    events = [
        event("2026-12-01T06:05:00+00:00", "shipping", BUYER, 1),  # another site
        event(f"2026-12-02T06:{far // 60:02d}:00+00:00", "shipping", FACTORY, 2),  # too late
        event("2026-12-03T06:01:00+00:00", "packing", BUYER, 3),  # another step
    ]
    journey = merge_journey(readings, events)
    assert len(journey) == 6 and not any("reading" in e for e in journey)


def test_two_readings_of_one_step_take_one_event_the_nearest() -> None:
    readings = [
        reading("2026-12-01T06:00:00+00:00", "shipping", FACTORY, 1),
        reading("2026-12-01T06:09:00+00:00", "shipping", FACTORY, 2),
    ]
    events = [event("2026-12-01T06:10:00+00:00", "shipping", FACTORY, 1)]
    journey = merge_journey(readings, events)
    assert len(journey) == 2
    merged = [e for e in journey if "reading" in e]
    assert len(merged) == 1 and merged[0]["reading"]["seq"] == 2
