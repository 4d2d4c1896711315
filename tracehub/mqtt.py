"""MQTT 5 clients over mutual TLS, as every TraceHub party connects to the broker.

The broker takes the client certificate's CN as the username and as the client id, whatever
id the client sends (network/mosquitto/mosquitto.sh); clients send that same id
(``certificate_identity``) so that logs and code say what the broker does.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import paho.mqtt.client as mqtt
from cryptography import x509
from cryptography.x509.oid import NameOID
from paho.mqtt.enums import CallbackAPIVersion


def certificate_identity(cert_file: Path) -> str:
    """The CN of the certificate in ``cert_file``: the client's username and client id."""
    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    return str(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


def tls_client(
    client_id: str,
    *,
    ca_file: Path,
    cert_file: Path | None,
    key_file: Path | None,
    client_class: type[mqtt.Client] = mqtt.Client,
) -> mqtt.Client:
    """A paho MQTT 5 client (of ``client_class``) that trusts ``ca_file`` and presents
    ``cert_file`` (if given)."""
    client = client_class(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.tls_set(
        ca_certs=str(ca_file),
        certfile=str(cert_file) if cert_file else None,
        keyfile=str(key_file) if key_file else None,
        cert_reqs=ssl.CERT_REQUIRED,
    )
    return client
