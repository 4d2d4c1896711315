"""The supplier scorecard counts customs delays apart: a shipment late by no more than customs
held it is not held against the supplier's on-time share, and is counted on its own."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.support.api import ApiHarness
from tests.support.commerce import party_headers
from tests.support.customs import buyer_org, shipped_order


def test_customs_delays_are_counted_apart(h: ApiHarness) -> None:
    supplier = party_headers(h, "supplier", "sup-a")
    _, buyer = buyer_org(h, "ES")
    shipments = [
        shipped_order(h, buyer, supplier, sscc=sscc)[1]
        for sscc in ("095060001234567897", "095060001234567880", "095060001234567873")
    ]
    broker = h.organisation("logistics")
    broker_headers = party_headers(h, "logistics", broker)
    expected = datetime(2026, 11, 20, 12, tzinfo=UTC)
    held_from = expected - timedelta(days=3)
    # 1: customs held it two days, it arrived one day late: a customs delay
    # 2: one day late, no hold: late; 3: on time
    assert (
        h.client.post(
            f"/commerce/shipments/{shipments[0]}/customs-broker",
            headers=supplier,
            json={"broker_org": broker},
        ).status_code
        == 200
    )
    for step, at in (
        ("lodged", held_from),
        ("held_for_inspection", held_from),
        ("released", held_from + timedelta(days=2)),
    ):
        reply = h.client.post(
            f"/commerce/shipments/{shipments[0]}/clearance",
            headers=broker_headers,
            json={"step": step, "at": at.isoformat()},
        )
        assert reply.status_code == 201, reply.text
    with h.connect() as conn:
        for shipment_id, delivered in zip(
            shipments,
            (
                expected + timedelta(days=1),
                expected + timedelta(days=1),
                expected - timedelta(hours=1),
            ),
            strict=True,
        ):
            conn.execute(
                "UPDATE shipments SET expected_delivery = %s, delivered_at = %s,"
                " state = 'delivered' WHERE shipment_id = %s",
                (expected, delivered, shipment_id),
            )
        conn.commit()
    (card,) = h.client.get("/commerce/scorecards/suppliers", headers=buyer).json()
    assert card["supplier_org"] == "sup-a"
    assert card["customs_delayed"] == 1
    assert card["criteria"]["on_time"] == "50.00"  # 1 of the 2 the supplier answers for
