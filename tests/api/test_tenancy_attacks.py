"""Companies that do not trust each other on one hub: each attack on another company's records
is refused (403, or 404 where the answer would tell that the record exists) and leaves the
victim's data as it was, while the parties' own flows still work.

The world (tests/support/tenancy.py): ``sup`` ships a lot to ``buy`` with carrier ``car``;
``rival`` is party to none of it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import pytest

from commerce.custody import sync_epcis_custody
from tests.support.api import ApiHarness, api_harness
from tests.support.inspections import minimal_pdf
from tests.support.tenancy import (
    GTIN,
    World,
    build_world,
    document,
    lot_class,
    member,
    seed_parties,
    sscc_epc,
    store_report,
    storing_event,
)
from tracehub.config import Settings

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def hub(stack: Settings) -> Iterator[tuple[ApiHarness, tuple[str, str]]]:
    # Public pages uncached, so a changed publication setting shows at once.
    with api_harness(stack, extra={"page_cache_s": 0}) as h:
        seed_parties(h)
        yield h, store_report()


@pytest.fixture()
def world(hub: tuple[ApiHarness, tuple[str, str]]) -> World:
    h, report = hub
    return build_world(h, report)


def _row(h: ApiHarness, sql: str, *args: Any) -> Any:
    with h.connect() as conn:
        return conn.execute(sql, args).fetchone()


def _now() -> str:
    return datetime.now(UTC).isoformat()


def test_an_unrelated_carrier_cannot_ship_deliver_or_free_the_payment(
    hub: tuple[ApiHarness, tuple[str, str]], world: World
) -> None:
    h, _ = hub
    intruder = member(h, "logistics", "rival")
    before = _row(h, "SELECT state FROM orders WHERE order_id = %s", world.order)
    shipment = {
        "shipment_id": f"X-{world.tag}",
        "origin": "a",
        "destination": "b",
        "lots": [{"gtin": GTIN, "lot": world.lot}],
    }
    created = h.client.post(
        f"/commerce/orders/{world.order}/shipments", headers=intruder, json=shipment
    )
    assert created.status_code == 404
    for step in ("shipping", "receiving"):
        reply = h.client.post(
            f"/commerce/shipments/{world.shipment}/custody",
            headers=intruder,
            json={"biz_step": step, "at": _now()},
        )
        assert reply.status_code == 404, reply.text
    # The same through EPCIS: capturing a custody event on the victim's SSCC is refused.
    event = storing_event(world.lot, datetime.now(UTC), bizStep="receiving")
    event["epcList"] = [sscc_epc(world.sscc)]
    captured = h.client.post(
        "/epcis/capture", headers=intruder, content=json.dumps(document(event))
    )
    assert captured.status_code == 403 and sscc_epc(world.sscc) in captured.json()["detail"]
    # Nor may a party that is not the carrier or the receiver (the shipper here) deliver it.
    shipper = member(h, "logistics", "sup")
    own = h.client.post(
        f"/commerce/shipments/{world.shipment}/custody",
        headers=shipper,
        json={"biz_step": "shipping", "at": _now()},
    )
    assert own.status_code == 403
    # An event the shipper may capture (its own prefix) moves nothing in the custody sync.
    allowed = h.client.post("/epcis/capture", headers=shipper, content=json.dumps(document(event)))
    assert allowed.status_code == 202, allowed.text
    with h.connect() as conn:
        assert sync_epcis_custody(conn) == []
        conn.commit()
    assert _row(h, "SELECT state FROM shipments WHERE shipment_id = %s", world.shipment) == (
        "planned",
    )
    assert _row(h, "SELECT state FROM orders WHERE order_id = %s", world.order) == before
    assert _row(h, "SELECT count(*) FROM shipments WHERE shipment_id = %s", f"X-{world.tag}") == (
        0,
    )
    # The buyer's supplier cannot create a shipment as a rival either: only the order's supplier.
    supplier = member(h, "supplier", "sup")
    ok = h.client.post(f"/commerce/orders/{world.order}/shipments", headers=supplier, json=shipment)
    assert ok.status_code == 201, ok.text


def test_the_assigned_carrier_and_the_receiver_move_the_shipment(
    hub: tuple[ApiHarness, tuple[str, str]], world: World
) -> None:
    h, _ = hub
    carrier = member(h, "logistics", "car")
    receiver = member(h, "buyer", "buy")
    # The carrier cannot reassign itself away; only the shipper assigns.
    reassigned = h.client.post(
        f"/commerce/shipments/{world.shipment}/carrier",
        headers=carrier,
        json={"carrier_org": "rival"},
    )
    assert reassigned.status_code == 403
    shipped = h.client.post(
        f"/commerce/shipments/{world.shipment}/custody",
        headers=carrier,
        json={"biz_step": "shipping", "at": _now()},
    )
    assert shipped.status_code == 200 and shipped.json()["state"] == "in_transit"
    delivered = h.client.post(
        f"/commerce/shipments/{world.shipment}/custody",
        headers=receiver,
        json={"biz_step": "receiving", "at": _now()},
    )
    assert delivered.status_code == 200 and delivered.json()["state"] == "delivered"


def test_alerts_are_resolved_only_by_parties_and_a_held_payment_needs_the_buyer(
    hub: tuple[ApiHarness, tuple[str, str]], world: World
) -> None:
    h, _ = hub
    intruder = member(h, "logistics", "rival")
    for action in ("acknowledge", "resolve"):
        assert h.client.post(f"/alerts/{world.alert}/{action}", headers=intruder).status_code == 404
    assert h.client.get(f"/alerts/{world.alert}", headers=intruder).status_code == 404
    assert all(
        a["alert_id"] != world.alert for a in h.client.get("/alerts", headers=intruder).json()
    )
    assert _row(h, "SELECT state FROM alerts WHERE alert_id = %s", world.alert) == ("open",)
    # The alert now keeps a held payment: the carrier (a party) alone cannot free it.
    with h.connect() as conn:
        conn.execute("UPDATE payments SET state = 'held' WHERE payment_id = %s", (world.payment,))
        conn.commit()
    carrier = member(h, "logistics", "car")
    refused = h.client.post(f"/alerts/{world.alert}/resolve", headers=carrier)
    assert refused.status_code == 403 and "buyer" in refused.json()["detail"]
    assert h.client.post(f"/alerts/{world.alert}/acknowledge", headers=carrier).status_code == 200
    buyer_side = member(h, "logistics", "buy")
    done = h.client.post(f"/alerts/{world.alert}/resolve", headers=buyer_side, json={"note": "ok"})
    assert done.status_code == 200 and done.json()["state"] == "resolved"


def test_subscriptions_belong_to_their_organisation(
    hub: tuple[ApiHarness, tuple[str, str]], world: World
) -> None:
    h, _ = hub
    intruder = member(h, "logistics", "rival")
    url = f"/alerts/subscriptions/{world.subscription}"
    listed = h.client.get("/alerts/subscriptions", headers=intruder).json()
    assert all(s["subscription_id"] != world.subscription for s in listed)
    assert h.client.get(url, headers=intruder).status_code == 404
    rewrite = {"channel": "email", "target": "thief@rival.example"}
    assert h.client.put(url, headers=intruder, json=rewrite).status_code == 404
    assert h.client.delete(url, headers=intruder).status_code == 404
    target = f"ops-{world.tag}@car.example"
    assert _row(
        h, "SELECT target FROM alert_subscriptions WHERE subscription_id = %s", world.subscription
    ) == (target,)
    # A rival's own subscription cannot narrow to the victim's shipment, and hears nothing of
    # the victim's alerts (no outbox row), while the carrier's does.
    narrowed = {**rewrite, "shipment_id": world.shipment}
    assert (
        h.client.post("/alerts/subscriptions", headers=intruder, json=narrowed).status_code == 404
    )
    mine = h.client.post("/alerts/subscriptions", headers=intruder, json=rewrite)
    assert mine.status_code == 201 and mine.json()["owner_org"] == "rival"
    carrier = member(h, "logistics", "car")
    assert h.client.post(f"/alerts/{world.alert}/acknowledge", headers=carrier).status_code == 200
    with h.connect() as conn:
        targets = {
            r[0]
            for r in conn.execute(
                "SELECT target FROM alert_deliveries WHERE alert_id = %s", (world.alert,)
            )
        }
    assert target in targets and "thief@rival.example" not in targets


def test_epcis_reads_captures_and_inspections_are_scoped(
    hub: tuple[ApiHarness, tuple[str, str]], world: World
) -> None:
    h, _ = hub
    rival = member(h, "supplier", "rival")
    found = h.client.get(f"/epcis/events?MATCH_anyEPC={quote(lot_class(world.lot))}", headers=rival)
    assert found.status_code == 200
    assert found.json()["epcisBody"]["queryResults"]["resultsBody"]["eventList"] == []
    one = h.client.get(f"/epcis/events/{quote(world.event_id, safe='')}", headers=rival)
    assert one.status_code == 404
    # The receiver sees the lot's event.
    receiver = member(h, "buyer", "buy")
    seen = h.client.get(f"/epcis/events/{quote(world.event_id, safe='')}", headers=receiver)
    assert seen.status_code == 200
    # A competitor destroying the lot is refused, and nothing reaches the lot's page.
    destroy = storing_event(world.lot, datetime.now(UTC), bizStep="destroying")
    reply = h.client.post("/epcis/capture", headers=rival, content=json.dumps(document(destroy)))
    assert reply.status_code == 403
    assert _row(h, "SELECT count(*) FROM epcis_events WHERE biz_step = 'destroying'") == (0,)
    page = h.client.get(f"/01/{GTIN}/10/{world.lot}", headers={"Accept": "application/json"})
    assert page.status_code == 200 and "destroying" not in page.text
    # Inspectors: of no organisation, or of one nobody commissioned, cannot report.
    pdf = minimal_pdf("fail")
    form = {"gtin": GTIN, "lot": world.lot, "result": "fail"}
    files = {"report": ("r.pdf", pdf, "application/pdf")}
    for inspector, status in (
        (member(h, "inspector", None), 404),
        (member(h, "inspector", "rival"), 404),
    ):
        reply = h.client.post("/inspections", headers=inspector, data=form, files=files)
        assert reply.status_code == status, reply.text
    assert _row(
        h, "SELECT count(*) FROM inspections WHERE lot = %s AND result = 'fail'", world.lot
    ) == (0,)
    commissioned = member(h, "inspector", "insp")
    reply = h.client.post("/inspections", headers=commissioned, data=form, files=files)
    assert reply.status_code == 201, reply.text


def test_orders_prices_scores_and_dashboard_by_role_and_party(
    hub: tuple[ApiHarness, tuple[str, str]], world: World
) -> None:
    h, _ = hub
    buyer = member(h, "buyer", "buy")
    with h.connect() as conn:
        conn.execute("UPDATE orders SET state = 'placed' WHERE order_id = %s", (world.order,))
        conn.commit()
    confirm = {"to": "confirmed"}
    url = f"/commerce/orders/{world.order}/transitions"
    assert h.client.post(url, headers=buyer, json=confirm).status_code == 403
    assert _row(h, "SELECT state FROM orders WHERE order_id = %s", world.order) == ("placed",)
    assert (
        h.client.post(url, headers=member(h, "supplier", "rival"), json=confirm).status_code == 404
    )
    assert h.client.post(url, headers=member(h, "supplier", "sup"), json=confirm).status_code == 200
    # A supplier sees its own prices, not its competitor's.
    prices = h.client.get("/commerce/price-lists", headers=member(h, "supplier", "rival")).json()
    assert {p["supplier_org"] for p in prices} == {"rival"}
    # Scorecards and RFM over the caller's own trade.
    rival_buyer = member(h, "buyer", "rival")
    assert h.client.get("/commerce/scorecards/suppliers", headers=rival_buyer).json() == []
    cards = h.client.get("/commerce/scorecards/suppliers", headers=buyer).json()
    assert [c["supplier_org"] for c in cards] == ["sup"]
    rfm = h.client.get("/commerce/scorecards/customers", headers=member(h, "supplier", "rival"))
    assert rfm.json() == []
    # The dashboard shows a logistics user only its organisation's shipments.
    rival_staff = member(h, "logistics", "rival")
    assert h.client.get("/dashboard/shipments", headers=rival_staff).json() == []
    carrier = member(h, "logistics", "car")
    mine = {s["shipment_id"] for s in h.client.get("/dashboard/shipments", headers=carrier).json()}
    assert world.shipment in mine
    assert (
        h.client.get(
            f"/dashboard/shipments/{world.shipment}/series", headers=rival_staff
        ).status_code
        == 404
    )


def test_the_public_page_names_receiver_and_carrier_only_if_they_opt_in(
    hub: tuple[ApiHarness, tuple[str, str]], world: World
) -> None:
    h, _ = hub
    path = f"/01/{GTIN}/10/{world.lot}"
    page = h.client.get(path, headers={"Accept": "application/json"}).json()
    (shipment,) = page["shipments"]
    assert (
        shipment["shipper"] == "SUP"
        and shipment["receiver"] is None
        and shipment["carrier"] is None
    )
    opt_in = {"name_when_party": True}
    carrier = member(h, "logistics", "car")
    assert (
        h.client.put("/organisations/car/publication", headers=carrier, json=opt_in).status_code
        == 200
    )
    # Another company cannot set it for them.
    rival = member(h, "logistics", "rival")
    assert (
        h.client.put("/organisations/buy/publication", headers=rival, json=opt_in).status_code
        == 404
    )
    (shipment,) = h.client.get(path, headers={"Accept": "application/json"}).json()["shipments"]
    assert shipment["carrier"] == "CAR" and shipment["receiver"] is None
    # The brand owner turns its inspections off.
    brand = member(h, "supplier", "sup")
    hidden = {"show_inspections": False}
    assert (
        h.client.put("/organisations/sup/publication", headers=brand, json=hidden).status_code
        == 200
    )
    assert h.client.get(path, headers={"Accept": "application/json"}).json()["inspections"] == []
    assert h.client.put("/organisations/sup/publication", headers=brand, json={}).status_code == 200
