"""Shipments follow EPCIS custody events captured by tracehub.epcis (real PostgreSQL): an
ObjectEvent naming a shipment's SSCC with bizStep shipping, then receiving."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from commerce.custody import sscc_of_uri, sync_epcis_custody
from ingest.epcis.store import capture_events
from tests.support.api import ApiHarness
from tests.support.commerce import (
    GTIN_A,
    move_order,
    party_headers,
    place_order,
)

pytestmark = pytest.mark.integration
SSCC_URI = "urn:epc:id:sscc:0950600.0123456789"
# extension digit 0, prefix 0950600, serial 123456789, GS1 check digit 7 (sum 133)
SSCC = "009506001234567897"


def test_sscc_uri_to_digits() -> None:
    assert sscc_of_uri(SSCC_URI) == SSCC
    assert sscc_of_uri("urn:epc:id:sscc:0614141.1234567890") == "106141412345678908"
    assert sscc_of_uri("urn:epc:id:sgtin:0614141.112345.400") is None
    assert sscc_of_uri("urn:epc:id:sscc:0614141.12") is None


def _event(step: str, at: datetime) -> dict[str, Any]:
    return {
        "type": "ObjectEvent",
        "eventTime": at.isoformat().replace("+00:00", "Z"),
        "eventTimeZoneOffset": "+00:00",
        "epcList": [SSCC_URI],
        "action": "OBSERVE",
        "bizStep": step,
        "readPoint": {"id": "urn:epc:id:sgln:9506000.00001.0"},
    }


def test_epcis_shipping_and_receiving_move_shipment_and_order(h: ApiHarness) -> None:
    buyer = party_headers(h, "buyer", "buy-a")
    supplier = party_headers(h, "supplier", "sup-a")
    order_id = place_order(h, buyer, "c1", quantity=4).json()["order_id"]
    move_order(h, supplier, order_id, "confirmed")
    made = h.client.post(
        f"/commerce/orders/{order_id}/shipments",
        headers=supplier,
        json={
            "shipment_id": "SHP-EPCIS",
            "origin": "a",
            "destination": "b",
            "lots": [{"gtin": GTIN_A, "lot": "L1", "sscc": SSCC, "quantity": 4}],
        },
    )
    assert made.status_code == 201, made.text
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
    with h.connect() as conn:
        shipped = capture_events(conn, [_event("shipping", t0)], source="test")
        conn.commit()
        assert sync_epcis_custody(conn) == ["SHP-EPCIS:in_transit"]
        conn.commit()
        assert sync_epcis_custody(conn) == []  # applied once
        # the same step again (another reader) does not fit the state: nothing changes
        capture_events(conn, [_event("shipping", t0 + timedelta(minutes=5))], source="test")
        received = capture_events(
            conn, [_event("receiving", t0 + timedelta(hours=2))], source="test"
        )
        conn.commit()
        assert sync_epcis_custody(conn) == ["SHP-EPCIS:delivered"]
        conn.commit()
        state, shipped_at, delivered_at = conn.execute(
            "SELECT state, shipped_at, delivered_at FROM shipments WHERE shipment_id = 'SHP-EPCIS'"
        ).fetchone()
        hashes = [
            r[0]
            for r in conn.execute("SELECT event_hash FROM custody_events ORDER BY at").fetchall()
        ]
    assert state == "delivered" and shipped_at == t0 and delivered_at == t0 + timedelta(hours=2)
    assert hashes == [shipped[0].event_hash, received[0].event_hash]
    order = h.client.get(f"/commerce/orders/{order_id}", headers=buyer).json()
    assert order["state"] == "delivered"
    assert [(x["from"], x["to"]) for x in order["history"]][-2:] == [
        ("confirmed", "shipped"),
        ("shipped", "delivered"),
    ]
