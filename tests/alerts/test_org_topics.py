"""Alert topics per organisation, on a private broker started from the stack's own script, ACL
and PKI: an organisation's client (CN ``org:<id>``, issued by ``tracehub certs org``) receives
the alerts of its party's shipments on its own topic, and is refused every other organisation's
topics and the hub-wide topic (it hears nothing on them); a device certificate reads none.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from alerts.delivery import Deliverer, MqttPublisher
from alerts.store import MQTT_TOPIC, announce, open_alert
from certs.pki import PKI
from tests.support.alert_peers import make_shipment
from tests.support.broker import private_broker
from tests.support.gateway import private_database
from tests.support.mqtt import admit_gateway, close, connect, service_files, tls_client
from tests.support.processes import run_cli, wait_until
from tracehub.config import Settings
from tracehub.pki_names import org_alert_topic

pytestmark = pytest.mark.integration

KIND = "temperature_excursion"


@dataclass
class Subscriber:
    """One client subscribed to one filter: the SUBACK's verdict and what arrived."""

    client: mqtt.Client
    granted: threading.Event = field(default_factory=threading.Event)
    refused: threading.Event = field(default_factory=threading.Event)
    topics: list[str] = field(default_factory=list)


def subscribe(settings: Settings, cert: Path, key: Path, *filters: str) -> Subscriber:
    """One connection per certificate (the broker takes its CN as the client id, so a second
    connection with it would end the first), subscribed to every filter in ``filters``."""
    sub = Subscriber(tls_client(settings, cert, key))
    acks: list[bool] = []

    def on_subscribe(c: mqtt.Client, u: object, mid: int, codes: list[Any], p: object) -> None:
        acks.append(not codes[0].is_failure)
        if len(acks) == len(filters):
            (sub.granted if all(acks) else sub.refused).set()

    sub.client.on_subscribe = on_subscribe
    sub.client.on_message = lambda c, u, msg: sub.topics.append(msg.topic)
    assert connect(sub.client, settings), f"the broker refused {cert} for {filters}"
    for topic_filter in filters:
        sub.client.subscribe(topic_filter, qos=1)
    wait_until(lambda: sub.granted.is_set() or sub.refused.is_set(), 5, f"SUBACKs {filters}")
    return sub


def test_org_clients_read_only_their_own_alert_topics(stack: Settings, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    pki = PKI(stack.pki_dir)
    with private_broker(tmp_path, stack) as broker, private_database(stack) as (_, connect_db):
        settings = broker.settings(stack)
        with connect_db() as conn:
            shipment = make_shipment(conn, f"o{tag}")
            unrelated = make_shipment(conn, f"u{tag}")
        carrier, other = shipment.carrier_org, unrelated.carrier_org
        # The carrier's client as an operator issues it; the others straight from the PKI.
        issued = run_cli("certs", "org", carrier)
        assert issued.returncode == 0, issued.stderr
        assert f"CN=org:{carrier}" in issued.stdout and org_alert_topic(carrier) in issued.stdout
        pki.issue_organisation_certificate(other)
        device = f"dev-{tag}"
        pki.enrol_simulated_device(device)
        carrier_cert, carrier_key, _ = pki.org_paths(carrier)
        other_cert, other_key, _ = pki.org_paths(other)
        device_cert, device_key = pki.device_paths(device)

        # Each client also tries what it may not read: the carrier another organisation's topic
        # and the hub-wide one, and a wildcard over every organisation (the broker checks read
        # access per message); the other organisation the carrier's; a device both.
        carrier_sub = subscribe(
            settings,
            carrier_cert,
            carrier_key,
            org_alert_topic(carrier),
            "tracehub/v1/orgs/#",
            org_alert_topic(other),
            MQTT_TOPIC.format(kind="#"),
        )
        other_sub = subscribe(
            settings, other_cert, other_key, org_alert_topic(other), org_alert_topic(carrier)
        )
        device_sub = subscribe(
            settings, device_cert, device_key, org_alert_topic(carrier), "tracehub/v1/orgs/#"
        )
        # Mosquitto 2.0 grants a subscription its ACL file does not cover (the SUBACK succeeds)
        # and checks read access on every message instead: refused readers hear nothing.
        assert carrier_sub.granted.is_set() and other_sub.granted.is_set()

        alert_ids = []
        with connect_db() as conn:
            for s in (shipment, unrelated):
                alert_id = open_alert(
                    conn,
                    rule_id=f"cold-{s.shipment_id}",
                    kind=KIND,
                    severity="critical",
                    shipment_id=s.shipment_id,
                    gtin=s.gtin,
                    lot=s.lot,
                    device_id=s.device_id,
                    started_at=datetime.now(UTC),
                    detail={"summary": "9.5 °C for 12 minutes"},
                )
                announce(conn, alert_id, "opened")
                alert_ids.append(alert_id)
            conn.commit()
            targets = {
                r[0]
                for r in conn.execute(
                    "SELECT target FROM alert_deliveries WHERE alert_id = %s AND channel = 'mqtt'",
                    (alert_ids[0],),
                )
            }
        # The hub-wide topic and the one organisation party to the shipment (its carrier).
        assert targets == {MQTT_TOPIC.format(kind=KIND), org_alert_topic(carrier, KIND)}

        cert, key = service_files(stack, admit_gateway(broker.settings(stack))[1])
        publisher = MqttPublisher(
            "127.0.0.1",
            broker.port,
            ca_file=stack.pki_dir / "ca-bundle.pem",
            cert_file=cert,
            key_file=key,
        )
        deliverer = Deliverer(connect_db, mqtt=publisher)
        try:
            with connect_db() as conn:
                wait_until(lambda: deliverer.run_once(conn) == 0, 30, "the MQTT lane to drain")
                states = {
                    r[0]
                    for r in conn.execute(
                        "SELECT state FROM alert_deliveries WHERE alert_id = ANY(%s::uuid[])",
                        (alert_ids,),
                    )
                }
            assert states == {"delivered"}
            wait_until(
                lambda: bool(carrier_sub.topics and other_sub.topics),
                10,
                "each org to get its alert",
            )
            time.sleep(1)  # anything misrouted would have arrived by now
            # Overlapping subscriptions may each deliver a copy: what matters is which topics.
            assert set(carrier_sub.topics) == {f"tracehub/v1/orgs/org:{carrier}/alerts/{KIND}"}
            assert set(other_sub.topics) == {org_alert_topic(other, KIND)}
            assert device_sub.topics == []
        finally:
            deliverer.stop()
            publisher.close()
            for sub in (carrier_sub, other_sub, device_sub):
                close(sub.client)
