"""The recall workflow over HTTP, against the real PostgreSQL: the brand owner opens a recall of
an input lot; the affected set reaches the product lot, the buyer and its order; the recall is an
EPCIS event; every party is alerted through the alert channels; the buyer's payment is held by
the release rule; the buyer acknowledges with quantities; its QR page shows the recall; closed."""

from __future__ import annotations

from typing import Any

import pytest

from commerce.release import decide, gather_evidence
from tests.support.api import ApiHarness
from tests.support.genealogy import Chain, build_chain
from tests.support.tenancy import member

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def chain(api: ApiHarness) -> Chain:
    return build_chain(api)


@pytest.fixture(scope="module")
def recall(api: ApiHarness, chain: Chain) -> dict[str, Any]:
    brand = member(api, "supplier", chain.brand)
    reply = api.client.post(
        "/recalls",
        json={"targets": [chain.class_in], "reason": "Listeria in field water", "class": "I"},
        headers=brand,
    )
    assert reply.status_code == 201, reply.text
    return reply.json()  # type: ignore[no-any-return]


def test_only_the_brand_owner_opens_a_recall(api: ApiHarness, chain: Chain) -> None:
    body = {"targets": [chain.class_in], "reason": "x", "class": "II"}
    buyer = member(api, "buyer", chain.buyer)
    assert api.client.post("/recalls", json=body, headers=buyer).status_code == 403
    rival_supplier = member(api, "supplier", chain.rival)
    assert api.client.post("/recalls", json=body, headers=rival_supplier).status_code == 404
    bad = {**body, "class": "IV"}
    brand = member(api, "supplier", chain.brand)
    assert api.client.post("/recalls", json=bad, headers=brand).status_code == 422


def test_affected_set_parties_and_orders(recall: dict[str, Any], chain: Chain) -> None:
    items = {i["node"] for i in recall["items"]}
    assert items == {
        f"lot:{chain.gtin_in}/{chain.lot_in}",
        f"lot:{chain.gtin_out}/{chain.lot_out}",
        f"gln:{chain.buyer_gln}",
        f"urn:tracehub:shipment:{chain.shipment}",
    }
    parties = {p["org_id"]: set(p["relations"]) for p in recall["parties"]}
    assert parties == {
        chain.buyer: {"receiver", "location"},
        chain.carrier: {"carrier"},
    }
    assert recall["orders"] == [chain.order]
    assert recall["class"] == "I" and recall["state"] == "open"
    assert recall["event_hash"].startswith("ni:///sha-256;")


def test_recall_is_an_epcis_event(api: ApiHarness, recall: dict[str, Any], chain: Chain) -> None:
    reply = api.client.get(
        "/epcis/events/" + recall["event_id"], headers=member(api, "supplier", chain.brand)
    )
    assert reply.status_code == 200, reply.text
    event = reply.json()
    assert event["disposition"] == "recalled"
    assert event["quantityList"] == [{"epcClass": chain.class_in}]
    # The trace shows the recall beside the recalled lot.
    forward = api.client.get(
        "/trace", params={"id": chain.class_in, "direction": "forward", "depth": 1},
        headers=api.headers("admin"),
    ).json()  # fmt: skip
    assert f"urn:tracehub:recall:{recall['recall_id']}" in {n["id"] for n in forward["nodes"]}


def test_parties_alerted_and_payment_held(
    api: ApiHarness, recall: dict[str, Any], chain: Chain
) -> None:
    with api.connect() as conn:
        alerts = conn.execute(
            "SELECT alert_id::text, shipment_id, gtin, lot, severity FROM alerts"
            " WHERE kind = 'recall' AND rule_id = %s ORDER BY 2, 3, 4",
            (f"recall:{recall['recall_id']}",),
        ).fetchall()
        assert sorted(a[0] for a in alerts) == sorted(recall["alerts"])
        assert {(a[1], a[2], a[3]) for a in alerts} == {
            (chain.shipment, None, None),
            (None, chain.gtin_in, chain.lot_in),
            (None, chain.gtin_out, chain.lot_out),
        }
        assert {a[4] for a in alerts} == {"critical"}
        # Each goes out on the organisations' own MQTT topics, like any alert.
        topics = {
            r[0]
            for r in conn.execute(
                "SELECT target FROM alert_deliveries WHERE alert_id = ANY(%s::uuid[])"
                " AND channel = 'mqtt'",
                ([a[0] for a in alerts],),
            ).fetchall()
        }
        assert f"tracehub/v1/orgs/org:{chain.buyer}/alerts/recall" in topics
        assert f"tracehub/v1/orgs/org:{chain.carrier}/alerts/recall" in topics
        # The release rule holds the buyer's payment while a recall alert is open.
        decision = decide(gather_evidence(conn, chain.order))
    assert decision.decision == "hold"
    held = {a["alert_id"] for a in decision.evidence["alerts"] if a["kind"] == "recall"}
    assert held and held <= set(recall["alerts"])


def test_acknowledge_and_close(api: ApiHarness, recall: dict[str, Any], chain: Chain) -> None:
    path = f"/recalls/{recall['recall_id']}"
    buyer = member(api, "buyer", chain.buyer)
    assert api.client.get(path, headers=member(api, "buyer", chain.rival)).status_code == 404
    ack = api.client.post(
        path + "/acknowledgements",
        json={"located": 40, "quarantined": 38, "returned": 2, "note": "two sold"},
        headers=buyer,
    )
    assert ack.status_code == 200, ack.text
    mine = next(p for p in ack.json()["parties"] if p["org_id"] == chain.buyer)
    assert (mine["qty_located"], mine["qty_quarantined"], mine["qty_returned"]) == (40, 38, 2)
    assert mine["acknowledged_at"] is not None
    listed = api.client.get("/recalls", headers=buyer).json()
    assert [r["recall_id"] for r in listed] == [recall["recall_id"]]
    assert api.client.post(path + "/close", headers=buyer).status_code == 403
    brand = member(api, "supplier", chain.brand)
    closed = api.client.post(path + "/close", headers=brand)
    assert closed.status_code == 200 and closed.json()["state"] == "closed"
    again = api.client.post(path + "/acknowledgements", json={"located": 1}, headers=buyer)
    assert again.status_code == 409


def test_qr_page_shows_the_recall(api: ApiHarness, chain: Chain) -> None:
    brand = member(api, "supplier", chain.brand)
    opened = api.client.post(
        "/recalls",
        json={
            "targets": [f"{chain.gtin_in}/{chain.lot_in}"],
            "reason": "Second notice",
            "class": "II",
        },
        headers=brand,
    ).json()
    path = f"/01/{chain.gtin_out}/10/{chain.lot_out}"
    page = api.client.get(path, headers={"Accept": "text/html"}).text
    assert 'id="recall"' in page and "Second notice" in page
    assert f'data-event="{opened["event_id"]}"' in page
    # verified like everything on the page: the event's hash is among the browser's records
    assert opened["event_hash"].split(";")[1][:64] in page
    data = api.client.get(path, headers={"Accept": "application/json"}).json()
    assert [r["recall_id"] for r in data["recalls"]] == [opened["recall_id"]]
