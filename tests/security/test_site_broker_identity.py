"""A site broker keeps devices' identities, and its bridge identity has no more rights at the hub
than forwarding device topics (docs/decisions/0034-site-brokers.md).

Attacks replayed against private brokers (a hub by mosquitto.sh, a site by site-broker.sh): a
device at the site publishes on another device's topic; a site's certificate, used directly at
the hub, subscribes to the topics the gateways read or publishes an acknowledgement.
"""

from __future__ import annotations

import queue
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from certs.broker import BrokerEndpoint, admit_site
from certs.pki import PKI
from tests.support.broker import PrivateBroker, private_broker
from tests.support.gateway import Device
from tests.support.mqtt import close, connect, device_client, gateway_client, tls_client
from tests.support.processes import wait_until
from tests.support.site_broker import SiteBroker, site_broker
from tracehub.acks import ack_topic
from tracehub.config import Settings

NOT_AUTHORIZED = 135  # MQTT 5 reason code 0x87


@pytest.fixture
def brokers(stack: Settings, tmp_path: Path) -> Iterator[tuple[PrivateBroker, SiteBroker]]:
    with private_broker(tmp_path, stack) as hub, site_broker(tmp_path, stack, hub) as site:
        wait_until(lambda: site.bridged(hub), 30, "the site broker's bridge to the hub")
        yield hub, site


def _listen(client: mqtt.Client, topic: str) -> queue.Queue[mqtt.MQTTMessage]:
    """Subscribe ``client`` to ``topic`` (QoS 1) and wait for the broker's grant."""
    messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
    granted = threading.Event()
    client.on_message = lambda c, u, message: messages.put(message)
    client.on_subscribe = lambda c, u, mid, codes, p: (not codes[0].is_failure) and granted.set()
    client.subscribe(topic, qos=1)
    assert granted.wait(5), f"subscription to {topic} refused"
    return messages


def _topics(messages: queue.Queue[mqtt.MQTTMessage], wait_s: float) -> list[str]:
    got = []
    try:
        while True:
            got.append(messages.get(timeout=wait_s).topic)
    except queue.Empty:
        return got


def test_a_device_cannot_publish_as_another_through_the_site(
    stack: Settings, brokers: tuple[PrivateBroker, SiteBroker]
) -> None:
    hub, site = brokers
    pki = PKI(stack.pki_dir)
    mallory, victim = Device.many(stack, pki, 2)
    watcher = gateway_client(hub.settings(stack))
    assert connect(watcher, hub.settings(stack))
    attacker = device_client(stack, mallory.id)
    answers: queue.Queue[int] = queue.Queue()
    attacker.on_publish = lambda c, u, mid, reason, p: answers.put(reason.value)
    try:
        seen = _listen(watcher, "tracehub/v1/devices/+/readings")
        assert connect(attacker, site.settings(stack))
        attacker.publish(victim.topic, mallory.sign(1, 1.0), qos=1)
        forged = answers.get(timeout=5)
        # Control: the same connection's own topic crosses the bridge, so the silence below is
        # the site's ACL, not a broken bridge.
        attacker.publish(mallory.topic, mallory.sign(2, 1.0), qos=1)
        assert answers.get(timeout=5) == 0
        assert _topics(seen, 3) == [mallory.topic]
        assert forged == NOT_AUTHORIZED
    finally:
        close(attacker)
        close(watcher)


def test_the_site_identity_only_forwards_at_the_hub(stack: Settings, tmp_path: Path) -> None:
    """A site's certificate at the hub (as a stolen site key would be used): it may not read
    what gateways read, nor another site's acknowledgements, nor acknowledge readings to a
    device; it may publish a device topic and read its own devices' acknowledgements."""
    with private_broker(tmp_path, stack) as hub:
        settings = hub.settings(stack)
        pki = PKI(stack.pki_dir)
        device, elsewhere = Device.many(stack, pki, 2)
        service = admit_site(
            pki, BrokerEndpoint.of(settings), f"t{uuid.uuid4().hex[:8]}", [device.id]
        )
        # Admitting again (as `stack.sh up` does at every start) changes nothing.
        assert (
            admit_site(pki, BrokerEndpoint.of(settings), service.removeprefix("site-"), [device.id])
            == service
        )
        cert, key, _ = pki.service_paths(service)
        site = tls_client(stack, cert, key)
        listener = device_client(stack, device.id)
        watcher = gateway_client(settings)
        assert connect(site, settings)
        assert connect(listener, settings)
        assert connect(watcher, settings)
        try:
            codes: queue.Queue[int] = queue.Queue()
            site.on_subscribe = lambda c, u, mid, reasons, p: codes.put(reasons[0].value)
            for topic in (
                f"$share/{service}/tracehub/v1/devices/+/readings",
                "tracehub/v1/devices/#",
                "tracehub/v1/acks/#",
                "tracehub/v1/alerts/#",
                "tracehub/v1/orgs/#",
                ack_topic(elsewhere.id),  # a device not listed at this site
            ):
                site.subscribe(topic, qos=1)
                assert codes.get(timeout=5) == NOT_AUTHORIZED, topic
            # The acknowledgements of its own device it may read: the bridge brings them back.
            site.subscribe(ack_topic(device.id), qos=1)
            assert codes.get(timeout=5) == 1
            acks = _listen(listener, ack_topic(device.id))
            readings = _listen(watcher, device.topic)
            answers: queue.Queue[int] = queue.Queue()
            site.on_publish = lambda c, u, mid, reason, p: answers.put(reason.value)
            site.publish(ack_topic(device.id), b'{"forged": true}', qos=1)
            assert answers.get(timeout=5) == NOT_AUTHORIZED
            site.publish(device.topic, device.sign(1, 1.0), qos=1)
            assert answers.get(timeout=5) == 0
            assert _topics(readings, 3) == [device.topic]
            assert _topics(acks, 1) == []
        finally:
            for client in (site, listener, watcher):
                close(client)
