"""Evidence-linked release end to end on the real stack: PostgreSQL (LISTEN/NOTIFY), stripe-mock,
an SMTP server and the Fabric ledger. An excursion on a lot of the order's shipment holds the
payment and mails both parties; resolving it and confirming delivery releases it; every
decision is read back from the ledger."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from commerce.ledger import FabricRecords
from commerce.notify import CHANNEL, Mailer, listen_once
from commerce.payments.stripe_provider import StripeProvider
from tests.support.alert_peers import smtp_server
from tests.support.api import ApiHarness
from tests.support.commerce import (
    GTIN_A,
    StripeProxy,
    commerce_harness,
    move_order,
    party_headers,
    pay_order,
    place_order,
    sign_stripe,
    stripe_event,
)
from tracehub import db
from tracehub.config import Settings
from tracehub.ledger.local import connect_org

pytestmark = pytest.mark.integration


@pytest.fixture()
def env(stack: Settings, proxy: StripeProxy) -> Iterator[tuple[ApiHarness, Any, int, list[Any]]]:
    """The commerce API behind ``proxy`` (tests/commerce/conftest.py) mailing an SMTP server."""
    with (
        smtp_server() as (smtp_port, inbox),
        commerce_harness(stack, api_base=proxy.url, smtp_port=smtp_port, timeout_s=5) as harness,
    ):
        yield harness, proxy, smtp_port, inbox


def _notify(conn: Any, alert_id: str, state: str, kind: str) -> None:
    """What the alert engine announces on every change of an alert (0003's contract)."""
    conn.execute(
        "SELECT pg_notify(%s, %s)",
        (
            CHANNEL,
            json.dumps({"alert_id": alert_id, "state": state, "shipment_id": None, "kind": kind}),
        ),
    )
    conn.commit()


def _custody(
    h: ApiHarness,
    carrier: dict[str, str],
    shipment_id: str,
    biz_step: str,
    event_hash: str | None = None,
) -> Any:
    """A custody event on ``shipment_id`` at this moment (with ``event_hash`` if given)."""
    body: dict[str, Any] = {"biz_step": biz_step, "at": datetime.now(UTC).isoformat()}
    if event_hash is not None:
        body["event_hash"] = event_hash
    return h.client.post(f"/commerce/shipments/{shipment_id}/custody", headers=carrier, json=body)


def test_excursion_holds_payment_and_release_follows_evidence(
    stack: Settings, env: tuple[ApiHarness, Any, int, list[Any]]
) -> None:
    h, proxy, smtp_port, inbox = env
    buyer = party_headers(h, "buyer", "buy-a", "buyer@buy-a.example")
    supplier = party_headers(h, "supplier", "sup-a", "sales@sup-a.example")
    party_headers(h, "buyer", "buy-b", "other@buy-b.example")  # not a party: no mail
    carrier = party_headers(h, "logistics", "carrier")
    config = h.config.extra["commerce"]
    placed = place_order(h, buyer, "rel", incoterm="CIF", quantity=10, hold_until_delivery=True)
    order_id = placed.json()["order_id"]
    move_order(h, supplier, order_id, "confirmed")
    paid = pay_order(h, buyer, order_id, "rel-pay", method="card")
    assert paid.json()["state"] == "submitted", paid.text
    posts = proxy.payment_intent_posts()
    assert len(posts) == 1
    with h.connect() as conn:
        ref = conn.execute("SELECT provider_ref FROM payments").fetchone()[0]
    event = stripe_event("payment_intent.amount_capturable_updated", ref, "requires_capture")
    applied = h.client.post(
        "/commerce/webhooks/stripe",
        content=event,
        headers={"Stripe-Signature": sign_stripe(event, config.webhook_secret)},
    )
    assert applied.json()["outcome"].endswith("-> authorized"), applied.text

    shipment_id = f"SHP-{order_id[:8]}"
    shipped = h.client.post(
        f"/commerce/orders/{order_id}/shipments",
        headers=supplier,
        json={
            "shipment_id": shipment_id,
            "origin": "urn:epc:id:sgln:9506000.00001.0",
            "destination": "urn:epc:id:sgln:9506000.00002.0",
            "expected_delivery": (datetime.now(UTC) + timedelta(days=3)).isoformat(),
            "lots": [{"gtin": GTIN_A, "lot": "L1", "sscc": "095060001234567897", "quantity": 10}],
            "carrier_org": "carrier",
        },
    )
    assert shipped.status_code == 201, shipped.text
    first = h.client.post(f"/commerce/orders/{order_id}/release-check", headers=buyer)
    assert first.json()["payment_state"] == "held", first.text
    moved = _custody(
        h, carrier, shipment_id, "shipping", "ni:///sha-256;" + "1" * 64 + "?ver=CBV2.0"
    )
    assert moved.json()["state"] == "in_transit"
    # receiving before... no: a second shipping event is an invalid transition
    twice = _custody(h, carrier, shipment_id, "shipping")
    assert twice.status_code == 409 and "'in_transit'" in twice.json()["detail"]

    mailer = Mailer("127.0.0.1", smtp_port, config.smtp.sender)
    provider = StripeProvider(config.stripe_api_key, proxy.url, 5)
    fabric = stack.fabric
    options = f"-c search_path={h.schema}"
    with (
        connect_org(fabric, 1) as gateway,
        db.connect(stack.postgres_dsn, options=options, autocommit=True) as listener,
        h.connect() as conn,
    ):
        ledger = FabricRecords(gateway.get_network(fabric.channel).get_contract(fabric.chaincode))
        listener.execute(f"LISTEN {CHANNEL}")
        # the alert rules raise an excursion on lot L1 (not on the shipment itself)
        alert_id = conn.execute(
            "INSERT INTO alerts (rule_id, kind, severity, gtin, lot, started_at, event_hash)"
            " VALUES ('vaccine-2-8', 'temperature_excursion', 'critical', %s, 'L1', now(),"
            " %s) RETURNING alert_id::text",
            (GTIN_A, "ni:///sha-256;" + "a" * 64 + "?ver=CBV2.0"),
        ).fetchone()[0]
        conn.commit()
        _notify(conn, alert_id, "open", "temperature_excursion")
        handled = listen_once(
            listener, conn, timeout_s=10, mailer=mailer, ledger=ledger, provider=provider
        )
        assert alert_id in handled
        assert sorted(m["X-Rcpt"] for m in inbox) == ["buyer@buy-a.example", "sales@sup-a.example"]
        assert all(alert_id in m.get_payload() and order_id in m["Subject"] for m in inbox)
        assert conn.execute("SELECT state FROM payments").fetchone()[0] == "held"
        # processing the same notification again sends nothing twice
        _notify(conn, alert_id, "open", "temperature_excursion")
        listen_once(listener, conn, timeout_s=10, mailer=mailer, ledger=ledger, provider=provider)
        assert len(inbox) == 2

        # resolved, but not yet delivered: still held
        conn.execute(
            "UPDATE alerts SET state = 'resolved', resolved_by = 'qa',"
            " resolved_at = now() WHERE alert_id = %s",
            (alert_id,),
        )
        conn.commit()
        _notify(conn, alert_id, "resolved", "temperature_excursion")
        listen_once(listener, conn, timeout_s=10, mailer=mailer, ledger=ledger, provider=provider)
        assert len(inbox) == 4  # both parties hear of the resolution
        assert conn.execute("SELECT state FROM payments").fetchone()[0] == "held"

    delivered = _custody(
        h, carrier, shipment_id, "receiving", "ni:///sha-256;" + "2" * 64 + "?ver=CBV2.0"
    )
    assert delivered.json()["state"] == "delivered"
    order = h.client.get(f"/commerce/orders/{order_id}", headers=buyer).json()
    assert order["state"] == "delivered" and order["alerts"] == [alert_id]
    released = h.client.post(f"/commerce/orders/{order_id}/release-check", headers=supplier)
    assert released.json()["payment_state"] == "released", released.text
    captures = [s for s in proxy.seen if s.path == f"/v1/payment_intents/{ref}/capture"]
    assert len(captures) == 1 and captures[0].idempotency_key == f"{order_id}:rel-pay:capture"

    decisions = h.client.get(f"/commerce/orders/{order_id}/payment-decisions", headers=buyer).json()
    assert [d["decision"] for d in decisions] == ["hold", "hold", "hold", "release"]
    assert decisions[1]["evidence"]["reasons"][-1] == f"unresolved excursion alerts: ['{alert_id}']"
    assert decisions[3]["evidence"]["reasons"] == []
    with connect_org(fabric, 2) as gateway:
        contract = gateway.get_network(fabric.channel).get_contract(fabric.chaincode)
        for d in decisions:
            record = json.loads(contract.evaluate("GetRecord", d["record_id"]))
            assert record["tx_id"] == d["tx_id"] and record["value"]["decision"] == d["decision"]
        held = json.loads(contract.evaluate("GetRecord", decisions[1]["record_id"]))["value"]
        release = json.loads(contract.evaluate("GetRecord", decisions[3]["record_id"]))["value"]
    assert held["evidence"]["alerts"] == [
        {
            "alert_id": alert_id,
            "kind": "temperature_excursion",
            "state": "open",
            "event_hash": "ni:///sha-256;" + "a" * 64 + "?ver=CBV2.0",
        }
    ]
    assert release["evidence"]["alerts"][0]["state"] == "resolved"
    assert [e["event_hash"][14:15] for e in release["evidence"]["custody_events"]] == ["1", "2"]
    assert decisions[3]["record_id"] == f"payment-decision:{order_id}:4"
