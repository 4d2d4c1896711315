"""Ending a bench identity's broker session once the bench is done with it."""

from __future__ import annotations

from certs.pki import PKI
from gateway.consumer import ConsumerSettings, leave
from tracehub.config import Settings
from tracehub.pki_names import service_username


def end_session(settings: Settings, service: str) -> None:
    """Connect as ``service`` with a clean start and leave: its persistent session ends now.

    A bench's consumer is used once. Left to expire (the gateways' 120 s), or never (a Telegraf's
    MQTT 3.1.1 session), its session would have the broker queue a copy of every reading the
    next run publishes, which the next run's broker figures would then include.
    """
    pki = PKI(settings.pki_dir)
    cert, key, _ = pki.service_paths(service)
    leave(
        ConsumerSettings(
            settings.mqtt_host,
            settings.mqtt_tls_port,
            pki.ca_bundle_path,
            cert,
            key,
            service_username(service),
        )
    )
