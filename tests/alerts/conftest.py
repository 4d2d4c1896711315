"""Alerts: rules, the engine and its channels (SSE, MQTT, e-mail, webhook), the gateway hook.

The webhook receivers of these tests listen on loopback, which the outbound policy refuses
(alerts/outbound.py); the tests' settings put 127.0.0.1 on the operator's allow-list, as a
deployment would for an inside receiver. The hub's own service ports stay refused."""

from __future__ import annotations

import dataclasses

import pytest

from tests.support.alert_peers import RECEIVERS_ALLOW
from tracehub.config import Settings, WebhookSettings


@pytest.fixture(scope="session")
def stack(stack: Settings) -> Settings:
    """The stack's settings, with the loopback webhook receivers allow-listed."""
    return dataclasses.replace(stack, webhooks=WebhookSettings(allow=RECEIVERS_ALLOW))
