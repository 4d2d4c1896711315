"""MQTT 5 clients over mutual TLS, as every TraceHub party connects to the broker."""

from __future__ import annotations

import ssl
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion


def tls_client(
    client_id: str, *, ca_file: Path, cert_file: Path | None, key_file: Path | None
) -> mqtt.Client:
    """A paho MQTT 5 client that trusts ``ca_file`` and presents ``cert_file`` (if given)."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.tls_set(
        ca_certs=str(ca_file),
        certfile=str(cert_file) if cert_file else None,
        keyfile=str(key_file) if key_file else None,
        cert_reqs=ssl.CERT_REQUIRED,
    )
    return client
