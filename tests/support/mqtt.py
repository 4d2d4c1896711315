"""MQTT 5 test clients that authenticate with PKI certificates, and small waits around paho."""

from __future__ import annotations

import ssl
import threading
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt

from certs import broker
from certs.broker import BrokerEndpoint
from certs.pki import PKI
from gateway.consumer import ConsumerSettings, leave
from tracehub import mqtt as tracehub_mqtt
from tracehub.config import Settings

# The gateway consumers admitted in this test run, with their broker's settings: their sessions
# are ended when the run finishes (tests/conftest.py), because Mosquitto 2.0 keeps a disconnected
# session for good if the broker restarts before it expires (docs/acknowledgement.md).
ADMITTED: list[tuple[Settings, str]] = []


def tls_client(settings: Settings, cert: Path | None, key: Path | None) -> mqtt.Client:
    """An MQTT 5 client over TLS that trusts our root and presents ``cert`` (if given)."""
    return tracehub_mqtt.tls_client(
        tracehub_mqtt.certificate_identity(cert) if cert else f"test-{uuid.uuid4().hex[:10]}",
        ca_file=settings.pki_dir / "ca-bundle.pem",
        cert_file=cert,
        key_file=key,
    )


def device_client(settings: Settings, device_id: str) -> mqtt.Client:
    device_dir = settings.pki_dir / "devices" / device_id
    return tls_client(settings, device_dir / "cert.pem", device_dir / "key.pem")


def admit_gateway(settings: Settings, name: str | None = None) -> tuple[str, str]:
    """Issue and admit the broker identities of gateway process ``name`` (default: a fresh
    test name) at the settings' broker; their service names (consumer, alert publisher)."""
    name = name or f"t{uuid.uuid4().hex[:10]}"
    services = broker.admit_gateway(PKI(settings.pki_dir), BrokerEndpoint.of(settings), name)
    if (settings, services[0]) not in ADMITTED:  # a gateway restarted under its name: once
        ADMITTED.append((settings, services[0]))
    return services


def end_session(settings: Settings, service: str, timeout: float = 10) -> bool:
    """Connect as ``service`` with a clean start and leave: its persistent session ends now.

    A test's or a bench's consumer is used once. Left to expire (a test gateway's 120 s, a bench
    gateway's), or never (a Telegraf's MQTT 3.1.1 session, or any session the broker restored
    after a restart), its session would have the broker queue a copy of every reading published
    after it. True if the broker accepted."""
    return leave(ConsumerSettings.for_service(settings, service), timeout)


def service_files(settings: Settings, service: str) -> tuple[Path, Path]:
    """``(cert.pem, key.pem)`` of a service."""
    cert, key, _ = PKI(settings.pki_dir).service_paths(service)
    return cert, key


def gateway_client(settings: Settings) -> mqtt.Client:
    """A client with a gateway's rights, as an identity of its own: the broker takes the
    certificate's CN as the client id, so clients sharing a certificate would evict each other."""
    return tls_client(settings, *service_files(settings, admit_gateway(settings)[0]))


def connect(client: mqtt.Client, settings: Settings, timeout: float = 5) -> bool:
    """Connect and start the network loop; True when the broker accepted the CONNECT."""
    accepted = threading.Event()
    client.on_connect = lambda c, u, f, reason, p: (not reason.is_failure) and accepted.set()
    try:
        client.connect(settings.mqtt_host, settings.mqtt_tls_port, keepalive=10)
    except (ssl.SSLError, OSError):
        return False
    client.loop_start()
    if accepted.wait(timeout):
        return True
    client.loop_stop()
    return False


def close(client: mqtt.Client) -> None:
    client.disconnect()
    client.loop_stop()
