"""The broker's mutual-TLS listener: a client with a certificate from the broker's CA gets in;
one without a certificate, or with a certificate from another CA, is refused."""

from __future__ import annotations

import datetime
import ssl
import threading
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tracehub.config import Settings

pytestmark = pytest.mark.integration


def _client(settings: Settings, certfile: Path | None, keyfile: Path | None) -> mqtt.Client:
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=f"test-{uuid.uuid4().hex[:8]}",
        protocol=mqtt.MQTTv5,
    )
    tls = settings.mqtt_tls_dir
    client.tls_set(
        ca_certs=str(tls / "ca.crt"),
        certfile=certfile and str(certfile),
        keyfile=keyfile and str(keyfile),
        cert_reqs=ssl.CERT_REQUIRED,
    )
    return client


def _connects(client: mqtt.Client, settings: Settings) -> bool:
    """True when the broker answers CONNECT with success within 5 s."""
    accepted = threading.Event()
    client.on_connect = lambda c, u, f, reason, p: reason == 0 and accepted.set()
    try:
        client.connect(settings.mqtt_host, settings.mqtt_tls_port, keepalive=10)
    except (ssl.SSLError, OSError):
        return False
    client.loop_start()
    try:
        return accepted.wait(5)
    finally:
        client.disconnect()
        client.loop_stop()


def test_client_with_certificate_connects_and_round_trips(stack: Settings) -> None:
    tls = stack.mqtt_tls_dir
    client = _client(stack, tls / "client.crt", tls / "client.key")
    received: list[bytes] = []
    got = threading.Event()
    subscribed = threading.Event()
    topic = f"tracehub/test/{uuid.uuid4().hex}"

    def on_connect(c: mqtt.Client, u: object, f: object, reason: object, p: object) -> None:
        c.subscribe(topic, qos=1)

    def on_message(c: mqtt.Client, u: object, message: mqtt.MQTTMessage) -> None:
        received.append(message.payload)
        got.set()

    client.on_connect = on_connect
    client.on_subscribe = lambda *args: subscribed.set()
    client.on_message = on_message
    client.connect(stack.mqtt_host, stack.mqtt_tls_port, keepalive=10)
    client.loop_start()
    try:
        assert subscribed.wait(5), "no SUBACK"
        client.publish(topic, b"reading-1", qos=1).wait_for_publish(5)
        assert got.wait(5), "message not delivered back"
        assert received == [b"reading-1"]
    finally:
        client.disconnect()
        client.loop_stop()


def test_client_without_certificate_is_refused(stack: Settings) -> None:
    assert not _connects(_client(stack, None, None), stack)


def test_client_with_certificate_from_another_ca_is_refused(
    stack: Settings, tmp_path: Path
) -> None:
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "rogue CA")])
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dev-client")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(ca_key, hashes.SHA256())
    )
    (tmp_path / "c.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "c.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    assert not _connects(_client(stack, tmp_path / "c.crt", tmp_path / "c.key"), stack)


def test_certificate_client_is_accepted_by_the_refusal_probe(stack: Settings) -> None:
    # The refusal tests above mean something only if the same probe says yes to a good client.
    tls = stack.mqtt_tls_dir
    assert _connects(_client(stack, tls / "client.crt", tls / "client.key"), stack)
