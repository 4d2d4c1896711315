"""The customs broker as a party, clearance steps as anchored EPCIS events, alerts on holds,
a payment waiting for "released by customs", and the clearance on the buyer's page. A broker
of another shipment sees nothing of this one."""

from __future__ import annotations

import json
import secrets

import pytest

from tests.support.api import ApiHarness
from tests.support.commerce import GTIN_A, party_headers, pay_order
from tests.support.customs import buyer_org, shipped_order
from tracehub.epcis.hashing import event_hash


def _broker(h: ApiHarness) -> tuple[str, dict[str, str]]:
    org = h.organisation("logistics")
    return org, party_headers(h, "logistics", org)


def _step(
    h: ApiHarness, who: dict[str, str], shipment_id: str, step: str, note: str = ""
) -> object:
    return h.client.post(
        f"/commerce/shipments/{shipment_id}/clearance",
        headers=who,
        json={"step": step, "note": note},
    )


@pytest.mark.timeout(300)
def test_a_broker_sees_its_shipment_only(h: ApiHarness) -> None:
    supplier = party_headers(h, "supplier", "sup-a")
    _, buyer_es = buyer_org(h, "ES")
    _, buyer_us = buyer_org(h, "US")
    order_a, ship_a = shipped_order(
        h, buyer_es, supplier, incoterm="DDP", sscc="095060001234567897"
    )
    order_b, ship_b = shipped_order(
        h, buyer_us, supplier, incoterm="FOB", lot="L2", sscc="095060001234567880"
    )
    broker_a, headers_a = _broker(h)
    broker_b, headers_b = _broker(h)
    # Under FOB the shipper names the broker, not the buyer; under DDP the buyer may.
    by_buyer = h.client.post(
        f"/commerce/shipments/{ship_b}/customs-broker",
        headers=buyer_us,
        json={"broker_org": broker_b},
    )
    assert by_buyer.status_code == 403, by_buyer.text
    assert (
        h.client.post(
            f"/commerce/shipments/{ship_b}/customs-broker",
            headers=supplier,
            json={"broker_org": broker_b},
        ).status_code
        == 200
    )
    assert (
        h.client.post(
            f"/commerce/shipments/{ship_a}/customs-broker",
            headers=buyer_es,
            json={"broker_org": broker_a},
        ).status_code
        == 200
    )
    for kind in ("commercial_invoice", "packing_list"):
        for ship in (ship_a, ship_b):
            issued = h.client.post(
                f"/commerce/shipments/{ship}/documents", headers=supplier, json={"kind": kind}
            )
            assert issued.status_code == 201, issued.text

    docs_a = h.client.get(f"/commerce/shipments/{ship_a}/documents", headers=headers_a)
    assert docs_a.status_code == 200 and len(docs_a.json()) == 2
    pdf = h.client.get(docs_a.json()[0]["pdf_url"], headers=headers_a)
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF-")

    # Broker B, of another shipment: shipment A, its documents, clearance, order, lots: nothing.
    base = f"/commerce/shipments/{ship_a}"
    for path in (
        f"{base}/documents",
        f"{base}/documents/file?kind=commercial_invoice",
        f"{base}/clearance",
        f"/commerce/orders/{order_a}",
    ):
        assert h.client.get(path, headers=headers_b).status_code == 404, path
    assert _step(h, headers_b, ship_a, "lodged").status_code == 404
    # issuing needs the supplier role: refused before the shipment is looked at
    issuing = h.client.post(f"{base}/documents", headers=headers_b, json={"kind": "packing_list"})
    assert issuing.status_code == 403 and "supplier" in issuing.json()["detail"]
    assert (
        h.client.get("/inspections", headers=headers_b, params={"shipment_id": ship_a}).json() == []
    )
    assert h.client.get("/alerts", headers=headers_b).json() == []
    # ... and broker A, none of B's; nor may it act as the carrier of its own shipment.
    assert (
        h.client.get(f"/commerce/shipments/{ship_b}/documents", headers=headers_a).status_code
        == 404
    )
    custody = h.client.post(
        f"{base}/custody",
        headers=headers_a,
        json={"biz_step": "shipping", "at": "2026-12-01T00:00:00Z"},
    )
    assert custody.status_code == 403
    assert h.client.get(f"/commerce/orders/{order_b}", headers=headers_a).status_code == 404


@pytest.mark.timeout(300)
def test_clearance_steps_alert_on_hold_and_release_the_payment(h: ApiHarness) -> None:
    supplier = party_headers(h, "supplier", "sup-a")
    _, buyer = buyer_org(h, "ES")
    admin = h.headers("admin")
    order_id, shipment_id = shipped_order(h, buyer, supplier, incoterm="DAP")
    broker, broker_headers = _broker(h)
    assigned = h.client.post(
        f"/commerce/shipments/{shipment_id}/customs-broker",
        headers=supplier,
        json={"broker_org": broker},
    )
    assert assigned.status_code == 200, assigned.text

    # The buyer makes the payment wait for customs release, then pays by bank transfer.
    waits = h.client.post(f"/commerce/orders/{order_id}/hold-until-customs-release", headers=buyer)
    assert waits.status_code == 200, waits.text
    paid = pay_order(
        h,
        buyer,
        order_id,
        secrets.token_hex(4),
        method="bank_transfer",
        bank={"bic": "DEUTDEFF", "iban": "DE89370400440532013000", "reference": "INV-CUSTOMS"},
    )
    assert paid.json()["state"] == "submitted", paid.text
    confirmed = h.client.post(
        f"/commerce/payments/{paid.json()['payment_id']}/confirm", headers=admin
    )
    assert confirmed.json()["state"] == "authorized", confirmed.text
    late = h.client.post(f"/commerce/orders/{order_id}/hold-until-customs-release", headers=buyer)
    assert late.status_code == 409  # decided before paying, not after

    check = h.client.post(f"/commerce/orders/{order_id}/release-check", headers=buyer)
    assert check.json()["payment_state"] == "held", check.text

    assert _step(h, broker_headers, shipment_id, "duties_paid").status_code == 409
    assert _step(h, buyer, shipment_id, "lodged").status_code == 403
    lodged = _step(h, broker_headers, shipment_id, "lodged", "MRN 26ES00000000000001")
    assert lodged.status_code == 201, lodged.text
    held = _step(h, broker_headers, shipment_id, "held_for_inspection", "documentary check")
    assert held.status_code == 201
    alert_id = held.json()["alert_id"]
    shipper_staff = party_headers(h, "logistics", "sup-a")  # alerts are logistics staff's
    alert = h.client.get(f"/alerts/{alert_id}", headers=shipper_staff)
    assert alert.status_code == 200 and alert.json()["kind"] == "customs_hold"
    assert alert.json()["state"] == "open"
    listed = h.client.get("/alerts", headers=shipper_staff, params={"kind": "customs_hold"})
    assert [a["alert_id"] for a in listed.json()] == [alert_id]
    assert (
        h.client.post(f"/commerce/orders/{order_id}/release-check", headers=buyer).json()[
            "payment_state"
        ]
        == "held"
    )

    released = _step(h, broker_headers, shipment_id, "released")
    assert released.status_code == 201
    assert released.json()["payments"] == {order_id: "released"}  # decided on the evidence
    assert _step(h, broker_headers, shipment_id, "held_for_inspection").status_code == 409
    assert _step(h, broker_headers, shipment_id, "duties_paid", "EUR 0.00").status_code == 201
    with h.connect() as conn:
        ended = conn.execute(
            "SELECT ended_at FROM alerts WHERE alert_id = %s", (alert_id,)
        ).fetchone()
        assert ended[0] is not None
        # Each step is an EPCIS event the hub stores and hashes like any other (anchored with
        # the next event batch); it names the shipment's lot.
        rows = conn.execute(
            "SELECT c.step, e.event_json, e.event_hash FROM clearance_steps c"
            " JOIN epcis_events e USING (event_id) WHERE c.shipment_id = %s ORDER BY c.id",
            (shipment_id,),
        ).fetchall()
    assert [r[0] for r in rows] == ["lodged", "held_for_inspection", "released", "duties_paid"]
    for _, raw, stored_hash in rows:
        event = json.loads(bytes(raw))
        assert event_hash(event) == stored_hash
        assert event["quantityList"] == [{"epcClass": f"https://id.gs1.org/01/{GTIN_A}/10/L1"}]

    with h.connect() as conn:
        state = conn.execute("SELECT state FROM payments WHERE order_id = %s", (order_id,))
        assert state.fetchone()[0] == "released"
    decisions = h.client.get(f"/commerce/orders/{order_id}/payment-decisions", headers=buyer).json()
    assert decisions[0]["evidence"]["reasons"] == [f"not released by customs: ['{shipment_id}']"]
    assert decisions[-1]["decision"] == "release"
    steps = decisions[-1]["evidence"]["clearance"]
    assert [s["step"] for s in steps][:3] == ["lodged", "held_for_inspection", "released"]
    assert steps[2]["event_hash"] == rows[2][2]

    status = h.client.get(f"/commerce/shipments/{shipment_id}/clearance", headers=buyer).json()
    assert status["status"] == "released" and len(status["steps"]) == 4

    # The buyer's page: clearance on the shipment and its steps on the journey.
    page = h.client.get(f"/01/{GTIN_A}/10/L1", headers={"Accept": "application/json"})
    assert page.status_code == 200, page.text
    view = page.json()
    assert [s["clearance"] for s in view["shipments"]] == ["released"]
    steps_on_journey = [e["step"] for e in view["journey"] if e["step"].startswith("customs_")]
    assert steps_on_journey == [
        "customs_lodged",
        "customs_held_for_inspection",
        "customs_released",
        "customs_duties_paid",
    ]
    html = h.client.get(f"/01/{GTIN_A}/10/L1", headers={"Accept": "text/html"}).text
    assert "Released by customs" in html and "Held by customs for inspection" in html
