"""The broker with the device PKI: mutual TLS, certificate identity as username, topic ACL,
revocation reaching the broker, and who may send and read the hub's acknowledgements."""

from __future__ import annotations

import datetime
import queue
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from certs.pki import PKI
from tests.support.broker import private_broker
from tests.support.mqtt import close, connect, device_client, gateway_client, tls_client
from tests.support.processes import run_cli
from tracehub.acks import ack_topic
from tracehub.config import Settings

pytestmark = pytest.mark.integration

NOT_AUTHORIZED = 135  # MQTT 5 reason code 0x87


@pytest.fixture()
def pki(stack: Settings) -> PKI:
    return PKI(stack.pki_dir)


def _new_device(pki: PKI) -> str:
    device_id = f"test-{uuid.uuid4().hex[:12]}"
    pki.enrol_simulated_device(device_id)
    return device_id


def _gateway_listening(settings: Settings) -> tuple[mqtt.Client, queue.Queue[mqtt.MQTTMessage]]:
    received: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
    gateway = gateway_client(settings)
    gateway.on_message = lambda c, u, message: received.put(message)
    subscribed = queue.Queue[object]()
    gateway.on_subscribe = lambda *args: subscribed.put(args)
    assert connect(gateway, settings), "gateway could not connect"
    gateway.subscribe("$share/tests/tracehub/v1/devices/+/readings", qos=1)
    subscribed.get(timeout=5)
    return gateway, received


def _publish(client: mqtt.Client, topic: str, payload: bytes) -> int:
    """Publish with QoS 1 and return the PUBACK's MQTT 5 reason code."""
    acks: queue.Queue[int] = queue.Queue()
    client.on_publish = lambda c, u, mid, reason, props: acks.put(reason.value)
    client.publish(topic, payload, qos=1)
    return acks.get(timeout=5)


def test_device_publishes_to_its_own_topic(stack: Settings, pki: PKI) -> None:
    device_id = _new_device(pki)
    gateway, received = _gateway_listening(stack)
    device = device_client(stack, device_id)
    try:
        assert connect(device, stack)
        topic = f"tracehub/v1/devices/{device_id}/readings"
        assert _publish(device, topic, b"reading-1") == 0
        message = received.get(timeout=5)
        assert (message.topic, message.payload) == (topic, b"reading-1")
    finally:
        close(device)
        close(gateway)


def test_device_is_refused_on_another_devices_topic(stack: Settings, pki: PKI) -> None:
    device_id, other_id = _new_device(pki), _new_device(pki)
    gateway, received = _gateway_listening(stack)
    device = device_client(stack, device_id)
    try:
        assert connect(device, stack)
        forged_topic = f"tracehub/v1/devices/{other_id}/readings"
        assert _publish(device, forged_topic, b"pretending") == NOT_AUTHORIZED
        # Its own topic still works afterwards, and only that message arrives.
        assert _publish(device, f"tracehub/v1/devices/{device_id}/readings", b"mine") == 0
        assert received.get(timeout=5).payload == b"mine"
        assert received.empty()
    finally:
        close(device)
        close(gateway)


def test_device_cannot_read_other_devices(stack: Settings, pki: PKI) -> None:
    # Mosquitto 2.0 grants the SUBSCRIBE but its read ACL withholds every message from the
    # snooper, while the gateway (the control) receives the same message.
    snooper, publisher = _new_device(pki), _new_device(pki)
    gateway, gateway_received = _gateway_listening(stack)
    snooping = device_client(stack, snooper)
    snooped: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
    snooping.on_message = lambda c, u, message: snooped.put(message)
    subscribed: queue.Queue[object] = queue.Queue()
    snooping.on_subscribe = lambda *args: subscribed.put(args)
    sender = device_client(stack, publisher)
    try:
        assert connect(snooping, stack) and connect(sender, stack)
        snooping.subscribe("tracehub/v1/devices/#", qos=1)
        subscribed.get(timeout=5)
        assert _publish(sender, f"tracehub/v1/devices/{publisher}/readings", b"private") == 0
        assert gateway_received.get(timeout=5).payload == b"private"
        with pytest.raises(queue.Empty):
            snooped.get(timeout=1)
    finally:
        close(snooping)
        close(sender)
        close(gateway)


def test_client_without_certificate_is_refused(stack: Settings) -> None:
    assert not connect(tls_client(stack, None, None), stack)


def test_certificate_from_an_unknown_ca_is_refused(stack: Settings, tmp_path: Path) -> None:
    now = datetime.datetime.now(datetime.UTC)
    rogue_key = ec.generate_private_key(ec.SECP256R1())
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "service:gateway")]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "rogue CA")]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(rogue_key, hashes.SHA256())
    )
    (tmp_path / "c.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "k.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    assert not connect(tls_client(stack, tmp_path / "c.pem", tmp_path / "k.pem"), stack)


def test_revoked_device_is_refused_after_the_broker_restarts(
    stack: Settings, pki: PKI, tmp_path: Path
) -> None:
    # The broker loads the CRL at start (a broker of the test's own, restarted).
    with private_broker(tmp_path, stack) as broker:
        settings = broker.settings(stack)
        device_id = _new_device(pki)
        before = device_client(settings, device_id)
        assert connect(before, settings)  # the same certificate works until revoked
        close(before)

        revoke = run_cli("devices", "revoke", device_id, "--reason", "keyCompromise", "--no-ledger")
        assert revoke.returncode == 0, revoke.stderr
        broker.stop()
        broker.start()
        assert not connect(device_client(settings, device_id), settings)
        # Others are unaffected.
        other = device_client(settings, _new_device(pki))
        assert connect(other, settings)
        close(other)


def test_only_the_gateway_acknowledges_and_only_that_device_reads_it(
    stack: Settings, pki: PKI, tmp_path: Path
) -> None:
    # The ACL this tree's network/mosquitto/mosquitto.sh writes, on a broker of the test's own.
    with private_broker(tmp_path, stack) as broker:
        settings = broker.settings(stack)
        device_id, other_id = _new_device(pki), _new_device(pki)
        device, other, gateway = (
            device_client(settings, device_id),
            device_client(settings, other_id),
            gateway_client(settings),
        )
        received: dict[str, queue.Queue[bytes]] = {d: queue.Queue() for d in (device_id, other_id)}
        try:
            for client, name in ((device, device_id), (other, other_id)):
                assert connect(client, settings)
                inbox = received[name]
                client.on_message = lambda c, u, message, inbox=inbox: inbox.put(message.payload)
                subscribed: queue.Queue[object] = queue.Queue()
                client.on_subscribe = lambda *args, done=subscribed: done.put(args)
                client.subscribe("tracehub/v1/acks/#", qos=1)  # the other one tries to read all
                subscribed.get(timeout=5)
            assert connect(gateway, settings)
            # Neither the device itself nor another device may publish the device's acks...
            assert _publish(device, ack_topic(device_id), b"forged by itself") == NOT_AUTHORIZED
            assert _publish(other, ack_topic(device_id), b"forged by another") == NOT_AUTHORIZED
            # ...the gateway may, and only the device reads them.
            assert _publish(gateway, ack_topic(device_id), b"from the hub") == 0
            assert received[device_id].get(timeout=5) == b"from the hub"
            with pytest.raises(queue.Empty):
                received[other_id].get(timeout=1)
            assert received[device_id].empty()
        finally:
            for client in (device, other, gateway):
                close(client)
