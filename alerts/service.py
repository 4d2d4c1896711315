"""Wiring the alert worker into a gateway process (`python -m gateway`)."""

from __future__ import annotations

from alerts.delivery import Deliverer, DeliverySettings, MqttPublisher
from alerts.engine import AlertEngine
from alerts.outbound import OutboundPolicy
from alerts.worker import AlertWorker
from certs.pki import PKI
from tracehub import db
from tracehub.config import Settings


def gateway_alert_worker(
    settings: Settings, pki: PKI, *, service: str, tick_s: float = 5.0
) -> AlertWorker:
    """An alert worker on the stack's database, publishing as ``service``: the gateway
    process's alert identity (tracehub.pki_names.gateway_services), a client id of its own."""
    cert, key, _ = pki.service_paths(service)

    def connect() -> db.Connection:
        return db.connect(settings.postgres_dsn)

    publisher = MqttPublisher(
        settings.mqtt_host,
        settings.mqtt_tls_port,
        ca_file=pki.ca_bundle_path,
        cert_file=cert,
        key_file=key,
    )
    return AlertWorker(
        AlertEngine(connect),
        Deliverer(
            connect,
            DeliverySettings(
                smtp=settings.smtp,
                webhook_policy=OutboundPolicy.from_settings(settings),
                lease_s=settings.alerts.delivery_lease_s,
            ),
            mqtt=publisher,
        ),
        tick_s=tick_s,
    )
